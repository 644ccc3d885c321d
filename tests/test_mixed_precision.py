"""Mixed precision (runtime.mixed_precision: mixed_bfloat16 / mixed_float16):
the layers under a mixed Keras policy (LRN in float32, the LSTM's float32
state), Re3 and the RL agent built under each policy (float32 outputs and
state, step == unroll, .keras round trip), and a few training steps of a tiny
Re3 under each policy through the trainer."""

import contextlib

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from configs import experiment
from configs.model import RLAgentConfig, Re3ModelConfig
from model import geometry
from model.layers import LocalResponseNorm, PeepholeLSTMCell
from model.re3 import Re3Net, build_re3
from model.rl_agent import build_rl_agent
from train import re3_task, toy_data, trainer as trainer_lib
from tests.train_helpers import SMOKE, read_log, tiny_overrides

POLICIES = ["mixed_bfloat16", "mixed_float16"]
LOW = {"mixed_bfloat16": tf.bfloat16, "mixed_float16": tf.float16}
# Relative rounding of the low-precision types (8 and 11 significant bits).
EPS = {"mixed_bfloat16": 2.0 ** -8, "mixed_float16": 2.0 ** -11}

TINY = Re3ModelConfig(crop_size=67, conv_filters=(8, 16, 12, 12, 8), conv_groups=(1, 2, 1, 2, 2),
                      skip_filters=(2, 4, 4), fc6_units=24, lstm_units=16)


@contextlib.contextmanager
def policy(name):
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(name)
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


def _crops(rng, *shape, size=67):
  return rng.integers(0, 256, size=shape + (size, size, 3)).astype(np.uint8)


def _mixed_and_float32_re3(name):
  """The same weights in a net built under `name` and in a float32 one."""
  with policy(name):
    mixed = build_re3(TINY)
  ref = build_re3(TINY)
  ref.set_weights(mixed.get_weights())
  return mixed, ref


@pytest.mark.parametrize("name", POLICIES)
def test_lrn_computes_in_float32_and_returns_the_input_dtype(name):
  rng = np.random.default_rng(0)
  # Activations up to 400: their squares overflow float16 (max 65504).
  x = rng.uniform(0, 400, size=(2, 3, 3, 7)).astype(np.float32)
  with policy(name):
    layer = LocalResponseNorm(depth_radius=2, alpha=2e-5, beta=0.75, bias=1.0)
  low = LOW[name]
  out = layer(tf.cast(x, low))
  assert layer.compute_dtype == low.name and out.dtype == low
  want = LocalResponseNorm(depth_radius=2, alpha=2e-5, beta=0.75, bias=1.0)(
      tf.cast(tf.cast(x, low), tf.float32)).numpy()
  got = tf.cast(out, tf.float32).numpy()
  assert np.all(np.isfinite(got))
  np.testing.assert_allclose(got, want, rtol=2 * EPS[name])


@pytest.mark.parametrize("name", POLICIES)
def test_lstm_cell_keeps_a_float32_state_under_a_mixed_policy(name):
  rng = np.random.default_rng(1)
  with policy(name):
    cell = PeepholeLSTMCell(6, peephole="diagonal")
    cell.build((None, 5))
  ref = PeepholeLSTMCell(6, peephole="diagonal")
  ref.build((None, 5))
  ref.set_weights(cell.get_weights())
  assert all(w.dtype == tf.float32 for w in cell.weights)
  xs = rng.normal(size=(4, 3, 5)).astype(np.float32)
  state = ref_state = [tf.zeros([3, 6]), tf.zeros([3, 6])]
  for t in range(4):  # through __call__ (autocast weights)
    y, state = cell(xs[t], state)
    y_ref, ref_state = ref(xs[t], ref_state)
    assert y.dtype == LOW[name] and [s.dtype for s in state] == [tf.float32, tf.float32]
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), y_ref.numpy(), atol=0.05)
    np.testing.assert_allclose(state[1].numpy(), ref_state[1].numpy(), atol=0.05)
  # outside __call__ (the unrolled path reads the float32 variables)
  proj = cell.project_inputs(xs[0])
  assert proj.dtype == LOW[name]
  y2, s2 = cell.step_projected(proj, [tf.zeros([3, 6]), tf.zeros([3, 6])])
  y1, s1 = cell(xs[0], [tf.zeros([3, 6]), tf.zeros([3, 6])])
  np.testing.assert_array_equal(tf.cast(y2, tf.float32).numpy(), tf.cast(y1, tf.float32).numpy())
  assert [s.dtype for s in s2] == [tf.float32, tf.float32]


