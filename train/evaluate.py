"""Evaluates trackers on a benchmark with the benchmark's own protocol.

  python -m train.evaluate --model runs/re3_small --dataset otb:../shared/data/tracking/otb \\
      --protocol ope --trackers re3,kcf,csrt,mil,stay --output_dir eval/otb

--dataset KIND:DIR, KIND one of
  otb | vot | lasot | uav123 | got10k   sequence folders, read by
                                       pipelines.readers.sequences (the same readers
                                       as pipelines.build_sequences)
  mnist                                moving-MNIST track records (--split, default test)
--protocol
  ope  one pass from the first box (OTB): success curve / AUC, precision at 20 px,
       normalized precision, plus the RL paper's average center error and IoU
  vid  one pass, scored as the Re3 paper's ImageNet VID figure: fraction of all
       boxes above each IoU threshold and its AUC (plus the RL paper's metrics)
  vot  supervised (Re3 Table I): re-init 5 frames after a failure (IoU 0),
       10 burn-in frames, accuracy, drops, robustness exp(-30 drops / frames)
--trackers  comma list: re3 (the model at --model: a Re3 or RL agent model_dir or
       SavedModel), kcf, csrt, mil (OpenCV), stay (stay-put floor)

Output (--output_dir):
  performance.json              per tracker: dataset summary, per-sequence scores,
                                occluded-frames-only scores, speed
  boxes/<tracker>/<seq>.txt     one `x,y,w,h` line per frame (0-based pixels as the
                                tracker reports them, NaN where not tracked)
  boxes/<tracker>/<seq>_time.txt seconds spent in the tracker per frame
  boxes/<tracker>/<seq>_codes.txt (vot) per-frame codes: 0 tracked, 1 init, 2 failure,
                                3 skipped, 4 before the first box
  *.png                         plots with every tracker on one figure (success,
                                precision, normalized precision / vid / accuracy-robustness;
                                `_occluded` variants when the data marks occlusion)

Occluded frames are those whose ground truth is valid and that the data marks as
occluded: `visible` False with a box (LaSOT full occlusion, GOT-10k cover 0, VID
occluded) or an occlusion fraction above 0 (GOT-10k cover, synthetic records).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from typing import Callable, Dict, List, Optional, Sequence  # noqa: E402

from absl import app, flags, logging  # noqa: E402
import numpy as np  # noqa: E402

from model import geometry  # noqa: E402
from train import metrics, plots, protocols  # noqa: E402

SEQUENCE_KINDS = ("otb", "vot", "lasot", "uav123", "got10k")
KINDS = SEQUENCE_KINDS + ("mnist",)
MODEL_TRACKERS = ("re3", "rl_agent")
BASELINE_TRACKERS = ("kcf", "csrt", "mil", "stay")


@dataclasses.dataclass
class EvalSequence:
  """What evaluation needs of a sequence, whatever it was read from."""
  name: str
  frames: Sequence          # frames[i] -> HxWx3 uint8 RGB (lazy)
  gt_xyxy: np.ndarray       # [N, 4], NaN where absent
  occluded: np.ndarray      # [N] bool

  def __len__(self):
    return self.gt_xyxy.shape[0]


def occlusion_mask(boxes_xyxy, visible, occlusion=None) -> np.ndarray:
  """Frames with a valid box that the data marks as occluded."""
  valid = metrics.valid_ground_truth(boxes_xyxy)
  mask = ~np.asarray(visible, dtype=bool)
  if occlusion is not None:
    mask |= np.asarray(occlusion, dtype=np.float64) > 0
  return valid & mask


def parse_dataset(spec: str):
  if ":" not in spec:
    raise ValueError(f"--dataset must be KIND:DIR with KIND one of {KINDS}, got {spec!r}")
  kind, path = spec.split(":", 1)
  kind = kind.strip().lower()
  if kind not in KINDS:
    raise ValueError(f"--dataset kind {kind!r} unknown; expected one of {KINDS}")
  if not os.path.exists(path):
    raise ValueError(f"--dataset directory {path!r} does not exist")
  return kind, path


class _DecodedFrames:
  """Encoded frames (from records) decoded on access."""

  def __init__(self, images: List[bytes], name: str):
    self.images, self.name = images, name

  def __len__(self):
    return len(self.images)

  def __getitem__(self, i):
    from pipelines.images import decode_image_rgb  # pylint: disable=g-import-not-at-top
    return decode_image_rgb(self.images[i], f"{self.name}[{i}]")


def load_sequences(kind: str, path: str, split: str = "test", names: Sequence[str] = (),
                   max_sequences: int = 0, max_frames: int = 0) -> List[EvalSequence]:
  """Sequences of a benchmark folder or of moving-MNIST records."""
  out: List[EvalSequence] = []
  if kind in SEQUENCE_KINDS:
    from pipelines.readers.sequences import read_sequences  # pylint: disable=g-import-not-at-top
    for s in read_sequences(kind, path):
      out.append(EvalSequence(s.name, protocols.LazyFrames(s.frame_paths), s.boxes_xyxy,
                              occlusion_mask(s.boxes_xyxy, s.visible, s.occlusion)))
  else:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from pipelines import schema, shards  # pylint: disable=g-import-not-at-top
    files = shards.record_files(path, None, split)
    if not files:
      raise ValueError(f"{path}: no track records for split {split!r} "
                       f"(expected files like moving_mnist_fixed-{split}.tfrecord-*)")
    for record in tf.data.TFRecordDataset(files):
      t = schema.parse_track(record.numpy())
      boxes = t.boxes_xyxy.astype(np.float64)
      out.append(EvalSequence(t.track_id, _DecodedFrames(t.images, t.track_id), boxes,
                              occlusion_mask(boxes, t.visible.astype(bool), t.occlusion)))
  if names:
    wanted = set(names)
    out = [s for s in out if s.name in wanted]
    missing = wanted - {s.name for s in out}
    if missing:
      raise ValueError(f"--sequences: not in {path}: {sorted(missing)}")
  out.sort(key=lambda s: s.name)
  if max_sequences:
    out = out[:max_sequences]
  if max_frames:
    out = [EvalSequence(s.name, _Head(s.frames, max_frames), s.gt_xyxy[:max_frames],
                        s.occluded[:max_frames]) for s in out]
  if not out:
    raise ValueError(f"{path}: no {kind} sequences found")
  return out


class _Head:
  def __init__(self, frames, n):
    self.frames, self.n = frames, min(n, len(frames))

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    if i >= self.n:
      raise IndexError(i)
    return self.frames[i]


def tracker_factories(names: Sequence[str], model: Optional[str],
                      reset_period: int) -> Dict[str, Callable[[], object]]:
  """Name -> zero-argument constructor of a fresh tracker (one per sequence).

  The model is loaded (and its graph traced) once and shared by the trackers.
  """
  from train import baselines  # pylint: disable=g-import-not-at-top
  out: Dict[str, Callable[[], object]] = {}
  for name in names:
    if name in MODEL_TRACKERS:
      if not model:
        raise ValueError(f"tracker {name!r} needs --model (a model_dir or SavedModel)")
      from model import tracker as tracking  # pylint: disable=g-import-not-at-top
      task, graph = tracking.load_graph(model)
      if task == "re3":
        out["re3"] = lambda g=graph: tracking.Re3Tracker(g, reset_period)
      else:
        out["rl_agent"] = lambda g=graph: tracking.RLAgentTracker(g)
    elif name in BASELINE_TRACKERS:
      baselines.make_baseline(name)               # fails early if OpenCV is missing
      out[name] = lambda n=name: baselines.make_baseline(n)
    else:
      raise ValueError(f"unknown tracker {name!r}; expected some of "
                       f"{MODEL_TRACKERS + BASELINE_TRACKERS}")
  return out


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(name: str) -> str:
  return _SAFE.sub("_", name).strip("_") or "sequence"


def _write_run(out_dir: str, tracker: str, seq: EvalSequence, run: protocols.SequenceRun,
               protocol: str) -> None:
  d = os.path.join(out_dir, "boxes", tracker)
  os.makedirs(d, exist_ok=True)
  base = os.path.join(d, _safe(seq.name))
  np.savetxt(base + ".txt", run.pred_xywh(), fmt="%.2f", delimiter=",")
  np.savetxt(base + "_time.txt", run.times, fmt="%.6f")
  if protocol == "vot":
    np.savetxt(base + "_codes.txt", run.codes, fmt="%d")


def _speed(runs: List[protocols.SequenceRun]) -> Dict[str, float]:
  calls = int(sum(r.tracker_calls for r in runs))
  seconds = float(sum(np.sum(r.times) for r in runs))
  return {"frames": calls, "seconds": seconds,
          "fps": calls / seconds if seconds > 0 else float("nan")}


def score(protocol: str, seqs: List[EvalSequence], runs: List[protocols.SequenceRun],
          vot_burn_in: int = 10) -> Dict[str, object]:
  """performance.json block of one tracker."""
  per_seq: Dict[str, Dict[str, object]] = {}
  out: Dict[str, object] = {"speed": _speed(runs)}
  preds = [r.pred_xyxy for r in runs]
  gts = [s.gt_xyxy for s in seqs]
  occ = [s.occluded for s in seqs]
  predicted = [r.predicted for r in runs]
  has_occlusion = any(m.any() for m in occ)
  if protocol == "vot":
    scores = [protocols.supervised_scores(r, s.gt_xyxy, vot_burn_in) for s, r in zip(seqs, runs)]
    out["summary"] = metrics.vot_summary(scores)
    if has_occlusion:
      occ_scores = []
      for s, r in zip(seqs, runs):
        ious = np.where(s.occluded, metrics.frame_ious(r.pred_xyxy, s.gt_xyxy), np.nan)
        codes = np.where(s.occluded | (r.codes == metrics.CODE_INIT), r.codes, metrics.CODE_SKIP)
        occ_scores.append(metrics.vot_sequence(ious, codes, vot_burn_in))
      o = metrics.vot_summary(occ_scores)
      out["occluded"] = {"frames": int(sum(m.sum() for m in occ)), "accuracy": o["accuracy"],
                         "drops": o["drops"]}
    for s, r, sc in zip(seqs, runs, scores):
      per_seq[s.name] = dict(sc, fps=r.fps)
  else:
    seq_scores = [metrics.ope_sequence(p, g) for p, g in zip(preds, gts)]
    if protocol == "ope":
      out["summary"] = _strip(metrics.ope_summary(seq_scores))
      out["curves"] = _curves(metrics.ope_summary(seq_scores))
    else:
      vid = metrics.vid_scores(preds, gts)
      out["summary"] = {k: v for k, v in vid.items() if k != "fraction_above_curve"}
      out["curves"] = {"fraction_above": vid["fraction_above_curve"]}
    out["rl_paper"] = metrics.rl_scores(preds, gts, predicted)
    if has_occlusion:
      occ_seq = [metrics.ope_sequence(p, g, m) for p, g, m in zip(preds, gts, occ)]
      if protocol == "ope":
        summ = metrics.ope_summary(occ_seq)
        out["occluded"] = dict(_strip(summ), curves=_curves(summ))
      else:
        vid = metrics.vid_scores(preds, gts, occ)
        out["occluded"] = dict(vid)
    for s, r, sc in zip(seqs, runs, seq_scores):
      per_seq[s.name] = {k: v for k, v in sc.items() if not k.endswith("_curve")}
      per_seq[s.name]["fps"] = r.fps
  out["per_sequence"] = per_seq
  return out


def _strip(summary):
  return {k: v for k, v in summary.items() if not k.endswith("_curve")}


def _curves(summary):
  return {k[:-len("_curve")]: v for k, v in summary.items() if k.endswith("_curve")}


def _warm_up(make, seqs: List[EvalSequence]) -> None:
  """One untimed init + update on the first scorable frames, so graph tracing
  (seconds, once per model) is not billed to the first sequence's FPS."""
  for s in seqs:
    valid = np.flatnonzero(metrics.valid_ground_truth(s.gt_xyxy))
    if valid.size and valid[0] + 1 < len(s):
      tracker = make()
      tracker.init(s.frames[int(valid[0])], geometry.xyxy_to_xywh(s.gt_xyxy[int(valid[0])]))
      tracker.update(s.frames[int(valid[0]) + 1])
      return


