"""EfficientNet-Lite (Tan & Le 2019; the 'Lite' edge variants) as tf_keras layers.

Lite networks are EfficientNet without squeeze-and-excitation, with ReLU6 in
place of swish, and with the stem (32 filters) and head (1280 filters) and
the first and last stages' repeats left unscaled by the width / depth
multipliers. Each MBConv block: 1x1 expand conv (absent when the expand
ratio is 1) + ReLU6, kxk depthwise conv (stride s) + ReLU6, 1x1 project conv
(linear), plus the identity when stride is 1 and input and output widths
match (inference: no drop-connect).

Batch norm is FOLDED into the convolutions: every conv here has a bias and
no batch-norm layer follows it; `model.towers.efficientnet_import` folds the
checkpoint's batch-norm statistics (epsilon BN_EPSILON) into kernel and bias
at import. The tower is meant for inference-mode features (frozen, or
fine-tuned as plain convolutions), never with batch statistics.

Inputs are 0..255 RGB (uint8 or float); the tower scales them to
(x - INPUT_MEAN) * INPUT_SCALE itself, the range the ImageNet weights were
trained on (checked by the real-image test in tests/test_efficientnet.py).

Padding: 'same' is TensorFlow's (stride-2 convolutions pad one more pixel at
the bottom / right), 'symmetric' pads k // 2 on every side as a PyTorch
Conv2d(padding=k // 2) does. Both give the same output sizes.
PRETRAINED_PADDING is 'same': the shipped checkpoint is a conversion of the
TensorFlow-trained weights (its conv tensors are transposed views of
(kh, kw, in, out) TensorFlow arrays), and on real photos the two conventions
score alike (top-5 0.748 'same' vs 0.766 'symmetric' on 441 object crops,
mean log-probability of the right class -2.40 for both), so the training
framework's convention, also the cheaper one (no explicit pad op), is used.

`EfficientNetLiteTower` runs the stem and the first `blocks` blocks and
returns the outputs of the blocks listed in `taps` and of the last block run,
as {'block<i>': [N, H, W, C]}. `EfficientNetLiteClassifier` is the full
ImageNet classifier (all blocks + 1x1 head conv 1280 + ReLU6 + global average
pool + the 1000-way linear layer), used to check an import on real photos.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Sequence, Tuple

import tensorflow as tf
import tf_keras as keras

from model.layers import PACKAGE, MeanSubtract
from model.towers import TappedBlocks

# variant -> (width multiplier, depth multiplier, native input size)
VARIANTS = {
    "lite0": (1.0, 1.0, 224),
    "lite1": (1.0, 1.1, 240),
    "lite2": (1.1, 1.2, 260),
    "lite3": (1.2, 1.4, 280),
    "lite4": (1.4, 1.8, 300),
}
# Stages of the B0 baseline: (repeats, kernel, stride, expand ratio, in, out).
BASE_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_FILTERS = 32
STEM_STRIDE = 2
HEAD_FILTERS = 1280
NUM_CLASSES = 1000
DEPTH_DIVISOR = 8
BN_EPSILON = 1e-3
INPUT_MEAN = 127.0
INPUT_SCALE = 1.0 / 128.0
PADDINGS = ("same", "symmetric")
PRETRAINED_PADDING = "same"


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  """One MBConv block: index in the network, kernel, stride, expand ratio, widths."""

  index: int
  kernel: int
  stride: int
  expand_ratio: int
  in_channels: int
  out_channels: int

  @property
  def expanded_channels(self) -> int:
    return self.in_channels * self.expand_ratio

  @property
  def residual(self) -> bool:
    return self.stride == 1 and self.in_channels == self.out_channels


def _check_variant(variant: str) -> None:
  if variant not in VARIANTS:
    raise ValueError(f"EfficientNet-Lite variant must be one of {sorted(VARIANTS)}, got {variant!r}")


def round_filters(filters: int, width: float) -> int:
  """Channels scaled by the width multiplier, rounded to DEPTH_DIVISOR (as EfficientNet)."""
  if width == 1.0:
    return filters
  d = DEPTH_DIVISOR
  scaled = filters * width
  new = max(d, int(scaled + d / 2) // d * d)
  if new < 0.9 * scaled:
    new += d
  return int(new)


def block_specs(variant: str = "lite0") -> List[BlockSpec]:
  """Every MBConv block of a Lite variant, in order (16 for lite0)."""
  _check_variant(variant)
  width, depth, _ = VARIANTS[variant]
  specs = []
  last = len(BASE_STAGES) - 1
  for stage, (repeats, k, s, e, cin, cout) in enumerate(BASE_STAGES):
    cin, cout = round_filters(cin, width), round_filters(cout, width)
    if stage not in (0, last):  # Lite keeps the first and last stages' repeats
      repeats = int(math.ceil(depth * repeats))
    for r in range(repeats):
      # The stem keeps STEM_FILTERS in every Lite variant, so block 0 reads that.
      first_in = STEM_FILTERS if not specs else cin
      specs.append(BlockSpec(len(specs), k, s if r == 0 else 1, e, first_in if r == 0 else cout, cout))
  return specs


def tower_shapes(variant: str, crop_size: int, blocks: int) -> Dict[str, Tuple[int, int, int]]:
  """(height, width, channels) of the stem and of every block run, for one crop."""
  specs = block_specs(variant)
  if not 1 <= blocks <= len(specs):
    raise ValueError(f"EfficientNet-{variant} has {len(specs)} blocks; cannot run {blocks}")
  s = -(-crop_size // STEM_STRIDE)
  out = {"stem": (s, s, STEM_FILTERS)}
  for spec in specs[:blocks]:
    s = -(-s // spec.stride)
    out[f"block{spec.index}"] = (s, s, spec.out_channels)
  return out


def _conv(filters, kernel, stride, padding, name):
  """A biased Conv2D (batch norm folded in) or, for a depthwise conv, filters=None."""
  pad = "same" if (padding == "same" or stride == 1) else "valid"
  if filters is None:
    return keras.layers.DepthwiseConv2D(kernel, strides=stride, padding=pad, use_bias=True, name=name)
  return keras.layers.Conv2D(filters, kernel, strides=stride, padding=pad, use_bias=True, name=name)


def _pad_symmetric(x, kernel: int):
  p = kernel // 2
  return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])


@keras.saving.register_keras_serializable(package=PACKAGE)
class MBConvBlock(keras.layers.Layer):
  """An EfficientNet-Lite inverted-residual block (no SE, ReLU6, BN folded)."""

  def __init__(self, kernel: int, stride: int, expand_ratio: int, in_channels: int,
               out_channels: int, padding: str = PRETRAINED_PADDING, **kwargs):
    super().__init__(**kwargs)
    if padding not in PADDINGS:
      raise ValueError(f"MBConvBlock {self.name}: padding must be one of {list(PADDINGS)}, got {padding!r}")
    self.spec = BlockSpec(-1, int(kernel), int(stride), int(expand_ratio), int(in_channels),
                          int(out_channels))
    self.padding = padding
    s = self.spec
    self.expand_conv = (_conv(s.expanded_channels, 1, 1, padding, "expand_conv")
                        if s.expand_ratio != 1 else None)
    self.depthwise_conv = _conv(None, s.kernel, s.stride, padding, "depthwise_conv")
    self.project_conv = _conv(s.out_channels, 1, 1, padding, "project_conv")
    self._pad_input = padding == "symmetric" and s.stride != 1

  def build(self, input_shape):
    if self.built:
      return
    h, w = input_shape[1], input_shape[2]
    s = self.spec
    if self.expand_conv is not None:
      self.expand_conv.build((None, h, w, s.in_channels))
    self.depthwise_conv.build((None, h, w, s.expanded_channels))
    oh = None if h is None else -(-h // s.stride)
    ow = None if w is None else -(-w // s.stride)
    self.project_conv.build((None, oh, ow, s.expanded_channels))
    self.built = True

  def call(self, inputs):
    x = inputs
    if self.expand_conv is not None:
      x = tf.nn.relu6(self.expand_conv(x))
    if self._pad_input:
      x = _pad_symmetric(x, self.spec.kernel)
    x = tf.nn.relu6(self.depthwise_conv(x))
    x = self.project_conv(x)
    if self.spec.residual:
      x = x + inputs
    return x

  def get_config(self):
    config = super().get_config()
    s = self.spec
    config.update({"kernel": s.kernel, "stride": s.stride, "expand_ratio": s.expand_ratio,
                   "in_channels": s.in_channels, "out_channels": s.out_channels,
                   "padding": self.padding})
    return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class EfficientNetLiteTower(TappedBlocks, keras.layers.Layer):
  """Input scaling, stem and the first `blocks` MBConv blocks of a Lite variant.

  call(crops [N, S, S, 3], 0..255 RGB) -> {'block<i>': features} for each i
  in `taps` and for the last block run (index blocks - 1).
  """

  def __init__(self, variant: str = "lite0", blocks: int = 16, taps: Sequence[int] = (),
               padding: str = PRETRAINED_PADDING, **kwargs):
    super().__init__(**kwargs)
    specs = block_specs(variant)
    if not 1 <= int(blocks) <= len(specs):
      raise ValueError(f"EfficientNetLiteTower {self.name}: blocks must be in 1..{len(specs)} "
                       f"for {variant}, got {blocks}")
    taps = tuple(int(t) for t in taps)
    if any(not 0 <= t < int(blocks) for t in taps):
      raise ValueError(f"EfficientNetLiteTower {self.name}: taps {list(taps)} must be block "
                       f"indices below blocks={blocks}")
    if padding not in PADDINGS:
      raise ValueError(f"EfficientNetLiteTower {self.name}: padding must be one of {list(PADDINGS)}, "
                       f"got {padding!r}")
    self.variant = variant
    self.num_blocks = int(blocks)
    self.taps = taps
    self.padding = padding
    self.specs = specs[:self.num_blocks]
    self.normalize = MeanSubtract((INPUT_MEAN,) * 3, INPUT_SCALE, name="normalize")
    self.stem_conv = _conv(STEM_FILTERS, 3, STEM_STRIDE, padding, "stem_conv")
    self.blocks = [MBConvBlock(s.kernel, s.stride, s.expand_ratio, s.in_channels, s.out_channels,
                               padding, name=f"block{s.index}") for s in self.specs]


  def build(self, input_shape):
    if self.built:
      return
    h, w = input_shape[1], input_shape[2]
    self.normalize.built = True
    self.stem_conv.build((None, h, w, 3))

    def down(n, stride):
      return None if n is None else -(-n // stride)

    h, w, ch = down(h, STEM_STRIDE), down(w, STEM_STRIDE), STEM_FILTERS
    for block, spec in zip(self.blocks, self.specs):
      block.build((None, h, w, ch))
      h, w, ch = down(h, spec.stride), down(w, spec.stride), spec.out_channels
    self.built = True

  def call(self, inputs):
    x = self.normalize(inputs)
    x = tf.cast(x, self.compute_dtype)
    if self.padding == "symmetric":
      x = _pad_symmetric(x, 3)
    x = tf.nn.relu6(self.stem_conv(x))
    return self.run_blocks(x)

  def get_config(self):
    config = super().get_config()
    config.update({"variant": self.variant, "blocks": self.num_blocks, "taps": list(self.taps),
                   "padding": self.padding})
    return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class EfficientNetLiteClassifier(keras.Model):
  """The full ImageNet classifier: tower (all blocks), head conv + ReLU6, pool, fc.

  call(images [N, S, S, 3], 0..255 RGB) -> logits [N, 1000] (float32).
  """

  def __init__(self, variant: str = "lite0", padding: str = PRETRAINED_PADDING, **kwargs):
    super().__init__(**kwargs)
    self.variant = variant
    self.padding = padding
    n = len(block_specs(variant))
    self.tower = EfficientNetLiteTower(variant, n, (), padding, name="tower")
    self.head_conv = keras.layers.Conv2D(HEAD_FILTERS, 1, use_bias=True, name="head_conv")
    self.fc = keras.layers.Dense(NUM_CLASSES, name="fc", dtype="float32")
    self._last_channels = block_specs(variant)[-1].out_channels

  def build(self, input_shape=None):
    if self.built:
      return
    size = VARIANTS[self.variant][2] if input_shape is None else input_shape[1]
    self.tower.build((None, size, size, 3))
    self.head_conv.build((None, None, None, self._last_channels))
    self.fc.build((None, HEAD_FILTERS))
    self.built = True

  def call(self, inputs):
    feats = self.tower(inputs)[self.tower.output_names[-1]]
    x = tf.nn.relu6(self.head_conv(feats))
    x = tf.reduce_mean(x, axis=[1, 2])
    return self.fc(x)

  def get_config(self):
    return {"variant": self.variant, "padding": self.padding, "name": self.name}

  @classmethod
  def from_config(cls, config, custom_objects=None):
    del custom_objects
    model = cls(**config)
    model.build()
    return model
