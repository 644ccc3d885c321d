"""NanoTrack v2's head (pixel-wise correlation, classification and box towers)
as a tf_keras layer, and its importer from OpenCV's ONNX file.

The file (`nanotrack_head_sim.onnx`, Apache-2.0, beside the backbone in
../shared/models/peers/nanotrack_v2) takes the template's and the search
crop's backbone features (8x8x48 and 16x16x48 in OpenCV's tracker) and gives a
2-class score map and a 4-channel box map at every search position. Each of
its two branches (cls, reg) is, read off the graph:

  template t [8, 8, 48] -> 1x1 conv ("conv_kernel") -> 64 vectors of 48
  search   s [h, w, 48] -> 1x1 conv ("conv_search")
  pixel-wise correlation: channel k of position p = <s_p, t_k>  -> [h, w, 64]
      (k = row-major template cell; the template must be 8x8)
  channel attention ("CA_layer"): mean over positions -> fc 64 (ReLU) -> fc 64
      (sigmoid) -> scale the 64 channels
  tower: 6 x (3x3 depthwise, no bias -> 1x1 conv -> ReLU6), 96 channels
  prediction: 1x1 conv -> 2 (cls logits: background, target) or 4 (reg, then exp:
      distances left, top, right, bottom from the position's grid point, in
      search-crop pixels)

Batch norm is folded into the convolutions. The head is fully convolutional,
so it runs on any search size (Re3's 2x-context crop of 128 px gives 8x8).
`NanoTrackHead()(template, search)` -> {'cls': [N, h, w, 2], 'reg': [N, h, w, 4]}.
`load_head_weights(obj, path)` maps every Conv of the graph to its layer by
the node's graph position, shape-checks all before assigning anything and
names a missing or mis-shaped tensor.
"""

from __future__ import annotations

import os
from typing import Dict, Iterator, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

from model.layers import PACKAGE
from model.towers.nanotrack import (PEER_DIR, NanoTrackImportError, assign_checked, find_weights,
                                    open_onnx)

HEAD_FILE = "nanotrack_head_sim.onnx"
FEATURES = 48          # backbone channels the head takes
TEMPLATE_GRID = 8      # template cells per side: 64 correlation channels
HIDDEN = 96            # tower width
TOWER_DEPTH = 6        # depthwise + pointwise pairs per branch
BRANCHES = {"cls": ("corr_pw_cls", "cls_pw_tower", "cls_pred", 2),
            "reg": ("corr_pw_reg", "bbox_pw_tower", "bbox_pred", 4)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class NanoTrackHeadBranch(keras.layers.Layer):
  """One branch of the head (module docstring): correlation, attention, tower, prediction."""

  def __init__(self, outputs: int, **kwargs):
    super().__init__(**kwargs)
    self.outputs = int(outputs)
    cells = TEMPLATE_GRID * TEMPLATE_GRID
    self.conv_kernel = keras.layers.Conv2D(FEATURES, 1, name="conv_kernel")
    self.conv_search = keras.layers.Conv2D(FEATURES, 1, name="conv_search")
    self.ca_fc1 = keras.layers.Dense(cells, activation="relu", name="ca_fc1")
    self.ca_fc2 = keras.layers.Dense(cells, activation="sigmoid", name="ca_fc2")
    self.depthwise = [keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False,
                                                   name=f"tower{i}_dw") for i in range(TOWER_DEPTH)]
    self.pointwise = [keras.layers.Conv2D(HIDDEN, 1, name=f"tower{i}_pw") for i in range(TOWER_DEPTH)]
    self.pred = keras.layers.Conv2D(self.outputs, 1, name="pred")

  def build(self, input_shape=None):
    cells = TEMPLATE_GRID * TEMPLATE_GRID
    self.conv_kernel.build((None, TEMPLATE_GRID, TEMPLATE_GRID, FEATURES))
    self.conv_search.build((None, None, None, FEATURES))
    self.ca_fc1.build((None, cells))
    self.ca_fc2.build((None, cells))
    ch = cells
    for dw, pw in zip(self.depthwise, self.pointwise):
      dw.build((None, None, None, ch))
      pw.build((None, None, None, ch))
      ch = HIDDEN
    self.pred.build((None, None, None, HIDDEN))
    self.built = True

  def call(self, template, search):
    n = tf.shape(search)[0]
    h, w = tf.shape(search)[1], tf.shape(search)[2]
    cells = TEMPLATE_GRID * TEMPLATE_GRID
    k = tf.reshape(self.conv_kernel(template), [n, cells, FEATURES])
    s = tf.reshape(self.conv_search(search), [n, h * w, FEATURES])
    corr = tf.reshape(tf.matmul(s, k, transpose_b=True), [n, h, w, cells])
    attention = self.ca_fc2(self.ca_fc1(tf.reduce_mean(corr, axis=[1, 2])))
    x = corr * attention[:, None, None, :]
    for dw, pw in zip(self.depthwise, self.pointwise):
      x = tf.nn.relu6(pw(dw(x)))
    return self.pred(x)

  def get_config(self):
    cfg = super().get_config()
    cfg["outputs"] = self.outputs
    return cfg


