"""The one-step stateless Re3 function that the LiteRT and ONNX exports carry.

    module = Re3StepModule(net)
    out = module.step(prev=prev_crops, curr=crops, state=state)
    # prev, curr: float32 [B, S, S, 3] crops (0..255 RGB, as `Re3Graph` cuts them)
    # state: float32 [B, P, units] (h1, c1, h2, c2 and, with a model.template
    #        (xcorr, nano_head), the template rows; P = net.state_parts; a zero template is
    #        filled by the step from `prev`, as in Re3Net.step)
    # -> {"labels": float32 [B, 4], "new_state": float32 [B, P, units],
    #     "score": float32 [B] (Re3Net.track_step; NaN without a template)}

It is `Re3Net.track_step` (the step with the trackers' box damping) with the
state stacked as in `model.tracking_graphs.Re3Graph`, and nothing else: the
crop cutting (`crop_and_resize`, which TFLite has no builtin kernel for) and
labels -> boxes stay on the host (`model.runtimes.StepGraph`),
and the LSTM state stays explicit (the peephole LSTM does not fuse into TFLite's
LSTM op). The output is `new_state`, not `state`: tf2onnx needs graph inputs and
outputs to have different names.
"""

from __future__ import annotations

import tensorflow as tf

from model.tracking_graphs import state_rows

STEP_SIGNATURE = "step"
STEP_INPUTS = ("prev", "curr", "state")
STEP_OUTPUTS = ("labels", "new_state", "score")


class _Untracked:
  """Keeps the Keras model out of the SavedModel's object graph (its variables
  are saved through `net_variables`), as in model.tracking_graphs."""

  __slots__ = ("obj",)

  def __init__(self, obj):
    self.obj = obj


class Re3StepModule(tf.Module):
  """`step(prev, curr, state) -> {labels, new_state}` with a batch axis of any size."""

  def __init__(self, net, name: str = "re3_step"):
    super().__init__(name=name)
    self._net = _Untracked(net)
    self.net_variables = list(net.variables)
    s, u = int(net.cfg.crop_size), int(net.cfg.lstm_units)
    self.crop_size, self.lstm_units = s, u
    self.state_parts = state_rows(net)
    crops = tf.TensorSpec([None, s, s, 3], tf.float32)
    self.step = tf.function(self._step, input_signature=[
        crops, crops, tf.TensorSpec([None, self.state_parts, u], tf.float32)])

  def _step(self, prev, curr, state):
    net = self._net.obj
    labels, new, score = net.track_step(prev, curr,
                                        tuple(tf.unstack(state, num=self.state_parts, axis=1)))
    return {"labels": tf.cast(labels, tf.float32),
            "new_state": tf.cast(tf.stack(new, axis=1), tf.float32),
            "score": tf.cast(score, tf.float32)}

  def concrete(self):
    return self.step.get_concrete_function()

  def save(self, export_dir: str) -> str:
    """A SavedModel holding only the `step` signature (what the converters read)."""
    tf.saved_model.save(self, export_dir, signatures={STEP_SIGNATURE: self.concrete()})
    return export_dir
