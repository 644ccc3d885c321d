"""Re3Tracker for the VOT toolkit (vot-toolkit 0.9, the `vot` extra).

A trackers.ini names it in one of two ways (python -m train.toolkits.vot_workspace
writes either, with the model given to it). The "python" protocol: the toolkit
starts a worker process that calls init/update of this module's tracker object:

  [re3]
  label = Re3
  protocol = python
  command = train.toolkits.vot_toolkit:Re3VOTTracker
  arg_model = /path/to/model_dir_or_savedmodel
  convert = rectangle
  timeout = 600

The "traxpython" protocol: the toolkit runs `python -m train.toolkits.vot_toolkit`,
which answers TraX requests:

  [re3_trax]
  label = Re3 (TraX)
  protocol = traxpython
  command = train.toolkits.vot_toolkit
  env_RE3_VOT_MODEL = /path/to/model_dir_or_savedmodel
  timeout = 600

The model is anything Re3Tracker.load accepts: a training model_dir, a
checkpoint prefix, a SavedModel export, or "default" (passed through to
Re3Tracker.load unchanged). Regions are rectangles (x, y, w, h) in the
workspace's pixel coordinates; the workspace writer stores the project's
0-based boxes, so the tracker gets exactly the boxes train.evaluate gives it.
Frames are read with the project's decoder (pipelines.images), as in
train.evaluate.

`timeout`: the toolkit waits this many seconds for each answer of the worker,
the first one included, which loads TensorFlow and the model (its default,
30 s, is too short on a busy CPU).
"""

from __future__ import annotations

import os
import sys
from typing import Optional, Sequence, Tuple

from configs import quiet

quiet.setup()

import numpy as np  # noqa: E402

from model import geometry  # noqa: E402
from model.tracker import RESET_EVERY, Re3Tracker  # noqa: E402
from pipelines.images import load_image_rgb  # noqa: E402

MODEL_ENV = "RE3_VOT_MODEL"
RESET_PERIOD_ENV = "RE3_VOT_RESET_PERIOD"
DEFAULT_MODEL = "default"


def _image(frame) -> np.ndarray:
  """The RGB image of a toolkit frame: a file path, or {channel: path} with a
  `color` channel."""
  if isinstance(frame, dict):
    if "color" not in frame:
      raise ValueError(f"frame has channels {sorted(frame)}; Re3 needs a 'color' channel")
    frame = frame["color"]
  if isinstance(frame, np.ndarray):
    return frame
  return load_image_rgb(str(frame))


def region_to_xywh(region) -> np.ndarray:
  """(x, y, w, h) from a rectangle tuple or a polygon [(x, y), ...] (its
  axis-aligned bounding box, the project's rule in model/geometry.py)."""
  if isinstance(region, tuple) and len(region) == 2 and isinstance(region[1], dict):
    region = region[0]                  # (region, properties) as the python protocol sends
  values = np.asarray(region, np.float64)
  if values.shape == (4,):
    return values
  if values.ndim == 2 and values.shape[1] == 2 and values.shape[0] >= 3:
    return geometry.xyxy_to_xywh(geometry.polygon_to_xyxy(values.reshape(1, -1))[0])
  raise ValueError(f"initial region must be a rectangle (x, y, w, h) or a polygon, got {region!r}"
                   " (set `convert = rectangle` in trackers.ini)")


def _reset_period(value) -> Optional[int]:
  if value is None or value == "":
    return RESET_EVERY
  try:
    return int(value)
  except (TypeError, ValueError):
    raise ValueError(f"reset_period must be an integer (0 = never), got {value!r}") from None


class Re3VOTTracker:
  """The `python` protocol tracker: `init(frame, new)` and `update(frame)`
  return a rectangle (x, y, w, h) as a tuple of floats.

  model: what Re3Tracker.load accepts ("default" included); reset_period: the
  LSTM reset period (trackers.ini passes both as strings, `arg_model`,
  `arg_reset_period`).
  """

  multiobject = False

  def __init__(self, model: str = DEFAULT_MODEL, reset_period=None):
    if not model:
      raise ValueError("trackers.ini: arg_model is empty; give a model_dir, a SavedModel "
                       "or 'default'")
    self.model = str(model)
    self.tracker = Re3Tracker.load(self.model, _reset_period(reset_period))

  def init(self, frame, new) -> Tuple[float, float, float, float]:
    box = region_to_xywh(new)
    self.tracker.init(_image(frame), box)
    return tuple(float(v) for v in box)

  def update(self, frame) -> Tuple[float, float, float, float]:
    _, box = self.tracker.update(_image(frame))
    return tuple(float(v) for v in box)


def create_tracker(model: str = DEFAULT_MODEL, reset_period=None) -> Re3VOTTracker:
  """The factory the python protocol finds when the command names only this module."""
  return Re3VOTTracker(model, reset_period)


def run_trax(model: str = DEFAULT_MODEL, reset_period=None) -> None:
  """The `traxpython` protocol: answers TraX requests on stdin/stdout until the
  toolkit quits."""
  import trax  # the vot-trax package: only this protocol needs it  # pylint: disable=g-import-not-at-top

  tracker = Re3VOTTracker(model, reset_period)
  with trax.Server([trax.Region.RECTANGLE], [trax.Image.PATH], tracker_name="re3") as server:
    while True:
      request = server.wait()
      if request.type == trax.TraxStatus.QUIT:
        break
      image = request.image
      if isinstance(image, dict):
        image = image.get("color", next(iter(image.values())))
      path = image.path()
      if request.type == trax.TraxStatus.INITIALIZE:
        region = request.objects[0][0]
        box = tracker.init(path, tuple(float(v) for v in region.bounds()))
      else:
        box = tracker.update(path)
      server.status([(trax.Rectangle.create(*box), {})])


def main(argv: Optional[Sequence[str]] = None) -> None:
  """`python -m train.toolkits.vot_toolkit` (the traxpython command): the model
  comes from $RE3_VOT_MODEL (default: "default"), the reset period from
  $RE3_VOT_RESET_PERIOD."""
  del argv
  run_trax(os.environ.get(MODEL_ENV) or DEFAULT_MODEL, os.environ.get(RESET_PERIOD_ENV))


if __name__ == "__main__":
  main(sys.argv)
