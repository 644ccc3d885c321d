"""The Re3 and RL-agent tracking graphs: stateless tf.functions with fixed input
signatures, used by the tracker API (model/tracker.py) and saved as they are by
model/export.py, so a SavedModel loaded for tracking runs the identical graph.

`Re3Graph` cuts the crops in-graph (`model.geometry.crop_tf`, i.e.
crop_and_resize) around each target's crop box (`geometry.crop_box_xyxy_tf`),
runs `Re3Net.step` on all targets as one batch, maps labels to boxes and, for
the targets whose turn it is (the caller's `reset` flags), runs the LSTM reset
pass. No retracing happens for any frame size or number of targets.

Instead of the previous image, a caller may keep each target's previous crop
(the frame where its box was last estimated, cut at that box's window), which
is exactly the previous-image crop of the next step: `track_step_carry_batch`
cuts it at the end of a step (same cost as at the start of the next one); it
is also the input of the reset pass, and lets targets be added on any frame
with a single batched step for all of them.
"""

from __future__ import annotations

import tensorflow as tf

from model import geometry
from model.re3 import LSTM_STATE_PARTS as STATE_PARTS  # (h1, c1, h2, c2): state [B, 4, units]
# A net with a template memory (model.template: xcorr, nano_head) carries it in more rows
# after those four: the state is [B, net.state_parts, units].


def _stack_state(state) -> tf.Tensor:
  return tf.stack(list(state), axis=1)


def _unstack_state(state: tf.Tensor):
  return tuple(tf.unstack(state, num=state.shape[1], axis=1))


def state_rows(net) -> int:
  """Rows of a Re3Net's tracker state (4, plus its template rows)."""
  return int(getattr(net, "state_parts", STATE_PARTS))


class _Untracked:
  """Holds a Keras model without making it a SavedModel child: tf_keras would
  otherwise try to serialize the whole model (and fail on our custom call
  signatures); the module saves the model's variables and its own functions."""

  __slots__ = ("obj",)

  def __init__(self, obj):
    self.obj = obj


def crop_windows_tf(boxes_xywh):
  """Crop windows of xywh boxes, cut around their crop boxes: the network may
  predict a degenerate or flipped box; the reported box is left as is."""
  boxes_xyxy = geometry.xywh_to_xyxy_tf(boxes_xywh)
  return geometry.crop_window_xyxy_tf(geometry.crop_box_xyxy_tf(boxes_xyxy))


class Re3Graph(tf.Module):
  """The Re3 tracking graph: stateless tf.functions around a Re3Net.

  States travel as one float32 tensor [B, P, units] (h1, c1, h2, c2, then the
  template rows of a net with a model.template; P = `state_parts`), boxes as
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
    p = self._p = state_rows(net)
    self.state_parts = tf.Variable(p, trainable=False, dtype=tf.int32, name="state_parts")
    self.task = tf.Variable("re3", trainable=False, dtype=tf.string, name="task")

    img = tf.TensorSpec([None, None, 3], tf.uint8)
    boxes = tf.TensorSpec([None, 4], tf.float32)
    state = tf.TensorSpec([None, p, u], tf.float32)
    crops = tf.TensorSpec([None, s, s, 3], tf.float32)
    crops_u8 = tf.TensorSpec([None, s, s, 3], tf.uint8)
    reset = tf.TensorSpec([None], tf.bool)
    box1 = tf.TensorSpec([4], tf.float32)
    state1 = tf.TensorSpec([p, u], tf.float32)
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
    labels, new_state, scores = self.net.track_step(prev_crops, curr_crops, _unstack_state(state))
    boxes_xyxy = geometry.label_to_box_tf(labels, windows)
    return labels, geometry.xyxy_to_xywh_tf(boxes_xyxy), _stack_state(new_state), scores

  def _init_batch(self, image, boxes):
    crops = self._cut(image, crop_windows_tf(boxes))
    _, st = self.net.step(crops, crops, self.net.zero_state(tf.shape(boxes)[0]))
    return {"state": _stack_state(st)}

  def _crop_batch(self, image, boxes):
    return {"crops": self._cut(image, crop_windows_tf(boxes))}

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
    windows = crop_windows_tf(boxes)
    _, out, new_state, scores = self._pair_step(self._cut(prev_image, windows),
                                                self._cut(image, windows), windows, state)
    new_state = self._reset_rows(lambda: self._cut(image, crop_windows_tf(out)), new_state,
                                 initial_state, reset)
    return {"boxes": out, "state": new_state, "scores": scores}

  def _track_step_crops_batch(self, prev_crops, crops, boxes, state):
    windows = crop_windows_tf(boxes)
    labels, out, new_state, scores = self._pair_step(prev_crops, crops, windows, state)
    return {"boxes": out, "labels": labels, "state": new_state, "scores": scores}

  def _track_step_carry_batch(self, prev_crops, image, boxes, state, initial_state, reset):
    windows = crop_windows_tf(boxes)
    _, out, new_state, scores = self._pair_step(prev_crops, self._cut(image, windows), windows,
                                                state)
    next_crops = self._cut(image, crop_windows_tf(out))
    new_state = self._reset_rows(lambda: next_crops, new_state, initial_state, reset)
    return {"boxes": out, "state": new_state, "crops": next_crops, "scores": scores}

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
    return {"box": r["boxes"][0], "state": r["state"][0], "score": r["scores"][0]}

  def _track_step_crops(self, prev_crop, crop, box, state):
    r = self.track_step_crops_batch(prev_crop[None], crop[None], box[None], state[None])
    return {"box": r["boxes"][0], "label": r["labels"][0], "state": r["state"][0],
            "score": r["scores"][0]}


_GRAPH_ATTR = "_re3_tracking_graph"


def re3_graph_for(net) -> Re3Graph:
  """The one Re3Graph of `net`, made on first use and reused by every later
  tracker of the same network object, so a tracker made per sequence does not
  trace its tf.functions again (seconds each time, and TensorFlow's retracing
  warning). Held by the network itself (outside Keras attribute tracking), so
  it lives as long as the network and is never saved with it."""
  graph = net.__dict__.get(_GRAPH_ATTR)
  if graph is None:
    graph = Re3Graph(net)
    object.__setattr__(net, _GRAPH_ATTR, graph)
  return graph


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
