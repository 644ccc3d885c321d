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

Re3 at test time (reference-facts, "Tracking at test time"):
  * init: the first frame is fed twice (both crops at the given box) from a
    zero LSTM state; the output is discarded and the state kept, both as the
    running state and as the target's "initial state".
  * update: both crops are cut at the previous output box (previous image,
    current image); the output label is mapped back to a box.
  * every `reset_period` (32) updates, the current image cropped at the new
    box is fed as both crops from the initial state; its state replaces the
    running state and its output is discarded.

Hot path: one graph call per frame. `Re3Graph` holds tf.functions with fixed
input signatures (no retracing for any frame size or number of targets) that
cut the crops in-graph (`model.geometry.crop_tf`, i.e. crop_and_resize), run
`Re3Net.step` on all targets as one batch, map labels to boxes and, for the
targets whose turn it is, do the LSTM reset pass. Instead of keeping the
previous image, each target keeps its previous crop: the crop of the frame
where its box was last estimated, cut at that box's window, which is exactly
the "previous-image crop" of the next step. That crop is cut at the end of a
step (same cost as cutting it at the start of the next one), is also the input
of the reset pass, and lets targets be added on any frame with a single
batched step for all of them.

The same `Re3Graph` is what model/export.py saves, so a SavedModel loaded here
runs the identical graph.

Bad input: a box with zero or negative size, NaN, or wholly outside the
image is a ValueError; frames may change size within a sequence; a target
that leaves the image keeps being tracked and is reported with ok=False while
its box does not overlap the frame.
"""

from __future__ import annotations

import os
from typing import Dict, Hashable, Iterable, Optional, Tuple

import numpy as np
import tensorflow as tf

from model import geometry
from model.tracker_inputs import as_rgb, box_overlaps_image, check_box_xywh

DEFAULT_RESET_PERIOD = 32
STATE_PARTS = 4          # (h1, c1, h2, c2) stacked on axis 1: state [B, 4, units]
MIN_CROP_BOX = 1.0       # pixels: a degenerate predicted box is widened to this for cropping


# ---------------------------------------------------------------------------
# In-graph pieces
# ---------------------------------------------------------------------------


def _stack_state(state) -> tf.Tensor:
  return tf.stack(list(state), axis=1)


def _unstack_state(state: tf.Tensor):
  return tuple(tf.unstack(state, num=STATE_PARTS, axis=1))


def _crop_box_xyxy(boxes_xyxy):
  """The box a crop window is cut around: corners ordered, at least 1 pixel.

  The network may predict a degenerate or flipped box; cropping around it
  would give an empty or mirrored window. The reported box is left as is.
  """
  x1 = tf.minimum(boxes_xyxy[:, 0], boxes_xyxy[:, 2])
  x2 = tf.maximum(boxes_xyxy[:, 0], boxes_xyxy[:, 2])
  y1 = tf.minimum(boxes_xyxy[:, 1], boxes_xyxy[:, 3])
  y2 = tf.maximum(boxes_xyxy[:, 1], boxes_xyxy[:, 3])
  cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
  hw = tf.maximum(x2 - x1, MIN_CROP_BOX) / 2.0
  hh = tf.maximum(y2 - y1, MIN_CROP_BOX) / 2.0
  return tf.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)


class _Untracked:
  """Holds a Keras model without making it a SavedModel child: tf_keras would
  otherwise try to serialize the whole model (and fail on our custom call
  signatures); the module saves the model's variables and its own functions."""

  __slots__ = ("obj",)

  def __init__(self, obj):
    self.obj = obj


def _windows(boxes_xywh):
  return geometry.crop_window_xyxy_tf(_crop_box_xyxy(geometry.xywh_to_xyxy_tf(boxes_xywh)))


