"""Tracking with a trained Re3 (or RL agent): the OpenCV-style tracker API.

    tracker = Re3Tracker.load("runs/re3_small")     # training model_dir or SavedModel
    tracker.init(image, (x, y, w, h))
    ok, (x, y, w, h) = tracker.update(next_image)

    multi = Re3MultiTracker.load(path)
    multi.add("car", image, box); multi.add("dog", image, box2)
    results = multi.update(next_image)             # {"car": (ok, box), "dog": (ok, box)}
    multi.remove("dog")

Images are HxWx3 uint8 RGB (grayscale and RGBA are converted); boxes are
(x, y, w, h) in 0-based continuous pixels, OpenCV's convention, so the tracker
drops in where `cv2.TrackerCSRT` was used.

Re3 at test time (Re3 paper, section III-C, "Tracking at test time"):
  * init: the first frame is fed twice (both crops at the given box) from a
    zero LSTM state; the output is discarded and the state kept, both as the
    running state and as the target's "initial state".
  * update: both crops are cut at the previous output box (previous image,
    current image); the output label is mapped back to a box.
  * every `reset_period` (default configs.model.RESET_EVERY, re-exported here;
    0 or None: never) updates, the current image
    cropped at the new box is fed as both crops from the initial state; its
    state replaces the running state and its output is discarded.

Hot path: one graph call per frame (`Re3Graph.track_step_carry_batch` of
model/tracking_graphs.py, the graph model/export.py saves): each target keeps
its previous crop instead of the previous image, so targets can be added on
any frame and all of them run in one batched step. Loading (model_dir,
checkpoint or SavedModel) is model/loading.py.

Bad input: a box with zero or negative size, NaN, or wholly outside the
image is a ValueError; a target that leaves the image keeps being tracked and
is reported with ok=False while its box does not overlap the frame. A refused
call leaves the tracker as it was (a bad box given to `init` keeps the running
target).

Frame size: a tracking session (from `init`, or the first `add` on an empty
Re3MultiTracker, until the last target is removed) keeps one frame size. A
frame of another size is refused with a ValueError naming both sizes, the
state unchanged: the boxes are pixels of the session's frames, and whether a
new size is the same view rescaled or another view is not known here. Resize
the frames, or start again with `init` on the new size.
"""

from __future__ import annotations

from typing import Dict, Hashable, Iterable, Optional, Tuple

import numpy as np
import tensorflow as tf

from configs.model import RESET_EVERY
from model import geometry
from model.loading import load_rl_graph
from model.runtimes import graph_for_net, load_re3_runtime, precision_of
from model.tracker_inputs import as_rgb, box_overlaps_image, check_box_xywh
from model.tracking_graphs import STATE_PARTS, RLAgentGraph


def _concrete(fn):
  """The single concrete function of a tf.function with an input signature."""
  try:
    return fn.get_concrete_function()
  except (TypeError, ValueError, AttributeError):
    return fn


class _Re3Loaders:
  """`load` and `from_net` of the Re3 trackers (both are built from a graph)."""

  @classmethod
  def load(cls, path: str, reset_period: Optional[int] = RESET_EVERY,
           precision: Optional[str] = None):
    """From an exported SavedModel, a `.tflite` / `.onnx` step export, or a
    training model_dir (or checkpoint prefix); `precision` ('bf16', 'int8',
    'auto') for a model_dir: model.runtimes.load_re3_runtime."""
    return cls(load_re3_runtime(path, precision), reset_period)

  @classmethod
  def from_net(cls, net, reset_period: Optional[int] = RESET_EVERY,
               precision: Optional[str] = None):
    return cls(graph_for_net(net, precision), reset_period)