def _ope_plot_input(summary, curves):
  return {"success_curve": curves["success"], "precision_curve": curves["precision"],
          "norm_precision_curve": curves["norm_precision"], "success_auc": summary["success_auc"],
          "precision_20px": summary["precision_20px"],
          "norm_precision_auc": summary["norm_precision_auc"]}


def make_plots(protocol: str, results: Dict[str, Dict], out_dir: str, title: str) -> List[str]:
  """Every tracker on one figure per plot kind; `_occluded` twins where the data has occlusion."""
  paths: List[str] = []
  occ = {n: r["occluded"] for n, r in results.items() if "occluded" in r}
  if protocol == "ope":
    main = {n: _ope_plot_input(r["summary"], r["curves"]) for n, r in results.items()}
    paths += plots.ope_plots(out_dir, main, "", f" - {title}").values()
    occ = {n: _ope_plot_input(o, o["curves"]) for n, o in occ.items() if o["frames"]}
    if occ:
      paths += plots.ope_plots(out_dir, occ, "_occluded", f" - {title}, occluded").values()
  elif protocol == "vid":
    main = {n: {"fraction_above_curve": r["curves"]["fraction_above"], "auc": r["summary"]["auc"]}
            for n, r in results.items()}
    paths.append(plots.vid_plot(os.path.join(out_dir, "vid.png"), main,
                                f"Boxes above IoU threshold - {title}"))
    if occ:
      paths.append(plots.vid_plot(os.path.join(out_dir, "vid_occluded.png"), occ,
                                  f"Boxes above IoU threshold - {title}, occluded"))
  else:
    paths.append(plots.accuracy_robustness_plot(
        os.path.join(out_dir, "accuracy_robustness.png"),
        {n: r["summary"] for n, r in results.items()}, f"VOT supervised - {title}"))
  return paths