class Re3Graph(tf.Module):
  """The Re3 tracking graph: stateless tf.functions around a Re3Net.

  States travel as one float32 tensor [B, 4, units] (h1, c1, h2, c2), boxes as
  float32 [B, 4] xywh pixels, images as uint8 [H, W, 3]. Batched functions
  (`*_batch`) take B targets in one frame; single-object ones squeeze B = 1.

    init_batch(image, boxes)                        -> {state}
    crop_batch(image, boxes)                        -> {crops}  [B, S, S, 3] float32
    track_step_batch(prev_image, image, boxes, state, initial_state, reset)
                                                    -> {boxes, state}
    track_step_crops_batch(prev_crops, crops, boxes, state)
                                                    -> {boxes, labels, state}
    track_step_carry_batch(prev_crops, image, boxes, state, initial_state, reset)
                                                    -> {boxes, state, crops}
    init(image, box) / track_step(...) / track_step_crops(...): B = 1, no batch axis.

  `reset` ([B] bool) asks for the LSTM reset pass after the step (the caller
  counts frames; the graph stays stateless).
  """

  def __init__(self, net, name: str = "re3_graph"):
    super().__init__(name=name)
    self._net = _Untracked(net)
    self.net_variables = list(net.variables)
    cfg = net.cfg
    s, u = int(cfg.crop_size), int(cfg.lstm_units)
    self._s, self._u = s, u
    # Metadata readable from a loaded SavedModel.
    self.crop_size = tf.Variable(s, trainable=False, dtype=tf.int32, name="crop_size")
    self.lstm_units = tf.Variable(u, trainable=False, dtype=tf.int32, name="lstm_units")
    self.task = tf.Variable("re3", trainable=False, dtype=tf.string, name="task")

    img = tf.TensorSpec([None, None, 3], tf.uint8)
    boxes = tf.TensorSpec([None, 4], tf.float32)
    state = tf.TensorSpec([None, STATE_PARTS, u], tf.float32)
    crops = tf.TensorSpec([None, s, s, 3], tf.float32)
    crops_u8 = tf.TensorSpec([None, s, s, 3], tf.uint8)
    reset = tf.TensorSpec([None], tf.bool)
    box1 = tf.TensorSpec([4], tf.float32)
    state1 = tf.TensorSpec([STATE_PARTS, u], tf.float32)
    crop1_u8 = tf.TensorSpec([s, s, 3], tf.uint8)

    self.init_batch = tf.function(self._init_batch, input_signature=[img, boxes])
    self.crop_batch = tf.function(self._crop_batch, input_signature=[img, boxes])
    self.track_step_batch = tf.function(
        self._track_step_batch, input_signature=[img, img, boxes, state, state, reset])
    self.track_step_crops_batch = tf.function(
        self._track_step_crops_batch, input_signature=[crops_u8, crops_u8, boxes, state])
    self.track_step_carry_batch = tf.function(
        self._track_step_carry_batch, input_signature=[crops, img, boxes, state, state, reset])
    self.init = tf.function(self._init, input_signature=[img, box1])
    self.track_step = tf.function(
        self._track_step, input_signature=[img, img, box1, state1, state1,
                                           tf.TensorSpec([], tf.bool)])
    self.track_step_crops = tf.function(
        self._track_step_crops, input_signature=[crop1_u8, crop1_u8, box1, state1])

  # ------------------------------------------------------------- batched

  def _cut(self, image, windows):
    n = tf.shape(windows)[0]
    return geometry.crop_tf(image[None], windows, tf.zeros([n], tf.int32), self._s)

  def _pair_step(self, prev_crops, curr_crops, windows, state):
    labels, new_state = self.net.step(prev_crops, curr_crops, _unstack_state(state))
    boxes_xyxy = geometry.label_to_box_tf(labels, windows)
    return labels, geometry.xyxy_to_xywh_tf(boxes_xyxy), _stack_state(new_state)

  def _init_batch(self, image, boxes):
    crops = self._cut(image, _windows(boxes))
    _, st = self.net.step(crops, crops, self.net.zero_state(tf.shape(boxes)[0]))
    return {"state": _stack_state(st)}

  def _crop_batch(self, image, boxes):
    return {"crops": self._cut(image, _windows(boxes))}

  def _reset_rows(self, crops, state, initial_state, reset):
    """The LSTM reset pass for the rows where `reset`: one step on (crop, crop)
    from the initial state; its state replaces theirs, its output is dropped.
    Under tf.cond, so frames without a reset pay nothing."""

    def do_reset():
      rows = tf.cast(tf.where(reset)[:, 0], tf.int32)
      c = tf.gather(crops(), rows)
      _, st = self.net.step(c, c, _unstack_state(tf.gather(initial_state, rows)))
      return tf.tensor_scatter_nd_update(state, rows[:, None], _stack_state(st))

    return tf.cond(tf.reduce_any(reset), do_reset, lambda: state)

  def _track_step_batch(self, prev_image, image, boxes, state, initial_state, reset):
    windows = _windows(boxes)
    _, out, new_state = self._pair_step(self._cut(prev_image, windows), self._cut(image, windows),
                                        windows, state)
    new_state = self._reset_rows(lambda: self._cut(image, _windows(out)), new_state,
                                 initial_state, reset)
    return {"boxes": out, "state": new_state}

  def _track_step_crops_batch(self, prev_crops, crops, boxes, state):
    windows = _windows(boxes)
    labels, out, new_state = self._pair_step(prev_crops, crops, windows, state)
    return {"boxes": out, "labels": labels, "state": new_state}

  def _track_step_carry_batch(self, prev_crops, image, boxes, state, initial_state, reset):
    windows = _windows(boxes)
    _, out, new_state = self._pair_step(prev_crops, self._cut(image, windows), windows, state)
    next_crops = self._cut(image, _windows(out))
    new_state = self._reset_rows(lambda: next_crops, new_state, initial_state, reset)
    return {"boxes": out, "state": new_state, "crops": next_crops}

  # ------------------------------------------------------------- single object

  @property
  def net(self):
    return self._net.obj

  def _init(self, image, box):
    # Calls the batched tf.functions: their traced graphs are reused, not re-traced.
    return {"state": self.init_batch(image, box[None])["state"][0]}

  def _track_step(self, prev_image, image, box, state, initial_state, reset):
    r = self.track_step_batch(prev_image, image, box[None], state[None], initial_state[None],
                              reset[None])
    return {"box": r["boxes"][0], "state": r["state"][0]}

  def _track_step_crops(self, prev_crop, crop, box, state):
    r = self.track_step_crops_batch(prev_crop[None], crop[None], box[None], state[None])
    return {"box": r["boxes"][0], "label": r["labels"][0], "state": r["state"][0]}


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def is_saved_model(path: str) -> bool:
  return tf.io.gfile.exists(os.path.join(path, "saved_model.pb"))


