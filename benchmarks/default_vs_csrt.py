"""The shipped tracker's speed next to OpenCV's CSRT and KCF, in one run, on the same frames.

  python -m benchmarks.default_vs_csrt                          # the default model
  python -m benchmarks.default_vs_csrt --model runs/re3_pretrained/export

One object: frames per second of `Re3Tracker.update` (in-graph crops, the
step, boxes, the LSTM reset every 32 frames, bookkeeping: everything a user
pays) and of one `cv2.TrackerCSRT` / `cv2.TrackerKCF` `update`. Sixteen
objects: object-frames per second of one `Re3MultiTracker.update` (one batched
step for all targets) and of sixteen OpenCV trackers updated in turn (OpenCV
has no batched tracker). Frames of a real OTB sequence are decoded before
timing; the trackers are timed alternately in chunks of frames so background
load hits them alike, and the figure to read is the ratio (issue goal: Re3 at
1.5x CSRT or more, one object and sixteen).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402

from absl import app, flags  # noqa: E402
from configs import cli as cli_errors  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.tracking_speed import load_frames, target_boxes  # noqa: E402
from model.tracker import Re3MultiTracker, Re3Tracker  # noqa: E402

GOAL = 1.5


def define_flags(flag_values=flags.FLAGS):
  flags.DEFINE_string("model", "default", "Re3 model: 'default', a model_dir or an export.",
                      flag_values=flag_values)
  flags.DEFINE_string("sequence", "../shared/data/tracking/otb/MotorRolling/img",
                      "Folder of frames (random 640x360 frames when missing).",
                      flag_values=flag_values)
  flags.DEFINE_integer("frames", 64, "Frames per round.", flag_values=flag_values)
  flags.DEFINE_integer("rounds", 3, "Passes over the frames.", flag_values=flag_values)
  flags.DEFINE_integer("chunk", 8, "Frames per alternation chunk.", flag_values=flag_values)
  flags.DEFINE_list("objects", ["1", "16"], "Numbers of tracked objects.", flag_values=flag_values)


def _opencv_factory(name: str):
  import cv2  # pylint: disable=g-import-not-at-top  # OpenCV is the optional `opencv` extra
  if name == "csrt":
    return cv2.TrackerCSRT_create if hasattr(cv2, "TrackerCSRT_create") else cv2.TrackerCSRT.create
  return cv2.TrackerKCF_create if hasattr(cv2, "TrackerKCF_create") else cv2.TrackerKCF.create


class OpenCVGroup:
  """n OpenCV trackers of one kind, updated in turn on each (BGR) frame."""

  def __init__(self, name: str):
    self.make = _opencv_factory(name)
    self.trackers = []

  def start(self, frame_bgr, boxes):
    self.trackers = []
    for b in boxes:
      t = self.make()
      t.init(frame_bgr, tuple(int(round(v)) for v in b))
      self.trackers.append(t)

  def step(self, frame_bgr):
    for t in self.trackers:
      t.update(frame_bgr)


def bench(model: str, frames, objects, rounds: int, chunk: int):
  bgr = [np.ascontiguousarray(f[:, :, ::-1]) for f in frames]
  h, w = frames[0].shape[:2]
  single = Re3Tracker.load(model)
  multi = Re3MultiTracker.load(model)
  rows = []
  for n in objects:
    boxes = target_boxes(n, h, w)
    runners = {}
    if n == 1:
      runners["re3"] = (lambda: single.init(frames[0], boxes[0]), lambda i: single.update(frames[i]))
    else:
      def start_multi():
        multi.clear()
        multi.add_many(frames[0], {k: b for k, b in enumerate(boxes)})
      runners["re3"] = (start_multi, lambda i: multi.update(frames[i]))
    for name in ("csrt", "kcf"):
      group = OpenCVGroup(name)
      runners[name] = (lambda g=group: g.start(bgr[0], boxes), lambda i, g=group: g.step(bgr[i]))
    # Warm-up: traces the Re3 graphs, including the reset branch at frame 32.
    for start, step in runners.values():
      start()
      for i in range(1, min(len(frames), 34)):
        step(i)
    wall = {k: 0.0 for k in runners}
    counted = 0
    for _ in range(rounds):
      for start, _ in runners.values():
        start()
      for i0 in range(1, len(frames), chunk):
        idx = range(i0, min(i0 + chunk, len(frames)))
        for name, (_, step) in runners.items():
          t0 = time.perf_counter()
          for i in idx:
            step(i)
          wall[name] += time.perf_counter() - t0
        counted += len(idx)
    fps = {k: counted / v for k, v in wall.items()}
    rows.append({"objects": n, **{f"{k}_fps": v for k, v in fps.items()},
                 "re3_vs_csrt": fps["re3"] / fps["csrt"], "re3_vs_kcf": fps["re3"] / fps["kcf"]})
  return rows


def main(argv, flag_values=None):
  del argv
  fv = flag_values or flags.FLAGS
  frames, source = load_frames(fv.sequence, fv.frames)
  objects = [int(x) for x in fv.objects]
  print(f"model: {fv.model}; frames: {source} ({frames[0].shape[1]}x{frames[0].shape[0]}), "
        f"{len(frames)} per round, {fv.rounds} rounds")
  rows = bench(fv.model, frames, objects, fv.rounds, fv.chunk)
  print(f"{'objects':>7} {'re3 fps':>8} {'csrt fps':>8} {'kcf fps':>8} {'re3/csrt':>8} "
        f"{'re3/kcf':>7} {'re3 obj/s':>9} {'csrt obj/s':>10}  goal re3/csrt >= {GOAL}")
  for r in rows:
    n = r["objects"]
    print(f"{n:>7d} {r['re3_fps']:>8.1f} {r['csrt_fps']:>8.1f} {r['kcf_fps']:>8.1f} "
          f"{r['re3_vs_csrt']:>8.2f} {r['re3_vs_kcf']:>7.2f} {r['re3_fps'] * n:>9.1f} "
          f"{r['csrt_fps'] * n:>10.1f}  {'met' if r['re3_vs_csrt'] >= GOAL else 'NOT met'}")
  print("fps: frames per second of one update of all n objects (Re3: one batched step; "
        "OpenCV: n trackers in turn); obj/s = fps x objects.")


def run():
  define_flags()
  app.run(main, flags_parser=cli_errors.flags_parser(__doc__))


if __name__ == "__main__":
  run()