class Re3MultiTracker(_Re3Loaders):
  """Many targets in one frame, one batched forward pass per frame.

  `add(target_id, image, box)` starts a target on `image` (any frame);
  `update(image)` advances every target and returns {id: (ok, box_xywh)};
  `remove(target_id)` drops one. Per-target results equal single-object
  tracking (same graph, batched), up to float rounding.
  """

  name = "re3_multi"

  def __init__(self, graph, reset_period: Optional[int] = RESET_EVERY):
    if reset_period is not None and reset_period < 0:
      raise ValueError(f"reset_period must be >= 0 (0 or None = never), got {reset_period}")
    self.graph = graph
    self.reset_period = int(reset_period or 0)
    self._units = int(graph.lstm_units.numpy())
    parts = getattr(graph, "state_parts", None)       # exports made before templates: 4
    self._parts = STATE_PARTS if parts is None else int(parts.numpy())
    self._s = int(graph.crop_size.numpy())
    self.precision = precision_of(graph)   # float32, bf16, fp16 or int8
    self.runtime = getattr(graph, "runtime", "tensorflow")   # tensorflow, litert or onnxruntime
    # The hot path calls the concrete function directly: skips the tf.function
    # argument matching (about 0.5 ms a call on CPU, 7% of a re3_small step).
    self._carry = _concrete(graph.track_step_carry_batch)
    self.clear()

  # ------------------------------------------------------------- bookkeeping

  def clear(self) -> None:
    self._ids = []
    self._boxes = np.zeros([0, 4], np.float32)
    self._counts = np.zeros([0], np.int64)
    self._scores = np.zeros([0], np.float64)
    self._state = tf.zeros([0, self._parts, self._units])
    self._initial = tf.zeros([0, self._parts, self._units])
    self._crops = tf.zeros([0, self._s, self._s, 3])
    self._hw: Optional[Tuple[int, int]] = None   # frame size of the session

  def _check_size(self, img: np.ndarray) -> None:
    """ValueError naming both sizes when img is not the session's frame size."""
    hw = (int(img.shape[0]), int(img.shape[1]))
    if self._hw is not None and hw != self._hw:
      raise ValueError(f"frame is {hw[1]}x{hw[0]} but this tracking session's frames are "
                       f"{self._hw[1]}x{self._hw[0]} (width x height): resize the frame, or "
                       "call init on the new size to start again")

  @property
  def target_ids(self):
    return list(self._ids)

  def __len__(self):
    return len(self._ids)

  def __contains__(self, target_id):
    return target_id in self._ids

  def add(self, target_id: Hashable, image, box_xywh) -> None:
    """Starts tracking `target_id` at `box_xywh` on `image`."""
    self.add_many(image, {target_id: box_xywh})

  def add_many(self, image, boxes: Dict[Hashable, Iterable[float]]) -> None:
    """Starts several targets on the same image with one batched init."""
    img = as_rgb(image)
    if self._ids:
      self._check_size(img)
    h, w = img.shape[:2]
    new_ids, new_boxes = [], []
    for tid, box in boxes.items():
      if tid in self._ids or tid in new_ids:
        raise ValueError(f"target id {tid!r} is already tracked")
      new_boxes.append(check_box_xywh(box, h, w, what=f"box of target {tid!r}"))
      new_ids.append(tid)
    if not new_ids:
      return
    b = tf.constant(np.asarray(new_boxes, np.float32))
    t_img = tf.convert_to_tensor(img)
    state = self.graph.init_batch(t_img, b)["state"]
    crops = self.graph.crop_batch(t_img, b)["crops"]
    self._ids.extend(new_ids)
    self._boxes = np.concatenate([self._boxes, np.asarray(new_boxes, np.float32)])
    self._counts = np.concatenate([self._counts, np.zeros([len(new_ids)], np.int64)])
    self._scores = np.concatenate([self._scores, np.full([len(new_ids)], np.nan)])
    self._state = tf.concat([self._state, state], 0)
    self._initial = tf.concat([self._initial, state], 0)
    self._crops = tf.concat([self._crops, crops], 0)
    self._hw = (int(h), int(w))

  def remove(self, target_id: Hashable) -> None:
    if target_id not in self._ids:
      raise KeyError(f"target id {target_id!r} is not tracked")
    i = self._ids.index(target_id)
    keep = np.array([j for j in range(len(self._ids)) if j != i], np.int32)
    self._ids.pop(i)
    self._boxes = self._boxes[keep]
    self._counts = self._counts[keep]
    self._scores = self._scores[keep]
    self._state = tf.gather(self._state, keep)
    self._initial = tf.gather(self._initial, keep)
    self._crops = tf.gather(self._crops, keep)
    if not self._ids:
      self._hw = None

  def box(self, target_id) -> np.ndarray:
    return self._boxes[self._ids.index(target_id)].astype(np.float64)

  def score(self, target_id) -> float:
    """The target's tracking score after the last update (as OpenCV's
    getTrackingScore): the template similarity of a model with
    model.template: xcorr, in [-1, 1], or NanoTrack's peak score with
    nano_head (the default model), in [0, 1]; low when the target is likely lost;
    NaN before the first update or for a model without a template (or an
    export made before scores)."""
    return float(self._scores[self._ids.index(target_id)])

  def scores(self) -> Dict[Hashable, float]:
    return {tid: float(v) for tid, v in zip(self._ids, self._scores)}

  # ------------------------------------------------------------- tracking

  def update(self, image) -> Dict[Hashable, Tuple[bool, np.ndarray]]:
    """One frame for every target: {id: (ok, (x, y, w, h))}; ok is False when
    the box no longer overlaps the image."""
    img = as_rgb(image)
    if not self._ids:
      return {}
    self._check_size(img)
    counts = self._counts + 1
    if self.reset_period:
      reset = (counts % self.reset_period) == 0
    else:
      reset = np.zeros(counts.shape, bool)
    # Arrays as they are: the TF graph's concrete function converts them, a
    # LiteRT/ONNX StepGraph reads them without a copy of the frame.
    out = self._carry(self._crops, img, self._boxes, self._state, self._initial, reset)
    self._boxes = np.asarray(out["boxes"])
    self._state = out["state"]
    self._crops = out["crops"]
    self._counts = counts
    scores = out.get("scores")             # exports made before scores have none
    self._scores = (np.full(counts.shape, np.nan) if scores is None
                    else np.asarray(scores, np.float64).reshape(-1))
    h, w = img.shape[:2]
    return {tid: (box_overlaps_image(b, h, w), b.astype(np.float64))
            for tid, b in zip(self._ids, self._boxes)}


