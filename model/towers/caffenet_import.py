"""Loads pretrained CaffeNet conv1-conv5 weights into the Re3 tower.

Input: the common NumPy dict of converted Caffe weights,
  {'conv1': [W, b], 'conv2': [W, b], ..., 'conv5': [W, b]}
with W in Caffe layout (out, in / groups, kh, kw) and b (out,), saved as a
`.npy` (a pickled dict: np.load(path, allow_pickle=True).item()) or as a
`.npz` with either one object entry per layer ('conv1' -> [W, b]) or two
arrays per layer ('conv1_W' / 'conv1_w' and 'conv1_b'). Extra entries (fc6,
fc7, ...) are ignored: Re3 keeps only the convolutions.

Conversions:
* Layout: (out, in, kh, kw) -> Keras (kh, kw, in, out). Grouped layers
  (conv2, conv4, conv5) need nothing more: Caffe and Keras' Conv2D(groups=g)
  both give output-channel block k the input-channel block k.
* Channel order: Caffe models read BGR; the Re3 tower reads RGB, so conv1's
  input-channel axis is reversed.
* Mean: CaffeNet subtracted the ImageNet mean (about B 104, G 117, R 123
  per channel) from 0..255 pixels; the Re3 model subtracts its own RGB mean
  (123.15, 115.90, 103.06), the same values in RGB order, so by default the
  weights are used as they are (as Re3 did). If `caffe_mean_bgr` is given,
  the difference between the two means is folded into conv1's bias:
  W * (x - m_model) + b' = W * (x - m_caffe) + b with
  b' = b - sum W * (m_caffe - m_model). This is exact because conv1 is VALID
  (no zero padding), so the tower then computes exactly Caffe's conv1.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

CONV_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")


class CaffeNetImportError(ValueError):
  """The weight file is missing an entry or holds a mis-shaped one (named)."""


def read_caffe_weights(path: str) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
  """Reads {'convN': (W, b)} from a .npy dict or .npz file (see module doc)."""
  if not os.path.exists(path):
    raise CaffeNetImportError(f"CaffeNet weight file not found: {path}")
  out: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
  try:
    loaded = np.load(path, allow_pickle=True, encoding="latin1")
  except Exception as e:  # noqa: BLE001 - any reader failure is a bad file
    raise CaffeNetImportError(f"{path}: not a readable .npy/.npz file: {e}") from None
  if isinstance(loaded, np.lib.npyio.NpzFile):
    with loaded:
      keys = set(loaded.files)
      for name in CONV_LAYERS:
        if name in keys:
          out[name] = _pair(loaded[name], path, name)
        else:
          w_key = next((k for k in (f"{name}_W", f"{name}_w", f"{name}/W", f"{name}/weights") if k in keys), None)
          b_key = next((k for k in (f"{name}_b", f"{name}/b", f"{name}/biases") if k in keys), None)
          if w_key and b_key:
            out[name] = (np.asarray(loaded[w_key]), np.asarray(loaded[b_key]))
    return out
  if isinstance(loaded, np.ndarray) and loaded.dtype == object and loaded.shape == ():
    loaded = loaded.item()
  if not isinstance(loaded, dict):
    raise CaffeNetImportError(f"{path}: expected a dict {{'conv1': [W, b], ...}}, got {type(loaded).__name__}")
  for name in CONV_LAYERS:
    if name in loaded:
      out[name] = _pair(loaded[name], path, name)
  return out


def _pair(entry, path: str, name: str) -> Tuple[np.ndarray, np.ndarray]:
  if isinstance(entry, np.ndarray) and entry.dtype == object:
    entry = list(entry)
  if isinstance(entry, dict):
    keys = {k.lower(): k for k in entry}
    w = entry.get(keys.get("weights", keys.get("w", "")))
    b = entry.get(keys.get("biases", keys.get("b", "")))
    entry = [w, b]
  if not isinstance(entry, (list, tuple)) or len(entry) != 2 or entry[0] is None or entry[1] is None:
    raise CaffeNetImportError(f"{path}: entry '{name}' must be [W, b], got {type(entry).__name__}")
  return np.asarray(entry[0]), np.asarray(entry[1])


def caffe_to_keras_kernel(w: np.ndarray) -> np.ndarray:
  """(out, in, kh, kw) -> (kh, kw, in, out)."""
  return np.transpose(w, (2, 3, 1, 0))


def load_caffenet_weights(net, path: str, caffe_mean_bgr: Optional[Sequence[float]] = None,
                          layers: Sequence[str] = CONV_LAYERS) -> Dict[str, Tuple[int, ...]]:
  """Copies conv1-conv5 of a CaffeNet weight file into a built Re3Net.

  Returns {layer: caffe weight shape} of what was loaded. Raises
  CaffeNetImportError naming the layer when an entry is missing or its
  shape does not match the tower of `net.cfg` (e.g. re3_small's narrower
  convolutions cannot take CaffeNet weights). Nothing is assigned unless
  every layer checks out.
  """
  if not net.built:
    net.build()
  weights = read_caffe_weights(path)
  staged = {}
  for name in layers:
    if name not in weights:
      raise CaffeNetImportError(f"{path}: missing entry '{name}' (have {sorted(weights) or 'none'})")
    w, b = weights[name]
    conv = getattr(net, name)
    kh, kw, cin, cout = (int(d) for d in conv.kernel.shape)
    expected = (cout, cin, kh, kw)
    if tuple(w.shape) != expected:
      raise CaffeNetImportError(
          f"{path}: '{name}' weight has shape {tuple(w.shape)}, the model's {name} needs {expected} "
          f"(Caffe layout out, in/groups, kh, kw)")
    if tuple(b.shape) != (cout,):
      raise CaffeNetImportError(f"{path}: '{name}' bias has shape {tuple(b.shape)}, expected ({cout},)")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
      raise CaffeNetImportError(f"{path}: '{name}' holds non-finite values")
    w = w.astype(np.float32)
    b = b.astype(np.float32)
    if name == "conv1":
      if cin != 3:
        raise CaffeNetImportError(f"{path}: 'conv1' must read 3 channels, the model's reads {cin}")
      if caffe_mean_bgr is not None:
        # Fold the mean difference into the bias (exact: conv1 is VALID).
        model_mean_bgr = np.asarray(net.cfg.mean_rgb, np.float64)[::-1]
        delta = np.asarray(caffe_mean_bgr, np.float64) - model_mean_bgr
        b = (b.astype(np.float64) - np.einsum("oikl,i->o", w.astype(np.float64), delta)).astype(np.float32)
      w = w[:, ::-1]  # BGR -> RGB input channels
    staged[name] = (caffe_to_keras_kernel(w), b)
  for name, (k, b) in staged.items():
    conv = getattr(net, name)
    conv.kernel.assign(k)
    conv.bias.assign(b)
  return {name: tuple(weights[name][0].shape) for name in staged}
