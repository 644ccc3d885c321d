"""Custom layers: the peephole LSTM against a NumPy transcription of the Re3
paper's equations 1-6, LRN against Caffe's formula, mean subtraction, and
config round trips."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from model.layers import GroupedConv2D, LocalResponseNorm, MeanSubtract, PeepholeLSTMCell


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _numpy_peephole_step(x, y_prev, c_prev, w, mode, g):
  """Equations 1-6 of the Re3 paper, written out gate by gate in float64."""
  u = y_prev.shape[-1]
  W, R, b = w["kernel"], w["recurrent_kernel"], w["bias"]
  Wi, Wf, Wz, Wo = (W[:, k * u:(k + 1) * u] for k in range(4))
  Ri, Rf, Rz, Ro = (R[:, k * u:(k + 1) * u] for k in range(4))
  bi, bf, bz, bo = (b[k * u:(k + 1) * u] for k in range(4))

  def peep(c, p):
    if mode == "none":
      return 0.0
    return c * p if mode == "diagonal" else c @ p

  z = g(x @ Wz + y_prev @ Rz + bz)                                     # (1)
  i = _sigmoid(x @ Wi + y_prev @ Ri + peep(c_prev, w.get("peephole_i")) + bi)  # (2)
  f = _sigmoid(x @ Wf + y_prev @ Rf + peep(c_prev, w.get("peephole_f")) + bf)  # (3)
  c = i * z + f * c_prev                                               # (4)
  o = _sigmoid(x @ Wo + y_prev @ Ro + peep(c, w.get("peephole_o")) + bo)       # (5)
  y = o * g(c)                                                         # (6)
  return y, c


@pytest.mark.parametrize("mode,activation", [("diagonal", "tanh"), ("full", "tanh"),
                                             ("none", "relu"), ("diagonal", "relu")])
def test_peephole_cell_matches_numpy_equations_step_by_step(mode, activation):
  rng = np.random.default_rng(0)
  n_in, units, batch, steps = 5, 4, 3, 6
  cell = PeepholeLSTMCell(units, peephole=mode, activation=activation)
  cell.build((None, n_in))
  # Random values everywhere (the peepholes and bias too), so that a wrong
  # gate order or a peephole reading the wrong cell state cannot hide.
  weights = {}
  for var in cell.weights:
    name = var.name.split("/")[-1].split(":")[0]
    value = rng.normal(0.0, 0.6, size=var.shape).astype(np.float32)
    var.assign(value)
    weights[name] = value.astype(np.float64)
  g = np.tanh if activation == "tanh" else (lambda v: np.maximum(v, 0.0))
  xs = rng.normal(size=(steps, batch, n_in)).astype(np.float32)
  y = rng.normal(size=(batch, units)).astype(np.float32)
  c = rng.normal(size=(batch, units)).astype(np.float32)
  state = [tf.constant(y), tf.constant(c)]
  y_ref, c_ref = y.astype(np.float64), c.astype(np.float64)
  for t in range(steps):
    out, state = cell(tf.constant(xs[t]), state)
    y_ref, c_ref = _numpy_peephole_step(xs[t].astype(np.float64), y_ref, c_ref, weights, mode, g)
    np.testing.assert_allclose(out.numpy(), y_ref, rtol=1e-5, atol=1e-5, err_msg=f"y at step {t}")
    np.testing.assert_allclose(state[1].numpy(), c_ref, rtol=1e-5, atol=1e-5, err_msg=f"c at step {t}")
    np.testing.assert_array_equal(out.numpy(), state[0].numpy())


def test_peephole_cell_weights_shapes_and_forget_bias():
  cell = PeepholeLSTMCell(3, peephole="diagonal")
  cell.build((None, 7))
  assert cell.kernel.shape == (7, 12) and cell.recurrent_kernel.shape == (3, 12)
  np.testing.assert_array_equal(cell.bias.numpy(), [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
  assert [v.shape for v in (cell.peephole_i, cell.peephole_f, cell.peephole_o)] == [(3,)] * 3
  # Independent initial values per peephole vector (an unseeded initializer
  # instance reused for all three would give identical vectors).
  assert not np.allclose(cell.peephole_i.numpy(), cell.peephole_f.numpy())
  assert cell.count_params() == 4 * 3 * (7 + 3) + 4 * 3 + 3 * 3
  full = PeepholeLSTMCell(3, peephole="full")
  full.build((None, 7))
  assert full.count_params() == 4 * 3 * (7 + 3) + 4 * 3 + 3 * 3 * 3
  none = PeepholeLSTMCell(3, peephole="none")
  none.build((None, 7))
  assert none.count_params() == 4 * 3 * (7 + 3) + 4 * 3


def test_peephole_cell_projected_path_equals_call_and_works_in_keras_rnn():
  rng = np.random.default_rng(1)
  cell = PeepholeLSTMCell(4, peephole="diagonal", forget_bias=0.5)
  x = rng.normal(size=(2, 5, 3)).astype(np.float32)
  rnn = keras.layers.RNN(cell, return_sequences=True)
  seq = rnn(x).numpy()
  state = cell.get_initial_state(batch_size=2)
  proj = cell.project_inputs(x)
  for t in range(5):
    out, state = cell.step_projected(proj[:, t], state)
    np.testing.assert_allclose(out.numpy(), seq[:, t], rtol=1e-5, atol=1e-6)


def test_peephole_cell_rejects_bad_options():
  with pytest.raises(ValueError, match="peephole"):
    PeepholeLSTMCell(3, peephole="diag")
  with pytest.raises(ValueError, match="activation"):
    PeepholeLSTMCell(3, activation="sigmoid")


def test_layer_configs_round_trip():
  for layer in (PeepholeLSTMCell(6, peephole="full", activation="relu", forget_bias=2.0,
                                 kernel_regularizer=keras.regularizers.L2(0.1)),
                LocalResponseNorm(3, 1e-3, 0.5, 2.0), MeanSubtract((1.0, 2.0, 3.0), scale=0.5),
                GroupedConv2D(8, 3, strides=2, padding="same", groups=2, activation="relu")):
    config = keras.saving.serialize_keras_object(layer)
    clone = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


def test_lrn_matches_caffe_formula():
  rng = np.random.default_rng(2)
  x = rng.uniform(0, 50, size=(2, 3, 3, 7)).astype(np.float32)
  out = LocalResponseNorm(depth_radius=2, alpha=2e-5, beta=0.75, bias=1.0)(x).numpy()
  # Caffe: x / (1 + alpha_caffe / n * sum_{window of n=5} x^2)^beta, alpha_caffe = 1e-4.
  ref = np.empty_like(x, dtype=np.float64)
  for ch in range(7):
    lo, hi = max(0, ch - 2), min(7, ch + 3)
    s = np.sum(x[..., lo:hi].astype(np.float64) ** 2, axis=-1)
    ref[..., ch] = x[..., ch] / (1.0 + 1e-4 / 5 * s) ** 0.75
  np.testing.assert_allclose(out, ref, rtol=1e-5)


def test_mean_subtract_accepts_uint8_and_float():
  layer = MeanSubtract((10.0, 20.0, 30.0))
  pixels = np.array([[[[0, 20, 255]]]], np.uint8)
  np.testing.assert_allclose(layer(pixels).numpy(), [[[[-10.0, 0.0, 225.0]]]])
  np.testing.assert_allclose(layer(pixels.astype(np.float32)).numpy(), [[[[-10.0, 0.0, 225.0]]]])
  assert layer(pixels).dtype == tf.float32


@pytest.mark.parametrize("groups,padding,stride", [(2, "same", 1), (4, "valid", 2), (1, "valid", 3)])
def test_grouped_conv_matches_keras_conv2d_and_its_gradient(groups, padding, stride):
  rng = np.random.default_rng(3)
  x = tf.constant(rng.normal(size=(2, 9, 9, 8)).astype(np.float32))
  ours = GroupedConv2D(12, 3, strides=stride, padding=padding, groups=groups, activation="relu")
  ref = keras.layers.Conv2D(12, 3, strides=stride, padding=padding, groups=groups, activation="relu")
  ours.build(x.shape)
  ref.build(x.shape)
  assert ours.kernel.shape == ref.kernel.shape == (3, 3, 8 // groups, 12)
  ref.set_weights(ours.get_weights())
  with tf.GradientTape(persistent=True) as tape:
    a, b = ours(x), ref(x)
    la, lb = tf.reduce_sum(a ** 2), tf.reduce_sum(b ** 2)
  np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(tape.gradient(la, ours.kernel).numpy(), tape.gradient(lb, ref.kernel).numpy(),
                             rtol=1e-4, atol=1e-4)