@pytest.mark.parametrize("name", POLICIES)
def test_re3_under_a_mixed_policy(name, tmp_path):
  net, ref = _mixed_and_float32_re3(name)
  assert net.conv1.compute_dtype == LOW[name].name and net.head.compute_dtype == "float32"
  assert all(v.dtype == tf.float32 for v in net.weights)
  rng = np.random.default_rng(2)
  b, t = 2, 3
  prev, curr = _crops(rng, b, t), _crops(rng, b, t)
  labels, final = net.unroll(prev, curr)
  assert labels.dtype == tf.float32 and all(s.dtype == tf.float32 for s in final)
  # close to the float32 net with the same weights (labels are O(1..10))
  want, _ = ref.unroll(prev, curr)
  np.testing.assert_allclose(labels.numpy(), want.numpy(), atol=0.25)
  # step() == unroll() up to low-precision rounding (lstm2's input matmul is
  # split in two in unroll), and the state dtype is the same at every step
  state = net.zero_state(b)
  for i in range(t):
    out, state = net.step(prev[:, i], curr[:, i], state)
    assert out.dtype == tf.float32 and all(s.dtype == tf.float32 for s in state)
    np.testing.assert_allclose(out.numpy(), labels[:, i].numpy(), atol=0.1)
  for a, s in zip(final, state):
    np.testing.assert_allclose(a.numpy(), s.numpy(), atol=0.05)
  # dynamic T (tf.while_loop: loop variables must keep their dtype)
  spec = tf.TensorSpec([None, None, 67, 67, 3], tf.uint8)
  fn = tf.function(lambda p, c: net.unroll(p, c)[0], input_signature=[spec, spec])
  np.testing.assert_allclose(fn(prev, curr).numpy(), labels.numpy(), atol=1e-3)
  # the self-training unroll of the training step (crops cut in the graph)
  frames = tf.constant(rng.integers(0, 255, size=(b, t + 1, 64, 80, 3)), tf.uint8)
  boxes = tf.constant(np.tile([[20.0, 16.0, 44.0, 40.0]], (b, t + 1, 1)), tf.float32)
  out = re3_task.self_training_unroll(net, frames, boxes, geometry.crop_window_xyxy_tf(boxes[:, :-1]),
                                      tf.constant([True, False]), TINY.crop_size)
  assert out["labels"].dtype == tf.float32 and np.all(np.isfinite(out["labels"].numpy()))
  # .keras round trip: the weights are float32, the file loads as a float32 net
  path = str(tmp_path / "mixed.keras")
  net.save(path)
  loaded = keras.models.load_model(path, safe_mode=True)
  assert isinstance(loaded, Re3Net)
  np.testing.assert_array_equal(loaded.unroll(prev, curr)[0].numpy(), want.numpy())


@pytest.mark.parametrize("name", POLICIES)
def test_rl_agent_step_under_a_mixed_policy(name):
  cfg = RLAgentConfig(lstm_units=16, hidden_units=16)
  with policy(name):
    agent = build_rl_agent(cfg)
  ref = build_rl_agent(cfg)
  ref.set_weights(agent.get_weights())
  rng = np.random.default_rng(3)
  frames = rng.uniform(0, 1, size=(2, 3, 100, 100, 1)).astype(np.float32)
  state = agent.zero_state(2)
  mus = []
  for i in range(3):
    mu, state = agent.step(frames[:, i], state)
    assert mu.dtype == tf.float32 and all(s.dtype == tf.float32 for s in state)
    mus.append(mu.numpy())
  unrolled, final = agent.unroll(frames)
  assert unrolled.dtype == tf.float32 and all(s.dtype == tf.float32 for s in final)
  np.testing.assert_allclose(unrolled.numpy(), np.stack(mus, axis=1), atol=0.1)
  # mu is in pixels (around 50): float32 head, close to the float32 agent
  np.testing.assert_allclose(unrolled.numpy(), ref.unroll(frames)[0].numpy(), atol=0.5)


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("toy_mixed")
  toy_data.write_toy_records(str(out), num_tracks=4, frames=8, height=96, width=128)
  return str(out)


@pytest.mark.parametrize("name", POLICIES)
def test_tiny_re3_trains_a_few_steps_under_a_mixed_policy(name, toy_dir, tmp_path):
  keras.utils.set_random_seed(0)  # the initial weights decide how many fp16 steps overflow
  cfg = experiment.load_experiment(SMOKE, tiny_overrides(toy_dir, steps=4, **{
      "runtime.mixed_precision": name, "trainer.stages": "[{unroll: 2, batch_size: 2}]"}))
  tr = trainer_lib.Trainer(cfg, str(tmp_path / name), re3_task.Re3Task(cfg))
  assert keras.mixed_precision.global_policy().name == "float32"  # restored after the build
  assert tr.model.conv2.dtype_policy.name == name
  assert tr.model.head.dtype_policy.name == "float32"
  assert isinstance(tr.optimizer, keras.mixed_precision.LossScaleOptimizer) == (name == "mixed_float16")
  before = [v.numpy().copy() for v in tr.model.trainable_variables]
  result = tr.train()
  assert result["step"] == 4 and np.isfinite(result["loss"]) and result["applied"] == 1.0
  steps = [e for e in read_log(tmp_path / name) if e["event"] == "step"]
  assert len(steps) == 4 and all(np.isfinite(e["loss"]) for e in steps)
  # the weights moved: with float16 the dynamic loss scale starts at 2^15 and
  # the optimizer skips the first update(s) whose scaled gradients overflow
  # while it halves the scale, then applies the next ones
  assert any(not np.array_equal(a, v.numpy()) for a, v in zip(before, tr.model.trainable_variables))
  assert all(v.dtype == tf.float32 for v in tr.model.trainable_variables)