CHECKPOINT_SUBDIRS = ("", "checkpoints", "ckpt", "train")


def find_checkpoint(model_dir: str) -> Optional[str]:
  """Latest checkpoint of a training model_dir (itself or a usual subfolder)."""
  for sub in CHECKPOINT_SUBDIRS:
    ckpt = tf.train.latest_checkpoint(os.path.join(model_dir, sub) if sub else model_dir)
    if ckpt:
      return ckpt
  return None


def _config_near(path: str) -> Optional[str]:
  for d in (path, os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
    cand = os.path.join(d, "config.yaml")
    if d and tf.io.gfile.exists(cand):
      return cand
  return None


def load_model(path: str, expect_task: Optional[str] = None):
  """A model from a training model_dir (config.yaml + checkpoints) or a
  checkpoint prefix beside/below a config.yaml
  -> (task, net, checkpoint path, config.yaml path).

  The checkpoint must hold the network as `model=` (tf.train.Checkpoint(
  model=net, ...)), as the trainer writes it; every network variable must be
  restored, or this fails naming the checkpoint.
  """
  from configs.model import load_model_config  # pylint: disable=g-import-not-at-top
  if tf.io.gfile.isdir(path):
    config_path = os.path.join(path, "config.yaml")
    if not tf.io.gfile.exists(config_path):
      raise ValueError(f"{path}: neither a SavedModel (no saved_model.pb) nor a training "
                       "model_dir (no config.yaml)")
    ckpt = find_checkpoint(path)
    if ckpt is None:
      raise ValueError(f"{path}: no checkpoint found (looked in "
                       f"{', '.join(repr(s or '.') for s in CHECKPOINT_SUBDIRS)})")
  else:
    if not tf.io.gfile.exists(path + ".index"):
      raise ValueError(f"{path}: not a SavedModel, model_dir or checkpoint prefix")
    ckpt = path
    config_path = _config_near(os.path.dirname(path))
    if config_path is None:
      raise ValueError(f"{path}: no config.yaml next to the checkpoint or in its parent folders")
  task, model_cfg = load_model_config(config_path)
  if expect_task is not None and task != expect_task:
    raise ValueError(f"{config_path}: task is {task!r}, this needs {expect_task!r}")
  if task == "re3":
    from model.re3 import build_re3  # pylint: disable=g-import-not-at-top
    net = build_re3(model_cfg)
  else:
    from model.rl_agent import build_rl_agent  # pylint: disable=g-import-not-at-top
    net = build_rl_agent(model_cfg)
  status = tf.train.Checkpoint(model=net).restore(ckpt)
  try:
    status.expect_partial().assert_existing_objects_matched()
  except AssertionError as e:
    raise ValueError(f"{ckpt}: the checkpoint does not hold this {task} network as `model` "
                     f"({str(e).splitlines()[0]})") from None
  return task, net, ckpt, config_path


def load_graph(path: str):
  """(task, graph) from a SavedModel export (loaded once) or a training model_dir /
  checkpoint prefix (a fresh Re3Graph or RLAgentGraph around the restored model)."""
  if is_saved_model(path):
    loaded = tf.saved_model.load(path)
    task = loaded.task.numpy().decode() if hasattr(loaded, "task") else "?"
    if task not in ("re3", "rl_agent"):
      raise ValueError(f"{path}: SavedModel is not a tracker export of model/export.py")
    return task, loaded
  task, net, _, _ = load_model(path)
  return task, (Re3Graph(net) if task == "re3" else RLAgentGraph(net))


def load_re3_graph(path: str):
  """Re3Graph-compatible object from a SavedModel (model/export.py) or a model_dir."""
  task, graph = load_graph(path)
  if task != "re3":
    raise ValueError(f"{path}: not a Re3 tracker export or model_dir (task {task!r})")
  return graph


# ---------------------------------------------------------------------------
# Trackers
# ---------------------------------------------------------------------------


def _concrete(fn):
  """The single concrete function of a tf.function with an input signature."""
  try:
    return fn.get_concrete_function()
  except (TypeError, ValueError, AttributeError):
    return fn


class Re3MultiTracker:
  """Many targets in one frame, one batched forward pass per frame.

  `add(target_id, image, box)` starts a target on `image` (any frame);
  `update(image)` advances every target and returns {id: (ok, box_xywh)};
  `remove(target_id)` drops one. Per-target results equal single-object
  tracking (same graph, batched), up to float rounding.
  """

  name = "re3_multi"

  def __init__(self, graph, reset_period: Optional[int] = DEFAULT_RESET_PERIOD):
    if reset_period is not None and reset_period < 0:
      raise ValueError(f"reset_period must be >= 0 (0 or None = never), got {reset_period}")
    self.graph = graph
    self.reset_period = int(reset_period or 0)
    self._units = int(graph.lstm_units.numpy())
    self._s = int(graph.crop_size.numpy())
    # The hot path calls the concrete function directly: skips the tf.function
    # argument matching (about 0.5 ms a call on CPU, 7% of a re3_small step).
    self._carry = _concrete(graph.track_step_carry_batch)
    self.clear()

  @classmethod
  def load(cls, path: str, reset_period: Optional[int] = DEFAULT_RESET_PERIOD):
    """From an exported SavedModel or a training model_dir (or checkpoint prefix)."""
    return cls(load_re3_graph(path), reset_period)

  @classmethod
  def from_net(cls, net, reset_period: Optional[int] = DEFAULT_RESET_PERIOD):
    return cls(Re3Graph(net), reset_period)

  # ------------------------------------------------------------- bookkeeping

  def clear(self) -> None:
    self._ids = []
    self._boxes = np.zeros([0, 4], np.float32)
    self._counts = np.zeros([0], np.int64)
    self._state = tf.zeros([0, STATE_PARTS, self._units])
    self._initial = tf.zeros([0, STATE_PARTS, self._units])
    self._crops = tf.zeros([0, self._s, self._s, 3])

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
    self._state = tf.concat([self._state, state], 0)
    self._initial = tf.concat([self._initial, state], 0)
    self._crops = tf.concat([self._crops, crops], 0)

  def remove(self, target_id: Hashable) -> None:
    if target_id not in self._ids:
      raise KeyError(f"target id {target_id!r} is not tracked")
    i = self._ids.index(target_id)
    keep = np.array([j for j in range(len(self._ids)) if j != i], np.int32)
    self._ids.pop(i)
    self._boxes = self._boxes[keep]
    self._counts = self._counts[keep]
    self._state = tf.gather(self._state, keep)
    self._initial = tf.gather(self._initial, keep)
    self._crops = tf.gather(self._crops, keep)

  def box(self, target_id) -> np.ndarray:
    return self._boxes[self._ids.index(target_id)].astype(np.float64)

  # ------------------------------------------------------------- tracking

  def update(self, image) -> Dict[Hashable, Tuple[bool, np.ndarray]]:
    """One frame for every target: {id: (ok, (x, y, w, h))}; ok is False when
    the box no longer overlaps the image."""
    img = as_rgb(image)
    if not self._ids:
      return {}
    counts = self._counts + 1
    if self.reset_period:
      reset = (counts % self.reset_period) == 0
    else:
      reset = np.zeros(counts.shape, bool)
    out = self._carry(
        self._crops, tf.convert_to_tensor(img), tf.constant(self._boxes), self._state,
        self._initial, tf.constant(reset))
    self._boxes = out["boxes"].numpy()
    self._state = out["state"]
    self._crops = out["crops"]
    self._counts = counts
    h, w = img.shape[:2]
    return {tid: (box_overlaps_image(b, h, w), b.astype(np.float64))
            for tid, b in zip(self._ids, self._boxes)}


class Re3Tracker:
  """Single-object Re3 with OpenCV's `init` / `update` interface."""

  name = "re3"

  def __init__(self, graph, reset_period: Optional[int] = DEFAULT_RESET_PERIOD):
    self._multi = Re3MultiTracker(graph, reset_period)

  @classmethod
  def load(cls, path: str, reset_period: Optional[int] = DEFAULT_RESET_PERIOD):
    """From an exported SavedModel or a training model_dir (or checkpoint prefix)."""
    return cls(load_re3_graph(path), reset_period)

  @classmethod
  def from_net(cls, net, reset_period: Optional[int] = DEFAULT_RESET_PERIOD):
    return cls(Re3Graph(net), reset_period)

  @property
  def graph(self):
    return self._multi.graph

  @property
  def reset_period(self) -> int:
    return self._multi.reset_period

  def init(self, image, box_xywh) -> None:
    self._multi.clear()
    self._multi.add(0, image, box_xywh)

  def update(self, image) -> Tuple[bool, np.ndarray]:
    if not len(self._multi):
      raise RuntimeError("Re3Tracker.update called before init")
    return self._multi.update(image)[0]


# ---------------------------------------------------------------------------
# RL agent behind the same interface (moving MNIST evaluation)
# ---------------------------------------------------------------------------


class RLAgentGraph(tf.Module):
  """Stateless tf.functions around an RLAgent (exported by model/export.py).

    step(frames [B, S, S, C] uint8, state [B, 2, units]) -> {boxes_xyxy, mu, state}
    track(frames [B, T, S, S, C] uint8) -> {boxes_xyxy [B, T, 4], mu}
  """

  def __init__(self, agent, name: str = "rl_agent_graph"):
    super().__init__(name=name)
    self._agent = _Untracked(agent)
    self.agent_variables = list(agent.variables)
    cfg = agent.cfg
    s, c, u = int(cfg.frame_size), int(cfg.channels), int(cfg.lstm_units)
    self.frame_size = tf.Variable(s, trainable=False, dtype=tf.int32, name="frame_size")
    self.channels = tf.Variable(c, trainable=False, dtype=tf.int32, name="channels")
    self.lstm_units = tf.Variable(u, trainable=False, dtype=tf.int32, name="lstm_units")
    self.task = tf.Variable("rl_agent", trainable=False, dtype=tf.string, name="task")
    self.step = tf.function(self._step, input_signature=[
        tf.TensorSpec([None, s, s, c], tf.uint8), tf.TensorSpec([None, 2, u], tf.float32)])
    self.track = tf.function(self._track, input_signature=[
        tf.TensorSpec([None, None, s, s, c], tf.uint8)])

  @property
  def agent(self):
    return self._agent.obj

  def _step(self, frames, state):
    mu, (h, c) = self.agent.step(frames, (state[:, 0], state[:, 1]))
    return {"boxes_xyxy": self.agent.decode_actions(mu), "mu": mu,
            "state": tf.stack([h, c], axis=1)}

  def _track(self, frames):
    mu, _ = self.agent.unroll(frames)
    return {"boxes_xyxy": self.agent.decode_actions(mu), "mu": mu}


def load_rl_graph(path: str):
  task, graph = load_graph(path)
  if task != "rl_agent":
    raise ValueError(f"{path}: not an RL agent export or model_dir (task {task!r})")
  return graph


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
    self._state = tf.zeros([1, 2, self._units])
    self.initial_prediction_xywh = self._run(img)

  def update(self, image):
    if self._state is None:
      raise RuntimeError("RLAgentTracker.update called before init")
    box = self._run(image)
    return box_overlaps_image(box, self._s, self._s), box
