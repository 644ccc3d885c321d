"""The Re3 network: CaffeNet (or EfficientNet-Lite0) tower with skips, fc6, two
peephole LSTMs, box head.

    prev crop ─┐                         ┌─> LSTM1 ─┐
               ├─ shared tower ─ concat ─ fc6 ─┤          ├─> LSTM2 ─> linear 4
    curr crop ─┘  (+ skips)                └──────────┘

Interface (what training, tracking and export call; the sizes come from
configs.model.Re3ModelConfig):

  net = build_re3(cfg)
  state = net.zero_state(batch)                      # (h1, c1, h2, c2), [B, units]
  labels, state = net.step(prev, curr, state)        # crops [B, S, S, 3] -> [B, 4]
  labels, state = net.unroll(prev, curr, state)      # crops [B, T, S, S, 3] -> [B, T, 4]
  labels = net((prev, curr))                         # unroll from the zero state

Crops are RGB, 0..255, uint8 or float32; the model subtracts the mean itself.
Labels are the Re3 convention of model.geometry (target x1, y1, x2, y2 in the
crop window, in [0, 1] of the window, times 10).

Mixed precision: build the net under a `mixed_bfloat16` / `mixed_float16`
Keras policy (train.trainer does) and the tower, fc6 and LSTM matmuls compute
in the low precision with float32 weights; the LSTM state stays float32
(zero_state, step, unroll), and the head computes in float32, so labels are
float32 whatever the policy.

Speed (tracking is the hot path): `step` runs the tower once on the 2B stacked
crops (prev and curr together), `unroll` once on all 2·B·T crops and does the
LSTM input matmuls for all steps at once, leaving only the recurrent matmuls in
the time loop. Both are plain TensorFlow code: wrap them in `tf.function`
(with an input_signature for export) for speed; eager calls pay Python
overhead per op.

Per-crop features are flatten(skip1(norm1)) ++ flatten(skip2(norm2)) ++
flatten(skip3(conv5)) ++ flatten(pool5), flattened in NHWC order; the pair
feature is prev ++ curr (37,104 + 37,104 = 74,208 with the paper sizes).

With `model.tower: efficientnet_lite0` the shared tower is the ImageNet
EfficientNet-Lite0 of model.towers.efficientnet_lite (its own input scaling, batch
norm folded, run up to block `tower_blocks - 1`; `net.tower`), and per-crop
features are flatten(tap_k(block t_k)) for each t_k of `tower_taps` (1x1 conv
with `tap_filters[k]` channels + PReLU, as the CaffeNet skips) ++
flatten(last block). fc6, the LSTMs and the head are the same.
`model.towers.efficientnet_import.load_tower_weights(net)` loads the ImageNet weights.
`model.tower: nanotrack_v2` is NanoTrack v2's tracking-pretrained backbone
(model.towers.nanotrack, the same taps), loaded by
`model.towers.nanotrack.load_tower_weights(net, path)`.

With `model.template: xcorr` the net has a memory of the target: the state is
(h1, c1, h2, c2) followed by the template rows (`state_parts` in all), the
template being the central half of the init crop's last tower block. Each step
correlates it (cosine, pixel-wise) with the current crop's last block and feeds
the map to fc6 beside the pair features; `step_scored` also returns the
tracking score (each template cell's best match, averaged). A zero template is
filled by the first step from its previous crop (the init crop).

With `model.template: nano_head` the template is the whole last block of the
init crop (8x8x48, NanoTrack's template at Re3's 2x context) and NanoTrack
v2's own head (model.towers.nanotrack_head) runs on it and the current crop's
last block: its score logits and log box distances join fc6, and its box (a
soft arg-max of the score map over the boxes each position predicts, in label
units) and peak score (the tracking score, in [0, 1], as OpenCV's
getTrackingScore) join the last LSTM's output into the box regression, so the
LSTM corrects NanoTrack's box rather than starting from nothing.
`model.towers.nanotrack_head.load_head_weights(net, path)` loads the head.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple, Union

import numpy as np
import tensorflow as tf
import tf_keras as keras

from configs import base
from configs.model import Re3ModelConfig
from model.towers.efficientnet_lite import STEM_FILTERS, EfficientNetLiteTower, block_specs
from model.towers.efficientnet_lite import tower_shapes as effnet_tower_shapes
from model.towers import nanotrack, nanotrack_head
from model.towers.nanotrack_head import NanoTrackHead
from model.geometry import LABEL_SCALE, damp_labels_tf
from model.layers import (PACKAGE, ConfigModelMixin, GroupedConv2D, LocalResponseNorm, MeanSubtract,
                          PeepholeLSTMCell)

State = Tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]
EFFNET_TOWERS = {"efficientnet_lite0": "lite0"}  # model.tower -> EfficientNet-Lite variant
CAFFENET_SKIP_SOURCES = ("norm1", "norm2", "conv5")
LSTM_STATE_PARTS = 4   # (h1, c1, h2, c2); a template adds rows after them
NANO_CLS, NANO_REG = 2, 4   # NanoTrack head maps: score logits, box distances
NANO_HINT = 5               # its box (label units, x1 y1 x2 y2) and peak score


def _effnet_shapes(cfg: Re3ModelConfig) -> Dict[str, Tuple[int, int, int]]:
  """Pretrained tower shapes for one crop (EfficientNet-Lite or NanoTrack);
  errors name the config key."""
  try:
    if cfg.tower == "nanotrack_v2":
      return nanotrack.tower_shapes(cfg.crop_size, cfg.tower_blocks)
    return effnet_tower_shapes(EFFNET_TOWERS[cfg.tower], cfg.crop_size, cfg.tower_blocks)
  except ValueError as e:
    raise base.ConfigError(f"model.tower_blocks={cfg.tower_blocks}: {e}") from None


def template_geometry(cfg: Re3ModelConfig) -> Dict[str, int]:
  """Sizes of the template memory (model.template: xcorr or nano_head), from the config.

  With xcorr the template is the central half (rows and columns
  [n // 4, n - n // 4)) of the init crop's last tower block: at Re3's 2x
  context that is the target box. `cells` template vectors of `channels`
  each, correlated with the `grid` positions of the current crop's last
  block; with nano_head it is the whole block (NanoTrack's template) and
  `hint` values (NanoTrack's box and peak) join the box regression. The
  template rides in the tracker state as `rows` extra rows of lstm_units
  (zero-padded)."""
  if cfg.template == "none":
    return {"cells": 0, "channels": 0, "grid": 0, "rows": 0, "features": 0, "hint": 0}
  h, w, c = _effnet_shapes(cfg)[f"block{cfg.tower_blocks - 1}"]
  if cfg.template == "nano_head":    # the whole block; head maps + its box and peak
    return {"cells": h * w, "channels": c, "grid": h * w, "rows": -(-h * w * c // cfg.lstm_units),
            "features": h * w * (NANO_CLS + NANO_REG) + NANO_HINT, "hint": NANO_HINT,
            "top": 0, "left": 0, "height": h, "width": w}
  th, tw = h - 2 * (h // 4), w - 2 * (w // 4)
  cells = th * tw
  return {"cells": cells, "channels": c, "grid": h * w, "rows": -(-cells * c // cfg.lstm_units),
          "features": h * w * cells, "hint": 0, "top": h // 4, "left": w // 4, "height": th,
          "width": tw}


def state_parts(cfg: Re3ModelConfig) -> int:
  """Rows of the tracker state [B, rows, lstm_units]: h1, c1, h2, c2 and the template."""
  return LSTM_STATE_PARTS + template_geometry(cfg)["rows"]


def features_per_crop(cfg: Re3ModelConfig) -> int:
  """Length of one crop's feature vector, for either tower."""
  if cfg.tower == "caffenet":
    return cfg.features_per_crop()
  sh = _effnet_shapes(cfg)
  taps = sum(sh[f"block{t}"][0] * sh[f"block{t}"][1] * ch for t, ch in zip(cfg.tower_taps, cfg.tap_filters))
  h, w, c = sh[f"block{cfg.tower_blocks - 1}"]
  return taps + h * w * c


def fc6_inputs(cfg: Re3ModelConfig) -> int:
  """Length of fc6's input: both crops' features and the template correlation."""
  return 2 * features_per_crop(cfg) + template_geometry(cfg)["features"]


@keras.saving.register_keras_serializable(package=PACKAGE)
class Re3Net(ConfigModelMixin, keras.Model):
  """Re3 recurrent regression tracker (Gordon et al., RA-L 2018)."""

  def __init__(self, config: Union[Re3ModelConfig, dict, None] = None, **kwargs):
    super().__init__(**kwargs)
    self.cfg = base.as_config(Re3ModelConfig, config, prefix="model")
    cfg = self.cfg
    reg = keras.regularizers.L2(cfg.weight_decay) if cfg.weight_decay > 0 else None
    init = "he_normal"  # MSRA, as the paper initialises its new layers
    if cfg.tower == "caffenet":
      self._caffenet_layers(reg, init)
    else:
      self._efficientnet_layers(reg, init)
    self.fc6 = keras.layers.Dense(cfg.fc6_units, activation="relu", kernel_initializer=init,
                                  kernel_regularizer=reg, name="fc6")
    self.lstm1 = PeepholeLSTMCell(cfg.lstm_units, peephole=cfg.peephole, forget_bias=cfg.forget_bias,
                                  kernel_regularizer=reg, recurrent_regularizer=reg, name="lstm1")
    self.lstm2 = PeepholeLSTMCell(cfg.lstm_units, peephole=cfg.peephole, forget_bias=cfg.forget_bias,
                                  kernel_regularizer=reg, recurrent_regularizer=reg, name="lstm2")
    # The head computes in float32 under any policy: labels come out float32
    # (bfloat16 would round a label near 8 to steps of 1/16 of a label unit).
    self.head = keras.layers.Dense(cfg.output_units, kernel_initializer=init,
                                   kernel_regularizer=reg, name="fc_output", dtype="float32")
    if cfg.template == "nano_head":
      # NanoTrack's head computes in float32 (its exp and soft arg-max), frozen with the tower.
      self.nano_head = NanoTrackHead(name="nano_head", dtype="float32")
      self.nano_head.trainable = cfg.tower_trainable

  def _skip(self, n: int, channels: int, reg, init):
    self.skip_convs.append(keras.layers.Conv2D(
        channels, 1, kernel_initializer=init, kernel_regularizer=reg, name=f"skip{n}_conv"))
    self.skip_prelus.append(keras.layers.PReLU(
        alpha_initializer=keras.initializers.Constant(self.cfg.prelu_init), shared_axes=[1, 2],
        name=f"skip{n}_prelu"))

  def _efficientnet_layers(self, reg, init):
    """The pretrained tower (batch norm folded, no weight decay) and its tap skips."""
    cfg = self.cfg
    _effnet_shapes(cfg)  # a clear error for a tower_blocks the variant does not have
    if cfg.tower == "nanotrack_v2":
      self.tower = nanotrack.NanoTrackTower(cfg.tower_blocks, cfg.tower_taps, name="tower")
    else:
      self.tower = EfficientNetLiteTower(EFFNET_TOWERS[cfg.tower], cfg.tower_blocks, cfg.tower_taps,
                                         name="tower")
    self.tower.trainable = cfg.tower_trainable
    self.skip_convs = []
    self.skip_prelus = []
    for n, ch in enumerate(cfg.tap_filters, start=1):
      self._skip(n, ch, reg, init)

  def _caffenet_layers(self, reg, init):
    cfg = self.cfg
    f, k, g = cfg.conv_filters, cfg.conv_kernels, cfg.conv_groups

    def conv(i, stride, padding):
      return GroupedConv2D(
          f[i], k[i], strides=stride, padding=padding, groups=g[i], activation="relu",
          kernel_initializer=init, kernel_regularizer=reg, name=f"conv{i + 1}")

    def pool(name):
      return keras.layers.MaxPool2D(cfg.pool_size, cfg.pool_stride, padding="valid", name=name)

    def lrn(name):
      return LocalResponseNorm(cfg.lrn_depth_radius, cfg.lrn_alpha, cfg.lrn_beta, cfg.lrn_bias, name=name)

    self.mean_subtract = MeanSubtract(cfg.mean_rgb, cfg.input_scale, name="mean_subtract")
    self.conv1 = conv(0, cfg.conv1_stride, "valid")
    self.pool1 = pool("pool1")
    self.norm1 = lrn("norm1")
    self.conv2 = conv(1, 1, "same")
    self.pool2 = pool("pool2")
    self.norm2 = lrn("norm2")
    self.conv3 = conv(2, 1, "same")
    self.conv4 = conv(3, 1, "same")
    self.conv5 = conv(4, 1, "same")
    self.pool5 = pool("pool5")
    for layer in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
      layer.trainable = cfg.tower_trainable
    self.skip_convs = []
    self.skip_prelus = []
    for n, ch in enumerate(cfg.skip_filters, start=1):
      self._skip(n, ch, reg, init)

  # ---------------------------------------------------------------- building

  def build(self, input_shape=None):
    """Creates every weight from the config's shapes (no forward pass)."""
    if self.built:
      return
    cfg = self.cfg
    s = cfg.crop_size
    if cfg.tower == "caffenet":
      self._build_caffenet()
    else:
      sh = _effnet_shapes(cfg)
      self.tower.build((None, s, s, 3))
      for conv, prelu, t, ch in zip(self.skip_convs, self.skip_prelus, cfg.tower_taps, cfg.tap_filters):
        conv.build((None,) + sh[f"block{t}"])
        prelu.build((None,) + sh[f"block{t}"][:2] + (ch,))
    self.fc6.build((None, fc6_inputs(cfg)))
    self.lstm1.build((None, cfg.fc6_units))
    self.lstm2.build((None, cfg.fc6_units + cfg.lstm_units))
    if cfg.template == "nano_head":
      self.nano_head.build()
    self.head.build((None, cfg.lstm_units + template_geometry(cfg)["hint"]))
    # Tell Keras what call() takes, as a first call would, so SavedModel
    # export (tf.saved_model.save of a module holding the net) can trace it.
    spec = tf.TensorSpec([None, None, cfg.crop_size, cfg.crop_size, 3], tf.float32)
    self._set_save_spec((spec, spec))
    self.built = True

  def _build_caffenet(self):
    cfg = self.cfg
    sh = cfg.tower_shapes()
    s = cfg.crop_size
    self.conv1.build((None, s, s, 3))
    self.conv2.build((None,) + sh["norm1"])
    self.conv3.build((None,) + sh["norm2"])
    self.conv4.build((None,) + sh["conv3"])
    self.conv5.build((None,) + sh["conv4"])
    for conv, prelu, src, ch in zip(self.skip_convs, self.skip_prelus, CAFFENET_SKIP_SOURCES,
                                    cfg.skip_filters):
      conv.build((None,) + sh[src])
      prelu.build((None,) + sh[src][:2] + (ch,))
    for layer in (self.mean_subtract, self.pool1, self.norm1, self.pool2, self.norm2, self.pool5):
      layer.built = True

  # ---------------------------------------------------------------- tower

  def tower_endpoints(self, crops, training: bool = False) -> Dict[str, tf.Tensor]:
    """Every CaffeNet endpoint (or the EfficientNet taps and last block,
    'block<i>') for crops [N, S, S, 3] (0..255 RGB)."""
    if self.cfg.tower != "caffenet":
      return self.tower(crops)
    x = self.mean_subtract(crops)
    out = {"input": x}
    out["conv1"] = x = self.conv1(x)
    out["pool1"] = x = self.pool1(x)
    out["norm1"] = x = self.norm1(x)
    out["conv2"] = x = self.conv2(x)
    out["pool2"] = x = self.pool2(x)
    out["norm2"] = x = self.norm2(x)
    out["conv3"] = x = self.conv3(x)
    out["conv4"] = x = self.conv4(x)
    out["conv5"] = x = self.conv5(x)
    out["pool5"] = self.pool5(x)
    return out

  def crop_features(self, crops, training: bool = False) -> tf.Tensor:
    """Skip + pool5 (or tap + last block) features of crops [N, S, S, 3] -> [N, features_per_crop]."""
    return self._crop_features(crops, training)[0]

  def _crop_features(self, crops, training: bool = False):
    """(crop_features, the last block [N, h, w, c] or None for CaffeNet)."""
    ends = self.tower_endpoints(crops, training)
    n = tf.shape(crops)[0]
    cfg = self.cfg
    if cfg.tower == "caffenet":
      sources, last = CAFFENET_SKIP_SOURCES, "pool5"
    else:
      sources, last = [f"block{t}" for t in cfg.tower_taps], f"block{cfg.tower_blocks - 1}"
    parts = []
    for conv, prelu, src in zip(self.skip_convs, self.skip_prelus, sources):
      parts.append(tf.reshape(prelu(conv(ends[src])), [n, -1]))
    parts.append(tf.reshape(ends[last], [n, -1]))
    return tf.concat(parts, axis=1), (None if cfg.tower == "caffenet" else ends[last])

  def embed(self, prev_crops, curr_crops, training: bool = False, template=None,
            steps: int = 1):
    """fc6 features of crop pairs [N, S, S, 3] x 2 -> ([N, fc6_units], template,
    score, hint).

    Both crops go through the tower in one call (batch 2N): one set of big
    convolutions instead of two. With a template (xcorr or nano_head), `template`
    [N / steps, cells, channels] (one per sequence of `steps` consecutive
    rows) is correlated with each current crop's last block; a sequence whose
    template is all zeros (a zero state: the first step of a target) takes
    it from its first previous crop, which the tracker's init step (and
    training's first step) cuts at the target's box. The template used is
    returned (None without one) for the next state, with the template
    score of each row (`template_score`; None without a template) and, with
    model.template: nano_head, NanoTrack's box and peak score per row
    [N, NANO_HINT] for the box regression (else None).
    """
    if prev_crops.dtype != curr_crops.dtype:
      prev_crops = tf.cast(prev_crops, tf.float32)
      curr_crops = tf.cast(curr_crops, tf.float32)
    n = tf.shape(prev_crops)[0]
    feats, last = self._crop_features(tf.concat([prev_crops, curr_crops], axis=0), training)
    parts = [feats[:n], feats[n:]]
    score = hint = None
    if self.cfg.template != "none":
      first = self._center_template(last[:n][::steps])
      if template is None:
        template = first
      else:
        empty = tf.reduce_all(tf.equal(template, 0.0), axis=[1, 2])
        template = tf.where(empty[:, None, None], first, tf.cast(template, tf.float32))
      one = isinstance(steps, int) and steps == 1
      per_row = template if one else tf.repeat(template, steps, axis=0)
      if self.cfg.template == "nano_head":
        maps, hint = self.nano_head_features(per_row, last[n:])
        score = hint[:, -1]
        parts.append(tf.cast(maps, feats.dtype))
      else:
        corr = self.correlate(per_row, last[n:])
        score = self.template_score(corr)
        parts.append(tf.cast(corr, feats.dtype))
    return self.fc6(tf.concat(parts, axis=1)), template, score, hint

  def nano_head_features(self, template, last_block):
    """NanoTrack's head on template [N, cells, c] and last blocks [N, h, w, c]
    -> (maps [N, h * w * 6 + 5]: score logits, log box distances, hint;
    hint [N, 5]: the soft arg-max box in label units and the peak score).

    Each position (i, j) is a grid point at (16 j, 16 i) crop pixels (the
    backbone's stride; PyTorch padding centres output j on input 16 j) that
    predicts the box (x - left, y - top, x + right, y + bottom); the positions
    are weighted by the softmax of their target-vs-background logit."""
    g = template_geometry(self.cfg)
    n = tf.shape(last_block)[0]
    h, w = g["height"], g["width"]
    t = tf.reshape(tf.cast(template, tf.float32), [n, h, w, g["channels"]])
    out = self.nano_head(t, tf.cast(last_block, tf.float32))
    cls, dist = out["cls"], out["reg"]                              # [N, h, w, 2], [N, h, w, 4]
    logit = tf.reshape(cls[..., 1] - cls[..., 0], [n, h * w])
    weight = tf.nn.softmax(logit, axis=1)
    stride = float(nanotrack.STRIDE)
    gy, gx = tf.meshgrid(tf.range(h, dtype=tf.float32) * stride,
                         tf.range(w, dtype=tf.float32) * stride, indexing="ij")
    points = tf.reshape(tf.stack([gx, gy, gx, gy], axis=-1), [1, h * w, 4])
    sign = tf.constant([-1.0, -1.0, 1.0, 1.0])
    boxes = points + sign * tf.reshape(dist, [n, h * w, 4])        # crop pixels
    box = tf.reduce_sum(boxes * weight[..., None], axis=1) * (LABEL_SCALE / self.cfg.crop_size)
    peak = tf.sigmoid(tf.reduce_max(logit, axis=1))                 # 2-class softmax of the best cell
    hint = tf.concat([box, peak[:, None]], axis=1)
    maps = tf.concat([tf.reshape(cls, [n, -1]), tf.reshape(tf.math.log(dist), [n, -1]), hint],
                     axis=1)
    return maps, hint

  # ---------------------------------------------------------------- template

  @staticmethod
  def _unit_vectors(x):
    x = tf.cast(x, tf.float32)
    return x * tf.math.rsqrt(tf.reduce_sum(tf.square(x), axis=-1, keepdims=True) + 1e-6)

  def correlate(self, template, last_block) -> tf.Tensor:
    """Pixel-wise cosine correlation: template [N, cells, c] x last block
    [N, h, w, c] -> [N, h * w * cells] (float32), flattened position-major."""
    n = tf.shape(last_block)[0]
    g = template_geometry(self.cfg)
    cur = self._unit_vectors(tf.reshape(last_block, [n, g["grid"], g["channels"]]))
    corr = tf.matmul(cur, tf.cast(template, tf.float32), transpose_b=True)   # [N, grid, cells]
    return tf.reshape(corr, [n, g["features"]])

  def template_score(self, corr) -> tf.Tensor:
    """The tracking score of a correlation map [N, h * w * cells]: for each
    template cell its best cosine match anywhere in the current crop, averaged
    over the cells -> [N] in [-1, 1]. High while the crop holds something that
    looks like the first-frame target; it falls when the target is lost,
    hidden or replaced (README: how well it flags lost frames)."""
    g = template_geometry(self.cfg)
    corr = tf.reshape(corr, [tf.shape(corr)[0], g["grid"], g["cells"]])
    return tf.reduce_mean(tf.reduce_max(corr, axis=1), axis=1)

  def make_template(self, crops, training: bool = False) -> tf.Tensor:
    """Template of init crops [N, S, S, 3] (the target at Re3's 2x context):
    the central half of the last tower block, unit vectors -> [N, cells, c]."""
    return self._center_template(self._crop_features(tf.convert_to_tensor(crops), training)[1])

  def _center_template(self, last):
    g = template_geometry(self.cfg)
    center = last[:, g["top"]:g["top"] + g["height"], g["left"]:g["left"] + g["width"]]
    cells = tf.reshape(center, [tf.shape(center)[0], g["cells"], g["channels"]])
    if self.cfg.template == "nano_head":   # NanoTrack's head takes the raw features
      return tf.cast(cells, tf.float32)
    return self._unit_vectors(cells)

  def template_state(self, template) -> Tuple[tf.Tensor, ...]:
    """Template [N, cells, c] -> its `rows` state rows [N, lstm_units] each."""
    g = template_geometry(self.cfg)
    u = self.cfg.lstm_units
    n = tf.shape(template)[0]
    flat = tf.reshape(tf.cast(template, tf.float32), [n, g["cells"] * g["channels"]])
    flat = tf.pad(flat, [[0, 0], [0, g["rows"] * u - g["cells"] * g["channels"]]])
    return tuple(tf.unstack(tf.reshape(flat, [n, g["rows"], u]), axis=1))

  def state_template(self, state) -> Optional[tf.Tensor]:
    """The template carried in a state (None when model.template is none)."""
    if self.cfg.template == "none":
      return None
    g = template_geometry(self.cfg)
    rows = tf.stack(list(state[LSTM_STATE_PARTS:]), axis=1)               # [N, rows, u]
    n = tf.shape(rows)[0]
    flat = tf.reshape(rows, [n, -1])[:, :g["cells"] * g["channels"]]
    return tf.reshape(flat, [n, g["cells"], g["channels"]])

  def init_state(self, crops, training: bool = False) -> State:
    """The state a target starts from: zero LSTM state, plus (with a template)
    the template of its init crops [N, S, S, 3]."""
    n = tf.shape(crops)[0]
    z = self.zero_state(n)
    if self.cfg.template == "none":
      return z
    return z[:LSTM_STATE_PARTS] + self.template_state(self.make_template(crops, training))

  # ---------------------------------------------------------------- recurrence

  @property
  def state_parts(self) -> int:
    """Parts of a state: h1, c1, h2, c2 and the template rows (model.template)."""
    return state_parts(self.cfg)

  def zero_state(self, batch_size) -> State:
    """All-zero state (h1, c1, h2, c2 and any template rows), each float32
    [batch_size, lstm_units]. A zero template is filled by the first step
    (from its previous crop); init_state fills it from given crops instead."""
    z = tf.zeros([batch_size, self.cfg.lstm_units], tf.float32)
    return (z,) * self.state_parts

  def _lstm2_input_kernels(self):
    """lstm2's kernel split into its fc6 part and its lstm1 part, in lstm2's
    compute dtype (read outside the layer's __call__, the variable is float32)."""
    k = tf.cast(self.lstm2.kernel, self.lstm2.compute_dtype)
    n = self.cfg.fc6_units
    return k[:n], k[n:]

  def step(self, prev_crops, curr_crops, state: State, training: bool = False):
    """One tracking step: crops [B, S, S, 3] and state -> (labels [B, 4], new state)."""
    labels, state, _ = self.step_scored(prev_crops, curr_crops, state, training)
    return labels, state

  def step_scored(self, prev_crops, curr_crops, state: State, training: bool = False):
    """`step` and the tracking score [B] (float32): the template score
    (`template_score`) with model.template: xcorr, NanoTrack's peak score with
    nano_head, else all NaN (no score)."""
    prev_crops = tf.convert_to_tensor(prev_crops)
    curr_crops = tf.convert_to_tensor(curr_crops)
    h1, c1, h2, c2 = state[:LSTM_STATE_PARTS]
    e, template, score, hint = self.embed(prev_crops, curr_crops, training,
                                          self.state_template(state))
    rest = () if template is None else self.template_state(template)
    if score is None:
      score = tf.fill([tf.shape(prev_crops)[0]], float("nan"))
    y1, (h1, c1) = self.lstm1(e, [h1, c1])
    y2, (h2, c2) = self.lstm2(tf.concat([e, y1], axis=1), [h2, c2])
    return self._regress(y2, hint), (h1, c1, h2, c2) + rest, score

  def track_step(self, prev_crops, curr_crops, state: State):
    """`step_scored` as the trackers run it: the labels damped by
    model.track_scale_rate / track_aspect_rate (geometry.damp_labels_tf;
    unchanged at the defaults of 1). Training steps are undamped."""
    labels, state, score = self.step_scored(prev_crops, curr_crops, state)
    cfg = self.cfg
    return damp_labels_tf(labels, cfg.track_scale_rate, cfg.track_aspect_rate), state, score

  def _regress(self, y2, hint):
    """The box head on the last LSTM's output [..., u] (and NanoTrack's hint [..., 5])."""
    if hint is None:
      return self.head(y2)
    return self.head(tf.concat([tf.cast(y2, tf.float32), tf.cast(hint, tf.float32)], axis=-1))

  def unroll(self, prev_crops, curr_crops, initial_state: Optional[State] = None,
             training: bool = False):
    """T steps: crops [B, T, S, S, 3] -> (labels [B, T, 4], final state).

    Equals T calls of `step` (up to float rounding): the tower and fc6 run
    once on all crops, the LSTM input matmuls once on all steps.
    """
    prev_crops = tf.convert_to_tensor(prev_crops)
    curr_crops = tf.convert_to_tensor(curr_crops)
    shape = tf.shape(prev_crops)
    b, t = shape[0], shape[1]
    s = self.cfg.crop_size
    flat_prev = tf.reshape(prev_crops, [-1, s, s, 3])
    flat_curr = tf.reshape(curr_crops, [-1, s, s, 3])
    if initial_state is None:
      initial_state = self.zero_state(b)
    static_t = prev_crops.shape[1]
    e, template, _, hint = self.embed(flat_prev, flat_curr, training,
                                      self.state_template(initial_state),
                                      steps=static_t or t)              # [B*T, fc6]
    k2e, k2h = self._lstm2_input_kernels()
    dtype = k2e.dtype                                                   # compute dtype
    e = tf.cast(e, dtype)
    xp1 = tf.reshape(self.lstm1.project_inputs(e), [b, t, -1])          # [B, T, 4u]
    xp2 = tf.reshape(tf.matmul(e, k2e) + tf.cast(self.lstm2.bias, dtype), [b, t, -1])
    h1, c1, h2, c2 = initial_state[:LSTM_STATE_PARTS]
    rest = () if template is None else self.template_state(template)

    def body(i, h1, c1, h2, c2):
      y1, (h1, c1) = self.lstm1.step_projected(xp1[:, i], [h1, c1])
      y2, (h2, c2) = self.lstm2.step_projected(xp2[:, i] + tf.matmul(tf.cast(y1, dtype), k2h),
                                               [h2, c2])
      return y2, (h1, c1, h2, c2)

    static_t = prev_crops.shape[1]
    if static_t is not None:
      outputs = []
      for i in range(static_t):
        y2, (h1, c1, h2, c2) = body(i, h1, c1, h2, c2)
        outputs.append(y2)
      ys = tf.stack(outputs, axis=1)                                    # [B, T, u]
    else:
      ta = tf.TensorArray(self.lstm2.compute_dtype, size=t)

      def loop(i, ta, h1, c1, h2, c2):
        y2, (h1, c1, h2, c2) = body(i, h1, c1, h2, c2)
        return i + 1, ta.write(i, y2), h1, c1, h2, c2

      _, ta, h1, c1, h2, c2 = tf.while_loop(
          lambda i, *_: i < t, loop, (tf.constant(0), ta, h1, c1, h2, c2))
      ys = tf.transpose(ta.stack(), [1, 0, 2])
    labels = self._regress(ys, None if hint is None else tf.reshape(hint, [b, t, NANO_HINT]))
    return labels, (h1, c1, h2, c2) + rest

  def call(self, inputs, training=False):
    """(prev [B, T, S, S, 3], curr [B, T, S, S, 3]) -> labels [B, T, 4] from the zero state."""
    prev_crops, curr_crops = inputs
    labels, _ = self.unroll(prev_crops, curr_crops, None, training=training)
    return labels


def build_re3(cfg: Union[Re3ModelConfig, dict, None] = None, name: str = "re3") -> Re3Net:
  """A Re3Net with every weight created (fresh initialisation)."""
  net = Re3Net(cfg if cfg is not None else Re3ModelConfig(), name=name)
  net.build()
  return net


def _nano_head_parameters() -> int:
  """Weights of NanoTrack v2's head (model.towers.nanotrack_head), per its structure."""
  nh = nanotrack_head
  cells, f, hid = nh.TEMPLATE_GRID ** 2, nh.FEATURES, nh.HIDDEN
  total = 0
  for _, _, _, outputs in nh.BRANCHES.values():
    total += 2 * (f * f + f) + 2 * (cells * cells + cells)          # 1x1 convs, attention fcs
    ch = cells
    for _ in range(nh.TOWER_DEPTH):
      total += 9 * ch + ch * hid + hid                              # depthwise, pointwise
      ch = hid
    total += hid * outputs + outputs
  return total


def init_head_from_hint(net: Re3Net, lstm_scale: float = 0.01) -> None:
  """With model.template: nano_head, makes the box regression start as
  NanoTrack's box: identity from the hint's box to the labels, zero bias and
  the LSTM output's weights scaled by `lstm_scale` (training learns the
  correction)."""
  if net.cfg.template != "nano_head":
    raise ValueError(f"init_head_from_hint needs model.template: nano_head, not {net.cfg.template!r}")
  u = net.cfg.lstm_units
  k = net.head.kernel.numpy()
  k[:u] *= lstm_scale
  k[u:] = 0.0
  k[u:u + 4] = np.eye(4, dtype=k.dtype)
  net.head.kernel.assign(k)
  net.head.bias.assign(tf.zeros_like(net.head.bias))


def count_parameters(cfg: Re3ModelConfig) -> Dict[str, int]:
  """Parameter count per block, from the config's shapes alone (no weights).

  Lets tests and tools check the paper count (183,719,012 with diagonal
  peepholes) without allocating 735 MB of weights.
  """
  if cfg.tower == "caffenet":
    sh = cfg.tower_shapes()
    f, k, g = cfg.conv_filters, cfg.conv_kernels, cfg.conv_groups
    in_ch = (3,) + tuple(f[:4])
    tower = sum(k[i] * k[i] * (in_ch[i] // g[i]) * f[i] + f[i] for i in range(5))
    taps = zip((sh[src][2] for src in CAFFENET_SKIP_SOURCES), cfg.skip_filters)
  else:
    sh = _effnet_shapes(cfg)
  if cfg.tower == "nanotrack_v2":
    tower = 3 * 3 * 3 * nanotrack.STEM_FILTERS + nanotrack.STEM_FILTERS
    for spec in nanotrack.BLOCKS[:cfg.tower_blocks]:
      hid = spec.hidden
      if spec.expanded:
        tower += spec.in_channels * hid + hid
      tower += spec.kernel * spec.kernel * hid + hid + hid * spec.out_channels + spec.out_channels
      if spec.se_reduced:
        tower += hid * spec.se_reduced + spec.se_reduced + spec.se_reduced * hid + hid
    taps = zip((sh[f"block{t}"][2] for t in cfg.tower_taps), cfg.tap_filters)
  elif cfg.tower != "caffenet":
    tower = 3 * 3 * 3 * STEM_FILTERS + STEM_FILTERS        # every conv has a (folded) bias
    for spec in block_specs(EFFNET_TOWERS[cfg.tower])[:cfg.tower_blocks]:
      e = spec.expanded_channels
      if spec.expand_ratio != 1:
        tower += spec.in_channels * e + e
      tower += spec.kernel * spec.kernel * e + e + e * spec.out_channels + spec.out_channels
    taps = zip((sh[f"block{t}"][2] for t in cfg.tower_taps), cfg.tap_filters)
  skips = sum(c * ch + ch + ch for c, ch in taps)           # 1x1 kernel, bias, PReLU slopes
  fc6 = fc6_inputs(cfg) * cfg.fc6_units + cfg.fc6_units
  u = cfg.lstm_units
  peep = {"diagonal": 3 * u, "full": 3 * u * u, "none": 0}[cfg.peephole]

  def lstm(inp):
    return 4 * u * (inp + u) + 4 * u + peep

  hint = template_geometry(cfg)["hint"]
  out = {"tower": tower, "skips": skips, "fc6": fc6, "lstm1": lstm(cfg.fc6_units),
         "lstm2": lstm(cfg.fc6_units + u),
         "head": (u + hint) * cfg.output_units + cfg.output_units}
  if cfg.template == "nano_head":
    out["nano_head"] = _nano_head_parameters()
  out["total"] = sum(out.values())
  return out
