"""A Re3 model's speed next to OpenCV's CSRT, KCF, NanoTrack v2 and VitTrack, in one run, on the same frames.

  python -m benchmarks.default_vs_peers                          # the default model
  python -m benchmarks.default_vs_peers --model runs/re3_pretrained/export
  python -m benchmarks.default_vs_peers --peer_models ../shared/models/peers

One object: frames per second of `Re3Tracker.update` (the crops, which the
default's LiteRT runtime cuts on the host with OpenCV, the step, boxes, the LSTM reset every 32 frames, bookkeeping: everything a user
pays) and of one OpenCV tracker's `update`. Sixteen objects: object-frames per
second of one `Re3MultiTracker.update` (one batched step for all targets) and
of sixteen OpenCV trackers of a kind updated in turn (OpenCV has no batched
tracker). Frames of a real OTB sequence (640x360) are decoded before timing;
the trackers are timed alternately in chunks of frames, every tracker on the
same chunk before the next chunk, so background load hits them alike. The
figures to read are the ratios to NanoTrack v2 (`nano`) in the same run; the
goals (issue 21): one object at or above NanoTrack v2's frames per second,
sixteen objects at 3x its object-frames per second.

The peers (nano, vit; train/eval/peers.py) read their ONNX files from
--peer_models, else $RE3_PEER_MODELS, else ../shared/models/peers. OpenCV
trackers get BGR frames and integer 0-based boxes, as train.evaluate gives
them; Re3 gets the RGB frames.

The defaults take about two minutes on 2 idle cores (sixteen CSRT trackers are
most of it: about 2 frames/s); `--frames 4 --rounds 1` is a smoke run.
"""

from __future__ import annotations

import os

from configs import quiet

quiet.setup()

import time  # noqa: E402
from typing import Callable, Dict, List, Optional, Sequence  # noqa: E402

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.tracking_speed import load_frames, target_boxes  # noqa: E402
from configs import cli as cli_errors  # noqa: E402
from train.eval import baselines, peers  # noqa: E402

PROG = "benchmarks.default_vs_peers"
REFERENCE = "nano"
TRACKERS = ("re3", "csrt", "kcf", "nano", "vit")
OPENCV = ("csrt", "kcf", "mil")
# Goals of issue 21 for Re3 over NanoTrack v2: frames/s with one object,
# object-frames/s with sixteen.
GOALS = {1: 1.0, 16: 3.0}
DEFAULT_PEER_MODELS = "../shared/models/peers"
RESET_WARM_UP = 34      # frames that trace Re3's graphs, the reset branch (frame 32) included


def define_flags(flag_values=flags.FLAGS):
  flags.DEFINE_string("model", "default", "Re3 model: 'default', a model_dir or an export.",
                      flag_values=flag_values)
  flags.DEFINE_string("sequence", "../shared/data/tracking/otb/MotorRolling/img",
                      "Folder of frames (random 640x360 frames when missing).",
                      flag_values=flag_values)
  flags.DEFINE_string("peer_models", None, "Folder of the peers' ONNX files (nanotrack_v2/, "
                      f"vittrack/); default ${peers.PEER_MODELS_ENV}, else {DEFAULT_PEER_MODELS}.",
                      flag_values=flag_values)
  flags.DEFINE_list("trackers", list(TRACKERS), f"Trackers to time; must include {REFERENCE!r}, "
                    f"the reference of the ratios. Some of re3, {', '.join(OPENCV)}, "
                    f"{', '.join(peers.PEER_NAMES)}.", flag_values=flag_values)
  flags.DEFINE_integer("frames", 48, "Frames per round.", flag_values=flag_values)
  flags.DEFINE_integer("rounds", 2, "Passes over the frames.", flag_values=flag_values)
  flags.DEFINE_integer("chunk", 8, "Frames per alternation chunk.", flag_values=flag_values)
  flags.DEFINE_list("objects", ["1", "16"], "Numbers of tracked objects.", flag_values=flag_values)


def peer_models_dir(flag_value: Optional[str]) -> str:
  return flag_value or os.environ.get(peers.PEER_MODELS_ENV) or DEFAULT_PEER_MODELS


def opencv_factory(name: str, peer_models: str) -> Callable[[], object]:
  """A zero-argument constructor of a raw OpenCV tracker (BGR frames, int boxes)."""
  if name in peers.PEERS:
    peers.create_opencv(name, peer_models)          # a missing file is named now
    return lambda: peers.create_opencv(name, peer_models)
  if name in OPENCV:
    return getattr(baselines.import_cv2(), baselines.OpenCVTracker.FACTORIES[name])
  raise ValueError(f"unknown tracker {name!r}; expected some of "
                   f"{['re3', *OPENCV, *peers.PEER_NAMES]}")


class OpenCVGroup:
  """n OpenCV trackers of one kind, updated in turn on each (BGR) frame."""

  def __init__(self, make: Callable[[], object]):
    self.make = make
    self.trackers: List[object] = []

  def start(self, frame_bgr, boxes):
    self.trackers = []
    for b in boxes:
      x1, y1 = int(round(b[0])), int(round(b[1]))
      rect = (x1, y1, max(int(round(b[0] + b[2])) - x1, 1), max(int(round(b[1] + b[3])) - y1, 1))
      t = self.make()
      t.init(frame_bgr, rect)
      self.trackers.append(t)

  def step(self, frame_bgr):
    for t in self.trackers:
      t.update(frame_bgr)


