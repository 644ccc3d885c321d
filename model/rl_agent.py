"""The CNN + LSTM + REINFORCE tracking agent of the RL tracker paper.

    frame_t ─ conv 8@5x5 ─ pool 2 ─ ReLU ─ conv 16@5x5 ─ pool 2 ─ ReLU ─ flatten
            ─ LSTM 256 (ReLU activations) ─ dense 256 ReLU ─ linear D = mu_t

The action l_t is drawn from N(mu_t, sigma^2 I) during training (fixed sigma,
paper: 1) and is mu_t at test time. D = 2 (x, y: fixed-size targets) or
D = 3 (x, y, side: scalable targets).

Target encoding, chosen here: pixels of the frame (the 100x100 canvas),
(cx, cy) or (cx, cy, side), side = (w + h) / 2 of the box. Pixels make the
paper's sigma = 1 mean one pixel and make the equation 4 reward read in
pixels, the unit of the paper's reported errors. To keep the initial policy
sensible in these units the output layer's bias starts at the canvas centre
(and `fixed_side` for the side), so an untrained agent guesses the middle of
the frame with the usual MNIST digit size rather than (0, 0).

Interface (used by training, tracking and export):

  agent = build_rl_agent(cfg)
  state = agent.zero_state(batch)                     # (h, c), [B, lstm_units]
  mu, state = agent.step(frames, state)               # [B, H, W, C] in 0..1 -> [B, D]
  mu, state = agent.unroll(frames, state)             # [B, T, H, W, C] -> [B, T, D]
  targets = agent.encode_boxes(boxes_xyxy)            # [..., 4] -> [..., D]
  boxes = agent.decode_actions(actions)               # [..., D] -> [..., 4] xyxy
  actions = sample_actions(mu, sigma, episodes=n)     # l ~ N(mu, sigma^2 I), [n, ...]
  log_prob(actions, mu, sigma), reward(actions, targets)   # -> [...]

Mixed precision: built under a mixed Keras policy, the CNN, LSTM matmuls and
hidden layer compute in bfloat16 / float16 with float32 weights; the LSTM
state stays float32 and mu is computed in float32 (see model.layers).
"""

from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import tensorflow as tf
import tf_keras as keras

from configs import base
from configs.model import RLAgentConfig
from model import geometry
from model.layers import PACKAGE, ConfigModelMixin, PeepholeLSTMCell

State = Tuple[tf.Tensor, tf.Tensor]


def log_prob(actions, mu, sigma) -> tf.Tensor:
  """log N(actions; mu, sigma^2 I), summed over the last axis -> [...].

  Its gradient w.r.t. mu is (actions - mu) / sigma^2 (paper eq. 10), which is
  what REINFORCE needs: loss = -sum_t (R_t - b_t) * log_prob(l_t, mu_t, sigma)
  with l_t held constant (tf.stop_gradient).
  """
  actions = tf.cast(actions, tf.float32)
  mu = tf.cast(mu, tf.float32)
  sigma = tf.cast(sigma, tf.float32)
  z = (actions - mu) / sigma
  per_dim = -0.5 * tf.square(z) - tf.math.log(sigma) - 0.5 * math.log(2.0 * math.pi)
  return tf.reduce_sum(per_dim, axis=-1)


def reward(actions, targets) -> tf.Tensor:
  """Paper eq. 4: r = -mean|l - g| - max|l - g| over the last axis -> [...]."""
  err = tf.abs(tf.cast(actions, tf.float32) - tf.cast(targets, tf.float32))
  return -tf.reduce_mean(err, axis=-1) - tf.reduce_max(err, axis=-1)


