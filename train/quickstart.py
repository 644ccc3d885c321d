"""The main job: the whole path on one machine with no dataset.

About 400 lines: the five stages of one command, each a short function, in the order they run.

  python -m train.quickstart --output_dir runs/quickstart

Stages (each announced with its number and timed; the paths of everything it
wrote are printed at the end):

  1. data      pipelines.build_synthetic on its embedded default (procedurally
               drawn textured images, no download): Re3's occluded-track
               simulator writes --num_tracks training tracks, with a preview
               contact sheet.
  2. train     train.train on those records with a small Re3
               (configs/experiments/re3_quickstart.yaml: the paper's layer
               list at 96x96 crops, the unroll curriculum in miniature).
  3. export    model.export: the trained network as a stateless SavedModel.
  4. track     the exported model tracks one sequence with model.tracker
               (through train.evaluate, one-pass protocol, next to OpenCV's
               KCF when OpenCV is installed, the peers NanoTrack v2 and
               VitTrack when their ONNX files are found (--peer_models,
               $RE3_PEER_MODELS, or ../shared/models/peers) and a stay-put
               floor): an OTB
               sequence from ../shared/data/tracking/otb when that folder
               exists, else a sequence generated like the training data but
               from an unseen seed, written in the OTB layout.
  5. report    metrics (success AUC, precision at 20 px, the RL paper's
               center error and IoU, FPS), a success plot and an annotated GIF
               (green: Re3, yellow: ground truth, with a legend and the
               frame number).

Every stage reuses what an earlier run of the same command left in
--output_dir (records, checkpoints: training resumes), so an interrupted run
continues where it stopped; --fresh starts over.

Why these defaults: the job must finish in well under 15 minutes on 2 CPU
cores. About a thousand steps of a network with 2M parameters learn to
follow a target on the simulator's tracks; it is a demonstration of the
system, not a good tracker (train/experiments/re3_real.sh trains the one the
README's real-video table reports).
"""

from __future__ import annotations

import os

from configs import cli as cli_errors, quiet

quiet.setup()

import contextlib  # noqa: E402
import json  # noqa: E402
import logging as py_logging  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Dict, List, Optional, Sequence  # noqa: E402

from absl import app, flags, logging  # noqa: E402
import numpy as np  # noqa: E402

from configs import experiment  # noqa: E402
from model import geometry  # noqa: E402
from pipelines import schema, shards  # noqa: E402
from train import train as train_lib  # noqa: E402
from train.eval import baselines, peers  # noqa: E402
from train.eval.datasets import load_sequences  # noqa: E402
from train.eval.render import (  # noqa: E402
    GT_COLOR, GT_LABEL, Layer, Renderer, annotate, tracker_color)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(REPO_ROOT, "configs", "experiments", "re3_quickstart.yaml")
DEFAULT_OTB = os.path.join(REPO_ROOT, "..", "shared", "data", "tracking", "otb")
DEFAULT_PEER_MODELS = os.path.join(REPO_ROOT, "..", "shared", "models", "peers")
STAGES = ("data", "train", "export", "track", "report")
COMPARE = ("kcf", "nano", "vit", "stay")
GENERATED_NAME = "SyntheticDemo"


def define_flags(flag_values=flags.FLAGS):
  """Defined on demand (by __main__ or a test's own FlagValues) so importing
  this module never clashes with another entry point's flags."""
  f = flag_values
  flags.DEFINE_string("output_dir", None, "Everything goes here (records, model, export, "
                      "evaluation, GIF).", flag_values=f)
  flags.DEFINE_string("config", DEFAULT_CONFIG, "Re3 experiment YAML to train (as train.train's "
                      "--config).", flag_values=f)
  flags.DEFINE_multi_string("set", [], "Dotted override of the training config, as train.train's "
                            "--set, e.g. --set trainer.stages[0].steps=100.", flag_values=f)
  flags.DEFINE_integer("num_tracks", 200, "Synthetic training tracks.", flag_values=f)
  flags.DEFINE_integer("track_length", 32, "Frames per synthetic track.", flag_values=f)
  flags.DEFINE_integer("canvas_size", 256, "Side of the synthetic frames in pixels.",
                       flag_values=f)
  flags.DEFINE_integer("train_steps", 0, "Training steps (0 = the config's).", flag_values=f)
  flags.DEFINE_string("otb_dir", DEFAULT_OTB, "OTB folder to take the demo sequence from "
                      "(a generated sequence is used when it does not exist).", flag_values=f)
  flags.DEFINE_string("sequence", "Freeman1", "Name of the OTB sequence to track.", flag_values=f)
  flags.DEFINE_integer("generated_length", 120, "Frames of the generated demo sequence "
                       "(when no OTB folder is there).", flag_values=f)
  flags.DEFINE_integer("max_frames", 0, "Track at most this many frames (0 = all).",
                       flag_values=f)
  flags.DEFINE_list("compare", list(COMPARE), "Trackers run beside Re3 on the sequence "
                    "(kcf needs OpenCV, the peers nano, nano_v1 and vit their ONNX files; each is "
                    "dropped with a note when what it needs is missing).", flag_values=f)
  flags.DEFINE_string("peer_models", None, "Folder of the peers' ONNX files (nanotrack_v2/, "
                      f"nanotrack_v1/, vittrack/); default ${peers.PEER_MODELS_ENV}, else "
                      "../shared/models/peers beside the repository when it exists.",
                      flag_values=f)
  flags.DEFINE_integer("seed", 0, "Seed of the synthetic data.", flag_values=f)
  flags.DEFINE_bool("fresh", False, "Delete --output_dir's earlier results first.",
                    flag_values=f)
  flags.DEFINE_bool("progress", True, "Progress bars (training, tracking).", flag_values=f)
  cli_errors.define_verbose_flag(f)


