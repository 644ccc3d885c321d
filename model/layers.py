"""Keras (tf_keras) layers the trackers need and Keras does not ship.

* `PeepholeLSTMCell`: the LSTM of the Re3 paper's equations 1-6 (Greff et al.
  peepholes: input and forget gates see c_{t-1}, the output gate sees c_t),
  with diagonal or full peephole weights, forget bias 1, and optional ReLU in
  place of tanh (the RL tracker's LSTM, its Figure 2).
* `LocalResponseNorm`: CaffeNet's LRN (tf.nn.local_response_normalization),
  computed in float32 whatever the compute dtype.
* `MeanSubtract`: casts uint8/float crops to float32 and subtracts a per-channel
  mean inside the model, so callers feed raw 0..255 pixels.

* `GroupedConv2D`: Conv2D (same weights, same config) whose grouped case runs
  one tf.nn.conv2d per group. tf_keras' own Conv2D(groups > 1) sends grouped
  convolutions through an XLA-compiled function, which was 20-40% slower on
  CPU here and is awkward for export; per-group convolutions are as fast as
  TF's native grouped kernel forward and faster backward (measured: 16 vs
  26 ms for conv2's gradient at batch 4 on 2 cores).

Mixed precision (`mixed_bfloat16` / `mixed_float16` Keras policies): every
layer computes in its policy's compute dtype with float32 weights, except
where that is wrong or impossible: LRN runs in float32 (CPU has no bfloat16
LRN kernel, and in float16 its sum of squares overflows above ~256), and the
LSTM keeps its gates' nonlinearities and its carried state in the state's
dtype (float32 from the models' zero_state), so only its matmuls run in the
low precision.

Everything is registered with `keras.saving.register_keras_serializable` and
has a complete `get_config`, so models load with `safe_mode=True`.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras

from configs import base as config_base

PACKAGE = "re3"

_ACTIVATIONS = {"tanh": tf.tanh, "relu": tf.nn.relu}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PeepholeLSTMCell(keras.layers.Layer):
  """LSTM cell with peephole connections (Re3 paper, equations 1-6).

    z_t = g(W_z x_t + R_z y_{t-1} + b_z)
    i_t = sigmoid(W_i x_t + R_i y_{t-1} + P_i c_{t-1} + b_i)
    f_t = sigmoid(W_f x_t + R_f y_{t-1} + P_f c_{t-1} + b_f)
    c_t = i_t * z_t + f_t * c_{t-1}
    o_t = sigmoid(W_o x_t + R_o y_{t-1} + P_o c_t + b_o)
    y_t = o_t * g(c_t)

  g is tanh (or ReLU with activation='relu'). P is a per-unit vector
  ('diagonal': P c is an element-wise product), a units x units matrix
  ('full': P c is a matrix product, c @ P) or absent ('none').

  Weights: `kernel` [input_dim, 4 units] and `recurrent_kernel` [units,
  4 units] in gate order (i, f, z, o) as Keras' LSTM; `bias` [4 units] with
  the forget part initialised to `forget_bias`; `peephole_i/f/o`.

  It is a Keras RNN cell (state_size = [units, units], state = [h, c]), and
  also offers `project_inputs` + `step_projected` so an unrolled caller can do
  the input matmul for all time steps at once and only the recurrent matmul
  per step.

  Dtypes (mixed precision): the input and recurrent matmuls run in the
  layer's compute dtype (bfloat16 / float16 under a mixed policy; the weights
  are cast explicitly, so `project_inputs` and `step_projected` also work when
  called outside the layer's __call__). The gate nonlinearities, peepholes and
  the c / h update then run in the dtype of the state passed in, and the new
  state comes back in that same dtype: with the models' float32 zero state
  the carried state stays float32 from step to step (loop-invariant dtypes
  for tf.while_loop and exported signatures, and no rounding of c to 8 bits
  of mantissa every step). The output y is h in the compute dtype, the dtype
  the next layers compute in. Under a float32 policy every cast is a no-op.
  """

  def __init__(self, units: int, peephole: str = "diagonal", activation: str = "tanh",
               forget_bias: float = 1.0, kernel_initializer="glorot_uniform",
               recurrent_initializer="orthogonal", peephole_initializer="glorot_uniform",
               kernel_regularizer=None, recurrent_regularizer=None, **kwargs):
    super().__init__(**kwargs)
    if peephole not in ("diagonal", "full", "none"):
      raise ValueError(f"PeepholeLSTMCell: peephole must be 'diagonal', 'full' or 'none', got {peephole!r}")
    if activation not in _ACTIVATIONS:
      raise ValueError(f"PeepholeLSTMCell: activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    self.units = int(units)
    self.peephole = peephole
    self.activation = activation
    self.forget_bias = float(forget_bias)
    self.kernel_initializer = keras.initializers.get(kernel_initializer)
    self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
    self.peephole_initializer = keras.initializers.get(peephole_initializer)
    self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
    self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
    self.state_size = [self.units, self.units]
    self.output_size = self.units
    self._g = _ACTIVATIONS[activation]

  def build(self, input_shape):
    input_dim = int(input_shape[-1])
    u = self.units

    def fresh(initializer):
      # A new instance per weight: an unseeded Keras initializer instance
      # returns the same values on every call, which would make the three
      # peephole vectors identical.
      return initializer.__class__.from_config(initializer.get_config())

    self.kernel = self.add_weight(
        name="kernel", shape=(input_dim, 4 * u), initializer=fresh(self.kernel_initializer),
        regularizer=self.kernel_regularizer)
    self.recurrent_kernel = self.add_weight(
        name="recurrent_kernel", shape=(u, 4 * u), initializer=fresh(self.recurrent_initializer),
        regularizer=self.recurrent_regularizer)
    forget_bias = self.forget_bias

    def bias_init(shape, dtype=None):
      b = tf.concat([tf.zeros([u]), tf.fill([u], forget_bias), tf.zeros([2 * u])], 0)
      return tf.cast(b, dtype or tf.float32)

    self.bias = self.add_weight(name="bias", shape=(4 * u,), initializer=bias_init)
    if self.peephole == "none":
      self.peephole_i = self.peephole_f = self.peephole_o = None
    else:
      shape = (u,) if self.peephole == "diagonal" else (u, u)

      def peephole(name):
        # Not autocast: peepholes act on the (float32) cell state, so they
        # are read at full precision even inside a mixed-precision __call__.
        return self.add_weight(name=name, shape=shape, initializer=fresh(self.peephole_initializer),
                               experimental_autocast=False)

      self.peephole_i = peephole("peephole_i")
      self.peephole_f = peephole("peephole_f")
      self.peephole_o = peephole("peephole_o")
    self.built = True

  def _peep(self, c, p):
    p = tf.cast(p, c.dtype)
    if self.peephole == "diagonal":
      return c * p
    return tf.matmul(c, p)

  def project_inputs(self, inputs):
    """W x + b for any leading shape [..., input_dim] -> [..., 4 units], in the
    compute dtype."""
    dtype = self.compute_dtype
    inputs = tf.cast(inputs, dtype)
    kernel = tf.cast(self.kernel, dtype)
    bias = tf.cast(self.bias, dtype)
    if inputs.shape.rank == 2:
      return tf.matmul(inputs, kernel) + bias
    return tf.tensordot(inputs, kernel, axes=1) + bias

  def step_projected(self, projected, states):
    """One step from precomputed W x + b: (y, [h, c]); h and c in the dtype
    of the given state, y = h in the compute dtype."""
    h_prev, c_prev = tf.convert_to_tensor(states[0]), tf.convert_to_tensor(states[1])
    state_dtype = c_prev.dtype
    dtype = self.compute_dtype
    gates = tf.cast(projected, dtype) + tf.matmul(tf.cast(h_prev, dtype),
                                                  tf.cast(self.recurrent_kernel, dtype))
    gates = tf.cast(gates, state_dtype)
    gi, gf, gz, go = tf.split(gates, 4, axis=-1)
    if self.peephole != "none":
      gi = gi + self._peep(c_prev, self.peephole_i)
      gf = gf + self._peep(c_prev, self.peephole_f)
    i = tf.sigmoid(gi)
    f = tf.sigmoid(gf)
    c = i * self._g(gz) + f * c_prev
    if self.peephole != "none":
      go = go + self._peep(c, self.peephole_o)
    o = tf.sigmoid(go)
    h = o * self._g(c)
    h = tf.cast(h, h_prev.dtype)
    return tf.cast(h, dtype), [h, c]

  def call(self, inputs, states, training=None):
    return self.step_projected(self.project_inputs(inputs), states)

  def get_initial_state(self, inputs=None, batch_size=None, dtype=None):
    dtype = dtype or tf.float32
    return [tf.zeros([batch_size, self.units], dtype), tf.zeros([batch_size, self.units], dtype)]

  def get_config(self):
    config = super().get_config()
    config.update({
        "units": self.units,
        "peephole": self.peephole,
        "activation": self.activation,
        "forget_bias": self.forget_bias,
        "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
        "peephole_initializer": keras.initializers.serialize(self.peephole_initializer),
        "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)
                              if self.kernel_regularizer else None,
        "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer)
                                 if self.recurrent_regularizer else None,
    })
    return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class GroupedConv2D(keras.layers.Conv2D):
  """keras Conv2D (channels_last, no dilation) with plain per-group convolutions.

  Weights and config are Conv2D's: kernel [kh, kw, in / groups, out], output
  channel block k reads input channel block k (Caffe's grouping too).
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    if self.data_format != "channels_last":
      raise ValueError(f"GroupedConv2D {self.name}: only channels_last is supported")
    if tuple(self.dilation_rate) != (1, 1):
      raise ValueError(f"GroupedConv2D {self.name}: dilation is not supported")

  def call(self, inputs):
    padding = self.padding.upper()
    strides = list(self.strides)
    if self.groups == 1:
      outputs = tf.nn.conv2d(inputs, self.kernel, strides, padding)
    else:
      xs = tf.split(inputs, self.groups, axis=-1)
      ks = tf.split(self.kernel, self.groups, axis=-1)
      outputs = tf.concat([tf.nn.conv2d(x, k, strides, padding) for x, k in zip(xs, ks)], axis=-1)
    if self.use_bias:
      outputs = tf.nn.bias_add(outputs, self.bias)
    if self.activation is not None:
      outputs = self.activation(outputs)
    return outputs


@keras.saving.register_keras_serializable(package=PACKAGE)
class LocalResponseNorm(keras.layers.Layer):
  """CaffeNet's local response normalization across channels.

  TF parameters: depth_radius 2, alpha 2e-5, beta 0.75, bias 1 equal Caffe's
  LRN with local_size 5 and alpha 1e-4 (Caffe divides alpha by the size).
  """

  def __init__(self, depth_radius: int = 2, alpha: float = 2e-5, beta: float = 0.75,
               bias: float = 1.0, **kwargs):
    super().__init__(**kwargs)
    self.depth_radius = int(depth_radius)
    self.alpha = float(alpha)
    self.beta = float(beta)
    self.bias = float(bias)

  def call(self, inputs):
    # Always float32 inside, cast back to the input (compute) dtype: there is
    # no bfloat16 LRN kernel on CPU, and in float16 the squared activations
    # overflow (65504) as soon as one exceeds ~256, as CaffeNet's often do.
    x = tf.cast(inputs, tf.float32)
    y = tf.nn.local_response_normalization(
        x, depth_radius=self.depth_radius, bias=self.bias, alpha=self.alpha, beta=self.beta)
    return tf.cast(y, inputs.dtype)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    config = super().get_config()
    config.update({"depth_radius": self.depth_radius, "alpha": self.alpha,
                   "beta": self.beta, "bias": self.bias})
    return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class MeanSubtract(keras.layers.Layer):
  """Casts pixels (uint8 or float, 0..255) to float32 and subtracts `mean`.

  Done inside the model so every caller (training, tracking, export) feeds the
  same raw crops and cannot forget or double the mean subtraction.
  """

  def __init__(self, mean: Sequence[float] = (0.0, 0.0, 0.0), scale: float = 1.0, **kwargs):
    super().__init__(**kwargs)
    self.mean = [float(m) for m in mean]
    self.scale = float(scale)

  def call(self, inputs):
    x = tf.cast(inputs, tf.float32)
    x = x - tf.constant(self.mean, tf.float32)
    if self.scale != 1.0:
      x = x * self.scale
    return x

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    config = super().get_config()
    config.update({"mean": list(self.mean), "scale": self.scale})
    return config


class ConfigModelMixin:
  """Keras serialization for a model whose whole structure comes from a config
  dataclass held in `self.cfg` and whose `build()` takes no input shape: the
  config is the only thing saved, and loading rebuilds the model from it
  (`.keras` files load with safe_mode=True, no pickled code)."""

  def build_from_config(self, config):
    del config
    self.build()

  def get_build_config(self):
    return {"input_shape": None}

  def get_config(self):
    return {"config": config_base.to_dict(self.cfg), "name": self.name,
            "trainable": self.trainable}

  @classmethod
  def from_config(cls, config, custom_objects=None):
    del custom_objects
    model = cls(**config)
    model.build()
    return model
