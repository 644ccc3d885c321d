"""CaffeNet import: a weight file with known values, in Caffe layout and BGR
order, loaded into the tower must reproduce a direct NumPy convolution of
Caffe's own computation; bad files fail naming the layer."""

import numpy as np
import pytest

from configs.model import Re3ModelConfig
from model.towers.caffenet_import import CaffeNetImportError, load_caffenet_weights, read_caffe_weights
from model.re3 import build_re3

CFG = Re3ModelConfig(crop_size=67, conv_filters=(8, 16, 12, 12, 8), conv_groups=(1, 2, 1, 2, 2),
                     skip_filters=(2, 2, 2), fc6_units=8, lstm_units=4)
CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)


def _caffe_weights(cfg, rng):
  """{'convN': [W (out, in/groups, kh, kw), b]} plus an unrelated fc6 entry."""
  out, cin = {}, 3
  for n, (f, k, g) in enumerate(zip(cfg.conv_filters, cfg.conv_kernels, cfg.conv_groups), start=1):
    w = rng.normal(0.0, 0.05, size=(f, cin // g, k, k)).astype(np.float32)
    out[f"conv{n}"] = [w, rng.normal(0.0, 0.5, size=(f,)).astype(np.float32)]
    cin = f
  out["fc6"] = [np.zeros((3, 2), np.float32), np.zeros(3, np.float32)]
  return out


def _numpy_conv(x, w, b, stride, pad, groups):
  """Caffe convolution: x [H, W, C] (float64), w (out, in/g, kh, kw), ReLU after."""
  x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
  f, cin_g, kh, kw = w.shape
  oh = (x.shape[0] - kh) // stride + 1
  ow = (x.shape[1] - kw) // stride + 1
  out = np.zeros((oh, ow, f))
  fg = f // groups
  for g in range(groups):
    xs = x[..., g * cin_g:(g + 1) * cin_g]
    wg = w[g * fg:(g + 1) * fg]
    for i in range(oh):
      for j in range(ow):
        patch = xs[i * stride:i * stride + kh, j * stride:j * stride + kw]   # kh, kw, cin_g
        out[i, j, g * fg:(g + 1) * fg] = np.einsum("klc,ockl->o", patch, wg)
  return np.maximum(out + b, 0.0)


@pytest.mark.parametrize("container", ["npy", "npz"])
def test_imported_tower_matches_numpy_caffe_convolutions(tmp_path, container):
  rng = np.random.default_rng(0)
  weights = _caffe_weights(CFG, rng)
  if container == "npy":
    path = tmp_path / "caffenet.npy"
    np.save(path, weights, allow_pickle=True)
  else:
    path = tmp_path / "caffenet.npz"
    np.savez(path, **{f"{k}_W": v[0] for k, v in weights.items()}, **{f"{k}_b": v[1] for k, v in weights.items()})
  net = build_re3(CFG)
  loaded = load_caffenet_weights(net, str(path), caffe_mean_bgr=CAFFE_MEAN_BGR)
  assert loaded["conv2"] == (16, 4, 5, 5)
  rgb = rng.integers(0, 256, size=(1, 67, 67, 3)).astype(np.uint8)
  ends = {k: v.numpy()[0].astype(np.float64) for k, v in net.tower_endpoints(rgb).items()}

  # Caffe's view of the same image: BGR, minus the Caffe mean.
  bgr = rgb[0, ..., ::-1].astype(np.float64) - np.asarray(CAFFE_MEAN_BGR)
  w = {k: (v[0].astype(np.float64), v[1].astype(np.float64)) for k, v in weights.items()}
  conv1 = _numpy_conv(bgr, *w["conv1"], stride=4, pad=0, groups=1)
  np.testing.assert_allclose(ends["conv1"], conv1, rtol=1e-4, atol=1e-3)
  # The grouped layers, each from the model's own input to that layer.
  conv2 = _numpy_conv(ends["norm1"], *w["conv2"], stride=1, pad=2, groups=2)
  np.testing.assert_allclose(ends["conv2"], conv2, rtol=1e-4, atol=1e-4)
  conv3 = _numpy_conv(ends["norm2"], *w["conv3"], stride=1, pad=1, groups=1)
  np.testing.assert_allclose(ends["conv3"], conv3, rtol=1e-4, atol=1e-4)
  conv5 = _numpy_conv(ends["conv4"], *w["conv5"], stride=1, pad=1, groups=2)
  np.testing.assert_allclose(ends["conv5"], conv5, rtol=1e-4, atol=1e-4)


def test_without_mean_folding_the_model_mean_is_used(tmp_path):
  rng = np.random.default_rng(1)
  weights = _caffe_weights(CFG, rng)
  path = tmp_path / "caffenet.npy"
  np.save(path, weights, allow_pickle=True)
  net = build_re3(CFG)
  load_caffenet_weights(net, str(path))
  np.testing.assert_array_equal(net.conv1.bias.numpy(), weights["conv1"][1])
  # Kernel is the Caffe kernel transposed, with input channels reversed (BGR -> RGB).
  np.testing.assert_array_equal(net.conv1.kernel.numpy()[..., 0, :], weights["conv1"][0][:, 2].transpose(1, 2, 0))
  np.testing.assert_array_equal(net.conv4.kernel.numpy(), weights["conv4"][0].transpose(2, 3, 1, 0))


def test_missing_or_misshaped_entries_name_the_layer(tmp_path):
  rng = np.random.default_rng(2)
  weights = _caffe_weights(CFG, rng)
  net = build_re3(CFG)
  before = net.conv1.kernel.numpy().copy()
  missing = dict(weights)
  del missing["conv3"]
  path = tmp_path / "missing.npy"
  np.save(path, missing, allow_pickle=True)
  with pytest.raises(CaffeNetImportError, match=r"missing.npy.*'conv3'"):
    load_caffenet_weights(net, str(path))
  bad = dict(weights)
  bad["conv4"] = [weights["conv4"][0][:, :3], weights["conv4"][1]]
  path = tmp_path / "bad.npy"
  np.save(path, bad, allow_pickle=True)
  with pytest.raises(CaffeNetImportError, match=r"'conv4' weight has shape \(12, 3, 3, 3\).*\(12, 6, 3, 3\)"):
    load_caffenet_weights(net, str(path))
  bad = dict(weights)
  bad["conv2"] = [weights["conv2"][0], np.zeros(5, np.float32)]
  np.save(path, bad, allow_pickle=True)
  with pytest.raises(CaffeNetImportError, match=r"'conv2' bias"):
    load_caffenet_weights(net, str(path))
  # Nothing was assigned by the failed imports.
  np.testing.assert_array_equal(net.conv1.kernel.numpy(), before)
  with pytest.raises(CaffeNetImportError, match="not found"):
    read_caffe_weights(str(tmp_path / "nope.npy"))
  (tmp_path / "junk.npy").write_bytes(b"not numpy")
  with pytest.raises(CaffeNetImportError, match="junk.npy"):
    read_caffe_weights(str(tmp_path / "junk.npy"))
