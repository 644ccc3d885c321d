"""RL agent: shapes and parameter counts per config, step == unroll, target
encoding, log-probability and the equation 4 reward against hand-computed
values, save/load round trips."""

import math
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from configs.model import RLAgentConfig, load_model_config
from model.rl_agent import RLAgent, build_rl_agent, log_prob, reward, sample_actions

REPO = pathlib.Path(__file__).resolve().parents[1]


def _expected_params(cfg):
  """By hand from the paper's layer list (same padding: 100 -> 50 -> 25)."""
  conv1 = 5 * 5 * cfg.channels * 8 + 8
  conv2 = 5 * 5 * 8 * 16 + 16
  feat = 25 * 25 * 16
  lstm = 4 * 256 * (feat + 256) + 4 * 256           # no peepholes
  hidden = 256 * 256 + 256
  out = 256 * cfg.output_dim + cfg.output_dim
  return conv1 + conv2 + lstm + hidden + out


@pytest.mark.parametrize("variant,dim", [("fixed", 2), ("scalable", 3), ("noisy", 3)])
def test_paper_configs_shapes_and_parameter_counts(variant, dim):
  task, cfg = load_model_config(str(REPO / f"configs/drlt_mnist_{variant}.yaml"))
  assert task == "rl_agent" and cfg.output_dim == dim and cfg.sigma == 1.0
  assert cfg.feature_shape() == (25, 25, 16)
  agent = build_rl_agent(cfg)
  assert agent.count_params() == _expected_params(cfg)
  frames = np.random.default_rng(0).random((2, 3, 100, 100, 1), dtype=np.float32)
  mu, (h, c) = agent.unroll(frames)
  assert mu.shape == (2, 3, dim) and h.shape == (2, 256) and c.shape == (2, 256)
  assert agent.lstm.activation == "relu" and agent.lstm.peephole == "none"
  # The untrained policy points at the canvas centre (and the digit size).
  np.testing.assert_allclose(agent.mu_layer.bias.numpy(), [50.0, 50.0, 28.0][:dim])


