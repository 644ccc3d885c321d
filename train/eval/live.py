"""The interactive demo of `train.track --select`: pick objects on the first
frame, watch them tracked live.

  python -m train.track --input clip.mp4 --select     # a video file (or any --input)
  python -m train.track --input 0 --select            # camera 0

Selection (OpenCV's selectROIs, on the first frame): drag a box and press
Enter or Space to keep it; drag more boxes for several objects; Esc ends the
selection (Esc before any box: nothing is tracked, the command says so).
In the live window: `q` or Esc stops, `s` saves the annotated frame as a PNG
(--save_dir, default the working directory; the path is printed). The window
shows every object's box in its own colour with a legend, the frame number
and the tracker's frame rate. One object runs Re3Tracker, several run
Re3MultiTracker (one batched step per frame).

The window needs OpenCV with a GUI (opencv-contrib-python, not the -headless
build) and a display; `display_problem()` says what is missing, and the
command fails with that message instead of opening nothing. The loop itself
(`run_live`) takes any display object with select/show/close, which is how
the tests script it.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, List, Optional, Sequence

import numpy as np
from PIL import Image

from train.eval import render as render_lib

QUIT_KEYS = (ord("q"), ord("Q"), 27)          # q, Esc
SAVE_KEYS = (ord("s"), ord("S"))
WINDOW = "re3"
FPS_WINDOW = 30                              # frames in the live frame-rate average


def _cv2():
  try:
    import cv2  # optional dependency (the opencv extra)  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return cv2


def opencv_has_gui(cv2) -> bool:
  """False for the -headless builds (their build information says GUI: NONE)."""
  for line in cv2.getBuildInformation().splitlines():
    if line.strip().startswith("GUI:"):
      return line.split(":", 1)[1].strip().upper() != "NONE"
  return True


def display_problem(environ=None, platform: Optional[str] = None) -> Optional[str]:
  """Why --select cannot open a window here, or None when it can."""
  environ = os.environ if environ is None else environ
  platform = sys.platform if platform is None else platform
  cv2 = _cv2()
  if cv2 is None:
    return ("--select opens a window and needs OpenCV with a GUI: pip install "
            "opencv-contrib-python (or give --box and run without a window)")
  if not opencv_has_gui(cv2):
    return ("--select opens a window, but the installed OpenCV has no GUI (the -headless "
            "build, e.g. opencv-contrib-python-headless): install opencv-contrib-python "
            "instead, or give --box and run without a window")
  if platform.startswith("linux") and not (environ.get("DISPLAY") or
                                           environ.get("WAYLAND_DISPLAY")):
    return ("--select opens a window but there is no display (DISPLAY is not set): run it "
            "on a desktop, over `ssh -X`, or under `xvfb-run`; or give --box and run "
            "without a window")
  return None


class OpenCVWindow:
  """The real display: OpenCV's selectROIs, imshow and waitKey (frames are RGB)."""

  def __init__(self, title: str = WINDOW):
    problem = display_problem()
    if problem:
      raise ValueError(problem)
    self.cv2, self.title = _cv2(), title
    self.cv2.namedWindow(title, self.cv2.WINDOW_AUTOSIZE)

  def _bgr(self, frame):
    return np.ascontiguousarray(np.asarray(frame)[..., ::-1])

  def select(self, frame) -> List[np.ndarray]:
    rois = self.cv2.selectROIs(self.title, self._bgr(frame), showCrosshair=True,
                               fromCenter=False)
    return [np.asarray(r, np.float64) for r in np.asarray(rois).reshape(-1, 4)
            if r[2] > 0 and r[3] > 0]

  def show(self, frame) -> int:
    self.cv2.imshow(self.title, self._bgr(frame))
    return self.cv2.waitKey(1) & 0xFF

  def close(self) -> None:
    self.cv2.destroyWindow(self.title)
    self.cv2.waitKey(1)


class _Single:
  """One target behind the multi-target interface of the loop."""

  def __init__(self, tracker):
    self.tracker = tracker

  def add_many(self, image, boxes):
    (box,) = boxes.values()
    self.tracker.init(image, box)

  def update(self, image):
    ok, box = self.tracker.update(image)
    return {0: (ok, box)}


def run_live(make_tracker: Callable[[int], object], source, display, out,
             boxes: Optional[Sequence] = None, save_dir: str = ".",
             render: Optional[render_lib.Renderer] = None, max_frames: int = 0,
             log=None) -> dict:
  """The demo loop.

  make_tracker(n): a tracker for n objects (n == 1: init/update, n > 1:
  add_many/update as Re3MultiTracker). boxes: the initial boxes, or None to
  ask the display on the first frame. Writes one line per frame to `out`
  (`x,y,w,h`, objects separated by `;`). Returns frames, objects, saved
  paths, whether the person stopped it, and the tracker's seconds per frame.
  """
  log = log or sys.stderr
  t_start = time.perf_counter()
  frames_iter = iter(source)
  try:
    first = next(frames_iter)
  except StopIteration:
    raise ValueError(f"{getattr(source, 'path', 'input')}: no frames") from None
  if boxes is None:
    boxes = display.select(first)
    if not boxes:
      raise ValueError("no object selected (draw a box, Enter to keep it, Esc to finish)")
  boxes = [np.asarray(b, np.float64) for b in boxes]
  n = len(boxes)
  tracker = make_tracker(n)
  multi = tracker if n > 1 else _Single(tracker)
  labels = [f"object {i + 1}" for i in range(n)] if n > 1 else ["re3"]
  colors = [render_lib.tracker_color(i) for i in range(n)]
  times: List[float] = []
  saved: List[str] = []
  stopped = False
  frame, current, oks = first, list(boxes), [True] * n
  index = 0
  try:
    while True:
      t0 = time.perf_counter()
      if index == 0:
        multi.add_many(frame, {i: b for i, b in enumerate(boxes)})
      else:
        res = multi.update(frame)
        oks = [bool(res[i][0]) for i in range(n)]
        current = [np.asarray(res[i][1], np.float64) for i in range(n)]
      times.append(time.perf_counter() - t0)
      out.write(";".join(",".join(f"{v:.2f}" for v in b) for b in current) + "\n")
      recent = times[-FPS_WINDOW:] if len(times) > 1 else times
      fps = len(recent) / max(sum(recent), 1e-9)
      annotated = render_lib.annotate(
          frame, [render_lib.Layer(lab, b, c, ok)
                  for lab, b, c, ok in zip(labels, current, colors, oks)],
          frame_number=index, extra_text=f"{fps:.1f} FPS")
      if render is not None:
        render.add(annotated)
      key = display.show(annotated)
      if key in SAVE_KEYS:
        os.makedirs(save_dir, exist_ok=True)
        path = os.path.join(save_dir, f"re3_frame_{index:06d}.png")
        Image.fromarray(annotated).save(path)
        saved.append(path)
        print(f"saved {path}", file=log, flush=True)
      if key in QUIT_KEYS:
        stopped = True
        break
      index += 1
      if max_frames and index >= max_frames:
        break
      try:
        frame = next(frames_iter)
      except StopIteration:
        break
  finally:
    close = getattr(frames_iter, "close", None)
    if close is not None:
      close()                                   # releases a video or camera
  return {"frames": len(times), "objects": n, "saved": saved, "stopped": stopped,
          "tracker_s": np.asarray(times), "total_s": time.perf_counter() - t_start}