def _runners(names, model, frames, bgr, boxes, peer_models, re3):
  """name -> (start(), step(i)) for one object count."""
  out = {}
  for name in names:
    if name == "re3":
      single, multi = re3
      if len(boxes) == 1:
        out[name] = (lambda: single.init(frames[0], boxes[0]), lambda i: single.update(frames[i]))
      else:
        def start_multi():
          multi.clear()
          multi.add_many(frames[0], {k: b for k, b in enumerate(boxes)})
        out[name] = (start_multi, lambda i: multi.update(frames[i]))
    else:
      group = OpenCVGroup(opencv_factory(name, peer_models))
      out[name] = (lambda g=group: g.start(bgr[0], boxes), lambda i, g=group: g.step(bgr[i]))
  return out


def bench(model: str, frames, objects: Sequence[int], rounds: int, chunk: int,
          names: Sequence[str] = TRACKERS, peer_models: Optional[str] = None,
          on_row: Optional[Callable[[Dict[str, object]], None]] = None
          ) -> List[Dict[str, object]]:
  """Per object count: {objects, frames, fps: {name: frames/s}, vs_nano: {name: ratio}};
  on_row(row) is called as each object count is done."""
  names = list(dict.fromkeys(names))
  if REFERENCE not in names:
    raise ValueError(f"--trackers must include {REFERENCE!r} (NanoTrack v2, the reference of "
                     f"the ratios), got {names}")
  if rounds < 1 or chunk < 1 or len(frames) < 2:
    raise ValueError(f"need --rounds >= 1, --chunk >= 1 and --frames >= 2; got {rounds}, "
                     f"{chunk}, {len(frames)}")
  peer_models = peer_models_dir(peer_models)
  for name in names:
    if name != "re3":
      opencv_factory(name, peer_models)              # every file and name checked first
  re3 = None
  if "re3" in names:
    # TensorFlow is imported only when Re3 is timed.
    from model.tracker import Re3MultiTracker, Re3Tracker  # pylint: disable=g-import-not-at-top
    re3 = (Re3Tracker.load(model), Re3MultiTracker.load(model))
  bgr = [np.ascontiguousarray(f[:, :, ::-1]) for f in frames]
  h, w = frames[0].shape[:2]
  rows = []
  for n in objects:
    boxes = target_boxes(n, h, w)
    runners = _runners(names, model, frames, bgr, boxes, peer_models, re3)
    # Warm-up (untimed): Re3 over its reset at frame 32; OpenCV's first updates.
    for name, (start, step) in runners.items():
      start()
      for i in range(1, min(len(frames), RESET_WARM_UP if name == "re3" else 3)):
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
    rows.append({"objects": n, "frames": counted, "fps": fps,
                 "vs_nano": {k: v / fps[REFERENCE] for k, v in fps.items()}})
    if on_row:
      on_row(rows[-1])
  return rows


HEADER = f"{'objects':>7} {'tracker':>8} {'frames/s':>9} {'obj-frames/s':>12} {'x nano':>7}"
LEGEND = ("frames/s: updates of all n objects per second (Re3: one batched step; OpenCV: n "
          "trackers in turn); obj-frames/s = frames/s x objects; x nano = the ratio to "
          "NanoTrack v2 in the same run (the same for both rates).")


def row_lines(r: Dict[str, object]) -> List[str]:
  """One line per tracker of one object count, then the goal's line."""
  n = r["objects"]
  lines = [f"{n:>7d} {name:>8} {fps:>9.1f} {fps * n:>12.1f} {r['vs_nano'][name]:>7.2f}"
           for name, fps in r["fps"].items()]
  if "re3" in r["fps"] and n in GOALS:
    ratio = r["vs_nano"]["re3"]
    lines.append(f"{n:>7d} goal re3 >= {GOALS[n]:g}x nano: {ratio:.2f}x, "
                 f"{'met' if ratio >= GOALS[n] else 'NOT met'}")
  return lines


def main(argv, flag_values=None):
  del argv
  fv = flag_values or flags.FLAGS
  frames, source = load_frames(fv.sequence, fv.frames)
  objects = [int(x) for x in fv.objects]
  peer_models = peer_models_dir(fv.peer_models)
  print(f"model: {fv.model}; peers: {peer_models}; frames: {source} "
        f"({frames[0].shape[1]}x{frames[0].shape[0]}), {len(frames)} per round, "
        f"{fv.rounds} rounds, chunks of {fv.chunk}")
  print(HEADER, flush=True)
  bench(fv.model, frames, objects, fv.rounds, fv.chunk, fv.trackers, peer_models,
        on_row=lambda row: print("\n".join(row_lines(row)), flush=True))
  print(LEGEND)


def run(argv=None):
  define_flags()
  app.run(cli_errors.guarded(PROG, main, flags.FLAGS),
          argv=list(argv) if argv is not None else None,
          flags_parser=cli_errors.flags_parser(__doc__))


if __name__ == "__main__":
  run()