@keras.saving.register_keras_serializable(package=PACKAGE)
class NanoTrackHead(keras.layers.Layer):
  """Both branches: (template [N, 8, 8, 48], search [N, h, w, 48]) ->
  {'cls': logits [N, h, w, 2], 'reg': distances [N, h, w, 4] (> 0, pixels)}."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.branches = {name: NanoTrackHeadBranch(spec[3], name=f"{name}_branch")
                     for name, spec in BRANCHES.items()}

  def build(self, input_shape=None):
    for branch in self.branches.values():
      branch.build()
    self.built = True

  def call(self, template, search):
    return {"cls": self.branches["cls"](template, search),
            "reg": tf.exp(self.branches["reg"](template, search))}


def _onnx_layer(node, inits) -> str:
  """The graph position of a Conv node: from its output path
  ('/corr_pw_reg/CA_layer/fc1/Conv_output_0' -> 'corr_pw_reg/CA_layer/fc1') or,
  for a node named only by its output, from its weight's name in the same form
  ('cls_pred.0.weight' -> 'cls_pred/cls_pred.0')."""
  parts = node.output[0].split("/")
  if len(parts) > 2:
    return "/".join(parts[1:-1])
  weight = node.input[1]
  if weight in inits and weight.endswith(".weight") and not weight.startswith("onnx::"):
    module = weight[:-len(".weight")]
    return f"{module.split('.')[0]}/{module}"
  raise NanoTrackImportError(f"Conv {node.name or node.output[0]} carries no layer name; "
                             "not the NanoTrack v2 head graph")


def read_head_weights(path: str) -> Dict[str, np.ndarray]:
  """{'<graph position>/<kernel|bias>': array} (ONNX layouts) of every Conv."""
  graph, inits, numpy_helper = open_onnx(path, "head")
  out: Dict[str, np.ndarray] = {}
  for node in graph.node:
    if node.op_type != "Conv":
      continue
    try:
      layer = _onnx_layer(node, inits)
    except NanoTrackImportError as e:
      raise NanoTrackImportError(f"{path}: {e}") from None
    for part, name in zip(("kernel", "bias"), node.input[1:]):
      if name not in inits:
        raise NanoTrackImportError(f"{path}: Conv {layer} has an input that is not an initializer; "
                                   "not the NanoTrack v2 head graph")
      out[f"{layer}/{part}"] = numpy_helper.to_array(inits[name]).astype(np.float32)
  return out


def _conv(w):          # (out, in, kh, kw) -> (kh, kw, in, out)
  return np.transpose(w, (2, 3, 1, 0))


def _depthwise(w):     # (ch, 1, kh, kw) -> (kh, kw, ch, 1)
  return np.transpose(w, (2, 3, 0, 1))


def _dense(w):         # 1x1 conv on a pooled vector: (out, in, 1, 1) -> (in, out)
  return w[:, :, 0, 0].T


def _targets(head: NanoTrackHead) -> Iterator[Tuple[str, keras.layers.Layer, str, object]]:
  """(ONNX graph position, Keras layer, its path in the head, kernel conversion)."""
  for name, (corr, tower, pred, _) in BRANCHES.items():
    b = head.branches[name]
    where = b.name
    yield f"{corr}/conv_kernel/conv_kernel.0", b.conv_kernel, f"{where}/conv_kernel", _conv
    yield f"{corr}/conv_search/conv_search.0", b.conv_search, f"{where}/conv_search", _conv
    yield f"{corr}/CA_layer/fc1", b.ca_fc1, f"{where}/ca_fc1", _dense
    yield f"{corr}/CA_layer/fc2", b.ca_fc2, f"{where}/ca_fc2", _dense
    for i, (dw, pw) in enumerate(zip(b.depthwise, b.pointwise)):
      # sequence indices in the tower: 4i depthwise, 4i+1 pointwise (BN folded), 4i+3 ReLU6
      yield f"{tower}/{tower}.{4 * i}", dw, f"{where}/{dw.name}", _depthwise
      yield f"{tower}/{tower}.{4 * i + 1}", pw, f"{where}/{pw.name}", _conv
    yield f"{pred}/{pred}.0", b.pred, f"{where}/pred", _conv


def _find_head(obj) -> NanoTrackHead:
  if isinstance(obj, NanoTrackHead):
    return obj
  head = getattr(obj, "nano_head", None)
  if isinstance(head, NanoTrackHead):
    return head
  raise NanoTrackImportError(f"{type(obj).__name__} has no NanoTrack head (model.template: nano_head)")


def load_head_weights(obj, path: str) -> Dict[str, Tuple[int, ...]]:
  """Loads the ONNX head into a NanoTrackHead (or a Re3Net holding one as
  `nano_head`). Every tensor is looked up and shape-checked before any is
  assigned; a missing or mis-shaped one raises NanoTrackImportError naming
  it, the head left unchanged. Returns {graph position: kernel shape}."""
  head = _find_head(obj)
  if not head.built:
    raise NanoTrackImportError("build the head (or the Re3Net) before loading weights")
  weights = read_head_weights(path)
  unknown = sorted(set(weights) - {f"{name}/{part}" for name, _, _, _ in _targets(head)
                                   for part in ("kernel", "bias")})
  if unknown:
    raise NanoTrackImportError(f"{path}: tensors the head does not know: {unknown[:4]}; "
                               "not the NanoTrack v2 head graph")
  plan = assign_checked(_targets(head), weights, path, "head")
  return {name: tuple(v.shape) for v, _, name in plan if "kernel" in v.name}


def head_beside(backbone_path: str) -> str:
  """The head file beside a backbone file (OpenCV ships the two together); a
  missing one is named."""
  path = os.path.join(os.path.dirname(backbone_path), HEAD_FILE)
  if not os.path.isfile(path):
    raise NanoTrackImportError(f"NanoTrack v2 head not found: {path} (pass a peer-models directory "
                               f"holding {PEER_DIR}/{HEAD_FILE}, or set RE3_PEER_MODELS)")
  return path


def find_head_weights(peer_models=None) -> str:
  """The head file in a peer-models directory (as nanotrack.find_weights)."""
  return head_beside(find_weights(peer_models))