def evaluate(model: Optional[str], dataset: str, protocol: str, output_dir: str,
             trackers: Sequence[str] = ("re3",), reset_period: int = 32, split: str = "test",
             sequences: Sequence[str] = (), max_sequences: int = 0, max_frames: int = 0,
             vot_skip: int = 5, vot_burn_in: int = 10, progress: bool = True) -> Dict[str, object]:
  """Runs every tracker on every sequence; writes boxes, performance.json and plots."""
  if protocol not in protocols.PROTOCOLS:
    raise ValueError(f"--protocol must be one of {protocols.PROTOCOLS}, got {protocol!r}")
  kind, path = parse_dataset(dataset)
  if not trackers:
    raise ValueError("--trackers is empty")
  seqs = load_sequences(kind, path, split, sequences, max_sequences, max_frames)
  factories = tracker_factories(trackers, model, reset_period)
  os.makedirs(output_dir, exist_ok=True)
  results: Dict[str, Dict] = {}
  for tname, make in factories.items():
    _warm_up(make, seqs)
    runs = []
    it = seqs
    if progress:
      from tqdm import tqdm  # pylint: disable=g-import-not-at-top
      it = tqdm(seqs, desc=tname, unit="seq")
    for s in it:
      try:
        run = protocols.run_protocol(protocol, make(), s.frames, s.gt_xyxy, s.name, skip=vot_skip)
      except ValueError as e:
        raise ValueError(f"sequence {s.name!r}, tracker {tname!r}: {e}") from e
      _write_run(output_dir, tname, s, run, protocol)
      runs.append(run)
    results[tname] = score(protocol, seqs, runs, vot_burn_in)
  title = f"{kind} ({len(seqs)} sequences)"
  plot_paths = make_plots(protocol, results, output_dir, title)
  perf = {
      "dataset": {"kind": kind, "path": os.path.abspath(path), "split": split if kind == "mnist"
                  else None, "sequences": [s.name for s in seqs],
                  "frames": int(sum(len(s) for s in seqs)),
                  "occluded_frames": int(sum(s.occluded.sum() for s in seqs))},
      "protocol": protocol,
      "settings": {"reset_period": reset_period, "vot_skip": vot_skip, "vot_burn_in": vot_burn_in,
                   "max_frames": max_frames, "model": model},
      "conventions": {"boxes": "x,y,w,h, 0-based continuous pixels (add 1 to x and y for the "
                               "1-based OTB/VOT toolkits)",
                      "success": "fraction of frames with IoU > t, t = 0:0.05:1; AUC = mean",
                      "precision": "fraction of frames with center error <= 20 px"},
      "trackers": results,
      "plots": [os.path.basename(p) for p in plot_paths],
      "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
  }
  with open(os.path.join(output_dir, "performance.json"), "w") as f:
    json.dump(metrics.to_jsonable(perf), f, indent=1, allow_nan=False)
  return perf