def sample_actions(mu, sigma, seed=None, episodes: Optional[int] = None,
                   noise=None) -> tf.Tensor:
  """Draws l ~ N(mu, sigma^2 I) as mu + sigma * noise: shaped like mu, or
  [episodes, *mu.shape] (independent draws) when `episodes` is given. The
  standard-normal noise is stateless when `seed` is a shape-[2] int tensor;
  `noise` of the output's shape replaces the draw."""
  mu = tf.cast(mu, tf.float32)
  shape = tf.shape(mu)
  if episodes is not None:
    shape = tf.concat([[episodes], shape], axis=0)
    mu = mu[None]
  if noise is None:
    noise = tf.random.normal(shape) if seed is None else tf.random.stateless_normal(shape, seed)
  return mu + tf.cast(sigma, tf.float32) * tf.cast(noise, tf.float32)


@keras.saving.register_keras_serializable(package=PACKAGE)
class RLAgent(ConfigModelMixin, keras.Model):
  """Recurrent convolutional tracking agent (CNN + ReLU LSTM + Gaussian policy)."""

  def __init__(self, config: Union[RLAgentConfig, dict, None] = None, **kwargs):
    super().__init__(**kwargs)
    self.cfg = base.as_config(RLAgentConfig, config, prefix="model")
    cfg = self.cfg
    reg = keras.regularizers.L2(cfg.weight_decay) if cfg.weight_decay > 0 else None
    self.convs = []
    self.pools = []
    for n, filters in enumerate(cfg.conv_filters, start=1):
      self.convs.append(keras.layers.Conv2D(filters, cfg.conv_kernel, padding=cfg.conv_padding,
                                            kernel_initializer="he_normal", kernel_regularizer=reg,
                                            name=f"conv{n}"))
      self.pools.append(keras.layers.MaxPool2D(cfg.pool_size, cfg.pool_size, padding="valid",
                                               name=f"pool{n}"))
    self.lstm = PeepholeLSTMCell(cfg.lstm_units, peephole="none", activation=cfg.lstm_activation,
                                 forget_bias=1.0, kernel_regularizer=reg,
                                 recurrent_regularizer=reg, name="lstm")
    self.hidden = keras.layers.Dense(cfg.hidden_units, activation="relu",
                                     kernel_initializer="he_normal", kernel_regularizer=reg,
                                     name="rl_hidden")
    centre = [cfg.frame_size / 2.0, cfg.frame_size / 2.0, cfg.fixed_side][:cfg.output_dim]
    # mu computes in float32 under any policy (pixels: bfloat16 would round
    # a centre near 100 to steps of half a pixel, half the paper's sigma).
    self.mu_layer = keras.layers.Dense(cfg.output_dim, bias_initializer=keras.initializers.Constant(centre),
                                       kernel_regularizer=reg, name="rl_mu", dtype="float32")

  # ---------------------------------------------------------------- building

  def build(self, input_shape=None):
    if self.built:
      return
    cfg = self.cfg
    s, ch = cfg.frame_size, cfg.channels
    for conv, pool in zip(self.convs, self.pools):
      conv.build((None, s, s, ch))
      if cfg.conv_padding == "valid":
        s = s - cfg.conv_kernel + 1
      ch = conv.filters
      pool.built = True
      s = (s - cfg.pool_size) // cfg.pool_size + 1
    fh, fw, fc = cfg.feature_shape()
    self.lstm.build((None, fh * fw * fc))
    self.hidden.build((None, cfg.lstm_units))
    self.mu_layer.build((None, cfg.hidden_units))
    # As a first call would: lets SavedModel export trace call().
    self._set_save_spec(tf.TensorSpec([None, None, cfg.frame_size, cfg.frame_size, cfg.channels], tf.float32))
    self.built = True

  # ---------------------------------------------------------------- network

  @property
  def sigma(self) -> float:
    return self.cfg.sigma

  def features(self, frames) -> tf.Tensor:
    """CNN features of frames [N, H, W, C] (float 0..1, or uint8 0..255) -> [N, F]."""
    x = tf.convert_to_tensor(frames)
    if x.dtype == tf.uint8:
      x = tf.cast(x, tf.float32) / 255.0
    x = tf.cast(x, tf.float32)
    for conv, pool in zip(self.convs, self.pools):
      x = tf.nn.relu(pool(conv(x)))
    return tf.reshape(x, [tf.shape(x)[0], -1])

  def zero_state(self, batch_size) -> State:
    z = tf.zeros([batch_size, self.cfg.lstm_units], tf.float32)
    return (z, z)

  def step(self, frames, state: State, training: bool = False):
    """One frame per sequence: frames [B, H, W, C] -> (mu [B, D], new state)."""
    h, c = state
    y, (h, c) = self.lstm(self.features(frames), [h, c])
    return self.mu_layer(self.hidden(y)), (h, c)

  def unroll(self, frames, initial_state: Optional[State] = None, training: bool = False):
    """T frames: [B, T, H, W, C] -> (mu [B, T, D], final state); equals T steps.

    The CNN runs once on all B*T frames and the LSTM input matmul once on all
    steps; only the recurrent part loops.
    """
    frames = tf.convert_to_tensor(frames)
    shape = tf.shape(frames)
    b, t = shape[0], shape[1]
    s, ch = self.cfg.frame_size, self.cfg.channels
    feats = self.features(tf.reshape(frames, [-1, s, s, ch]))
    xp = tf.reshape(self.lstm.project_inputs(feats), [b, t, -1])
    h, c = initial_state if initial_state is not None else self.zero_state(b)
    static_t = frames.shape[1]
    if static_t is not None:
      ys = []
      for i in range(static_t):
        y, (h, c) = self.lstm.step_projected(xp[:, i], [h, c])
        ys.append(y)
      ys = tf.stack(ys, axis=1)
    else:
      ta = tf.TensorArray(self.lstm.compute_dtype, size=t)

      def loop(i, ta, h, c):
        y, (h, c) = self.lstm.step_projected(xp[:, i], [h, c])
        return i + 1, ta.write(i, y), h, c

      _, ta, h, c = tf.while_loop(lambda i, *_: i < t, loop, (tf.constant(0), ta, h, c))
      ys = tf.transpose(ta.stack(), [1, 0, 2])
    return self.mu_layer(self.hidden(ys)), (h, c)

  def call(self, frames, training=False):
    mu, _ = self.unroll(frames, None, training=training)
    return mu

  # ---------------------------------------------------------------- encoding

  def encode_boxes(self, boxes_xyxy) -> tf.Tensor:
    """Boxes xyxy pixels [..., 4] -> policy targets [..., D]: (cx, cy[, side]) pixels."""
    xywh = geometry.xyxy_to_xywh_tf(tf.cast(boxes_xyxy, tf.float32))
    centre = xywh[..., :2] + xywh[..., 2:4] / 2.0
    if self.cfg.output_dim == 2:
      return centre
    side = tf.reduce_mean(xywh[..., 2:4], axis=-1, keepdims=True)
    return tf.concat([centre, side], axis=-1)

  def decode_actions(self, actions) -> tf.Tensor:
    """Actions [..., D] -> boxes xyxy pixels [..., 4] (D = 2 uses cfg.fixed_side)."""
    actions = tf.cast(actions, tf.float32)
    centre = actions[..., :2]
    if self.cfg.output_dim == 2:
      side = tf.fill(tf.shape(actions[..., :1]), tf.constant(self.cfg.fixed_side, tf.float32))
    else:
      side = actions[..., 2:3]
    size = tf.concat([side, side], axis=-1)
    return geometry.xywh_to_xyxy_tf(tf.concat([centre - size / 2.0, size], axis=-1))


def build_rl_agent(cfg: Union[RLAgentConfig, dict, None] = None, name: str = "rl_agent") -> RLAgent:
  """An RLAgent with every weight created."""
  agent = RLAgent(cfg if cfg is not None else RLAgentConfig(), name=name)
  agent.build()
  return agent