class Stages:
  """Prints '[k/5] name: what' before each stage and its time after it."""

  def __init__(self, out=None):
    self._out = out
    self.times: Dict[str, float] = {}
    self._t0 = time.perf_counter()

  def start(self, name: str, what: str) -> float:
    k = STAGES.index(name) + 1
    print(f"\n[{k}/{len(STAGES)}] {name}: {what}", file=self.out, flush=True)
    return time.perf_counter()

  def done(self, name: str, t0: float, note: str = "") -> None:
    dt = time.perf_counter() - t0
    self.times[name] = dt
    print(f"[{STAGES.index(name) + 1}/{len(STAGES)}] {name} done in {dt:.1f} s"
          f"{': ' + note if note else ''}", file=self.out, flush=True)

  @property
  def out(self):
    return self._out or sys.stdout  # looked up when printing (tests capture sys.stdout)

  @property
  def total(self) -> float:
    return time.perf_counter() - self._t0


# ---------------------------------------------------------------------------
# 1. data
# ---------------------------------------------------------------------------


def _records_present(path: str, name: str, split: str) -> bool:
  return os.path.isdir(path) and bool(shards.record_files(path, name, split))


def build_synthetic(output_dir: str, num_tracks: int, track_length: int, canvas_size: int,
                    seed: int, split: str = "train", name: str = "synthetic",
                    preview: int = 4) -> str:
  """Runs pipelines.build_synthetic on the embedded default (no --det_dir or
  --images_dir) unless its records are already there; returns output_dir."""
  if _records_present(output_dir, name, split):
    print(f"  reusing the records in {output_dir}")
    return output_dir
  # Beam is imported only when this stage runs.
  from pipelines import build_synthetic as job  # pylint: disable=g-import-not-at-top
  argv = [f"--output_dir={output_dir}", f"--num_tracks={num_tracks}",
          f"--track_length={track_length}", f"--canvas_size={canvas_size}", f"--seed={seed}",
          f"--split={split}", f"--name={name}", "--num_shards=2", f"--preview={preview}",
          "--runner=DirectRunner"]
  print("  python -m pipelines.build_synthetic " + " ".join(argv))
  with still_running("the Beam job"):
    counters = job.main(argv)
  made = {k: v for k, v in (counters or {}).items() if "generated" in k or "rejected" in k}
  if made:
    print("  counters: " + ", ".join(f"{k}={v}" for k, v in sorted(made.items())))
  if not _records_present(output_dir, name, split):
    raise RuntimeError(f"pipelines.build_synthetic wrote no {split} records to {output_dir}")
  return output_dir


@contextlib.contextmanager
def still_running(what: str, every: float = 15.0, out=None):
  """Prints `  ... {what} still running (N s)` every `every` seconds while the
  block runs (a stage without progress of its own is not silent)."""
  stop = threading.Event()
  t0 = time.time()

  def beat():
    while not stop.wait(every):
      print(f"  ... {what} still running ({time.time() - t0:.0f} s)", file=out or sys.stdout,
            flush=True)

  thread = threading.Thread(target=beat, daemon=True)
  thread.start()
  try:
    yield
  finally:
    stop.set()
    thread.join()


