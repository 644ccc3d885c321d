"""NanoTrack v2's backbone (a MobileNetV3-style network pretrained for tracking)
as a tf_keras tower, and its importer from OpenCV's ONNX file.

The file (`nanotrack_backbone_sim.onnx`, Apache-2.0, in ../shared/models/peers
and in OpenCV's model zoo) is the backbone OpenCV's `TrackerNano` runs on its
127x127 template and 255x255 search crops: stride 16, 48 output channels
(255 -> 16x16x48, 127 -> 8x8x48). Batch norm is already folded into the
convolutions, so every conv has a bias.

Architecture (read off the graph; `BLOCKS` is the one table of it):

  stem       3x3 conv stride 2 -> 16, hard-swish
  block i    [1x1 expand + act] -> kxk depthwise (stride s) -> [SE] -> act
             -> 1x1 project (linear), + identity when shapes match.
             A block without expansion applies its activation before the SE.
  SE         global average pool -> fc (ReLU) -> fc -> hard sigmoid
             (ONNX HardSigmoid alpha 1/6, beta 0.5) -> channel scale

Padding is PyTorch's (k // 2 on every side, then a 'valid' conv), so any crop
size gives the exact ONNX result; TensorFlow's 'same' differs on even sizes.

Inputs are 0..255 RGB (the project's crops). The network was trained on raw
0..255 BGR pixels (the pysot convention its tracker uses): the importer
reverses the stem kernel's input channels, so RGB crops give the exact BGR
result with no extra op (tests/test_nanotrack.py checks it against
onnxruntime on real crops).

`NanoTrackTower(blocks, taps)` runs the stem and blocks 0..blocks-1 and
returns {'block<i>': features} for the taps and the last block, as
model.towers.efficientnet_lite does. `load_tower_weights(obj, path)` reads
the ONNX graph (extra `onnx`), maps every Conv and Gemm initializer to its
layer by the node's name in the graph (features.K.conv.J), checks every shape
and only then assigns; a missing or mis-shaped tensor is named.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

from model.layers import PACKAGE
from model.towers import TappedBlocks

STEM_FILTERS = 16
STEM_STRIDE = 2
WEIGHTS_FILE = "nanotrack_backbone_sim.onnx"
PEER_DIR = "nanotrack_v2"          # folder of the file in a peer-models directory


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  index: int
  in_channels: int
  expanded: int              # 0: no expansion conv
  kernel: int
  stride: int
  se_reduced: int            # 0: no squeeze-and-excitation
  activation: str            # 'relu' | 'hswish'
  out_channels: int

  @property
  def hidden(self) -> int:
    return self.expanded or self.in_channels

  @property
  def residual(self) -> bool:
    return self.stride == 1 and self.in_channels == self.out_channels

  @property
  def onnx_name(self) -> str:
    return f"features.{self.index + 1}"


# NanoTrack v2's backbone, blocks 0-7 (ONNX features.1 .. features.8).
BLOCKS = (
    BlockSpec(0, 16, 0, 3, 2, 8, "relu", 16),
    BlockSpec(1, 16, 72, 3, 2, 0, "relu", 24),
    BlockSpec(2, 24, 88, 3, 1, 0, "relu", 24),
    BlockSpec(3, 24, 96, 5, 2, 24, "hswish", 40),
    BlockSpec(4, 40, 240, 5, 1, 64, "hswish", 40),
    BlockSpec(5, 40, 240, 5, 1, 64, "hswish", 40),
    BlockSpec(6, 40, 120, 5, 1, 32, "hswish", 48),
    BlockSpec(7, 48, 144, 5, 1, 40, "hswish", 48),
)
STRIDE = STEM_STRIDE * int(np.prod([b.stride for b in BLOCKS]))   # 16: output j centred on input 16 j


class NanoTrackImportError(ValueError):
  """The ONNX file is missing, unreadable or does not match the tower."""


def _out_size(n: Optional[int], kernel: int, stride: int) -> Optional[int]:
  return None if n is None else (n + 2 * (kernel // 2) - kernel) // stride + 1


def tower_shapes(crop_size: int, blocks: int = len(BLOCKS)) -> Dict[str, Tuple[int, int, int]]:
  """(height, width, channels) of the stem and of every block run, for one crop."""
  if not 1 <= blocks <= len(BLOCKS):
    raise ValueError(f"the NanoTrack v2 backbone has blocks 0..{len(BLOCKS) - 1}; "
                     f"tower_blocks must be in 1..{len(BLOCKS)}, got {blocks}")
  s = _out_size(crop_size, 3, STEM_STRIDE)
  out = {"stem": (s, s, STEM_FILTERS)}
  for spec in BLOCKS[:blocks]:
    s = _out_size(s, spec.kernel, spec.stride)
    out[f"block{spec.index}"] = (s, s, spec.out_channels)
  return out


def hard_sigmoid(x):
  """ONNX/PyTorch HardSigmoid with alpha 1/6, beta 1/2: relu6(x + 3) / 6."""
  return tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def hard_swish(x):
  return x * hard_sigmoid(x)


def _act(name: str, x):
  return tf.nn.relu(x) if name == "relu" else hard_swish(x)


def _padded(x, kernel: int):
  p = kernel // 2
  return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]) if p else x


@keras.saving.register_keras_serializable(package=PACKAGE)
class NanoTrackBlock(keras.layers.Layer):
  """One inverted-residual block of BLOCKS (see the module docstring)."""

  def __init__(self, index: int, **kwargs):
    super().__init__(**kwargs)
    self.index = int(index)
    s = self.spec = BLOCKS[self.index]
    self.expand = keras.layers.Conv2D(s.expanded, 1, name="expand") if s.expanded else None
    self.depthwise = keras.layers.DepthwiseConv2D(s.kernel, s.stride, padding="valid",
                                                  name="depthwise")
    if s.se_reduced:
      self.se_reduce = keras.layers.Dense(s.se_reduced, name="se_reduce")
      self.se_expand = keras.layers.Dense(s.hidden, name="se_expand")
    self.project = keras.layers.Conv2D(s.out_channels, 1, name="project")

  def build(self, input_shape):
    if self.built:
      return
    s = self.spec
    h, w = input_shape[1], input_shape[2]
    if self.expand is not None:
      self.expand.build((None, h, w, s.in_channels))
    self.depthwise.build((None, None if h is None else h + 2 * (s.kernel // 2),
                          None if w is None else w + 2 * (s.kernel // 2), s.hidden))
    if s.se_reduced:
      self.se_reduce.build((None, s.hidden))
      self.se_expand.build((None, s.se_reduced))
    self.project.build((None, _out_size(h, s.kernel, s.stride), _out_size(w, s.kernel, s.stride),
                        s.hidden))
    self.built = True

  def _se(self, x):
    z = tf.reduce_mean(x, axis=[1, 2])
    z = hard_sigmoid(self.se_expand(tf.nn.relu(self.se_reduce(z))))
    return x * z[:, None, None, :]

  def call(self, inputs):
    s = self.spec
    x = inputs
    if self.expand is not None:
      x = _act(s.activation, self.expand(x))
    x = self.depthwise(_padded(x, s.kernel))
    if self.expand is None:          # no expansion: activation, then SE
      x = _act(s.activation, x)
      if s.se_reduced:
        x = self._se(x)
    else:                            # expansion: SE, then activation
      if s.se_reduced:
        x = self._se(x)
      x = _act(s.activation, x)
    x = self.project(x)
    return x + inputs if s.residual else x

  def get_config(self):
    config = super().get_config()
    config.update({"index": self.index})
    return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class NanoTrackTower(TappedBlocks, keras.layers.Layer):
  """Stem and the first `blocks` blocks of NanoTrack v2's backbone.

  call(crops [N, S, S, 3], 0..255 RGB) -> {'block<i>': features} for each i in
  `taps` and for the last block run (index blocks - 1).
  """

  def __init__(self, blocks: int = len(BLOCKS), taps: Sequence[int] = (), **kwargs):
    super().__init__(**kwargs)
    if not 1 <= int(blocks) <= len(BLOCKS):
      raise ValueError(f"NanoTrackTower {self.name}: blocks must be in 1..{len(BLOCKS)}, got {blocks}")
    taps = tuple(int(t) for t in taps)
    if any(not 0 <= t < int(blocks) for t in taps):
      raise ValueError(f"NanoTrackTower {self.name}: taps {list(taps)} must be block indices "
                       f"below blocks={blocks}")
    self.num_blocks = int(blocks)
    self.taps = taps
    self.stem_conv = keras.layers.Conv2D(STEM_FILTERS, 3, STEM_STRIDE, padding="valid",
                                         name="stem_conv")
    self.blocks = [NanoTrackBlock(i, name=f"block{i}") for i in range(self.num_blocks)]


  def build(self, input_shape):
    if self.built:
      return
    h, w = input_shape[1], input_shape[2]
    self.stem_conv.build((None, None if h is None else h + 2, None if w is None else w + 2, 3))
    h, w, ch = _out_size(h, 3, STEM_STRIDE), _out_size(w, 3, STEM_STRIDE), STEM_FILTERS
    for block in self.blocks:
      block.build((None, h, w, ch))
      s = block.spec
      h, w, ch = _out_size(h, s.kernel, s.stride), _out_size(w, s.kernel, s.stride), s.out_channels
    self.built = True

  def call(self, inputs):
    x = tf.cast(inputs, self.compute_dtype)
    x = hard_swish(self.stem_conv(_padded(x, 3)))
    return self.run_blocks(x)

  def get_config(self):
    config = super().get_config()
    config.update({"blocks": self.num_blocks, "taps": list(self.taps)})
    return config


# ------------------------------------------------------------------ importer

def _layer_name(output: str) -> Optional[str]:
  """'/features/features.4/conv/conv.5/fc/fc.0/Gemm_output_0' -> 'features.4.conv.5.fc.0';
  '/features/features.0/features.0.0/Conv_output_0' -> 'features.0.0'."""
  dotted = [p for p in output.split("/")[:-1] if "." in p]
  starts = [i for i, p in enumerate(dotted) if p.startswith("features.")]
  return ".".join(dotted[starts[-1]:]) if starts else None


def open_onnx(path: str, what: str):
  """(graph, {initializer name: tensor}, onnx.numpy_helper) of one of
  NanoTrack's ONNX files (`what`: backbone or head); a missing package, file
  or unreadable model is a NanoTrackImportError naming it."""
  try:
    import onnx
    from onnx import numpy_helper
  except ImportError:
    raise NanoTrackImportError(
        "reading NanoTrack's ONNX file needs the onnx package: pip install -e '.[onnx]'") from None
  if not os.path.isfile(path):
    raise NanoTrackImportError(f"NanoTrack {what} file not found: {path}")
  try:
    graph = onnx.load(path).graph
  except Exception as e:  # noqa: BLE001 - protobuf raises several types
    raise NanoTrackImportError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from None
  return graph, {t.name: t for t in graph.initializer}, numpy_helper


def assign_checked(targets, weights: Dict[str, np.ndarray], path: str, what: str):
  """Assigns `weights` to the layers of `targets` ((ONNX name, layer, path in
  the model, kernel conversion) rows) after looking up and shape-checking
  every one: a missing or mis-shaped tensor raises NanoTrackImportError naming
  it and `what` layer wants it, nothing assigned. Returns the
  (variable, value, ONNX name) rows assigned."""
  plan = []
  for name, layer, where, convert in targets:
    kernel = layer.depthwise_kernel if isinstance(layer, keras.layers.DepthwiseConv2D) else layer.kernel
    parts = [("kernel", kernel)] + ([("bias", layer.bias)] if layer.use_bias else [])
    for part, var in parts:
      key = f"{name}/{part}"
      if key not in weights:
        raise NanoTrackImportError(f"{path}: no tensor for {key} ({what} layer {where})")
      value = convert(weights[key]) if part == "kernel" else weights[key]
      if tuple(value.shape) != tuple(var.shape):
        raise NanoTrackImportError(f"{path}: {key} has shape {tuple(value.shape)} after conversion, "
                                   f"{what} layer {where} wants {tuple(var.shape)}")
      plan.append((var, value, name))
  for var, value, _ in plan:
    var.assign(value)
  return plan


def read_onnx_weights(path: str) -> Dict[str, np.ndarray]:
  """{'<layer>/<kernel|bias>': array} in the ONNX file's layouts, keyed by the
  graph position of each Conv / Gemm node ('features.K.conv.J' or 'features.0.0').

  Names come from the node outputs (e.g. '/features/features.4/conv/conv.3/
  Conv_output_0') or, for Gemm, from the initializer names
  ('features.4.conv.5.fc.0.weight'); a graph without them is refused."""
  graph, inits, numpy_helper = open_onnx(path, "backbone")
  out: Dict[str, np.ndarray] = {}
  for node in graph.node:
    if node.op_type not in ("Conv", "Gemm"):
      continue
    layer = _layer_name(node.output[0])
    if layer is None:
      raise NanoTrackImportError(f"{path}: node {node.name or node.output[0]} carries no layer name; "
                                 "not the NanoTrack v2 backbone graph")
    names = list(node.input[1:])
    if any(n not in inits for n in names):
      raise NanoTrackImportError(f"{path}: {node.op_type} {layer} has an input that is not an "
                                 "initializer; not the NanoTrack v2 backbone graph")
    arrays = [numpy_helper.to_array(inits[n]).astype(np.float32) for n in names]
    if node.op_type == "Gemm":
      attrs = {a.name: a for a in node.attribute}
      if "transB" not in attrs or attrs["transB"].i != 1:
        raise NanoTrackImportError(f"{path}: Gemm {layer} without transB=1 is not supported")
    out[f"{layer}/kernel"] = arrays[0]
    if len(arrays) > 1:
      out[f"{layer}/bias"] = arrays[1]
  return out


def _targets(tower: NanoTrackTower):
  """(ONNX layer name, Keras layer, its path in the tower, how to convert the
  kernel) for every weight."""
  def conv(w):         # (out, in, kh, kw) -> (kh, kw, in, out)
    return np.transpose(w, (2, 3, 1, 0))

  def stem(w):         # BGR-trained input channels -> RGB crops
    return conv(w)[:, :, ::-1, :]

  def depthwise(w):    # (ch, 1, kh, kw) -> (kh, kw, ch, 1)
    return np.transpose(w, (2, 3, 0, 1))

  def dense(w):        # Gemm transB: (out, in) -> (in, out)
    return w.T

  yield "features.0.0", tower.stem_conv, "stem_conv", stem
  for block in tower.blocks:
    s = block.spec
    # sequence indices inside features.K.conv: with expansion
    # (0 conv, 1 BN, 2 act, 3 dw, 4 BN, 5 SE, 6 act, 7 project), without
    # (0 dw, 1 BN, 2 act, 3 SE, 4 project)
    dw, se, proj = (3, 5, 7) if s.expanded else (0, 3, 4)
    layers = [("conv.0", block.expand, conv)] if s.expanded else []
    layers.append((f"conv.{dw}", block.depthwise, depthwise))
    if s.se_reduced:
      layers += [(f"conv.{se}.fc.0", block.se_reduce, dense),
                 (f"conv.{se}.fc.2", block.se_expand, dense)]
    layers.append((f"conv.{proj}", block.project, conv))
    for onnx_part, layer, convert in layers:
      yield f"{s.onnx_name}.{onnx_part}", layer, f"{block.name}/{layer.name}", convert


def _find_tower(obj) -> NanoTrackTower:
  if isinstance(obj, NanoTrackTower):
    return obj
  tower = getattr(obj, "tower", None)
  if isinstance(tower, NanoTrackTower):
    return tower
  raise NanoTrackImportError(f"{type(obj).__name__} has no NanoTrack tower (model.tower: nanotrack_v2)")


def load_tower_weights(obj, path: str) -> Dict[str, Tuple[int, ...]]:
  """Loads the ONNX backbone into a NanoTrackTower (or a Re3Net holding one).

  Every tensor the tower needs is looked up and shape-checked before any is
  assigned; a missing or mis-shaped one raises NanoTrackImportError naming it
  and the tower is left unchanged. Returns {layer name: kernel shape}."""
  tower = _find_tower(obj)
  if not tower.built:
    raise NanoTrackImportError("build the tower (or the Re3Net) before loading weights")
  plan = assign_checked(_targets(tower), read_onnx_weights(path), path, "tower")
  return {name: tuple(v.shape) for v, _, name in plan if v.name.endswith("kernel:0")}


def find_weights(peer_models: Optional[str] = None) -> str:
  """The backbone file in a peer-models directory (default: $RE3_PEER_MODELS,
  else ../shared/models/peers beside the checkout); a missing file is named."""
  root = peer_models or os.environ.get("RE3_PEER_MODELS")
  if not root:
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "models", "peers"))
  path = os.path.join(root, PEER_DIR, WEIGHTS_FILE)
  if not os.path.isfile(path):
    raise NanoTrackImportError(f"NanoTrack v2 backbone not found: {path} (pass a peer-models "
                               f"directory holding {PEER_DIR}/{WEIGHTS_FILE}, or set RE3_PEER_MODELS)")
  return path