class Re3Tracker(_Re3Loaders):
  """Single-object Re3 with OpenCV's `init` / `update` interface."""

  name = "re3"

  def __init__(self, graph, reset_period: Optional[int] = RESET_EVERY):
    self._multi = Re3MultiTracker(graph, reset_period)

  @property
  def graph(self):
    return self._multi.graph

  @property
  def reset_period(self) -> int:
    return self._multi.reset_period

  @property
  def precision(self) -> str:
    """float32, bf16, fp16 or int8: what the step computes in."""
    return self._multi.precision

  @property
  def runtime(self) -> str:
    """tensorflow, litert or onnxruntime: what runs the step."""
    return self._multi.runtime

  def init(self, image, box_xywh) -> None:
    """Starts (or restarts) tracking; a bad image or box is refused before the
    running target is touched."""
    img = as_rgb(image)
    check_box_xywh(box_xywh, img.shape[0], img.shape[1])
    self._multi.clear()
    self._multi.add(0, img, box_xywh)

  def update(self, image) -> Tuple[bool, np.ndarray]:
    if not len(self._multi):
      raise RuntimeError("Re3Tracker.update called before init")
    return self._multi.update(image)[0]

  @property
  def tracking_score(self) -> float:
    """The last update's tracking score (Re3MultiTracker.score; NaN without one)."""
    return self._multi.score(0) if len(self._multi) else float("nan")


class RLAgentTracker:
  """The RL paper's agent behind `init`/`update`. The agent never sees a box:
  it predicts the target from the frames alone (its first prediction is on the
  first frame, exposed as `initial_prediction_xywh` so evaluation scores it as
  the paper does: every frame is a prediction)."""

  name = "rl_agent"

  def __init__(self, graph):
    self.graph = graph
    self._s = int(graph.frame_size.numpy())
    self._c = int(graph.channels.numpy())
    self._units = int(graph.lstm_units.numpy())
    self._state = None
    self.initial_prediction_xywh = None

  @classmethod
  def load(cls, path: str):
    return cls(load_rl_graph(path))

  @classmethod
  def from_net(cls, agent):
    return cls(RLAgentGraph(agent))

  def _frame(self, image) -> tf.Tensor:
    img = as_rgb(image)
    if img.shape[:2] != (self._s, self._s):
      raise ValueError(f"the RL agent takes {self._s}x{self._s} frames, got "
                       f"{img.shape[1]}x{img.shape[0]}")
    if self._c == 1:
      img = np.round(img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
      img = np.clip(img, 0, 255).astype(np.uint8)[..., None]
    return tf.convert_to_tensor(img[None])

  def _run(self, image):
    out = self.graph.step(self._frame(image), self._state)
    self._state = out["state"]
    return geometry.xyxy_to_xywh(out["boxes_xyxy"].numpy()[0].astype(np.float64))

  def init(self, image, box_xywh=None) -> None:
    img = as_rgb(image)
    if box_xywh is not None:
      check_box_xywh(box_xywh, img.shape[0], img.shape[1])
    self._frame(img)                     # a refused frame leaves the running state as it was
    self._state = tf.zeros([1, 2, self._units])
    self.initial_prediction_xywh = self._run(img)

  def update(self, image):
    if self._state is None:
      raise RuntimeError("RLAgentTracker.update called before init")
    box = self._run(image)
    return box_overlaps_image(box, self._s, self._s), box