def train_note(result: Dict[str, float], model_dir: str) -> str:
  """The train stage's summary; a run resumed at its last step trains nothing
  and has no loss to report (not "final loss nan")."""
  loss = float(result.get("loss", float("nan")))
  if math.isfinite(loss):
    return f"step {result.get('step')}, final loss {loss:.3f}"
  return (f"step {result.get('step')}: already trained (resumed from {model_dir}; "
          "--fresh starts over), no step run")


def write_otb_sequence(records_dir: str, name: str, split: str, out_root: str,
                       seq_name: str) -> str:
  """The first track of `records_dir` as an OTB-layout folder
  (out_root/seq_name/img/0001.jpg..., groundtruth_rect.txt with 1-based
  x,y,w,h), so the generated demo goes through the same readers, evaluation
  and tracking CLI as a real OTB sequence. Returns the sequence folder."""
  # TensorFlow is imported only when a stage needs it (a fast --help).
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  folder = os.path.join(out_root, seq_name)
  gt_path = os.path.join(folder, "groundtruth_rect.txt")
  if os.path.exists(gt_path):
    return folder
  files = shards.record_files(records_dir, name, split)
  record = next(iter(tf.data.TFRecordDataset(files)))
  track = schema.parse_track(record.numpy())
  img_dir = os.path.join(folder, "img")
  os.makedirs(img_dir, exist_ok=True)
  for i, data in enumerate(track.images):
    # The records hold JPEG bytes already: written as they are, no re-encoding.
    with open(os.path.join(img_dir, f"{i + 1:04d}.jpg"), "wb") as f:
      f.write(data)
  xywh = geometry.xyxy_to_xywh(np.asarray(track.boxes_xyxy, np.float64))
  xywh[:, :2] += 1.0  # OTB ground truth is 1-based
  with open(gt_path + ".tmp", "w") as f:
    for row in xywh:
      f.write(",".join(f"{v:.2f}" for v in row) + "\n")
  os.replace(gt_path + ".tmp", gt_path)
  return folder


# ---------------------------------------------------------------------------
# 2. train, 3. export
# ---------------------------------------------------------------------------


def train(config: str, model_dir: str, train_dir: str, overrides: Sequence[str],
          train_steps: int, progress: bool) -> Dict[str, float]:
  sets = [f"data.train_dir={train_dir}"] + list(overrides)
  if train_steps:
    sets.append(f"trainer.train_steps={train_steps}")
  sets.append(f"runtime.progress_bar={'true' if progress else 'false'}")
  cfg = experiment.load_experiment(config, sets)
  if cfg.task != "re3":
    raise ValueError(f"{config}: the main job trains a Re3 model, the config's task is "
                     f"{cfg.task!r}")
  print(f"  python -m train.train --config {config} --model_dir {model_dir} "
        + " ".join(f"--set {s}" for s in sets))
  return train_lib.run_config(cfg, model_dir)


def export(model_dir: str, export_dir: str) -> Dict[str, str]:
  # model.export imports TensorFlow: only when this stage runs.
  from model import export as export_lib  # pylint: disable=g-import-not-at-top
  if os.path.isdir(export_dir):
    shutil.rmtree(export_dir)  # our own earlier export: always re-export the latest checkpoint
  return export_lib.export(model_dir, export_dir)


# ---------------------------------------------------------------------------
# 4. track, 5. report
# ---------------------------------------------------------------------------


def default_peer_models() -> Optional[str]:
  """$RE3_PEER_MODELS, else ../shared/models/peers beside the repository when it exists."""
  env = os.environ.get(peers.PEER_MODELS_ENV)
  if env:
    return env
  return DEFAULT_PEER_MODELS if os.path.isdir(DEFAULT_PEER_MODELS) else None


def available_trackers(names: Sequence[str], peer_models: Optional[str] = None) -> List[str]:
  """The comparison trackers that can run here (OpenCV ones need cv2, the peers
  their ONNX files in `peer_models`); the others are left out with a note."""
  out = []
  for n in names:
    try:
      if n in peers.PEERS:
        peers.make_peer(n, peer_models)
      else:
        baselines.make_baseline(n)
      out.append(n)
    except Exception as e:  # pylint: disable=broad-except
      print(f"  note: comparison tracker {n!r} left out ({e})")
  return out