def summary_lines(perf: Dict[str, object]) -> List[str]:
  lines = []
  for name, r in perf["trackers"].items():
    s, sp = r["summary"], r["speed"]
    if perf["protocol"] == "ope":
      txt = (f"AUC {s['success_auc']:.3f}  P@20px {s['precision_20px']:.3f}  "
             f"nP {s['norm_precision_auc']:.3f}")
    elif perf["protocol"] == "vid":
      txt = f"AUC {s['auc']:.3f}  >0.5 {s['fraction_above_0.5']:.3f}"
    else:
      txt = (f"accuracy {s['accuracy']:.3f}  drops {s['drops']}  robustness "
             f"{s['robustness']:.3f}")
    if "rl_paper" in r:
      txt += (f"  center err {r['rl_paper']['average_center_error']:.2f}px  "
              f"mean IoU {r['rl_paper']['average_iou']:.3f}")
    lines.append(f"{name:10s} {txt}  {sp['fps']:.1f} FPS")
  return lines


def define_flags(flag_values=flags.FLAGS):
  """Defined on demand (by __main__), not at import: other entry points share
  absl's global flags, and importing several of them must not clash. Tests
  pass their own `flags.FlagValues()`."""
  flags.DEFINE_string("model", None, "Model to evaluate: training model_dir or SavedModel export.",
                      flag_values=flag_values)
  flags.DEFINE_string("dataset", None, "KIND:DIR, KIND in otb|vot|lasot|uav123|got10k|mnist.",
                      flag_values=flag_values)
  flags.DEFINE_enum("protocol", "ope", list(protocols.PROTOCOLS), "Evaluation protocol.",
                    flag_values=flag_values)
  flags.DEFINE_string("output_dir", None, "Where boxes, performance.json and plots go.",
                      flag_values=flag_values)
  flags.DEFINE_list("trackers", None, "Trackers to run side by side (default: re3 if --model "
                    "is given): re3, kcf, csrt, mil, stay.", flag_values=flag_values)
  flags.DEFINE_integer("reset_period", 32, "Re3 LSTM reset period in frames (0 = never).",
                       flag_values=flag_values)
  flags.DEFINE_string("split", "test", "Split of the moving-MNIST records.",
                      flag_values=flag_values)
  flags.DEFINE_list("sequences", [], "Only these sequence names.", flag_values=flag_values)
  flags.DEFINE_integer("max_sequences", 0, "Evaluate at most this many sequences (0 = all).",
                       flag_values=flag_values)
  flags.DEFINE_integer("max_frames", 0, "Cut every sequence to this many frames (0 = all).",
                       flag_values=flag_values)
  flags.DEFINE_integer("vot_skip", 5, "VOT: frames between a failure and the re-initialization.",
                       flag_values=flag_values)
  flags.DEFINE_integer("vot_burn_in", 10, "VOT: frames after each initialization left out of accuracy.",
                       flag_values=flag_values)


def main(argv, flag_values=None):
  del argv
  FLAGS = flag_values or flags.FLAGS  # pylint: disable=redefined-outer-name,invalid-name
  for name in ("dataset", "output_dir"):
    if not getattr(FLAGS, name):
      raise app.UsageError(f"--{name} is required")
  trackers = FLAGS.trackers or (["re3"] if FLAGS.model else [])
  if not trackers:
    raise app.UsageError("give --model and/or --trackers")
  perf = evaluate(FLAGS.model, FLAGS.dataset, FLAGS.protocol, FLAGS.output_dir, trackers,
                  FLAGS.reset_period, FLAGS.split, FLAGS.sequences, FLAGS.max_sequences,
                  FLAGS.max_frames, FLAGS.vot_skip, FLAGS.vot_burn_in)
  logging.info("wrote %s", os.path.join(FLAGS.output_dir, "performance.json"))
  print(f"{perf['dataset']['kind']}: {len(perf['dataset']['sequences'])} sequences, "
        f"{perf['dataset']['frames']} frames, protocol {perf['protocol']}")
  for line in summary_lines(perf):
    print(line)


if __name__ == "__main__":
  define_flags()
  app.run(main)
