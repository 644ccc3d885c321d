"""End-to-end tracking speed on CPU next to the bare forward pass of the same batch.

  python -m benchmarks.tracking_speed                              # re3_small, 1/4/16 objects
  python -m benchmarks.tracking_speed --configs configs/re3_small.yaml,configs/re3_paper.yaml

For each config, in one run with the same (freshly initialised) weights:

  bare       `Re3Net.step` in a tf.function on B ready-made crop pairs
             (no cropping, no bookkeeping): the model's own cost per frame
  tracker    Re3Tracker (B = 1) / Re3MultiTracker (B targets) `update` on real
             frames held in memory: in-graph crops of the whole frame, the step,
             labels -> boxes, the LSTM reset every 32 frames, Python bookkeeping
  ratio      tracker rate / bare rate (goal: >= 0.90), i.e. how much of the
             forward rate survives cropping and bookkeeping

The tracker, the bare step and the crops alone are timed alternately in
chunks of 8 frames, totals over all chunks, so background load hits them
alike; the ratio is also given from process CPU time, which a loaded machine
disturbs less than wall time. Frames come from an OTB sequence in ../shared when
present (decoded before timing), else random frames of the same size.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402

from absl import app, flags  # noqa: E402
from configs import cli as cli_errors  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from configs.model import load_model_config  # noqa: E402
from model import geometry  # noqa: E402
from model.re3 import build_re3  # noqa: E402
from model.tracker import Re3MultiTracker, Re3Tracker  # noqa: E402
from model.tracking_graphs import Re3Graph  # noqa: E402
from pipelines.images import load_image_rgb  # noqa: E402

GOAL = 0.90


def define_flags(flag_values=flags.FLAGS):
  flags.DEFINE_list("configs", ["configs/re3_small.yaml"], "Model YAMLs.",
                    flag_values=flag_values)
  flags.DEFINE_list("objects", ["1", "4", "16"], "Numbers of tracked objects.",
                    flag_values=flag_values)
  flags.DEFINE_string("sequence", "../shared/data/tracking/otb/MotorRolling/img",
                      "Folder of frames (used when it exists).", flag_values=flag_values)
  flags.DEFINE_integer("frames", 64, "Frames per timed round (covers two LSTM resets).",
                       flag_values=flag_values)
  flags.DEFINE_integer("rounds", 3, "Passes over the frames (totals reported).",
                       flag_values=flag_values)
  flags.DEFINE_integer("chunk", 8, "Frames per alternation chunk (tracker, bare, crops).",
                       flag_values=flag_values)


def load_frames(folder: str, n: int):
  if os.path.isdir(folder):
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith((".jpg", ".png")))[:n]
    if names:
      frames = [load_image_rgb(os.path.join(folder, f)) for f in names]
      while len(frames) < n:
        frames += frames[:n - len(frames)]
      return frames, folder
  rng = np.random.default_rng(0)
  return [rng.integers(0, 255, [360, 640, 3], dtype=np.uint8) for _ in range(n)], "random 640x360"


def target_boxes(n: int, height: int, width: int) -> np.ndarray:
  """n boxes spread over the frame (x, y, w, h)."""
  rng = np.random.default_rng(n)
  w = rng.uniform(0.08, 0.2, n) * width
  h = rng.uniform(0.08, 0.2, n) * height
  x = rng.uniform(0, 1, n) * (width - w)
  y = rng.uniform(0, 1, n) * (height - h)
  return np.stack([x, y, w, h], axis=1)


def bench_config(path: str, objects, frames, rounds: int, chunk: int = 8):
  task, cfg = load_model_config(path)
  if task != "re3":
    raise ValueError(f"{path}: task {task!r}, this benchmark is for Re3")
  net = build_re3(cfg)
  graph = Re3Graph(net)
  s, u = cfg.crop_size, cfg.lstm_units
  h, w = frames[0].shape[:2]
  n = len(frames)
  rows = []
  for b in objects:
    rng = np.random.default_rng(b)
    prev = tf.constant(rng.uniform(0, 255, [b, s, s, 3]).astype(np.float32))
    curr = tf.constant(rng.uniform(0, 255, [b, s, s, 3]).astype(np.float32))
    state = tf.zeros([b, 4, u])

    @tf.function(input_signature=[tf.TensorSpec([None, s, s, 3], tf.float32)] * 2
                 + [tf.TensorSpec([None, 4, u], tf.float32)])
    def bare(p, c, st):
      labels, new = net.step(p, c, tuple(tf.unstack(st, axis=1)))
      return labels, tf.stack(new, axis=1)

    boxes = target_boxes(b, h, w)
    windows = tf.constant(np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2,
                                          boxes[:, :2] + boxes[:, 2:] * 1.5], 1), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                  tf.TensorSpec([None, 4], tf.float32)])
    def crops_only(image, win):
      """The 2B in-graph crops a tracking step cuts (two per target)."""
      idx = tf.zeros([tf.shape(win)[0]], tf.int32)
      return tf.concat([geometry.crop_tf(image[None], win, idx),
                        geometry.crop_tf(image[None], win + 1.0, idx)], 0)

    if b == 1:
      trk = Re3Tracker(graph)

      def start():
        trk.init(frames[0], boxes[0])

      def step(f):
        trk.update(f)
    else:
      trk = Re3MultiTracker(graph)

      def start():
        trk.clear()
        trk.add_many(frames[0], {i: bx for i, bx in enumerate(boxes)})

      def step(f):
        trk.update(f)

    # warm-up: traces both graphs (and the reset branch)
    start()
    for f in frames[1:34]:
      step(f)
    for _ in range(3):
      labels, _ = bare(prev, curr, state)
      labels.numpy()
      crops_only(tf.constant(frames[0]), windows).numpy()
    # Fine-grained alternation (chunks of `chunk` frames) so that load from other
    # processes hits the three measurements alike; totals over all chunks.
    wall = {"bare": 0.0, "tracker": 0.0, "crops": 0.0}
    cpu = dict(wall)
    calls = 0
    for _ in range(rounds):
      start()
      st = state
      for i in range(1, n, chunk):
        part = frames[i:i + chunk]
        t0, c0 = time.perf_counter(), time.process_time()
        for f in part:
          step(f)
        t1, c1 = time.perf_counter(), time.process_time()
        for _ in part:
          labels, st = bare(prev, curr, st)
          labels.numpy()                 # the tracker also brings its boxes to the host
        t2, c2 = time.perf_counter(), time.process_time()
        for f in part:
          crops_only(tf.constant(f), windows)[0, 0, 0, 0].numpy()
        t3, c3 = time.perf_counter(), time.process_time()
        wall["tracker"] += t1 - t0
        wall["bare"] += t2 - t1
        wall["crops"] += t3 - t2
        cpu["tracker"] += c1 - c0
        cpu["bare"] += c2 - c1
        cpu["crops"] += c3 - c2
        calls += len(part)
    rate = {k: calls / v for k, v in wall.items()}
    rows.append({"objects": b, "bare": rate["bare"], "tracker": rate["tracker"],
                 "ratio": rate["tracker"] / rate["bare"], "cpu_ratio": cpu["bare"] / cpu["tracker"],
                 "crops_ms": 1000.0 / rate["crops"],
                 "bound": calls / (wall["bare"] + wall["crops"])})
  return cfg, rows


def main(argv, flag_values=None):
  del argv
  FLAGS = flag_values or flags.FLAGS  # pylint: disable=redefined-outer-name,invalid-name
  frames, source = load_frames(FLAGS.sequence, FLAGS.frames)
  objects = [int(x) for x in FLAGS.objects]
  print(f"frames: {source} ({frames[0].shape[1]}x{frames[0].shape[0]}), {len(frames)} per round, "
        f"{FLAGS.rounds} rounds, CPU threads: intra {tf.config.threading.get_intra_op_parallelism_threads()}"
        f" (0 = all {os.cpu_count()} cores)")
  for path in FLAGS.configs:
    cfg, rows = bench_config(path, objects, frames, FLAGS.rounds, FLAGS.chunk)
    print(f"\n{path}: fc6 {cfg.fc6_units}, LSTM {cfg.lstm_units}, conv {list(cfg.conv_filters)}")
    print(f"{'objects':>7} {'bare fwd/s':>10} {'tracker fps':>11} {'ratio':>6} {'cpu ratio':>9} "
          f"{'crops ms':>8} {'fwd+crops/s':>11} {'tracker obj/s':>13}  goal ratio >= {GOAL:.2f}")
    for r in rows:
      print(f"{r['objects']:>7d} {r['bare']:>10.1f} {r['tracker']:>11.1f} {r['ratio']:>6.3f} "
            f"{r['cpu_ratio']:>9.3f} {r['crops_ms']:>8.2f} {r['bound']:>11.1f} "
            f"{r['tracker'] * r['objects']:>13.1f}  {'met' if r['ratio'] >= GOAL else 'NOT met'}")
  print("\nbare fwd/s: Re3Net.step calls per second on ready crops (B objects per call); "
        "tracker fps: frames per second of update() (crops, step, boxes, LSTM reset every 32 "
        "frames, bookkeeping); ratio: tracker fps / bare fwd/s (wall clock), cpu ratio: the "
        "same from process CPU time (steadier on a loaded machine); crops ms: the 2B in-graph "
        "crops of one frame alone; fwd+crops/s: forward plus crops with no bookkeeping.")

if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli_errors.flags_parser(__doc__))