def track(export_dir: str, seq_root: str, seq_name: str, eval_dir: str, compare: Sequence[str],
          max_frames: int, progress: bool, peer_models: Optional[str] = None
          ) -> Dict[str, object]:
  """train.evaluate's one-pass run of Re3 (the export) and the comparison
  trackers on the one sequence; returns its performance dict."""
  # train.eval.experiment imports TensorFlow (model.tracker): only when this stage runs.
  from train.eval import experiment as eval_experiment  # pylint: disable=g-import-not-at-top
  trackers = ["re3"] + available_trackers(compare, peer_models)
  uses_peers = any(t in peers.PEERS for t in trackers)
  print(f"  python -m train.evaluate --model {export_dir} --dataset otb:{seq_root} "
        f"--sequences {seq_name} --protocol ope --trackers {','.join(trackers)} "
        f"--output_dir {eval_dir}" + (f" --max_frames {max_frames}" if max_frames else "")
        + (f" --peer_models {peer_models}" if uses_peers and peer_models else ""))
  return eval_experiment.evaluate(export_dir, f"otb:{seq_root}", "ope", eval_dir, trackers,
                             sequences=[seq_name], max_frames=max_frames, progress=progress,
                             peer_models=peer_models if uses_peers else None)


def _read_boxes(path: str) -> np.ndarray:
  rows = np.loadtxt(path, delimiter=",", ndmin=2)
  return rows.reshape(-1, 4)