def test_unroll_equals_steps_and_call():
  cfg = RLAgentConfig(output_dim=3, frame_size=24, conv_filters=(4, 6), lstm_units=8, hidden_units=8)
  agent = build_rl_agent(cfg)
  rng = np.random.default_rng(1)
  frames = rng.random((2, 5, 24, 24, 1), dtype=np.float32)
  state0 = tuple(tf.constant(rng.random((2, 8), dtype=np.float32)) for _ in range(2))
  mu, final = agent.unroll(frames, state0)
  state = state0
  for t in range(5):
    m, state = agent.step(frames[:, t], state)
    np.testing.assert_allclose(mu[:, t].numpy(), m.numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(final[1].numpy(), state[1].numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(agent(frames).numpy(), agent.unroll(frames)[0].numpy(), rtol=1e-6)
  spec = tf.TensorSpec([None, None, 24, 24, 1], tf.float32)
  fn = tf.function(lambda f: agent.unroll(f)[0], input_signature=[spec])
  np.testing.assert_allclose(fn(frames).numpy(), agent(frames).numpy(), rtol=1e-5, atol=1e-5)
  # uint8 frames are scaled to 0..1 like float ones.
  as_u8 = np.round(frames * 255).astype(np.uint8)
  np.testing.assert_allclose(agent(as_u8).numpy(), agent(as_u8.astype(np.float32) / 255).numpy(),
                             rtol=1e-6, atol=1e-5)


def test_log_prob_against_hand_computed_values_and_gradient():
  actions = tf.constant([[1.0, 2.0], [3.0, 4.0]])
  mu = tf.Variable([[0.0, 0.0], [3.0, 2.0]])
  # Row 0, sigma 1: -(1 + 4) / 2 - 2 * 0.5 * log(2 pi); row 1: -(0 + 4) / 2 - log(2 pi).
  expected = [-2.5 - math.log(2 * math.pi), -2.0 - math.log(2 * math.pi)]
  np.testing.assert_allclose(log_prob(actions, mu, 1.0).numpy(), expected, rtol=1e-6)
  # sigma 2: z = (0.5, 1): -0.625 - 2 log 2 - log(2 pi).
  np.testing.assert_allclose(log_prob([1.0, 2.0], [0.0, 0.0], 2.0).numpy(),
                             -0.625 - 2 * math.log(2) - math.log(2 * math.pi), rtol=1e-6)
  # Gradient w.r.t. mu: (l - mu) / sigma^2 (paper eq. 10).
  with tf.GradientTape() as tape:
    lp = tf.reduce_sum(log_prob(actions, mu, 2.0))
  np.testing.assert_allclose(tape.gradient(lp, mu).numpy(), [[0.25, 0.5], [0.0, 0.5]], rtol=1e-6)


def test_reward_is_equation_4():
  # |l - g| = (2, 3, 0): mean 5/3, max 3.
  np.testing.assert_allclose(reward([3.0, 4.0, 10.0], [1.0, 1.0, 10.0]).numpy(), -5 / 3 - 3, rtol=1e-6)
  r = reward(np.zeros((2, 4, 2)), np.ones((2, 4, 2)) * [1.0, -3.0]).numpy()
  assert r.shape == (2, 4)
  np.testing.assert_allclose(r, -2.0 - 3.0)
  assert float(reward([5.0, 5.0], [5.0, 5.0])) == 0.0


def test_sampled_actions_follow_the_policy():
  mu = tf.fill([20000, 2], 7.0)
  a = sample_actions(mu, 1.5, seed=tf.constant([1, 2])).numpy()
  assert abs(a.mean() - 7.0) < 0.05 and abs(a.std() - 1.5) < 0.05
  np.testing.assert_array_equal(a, sample_actions(mu, 1.5, seed=tf.constant([1, 2])).numpy())


def test_encode_and_decode_boxes():
  boxes = np.array([[10.0, 20.0, 38.0, 48.0], [0.0, 0.0, 20.0, 30.0]])
  fixed = build_rl_agent(RLAgentConfig(output_dim=2, fixed_side=28.0, frame_size=16, conv_filters=(2,),
                                       lstm_units=4, hidden_units=4))
  np.testing.assert_allclose(fixed.encode_boxes(boxes).numpy(), [[24, 34], [10, 15]])
  np.testing.assert_allclose(fixed.decode_actions([[24.0, 34.0]]).numpy(), [[10, 20, 38, 48]])
  scal = build_rl_agent(RLAgentConfig(output_dim=3, frame_size=16, conv_filters=(2,),
                                      lstm_units=4, hidden_units=4))
  targets = scal.encode_boxes(boxes).numpy()
  np.testing.assert_allclose(targets, [[24, 34, 28], [10, 15, 25]])
  np.testing.assert_allclose(scal.decode_actions(targets[:1]).numpy(), [[10, 20, 38, 48]])
  assert scal.encode_boxes(np.zeros((2, 3, 4))).shape == (2, 3, 3)


def test_keras_file_and_checkpoint_round_trip(tmp_path):
  cfg = RLAgentConfig(output_dim=3, frame_size=20, conv_filters=(3, 4), lstm_units=6, hidden_units=5)
  agent = build_rl_agent(cfg)
  frames = np.random.default_rng(2).random((1, 3, 20, 20, 1), dtype=np.float32)
  expected = agent(frames).numpy()
  path = str(tmp_path / "agent.keras")
  agent.save(path)
  loaded = keras.models.load_model(path, safe_mode=True)
  assert isinstance(loaded, RLAgent) and loaded.cfg == cfg
  np.testing.assert_array_equal(loaded(frames).numpy(), expected)
  ckpt = tf.train.Checkpoint(model=agent).save(str(tmp_path / "ckpt"))
  fresh = build_rl_agent(cfg)
  tf.train.Checkpoint(model=fresh).restore(ckpt).assert_existing_objects_matched()
  np.testing.assert_array_equal(fresh(frames).numpy(), expected)
  # SavedModel export of a step function (what tracking export does).
  module = tf.Module()
  module.agent = agent
  spec = [tf.TensorSpec([None, 20, 20, 1], tf.float32)] + [tf.TensorSpec([None, 6], tf.float32)] * 2
  module.step = tf.function(lambda f, h, c: agent.step(f, (h, c))[0], input_signature=spec)
  tf.saved_model.save(module, str(tmp_path / "saved"))
  reloaded = tf.saved_model.load(str(tmp_path / "saved"))
  zeros = np.zeros((1, 6), np.float32)
  np.testing.assert_allclose(reloaded.step(frames[:, 0], zeros, zeros).numpy(), expected[:, 0],
                             rtol=1e-5, atol=1e-5)
