"""Comparison trackers behind one interface, so evaluation scores ours and
theirs side by side in one run.

The interface (GOT-10k toolkit / OpenCV style):

  tracker.init(image_rgb, box_xywh)          HxWx3 uint8 RGB, (x, y, w, h) pixels
  ok, box_xywh = tracker.update(image_rgb)   ok False when the tracker lost the target

OpenCV's trackers want BGR frames and integer boxes and, on failure, return a
meaningless box; the wrapper converts frames, rounds the initial box, and on
failure reports ok=False with the last good box (a one-pass benchmark scores
every frame, and "the target is still where I last saw it" is the most
useful guess; callers that prefer no box can look at `ok`).
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Protocol, Tuple, runtime_checkable

import numpy as np

from model.tracker_inputs import as_rgb, check_box_xywh
from train.eval.frames import OPENCV_REINSTALL


@runtime_checkable
class Tracker(Protocol):
  name: str

  def init(self, image_rgb: np.ndarray, box_xywh) -> None:
    ...

  def update(self, image_rgb: np.ndarray) -> Tuple[bool, np.ndarray]:
    ...


class StayPutTracker:
  """Reports the initial box forever: the floor every tracker must beat."""

  name = "stay"

  def __init__(self):
    self._box = None

  def init(self, image_rgb, box_xywh) -> None:
    img = as_rgb(image_rgb)
    self._box = check_box_xywh(box_xywh, img.shape[0], img.shape[1])

  def update(self, image_rgb):
    if self._box is None:
      raise RuntimeError("StayPutTracker.update called before init")
    return True, self._box.copy()


def import_cv2():
  """OpenCV (a dependency of the package), or an ImportError naming the reinstall command."""
  try:
    import cv2  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"OpenCV comparison trackers need OpenCV, which did not import ({e}): "
                      f"{OPENCV_REINSTALL}") from e
  return cv2


class OpenCVTracker:
  """cv2.Tracker{KCF,CSRT,MIL} (or, with `factory`, any OpenCV tracker such as
  the peers of train/eval/peers.py) behind the common interface."""

  FACTORIES = {"kcf": "TrackerKCF_create", "csrt": "TrackerCSRT_create", "mil": "TrackerMIL_create"}

  def __init__(self, kind: str, factory: Optional[Callable[[], object]] = None):
    cv2 = import_cv2()
    if factory is None:
      if kind not in self.FACTORIES:
        raise ValueError(f"unknown OpenCV tracker {kind!r}; expected one of {sorted(self.FACTORIES)}")
      factory = getattr(cv2, self.FACTORIES[kind], None)
      if factory is None:
        raise ImportError(f"this OpenCV build has no cv2.{self.FACTORIES[kind]} "
                          f"(its contrib modules are missing: {OPENCV_REINSTALL})")
    self._cv2 = cv2
    self._factory = factory
    self.name = kind
    self._tracker = None
    self._last = None

  def _bgr(self, image_rgb):
    return np.ascontiguousarray(as_rgb(image_rgb)[..., ::-1])

  def init(self, image_rgb, box_xywh) -> None:
    img = as_rgb(image_rgb)
    b = check_box_xywh(box_xywh, img.shape[0], img.shape[1])
    # OpenCV takes an integer Rect; round corners, keep at least 1 pixel.
    x1, y1 = int(round(b[0])), int(round(b[1]))
    x2, y2 = int(round(b[0] + b[2])), int(round(b[1] + b[3]))
    rect = (x1, y1, max(x2 - x1, 1), max(y2 - y1, 1))
    self._tracker = self._factory()
    self._tracker.init(np.ascontiguousarray(img[..., ::-1]), rect)
    self._last = b.copy()

  def update(self, image_rgb):
    if self._tracker is None:
      raise RuntimeError(f"{self.name} tracker: update called before init")
    ok, rect = self._tracker.update(self._bgr(image_rgb))
    box = np.asarray(rect, dtype=np.float64).reshape(-1)
    if ok and box.shape == (4,) and box[2] > 0 and box[3] > 0:
      self._last = box
      return True, box.copy()
    return False, self._last.copy()


BASELINES: Dict[str, Callable[[], object]] = {
    "stay": StayPutTracker,
    "kcf": lambda: OpenCVTracker("kcf"),
    "csrt": lambda: OpenCVTracker("csrt"),
    "mil": lambda: OpenCVTracker("mil"),
}


def make_baseline(name: str):
  """A fresh comparison tracker by name (stay, kcf, csrt, mil)."""
  if name not in BASELINES:
    raise ValueError(f"unknown comparison tracker {name!r}; expected one of {sorted(BASELINES)}")
  return BASELINES[name]()