def render_gif(seq_root: str, seq_name: str, boxes_path: str, gif_path: str,
               max_frames: int = 0, fps: float = 15.0, max_gif_frames: int = 150) -> str:
  """The tracked sequence with Re3's boxes (green, red while lost) and the ground
  truth (yellow), a legend saying which is which and the frame number
  (train.eval.render.annotate), written with train.eval.render.Renderer. Longer
  sequences are drawn every k-th frame (at most `max_gif_frames` frames, at
  fps * k so the clip keeps its duration): a GIF of real video costs ~60 kB
  a frame."""
  seq = load_sequences("otb", seq_root, names=[seq_name], max_frames=max_frames)[0]
  pred = _read_boxes(boxes_path)
  gt = geometry.xyxy_to_xywh(seq.gt_xyxy)
  n = min(len(seq), len(pred))
  stride = max(1, -(-n // max_gif_frames))
  render = Renderer(gif_path, fps=fps / stride, max_side=480)
  for i in range(0, n, stride):
    ok = bool(np.all(np.isfinite(pred[i])))
    render.add(annotate(seq.frames[i], [Layer(GT_LABEL, gt[i], GT_COLOR),
                                        Layer("re3", pred[i], tracker_color(0), ok)],
                        frame_number=i))
  render.close()
  return gif_path


def result_lines(perf: Dict[str, object]) -> List[str]:
  lines = []
  for name, r in perf["trackers"].items():
    s, sp = r["summary"], r["speed"]
    rl = r.get("rl_paper", {})
    lines.append(f"  {name:6s} success AUC {s['success_auc']:.3f}   precision@20px "
                 f"{s['precision_20px']:.3f}   mean IoU {rl.get('average_iou', float('nan')):.3f}"
                 f"   center error {rl.get('average_center_error', float('nan')):6.1f} px   "
                 f"{sp['fps']:6.1f} FPS")
  return lines


# ---------------------------------------------------------------------------


def run(output_dir: str, config: str = DEFAULT_CONFIG, overrides: Sequence[str] = (),
        num_tracks: int = 200, track_length: int = 32, canvas_size: int = 256,
        train_steps: int = 0, otb_dir: Optional[str] = DEFAULT_OTB, sequence: str = "Freeman1",
        generated_length: int = 120, max_frames: int = 0,
        compare: Sequence[str] = COMPARE, seed: int = 0, fresh: bool = False,
        progress: bool = True, peer_models: Optional[str] = None) -> Dict[str, object]:
  """The five stages; returns {"paths": {...}, "performance": ..., "times": ...}.

  The peers in `compare` read their files from `peer_models`, else
  default_peer_models()."""
  output_dir = os.path.abspath(output_dir)
  if fresh and os.path.isdir(output_dir):
    shutil.rmtree(output_dir)
  os.makedirs(output_dir, exist_ok=True)
  paths = {
      "records": os.path.join(output_dir, "data", "synthetic"),
      "model_dir": os.path.join(output_dir, "model"),
      "export_dir": os.path.join(output_dir, "export"),
      "eval_dir": os.path.join(output_dir, "eval"),
      "gif": os.path.join(output_dir, "tracked.gif"),
  }
  stages = Stages()
  print(f"train.quickstart: output in {output_dir}")

  # 1. data
  t0 = stages.start("data", f"{num_tracks} synthetic occluded tracks of {track_length} frames "
                    "from the embedded default (procedural images)")
  build_synthetic(paths["records"], num_tracks, track_length, canvas_size, seed)
  paths["preview"] = os.path.join(paths["records"], "preview-train.png")
  use_otb = bool(otb_dir) and os.path.isdir(os.path.join(otb_dir, sequence))
  if use_otb:
    seq_root, seq_name, seq_note = otb_dir, sequence, f"OTB sequence {sequence} from {otb_dir}"
  else:
    gen = os.path.join(output_dir, "data", "demo_records")
    build_synthetic(gen, 1, generated_length, canvas_size, seed + 1_000_003, split="test",
                    name="synthetic_demo", preview=0)
    seq_root = os.path.join(output_dir, "data", "demo_sequence")
    seq_name = GENERATED_NAME
    write_otb_sequence(gen, "synthetic_demo", "test", seq_root, seq_name)
    seq_note = (f"no OTB folder at {otb_dir}: a generated sequence (seed {seed + 1_000_003}, "
                f"not in the training data) in {os.path.join(seq_root, seq_name)}")
  stages.done("data", t0, f"records in {paths['records']}; demo: {seq_note}")

  # 2. train
  t0 = stages.start("train", f"a small Re3 ({os.path.relpath(config, REPO_ROOT)})")
  result = train(config, paths["model_dir"], paths["records"], overrides, train_steps, progress)
  stages.done("train", t0, train_note(result, paths["model_dir"]))

  # 3. export
  t0 = stages.start("export", "SavedModel with the stateless tracking signatures")
  info = export(paths["model_dir"], paths["export_dir"])
  stages.done("export", t0, f"{info['checkpoint']} -> {info['export_dir']}")

  # 4. track
  t0 = stages.start("track", seq_note)
  perf = track(paths["export_dir"], seq_root, seq_name, paths["eval_dir"], compare, max_frames,
               progress, peer_models or default_peer_models())
  stages.done("track", t0)

  # 5. report
  t0 = stages.start("report", "metrics, success plot, annotated GIF")
  boxes = os.path.join(paths["eval_dir"], "boxes", "re3", f"{seq_name}.txt")
  render_gif(seq_root, seq_name, boxes, paths["gif"], max_frames)
  paths["performance"] = os.path.join(paths["eval_dir"], "performance.json")
  for p in perf.get("plots", []):
    key = os.path.splitext(p)[0]
    paths[key] = os.path.join(paths["eval_dir"], p)
  paths["sequence"] = os.path.join(seq_root, seq_name)
  stages.done("report", t0)

  summary = {"paths": paths, "times_s": stages.times, "total_s": stages.total,
             "sequence": seq_name, "frames": perf["dataset"]["frames"],
             "trackers": {k: {"summary": v["summary"], "rl_paper": v.get("rl_paper"),
                              "speed": v["speed"]} for k, v in perf["trackers"].items()}}
  with open(os.path.join(output_dir, "quickstart.json"), "w") as f:
    json.dump(_jsonable(summary), f, indent=1)
  paths["summary"] = os.path.join(output_dir, "quickstart.json")

  print(f"\nResults on {seq_name} ({perf['dataset']['frames']} frames, one-pass):")
  for line in result_lines(perf):
    print(line)
  print("\nOutputs:")
  for key in ("gif", "success", "precision", "performance", "summary", "preview",
              "records", "model_dir", "export_dir", "eval_dir", "sequence"):
    if key in paths:
      print(f"  {key:15s} {paths[key]}")
  print("\nStage times: " + ", ".join(f"{k} {v:.0f} s" for k, v in stages.times.items())
        + f"; total {stages.total:.0f} s")
  summary["performance"] = perf
  return summary


def _jsonable(x):
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, (np.floating, np.integer)):
    return x.item()
  if isinstance(x, float) and not np.isfinite(x):
    return None
  return x


def main(argv, flag_values=None):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flag_values or flags.FLAGS
  if not f.output_dir:
    raise app.UsageError("--output_dir is required")
  # The training lines as the stage lines are written, not in absl's
  # "I1207 20:12:52.116037 140421147667328 trainer.py:303]" format.
  logging.get_absl_handler().setFormatter(py_logging.Formatter("  %(message)s"))
  run(f.output_dir, f.config, f.set, f.num_tracks, f.track_length, f.canvas_size,
      f.train_steps, f.otb_dir, f.sequence, f.generated_length, f.max_frames, f.compare,
      f.seed, f.fresh, f.progress, f.peer_models)
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli_errors.flags_parser(__doc__))
