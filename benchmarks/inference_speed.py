"""Reduced-precision and edge runtimes side by side: speed and accuracy cost.

  python -m benchmarks.inference_speed                                  # re3_small
  python -m benchmarks.inference_speed --configs configs/re3_small.yaml,configs/re3_paper.yaml
  python -m benchmarks.inference_speed --model default                  # the shipped model

For each model, in one process: the float32 SavedModel tracker (the
reference), the bf16 TF graph, LiteRT float32 / float16 / dynamic-range int8 /
int8 PTQ (calibrated on crops of track records, --calibration), ONNX float32 and
dynamic int8 (onnxruntime), and OpenCV's CSRT and KCF:

  fps        frames per second of `update()` with 1 object (Re3Tracker; an
             OpenCV tracker) and object-frames per second with 16 (one
             Re3MultiTracker; 16 OpenCV trackers), timed in chunks of frames
             alternating over all variants so background load hits them alike
  x fp32     the rate over the float32 SavedModel's in the same run
  cpu/s      object-frames per second of process CPU time (all of its threads:
             the compute cost, steadier than wall time on a loaded machine), and
  x cpu      its ratio to float32's
  auc, d auc success AUC on the dev sequences (--otb, first --accuracy_frames
             frames of each) and its change from float32
  iou fp32   mean IoU between the variant's boxes and float32's (same frames)
  max px     the largest coordinate difference from float32's boxes, in pixels

A config is built with fresh weights (seeded) and a damped head (kernel x 0.1,
bias = the still-target label), which tracks stably, so its AUC is a
"stay near the start" score and the differences measure how far a runtime's
rounding carries; trained models (--model) give the real accuracy cost.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Dict, List  # noqa: E402

from absl import app, flags  # noqa: E402
from configs import cli as cli_errors  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.tracking_speed import load_frames, target_boxes  # noqa: E402
from configs.model import load_model_config  # noqa: E402
from model import export, export_onnx, export_tflite, geometry, quantize, runtimes  # noqa: E402
from model.loading import load_model  # noqa: E402
from model.re3 import build_re3  # noqa: E402
from model.tracker import Re3MultiTracker, Re3Tracker  # noqa: E402
from model.tracking_graphs import Re3Graph  # noqa: E402
from pipelines.calibration import crops_from_records  # noqa: E402
from pipelines.readers.sequences import read_sequence  # noqa: E402
from pipelines.images import load_image_rgb  # noqa: E402
from train.eval import metrics  # noqa: E402
from train.eval.baselines import make_baseline  # noqa: E402

VARIANTS = ("fp32", "bf16", "litert_fp32", "litert_fp16", "litert_dynamic", "litert_int8",
            "onnx_fp32", "onnx_dynamic")
BASELINES = ("csrt", "kcf")
STILL_LABEL = (2.5, 2.5, 7.5, 7.5)


def define_flags(flag_values=flags.FLAGS):
  flags.DEFINE_list("configs", [], "Model YAMLs (fresh weights); configs/re3_small.yaml "
                    "when neither this nor --model is given.", flag_values=flag_values)
  flags.DEFINE_list("model", [], "Trained models: model_dirs, checkpoint prefixes or 'default' "
                    "(the shipped model).", flag_values=flag_values)
  flags.DEFINE_list("variants", list(VARIANTS), "Runtimes to compare.", flag_values=flag_values)
  flags.DEFINE_list("baselines", list(BASELINES), "OpenCV trackers timed beside them.",
                    flag_values=flag_values)
  flags.DEFINE_list("objects", ["1", "16"], "Numbers of tracked objects.", flag_values=flag_values)
  flags.DEFINE_string("sequence", "../shared/data/tracking/otb/MotorRolling/img",
                      "Frames for the speed rounds.", flag_values=flag_values)
  flags.DEFINE_integer("frames", 24, "Frames per speed round.", flag_values=flag_values)
  flags.DEFINE_integer("rounds", 2, "Speed rounds.", flag_values=flag_values)
  flags.DEFINE_integer("chunk", 4, "Frames per alternation chunk.", flag_values=flag_values)
  flags.DEFINE_string("otb", "../shared/data/tracking/otb", "Dev sequences (OTB layout).",
                      flag_values=flag_values)
  flags.DEFINE_integer("accuracy_frames", 40, "Frames of each dev sequence scored.",
                       flag_values=flag_values)
  flags.DEFINE_string("cache_dir", None, "Keep the exports here, per model, and reuse them "
                      "(fresh weights are seeded, so a config's exports repeat).",
                      flag_values=flag_values)
  flags.DEFINE_list("calibration", ["runs/data/pre_uav123"],
                    "Track records (or a .npz of pipelines.calibration) for int8 PTQ.",
                    flag_values=flag_values)


# ------------------------------------------------------------- variants

def _fresh_net(path: str, seed: int = 0):
  task, cfg = load_model_config(path)
  if task != "re3":
    raise ValueError(f"{path}: task {task!r}, this benchmark is for Re3")
  tf.random.set_seed(seed)
  net = build_re3(cfg)
  net.head.kernel.assign(net.head.kernel * 0.1)
  net.head.bias.assign(tf.constant(STILL_LABEL))
  return net


def _calibration(spec: List[str], crop_size: int):
  if len(spec) == 1 and spec[0].endswith(".npz"):
    return export_tflite.CalibrationCrops.load(spec[0])
  return crops_from_records(spec, crop_size, tracks=8, pairs=4)


def build_variants(net, names, calib_spec, out: str) -> Dict[str, object]:
  """{name: graph} for the tracker, and the seconds each took to build. Exports
  already in `out` (a --cache_dir of an earlier run of the same model) are reused."""
  graphs, build_s = {}, {}
  calib = None
  for name in names:
    t0 = time.perf_counter()
    if name == "fp32":
      path = os.path.join(out, "fp32")
      if not os.path.exists(os.path.join(path, "saved_model.pb")):
        export.export_re3(net, path)
      graphs[name] = tf.saved_model.load(path)
    elif name == "bf16":
      graphs[name] = Re3Graph(quantize.bf16_net(net))
    elif name.startswith("litert_"):
      q = {"litert_fp32": "none"}.get(name, name[len("litert_"):])
      path = os.path.join(out, f"{name}.tflite")
      if not os.path.exists(path):
        if q == "int8" and calib is None:
          calib = _calibration(calib_spec, net.cfg.crop_size)
        export_tflite.write_tflite(net, path, q, calib if q == "int8" else None)
      graphs[name] = runtimes.StepGraph(runtimes.LiteRTStep(path))
    elif name.startswith("onnx_"):
      q = "none" if name == "onnx_fp32" else "dynamic"
      path = os.path.join(out, f"{name}.onnx")
      if not os.path.exists(path):
        export_onnx.write_onnx(net, path, q)
      graphs[name] = runtimes.StepGraph(runtimes.OnnxStep(path))
    else:
      raise ValueError(f"unknown variant {name!r}; expected one of {VARIANTS}")
    build_s[name] = time.perf_counter() - t0
  return graphs, build_s


class _OpenCVMulti:
  """n OpenCV trackers, one per object, updated in turn (what a user would run)."""

  def __init__(self, kind: str):
    self.kind = kind
    self.trackers = []

  def add_many(self, image, boxes):
    self.trackers = [make_baseline(self.kind) for _ in boxes]
    for t, b in zip(self.trackers, boxes.values()):
      t.init(image, b)

  def update(self, image):
    return [t.update(image) for t in self.trackers]


def _make_tracker(kind, graph, n):
  if graph is None:
    return make_baseline(kind) if n == 1 else _OpenCVMulti(kind)
  return Re3Tracker(graph) if n == 1 else Re3MultiTracker(graph)


def _start(trk, frame, boxes):
  if isinstance(trk, (Re3MultiTracker, _OpenCVMulti)):
    if isinstance(trk, Re3MultiTracker):
      trk.clear()
    trk.add_many(frame, {i: b for i, b in enumerate(boxes)})
  else:
    trk.init(frame, boxes[0])


# ------------------------------------------------------------- measurements

def speed(graphs, baselines, frames, objects, rounds, chunk) -> Dict[int, Dict[str, float]]:
  """{objects: {variant: object-frames per second}} from wall time, and {"<objects> cpu":
  ...} the same from process CPU time (steadier on a loaded machine; threads that
  spin while they wait count against their runtime); chunks alternate over variants."""
  h, w = frames[0].shape[:2]
  out = {}
  for n in objects:
    boxes = target_boxes(n, h, w)
    trackers = {k: _make_tracker(k, g, n) for k, g in graphs.items()}
    trackers.update({b: _make_tracker(b, None, n) for b in baselines})
    for trk in trackers.values():                    # warm-up: traces, first-call costs
      _start(trk, frames[0], boxes)
      for f in frames[1:4]:
        trk.update(f)
    wall = dict.fromkeys(trackers, 0.0)
    cpu = dict.fromkeys(trackers, 0.0)
    calls = 0
    for _ in range(rounds):
      for trk in trackers.values():
        _start(trk, frames[0], boxes)
      for i in range(1, len(frames), chunk):
        part = frames[i:i + chunk]
        for k, trk in trackers.items():
          t0, c0 = time.perf_counter(), time.process_time()
          for f in part:
            trk.update(f)
          wall[k] += time.perf_counter() - t0
          cpu[k] += time.process_time() - c0
        calls += len(part)
    out[n] = {k: calls * n / v for k, v in wall.items()}
    out[f"{n} cpu"] = {k: calls * n / v for k, v in cpu.items()}
  return out


def dev_sequences(root: str, n_frames: int):
  seqs = []
  for name in sorted(os.listdir(root)):
    if not os.path.isdir(os.path.join(root, name)):
      continue
    seq = read_sequence("otb", os.path.join(root, name))
    frames = [load_image_rgb(p) for p in seq.frame_paths[:n_frames]]
    seqs.append((name, frames, np.asarray(seq.boxes_xyxy[:n_frames], np.float64)))
  return seqs


def accuracy(graphs, baselines, seqs) -> Dict[str, Dict[str, float]]:
  """Success AUC and the box differences from float32 ('fp32' must be a variant)."""
  tracks = {}
  for k in list(graphs) + list(baselines):
    per_seq = []
    for _, frames, gt in seqs:
      trk = _make_tracker(k, graphs.get(k), 1)
      trk.init(frames[0], geometry.xyxy_to_xywh(gt[0]))
      boxes = [geometry.xyxy_to_xywh(gt[0])] + [trk.update(f)[1] for f in frames[1:]]
      per_seq.append(geometry.xywh_to_xyxy(np.asarray(boxes, np.float64)))
    tracks[k] = per_seq
  ref = tracks.get("fp32")
  out = {}
  for k, per_seq in tracks.items():
    scores = [metrics.ope_sequence(p, gt) for p, (_, _, gt) in zip(per_seq, seqs)]
    row = {"auc": float(metrics.ope_summary(scores)["success_auc"])}
    if ref is not None:
      ious = np.concatenate([metrics.frame_ious(p[1:], r[1:]) for p, r in zip(per_seq, ref)])
      row["iou_fp32"] = float(np.mean(ious))
      row["max_px"] = float(max(np.max(np.abs(p - r)) for p, r in zip(per_seq, ref)))
    out[k] = row
  if ref is not None:
    for row in out.values():
      row["d_auc"] = row["auc"] - out["fp32"]["auc"]
  return out


def report(title, rates, acc, build_s, choice):
  names = list(acc)
  print(f"\n{title}\n  {choice}")
  head = f"  {'variant':<15}" + "".join(
      f"{'cpu/s':>8}{'x cpu':>7}" if str(n).endswith("cpu") else f"{f'{n} obj/s':>11}{'x fp32':>7}"
      for n in rates)
  print(head + f"{'auc':>7}{'d auc':>8}{'iou fp32':>9}{'max px':>8}{'build s':>8}")
  for k in names:
    line = f"  {k:<15}"
    for n, r in rates.items():
      x = r[k] / r["fp32"] if "fp32" in r else float("nan")
      line += f"{r[k]:>8.1f}{x:>7.2f}" if str(n).endswith("cpu") else f"{r[k]:>11.1f}{x:>7.2f}"
    a = acc[k]
    line += (f"{a['auc']:>7.3f}{a.get('d_auc', float('nan')):>+8.3f}"
             f"{a.get('iou_fp32', float('nan')):>9.3f}{a.get('max_px', float('nan')):>8.1f}"
             f"{build_s.get(k, 0.0):>8.1f}")
    print(line)


def main(argv, flag_values=None):
  del argv
  FLAGS = flag_values or flags.FLAGS  # pylint: disable=redefined-outer-name,invalid-name
  frames, source = load_frames(FLAGS.sequence, FLAGS.frames)
  seqs = dev_sequences(FLAGS.otb, FLAGS.accuracy_frames)
  objects = [int(x) for x in FLAGS.objects]
  print(f"speed frames: {source} ({frames[0].shape[1]}x{frames[0].shape[0]}), {len(frames)} x "
        f"{FLAGS.rounds} rounds; accuracy: {len(seqs)} sequences of {FLAGS.otb}, first "
        f"{FLAGS.accuracy_frames} frames; {os.cpu_count()} CPUs; flags: "
        f"{' '.join(sorted(quantize.cpu_flags() & set(quantize.BF16_FLAGS + quantize.INT8_FLAGS)))}"
        f"; load average {os.getloadavg()[0]:.1f}")
  configs = FLAGS.configs or ([] if FLAGS.model else ["configs/re3_small.yaml"])
  models = [(p, lambda p=p: _fresh_net(p)) for p in configs]
  models += [(d, lambda d=d: load_model(d, expect_task="re3")[1]) for d in FLAGS.model]
  for title, make in models:
    net = make()
    with tempfile.TemporaryDirectory(prefix="inference_speed_") as tmp:
      out = tmp
      if FLAGS.cache_dir:
        out = os.path.join(FLAGS.cache_dir, os.path.basename(os.path.normpath(title)))
        os.makedirs(out, exist_ok=True)
      graphs, build_s = build_variants(net, FLAGS.variants, FLAGS.calibration, out)
      rates = speed(graphs, FLAGS.baselines, frames, objects, FLAGS.rounds, FLAGS.chunk)
      acc = accuracy(graphs, FLAGS.baselines, seqs)
    report(f"{title} (fc6 {net.cfg.fc6_units}, LSTM {net.cfg.lstm_units}, crops "
           f"{net.cfg.crop_size}; load average {os.getloadavg()[0]:.1f})", rates, acc, build_s,
           quantize.choose_precision("auto"))
  print("\nobj/s: object-frames per second of update() (1 object: frames per second); x fp32: "
        "over the float32 SavedModel in the same run (wall clock); cpu/s, x cpu: object-frames per "
        "second of process CPU time (all threads) and its ratio; auc: success AUC on the dev sequences; "
        "d auc: its change from fp32; iou fp32 / max px: mean IoU with and largest coordinate "
        "difference (pixels) from fp32's boxes; build s: export/conversion time.")


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli_errors.flags_parser(__doc__))
