"""Re3Net: sizes and parameter counts of every config (the paper's exactly),
step == unroll, input dtypes, save/load round trips, config errors."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from configs.base import ConfigError
from configs.model import Re3ModelConfig, load_model_config
from model.re3 import Re3Net, build_re3, count_parameters

REPO = pathlib.Path(__file__).resolve().parents[1]
PAPER_TOTAL = 183_719_012

# A tiny tower (67x67 crops) with every feature of the real one: grouped
# convolutions, LRN, three skips, both LSTMs; fast enough for many checks.
TINY = Re3ModelConfig(crop_size=67, conv_filters=(8, 16, 12, 12, 8), conv_groups=(1, 2, 1, 2, 2),
                      skip_filters=(2, 4, 4), fc6_units=24, lstm_units=16)


def _crops(rng, *shape, size=67):
  return rng.integers(0, 256, size=shape + (size, size, 3)).astype(np.uint8)


def _random_state(rng, batch, units):
  return tuple(tf.constant(rng.normal(size=(batch, units)).astype(np.float32)) for _ in range(4))


def test_paper_config_sizes_and_parameter_count_from_shapes():
  task, cfg = load_model_config(str(REPO / "configs/re3_paper.yaml"))
  assert task == "re3"
  assert cfg == Re3ModelConfig()  # the dataclass defaults are the paper
  sh = cfg.tower_shapes()
  assert sh["conv1"] == (55, 55, 96) and sh["norm1"] == (27, 27, 96)
  assert sh["norm2"] == (13, 13, 256) and sh["conv5"] == (13, 13, 256) and sh["pool5"] == (6, 6, 256)
  assert cfg.features_per_crop() == 11_664 + 5_408 + 10_816 + 9_216 == 37_104
  counts = count_parameters(cfg)
  assert counts == {"tower": 2_334_080, "skips": 26_336, "fc6": 151_980_032, "lstm1": 12_590_080,
                    "lstm2": 16_784_384, "head": 4_100, "total": PAPER_TOTAL}
  full = Re3ModelConfig(peephole="full")
  assert count_parameters(full)["total"] == 190_004_324


@pytest.mark.slow
def test_paper_model_builds_with_exact_parameter_count():
  """One real build of the paper model (735 MB of float32 weights)."""
  _, cfg = load_model_config(str(REPO / "configs/re3_paper.yaml"))
  net = build_re3(cfg)
  assert net.count_params() == PAPER_TOTAL
  assert net.fc6.kernel.shape == (74_208, 2048)
  assert net.lstm2.kernel.shape == (2048 + 1024, 4 * 1024)
  assert net.conv2.kernel.shape == (5, 5, 48, 256)  # 2 groups
  step = tf.function(net.step)
  crops = np.zeros((1, 227, 227, 3), np.uint8)
  labels, state = step(crops, crops, net.zero_state(1))
  assert labels.shape == (1, 4) and all(s.shape == (1, 1024) for s in state)
  assert np.all(np.isfinite(labels.numpy()))


def test_small_config_builds_and_runs_with_expected_shapes():
  task, cfg = load_model_config(str(REPO / "configs/re3_small.yaml"))
  assert task == "re3" and cfg.crop_size == 227
  net = build_re3(cfg)
  assert net.count_params() == count_parameters(cfg)["total"]
  rng = np.random.default_rng(0)
  prev, curr = _crops(rng, 2, 3, size=227), _crops(rng, 2, 3, size=227)
  labels = net((prev, curr))
  assert labels.shape == (2, 3, 4) and labels.dtype == tf.float32
  out, state = net.step(prev[:, 0], curr[:, 0], net.zero_state(2))
  assert out.shape == (2, 4) and len(state) == 4
  assert all(s.shape == (2, cfg.lstm_units) and s.dtype == tf.float32 for s in state)
  # The skips' regularisation losses are exposed for the training loss.
  assert len(net.losses) > 0 and float(tf.add_n(net.losses)) > 0


def test_every_block_has_its_counted_parameters():
  net = build_re3(TINY)
  counts = count_parameters(TINY)
  tower = sum(getattr(net, f"conv{k}").count_params() for k in range(1, 6))
  skips = sum(l.count_params() for l in net.skip_convs + net.skip_prelus)
  assert tower == counts["tower"] and skips == counts["skips"]
  assert net.fc6.count_params() == counts["fc6"]
  assert net.lstm1.count_params() == counts["lstm1"] and net.lstm2.count_params() == counts["lstm2"]
  assert net.head.count_params() == counts["head"]
  assert net.count_params() == counts["total"]
  # PReLU slopes start at 0.25 and are per channel.
  assert net.skip_prelus[1].alpha.shape == (1, 1, 4)
  np.testing.assert_allclose(net.skip_prelus[1].alpha.numpy(), 0.25)


def test_crop_features_concatenate_skips_then_pool5_in_order():
  net = build_re3(TINY)
  rng = np.random.default_rng(1)
  crops = _crops(rng, 2)
  feats = net.crop_features(crops).numpy()
  ends = net.tower_endpoints(crops)
  expected = []
  for conv, prelu, src in zip(net.skip_convs, net.skip_prelus, ("norm1", "norm2", "conv5")):
    expected.append(prelu(conv(ends[src])).numpy().reshape(2, -1))
  expected.append(ends["pool5"].numpy().reshape(2, -1))
  assert feats.shape == (2, TINY.features_per_crop())
  np.testing.assert_allclose(feats, np.concatenate(expected, axis=1), rtol=1e-6, atol=1e-6)


def test_unroll_equals_repeated_steps_from_a_given_state():
  net = build_re3(TINY)
  rng = np.random.default_rng(2)
  b, t = 2, 4
  prev, curr = _crops(rng, b, t), _crops(rng, b, t)
  state0 = _random_state(rng, b, TINY.lstm_units)
  labels, final = net.unroll(prev, curr, state0)
  state = state0
  for i in range(t):
    out, state = net.step(prev[:, i], curr[:, i], state)
    np.testing.assert_allclose(labels[:, i].numpy(), out.numpy(), rtol=1e-4, atol=1e-5)
  for a, s in zip(final, state):
    np.testing.assert_allclose(a.numpy(), s.numpy(), rtol=1e-4, atol=1e-5)
  # call() is unroll from the zero state.
  np.testing.assert_allclose(net((prev, curr)).numpy(), net.unroll(prev, curr)[0].numpy(), rtol=1e-6)


def test_unroll_with_dynamic_time_length_in_tf_function():
  net = build_re3(TINY)
  rng = np.random.default_rng(3)
  prev, curr = _crops(rng, 1, 3), _crops(rng, 1, 3)
  spec = tf.TensorSpec([None, None, 67, 67, 3], tf.uint8)
  fn = tf.function(lambda p, c: net.unroll(p, c)[0], input_signature=[spec, spec])
  np.testing.assert_allclose(fn(prev, curr).numpy(), net.unroll(prev, curr)[0].numpy(),
                             rtol=1e-5, atol=1e-6)


def test_uint8_and_float_crops_give_the_same_output():
  net = build_re3(TINY)
  rng = np.random.default_rng(4)
  prev, curr = _crops(rng, 2), _crops(rng, 2)
  s = net.zero_state(2)
  a, _ = net.step(prev, curr, s)
  b, _ = net.step(prev.astype(np.float32), curr.astype(np.float32), s)
  c, _ = net.step(prev, curr.astype(np.float32), s)
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  np.testing.assert_array_equal(a.numpy(), c.numpy())


def test_the_two_crops_are_not_interchangeable():
  """Late fusion keeps prev and curr apart: swapping them changes the output."""
  net = build_re3(TINY)
  rng = np.random.default_rng(5)
  prev, curr = _crops(rng, 1), _crops(rng, 1)
  s = net.zero_state(1)
  a, _ = net.step(prev, curr, s)
  b, _ = net.step(curr, prev, s)
  assert not np.allclose(a.numpy(), b.numpy())


def test_keras_file_round_trip_with_safe_mode(tmp_path):
  net = build_re3(TINY)
  rng = np.random.default_rng(6)
  prev, curr = _crops(rng, 2, 3), _crops(rng, 2, 3)
  expected = net((prev, curr)).numpy()
  path = str(tmp_path / "re3.keras")
  net.save(path)
  loaded = keras.models.load_model(path, safe_mode=True)
  assert isinstance(loaded, Re3Net) and loaded.cfg == TINY
  np.testing.assert_array_equal(loaded((prev, curr)).numpy(), expected)
  out, _ = loaded.step(prev[:, 0], curr[:, 0], loaded.zero_state(2))
  np.testing.assert_allclose(out.numpy(), expected[:, 0], rtol=1e-4, atol=1e-5)


def test_checkpoint_round_trip(tmp_path):
  net = build_re3(TINY)
  rng = np.random.default_rng(7)
  prev, curr = _crops(rng, 1, 2), _crops(rng, 1, 2)
  expected = net((prev, curr)).numpy()
  path = tf.train.Checkpoint(model=net).save(str(tmp_path / "ckpt"))
  fresh = build_re3(TINY)
  assert not np.allclose(fresh((prev, curr)).numpy(), expected)
  tf.train.Checkpoint(model=fresh).restore(path).assert_existing_objects_matched()
  np.testing.assert_array_equal(fresh((prev, curr)).numpy(), expected)


def test_full_peephole_model_runs_and_counts():
  cfg = Re3ModelConfig(**{**TINY.__dict__, "peephole": "full"})
  net = build_re3(cfg)
  assert net.count_params() == count_parameters(cfg)["total"]
  assert net.lstm1.peephole_i.shape == (16, 16)
  rng = np.random.default_rng(8)
  assert net((_crops(rng, 1, 2), _crops(rng, 1, 2))).shape == (1, 2, 4)


def test_model_config_errors_name_file_and_key(tmp_path):
  bad = tmp_path / "bad.yaml"
  bad.write_text("task: re3\nmodel:\n  fc6_unit: 5\n")
  with pytest.raises(ConfigError, match=r"bad.yaml.*fc6_unit"):
    load_model_config(str(bad))
  bad.write_text("task: re3\nmodel:\n  peephole: diag\n")
  with pytest.raises(ConfigError, match=r"peephole"):
    load_model_config(str(bad))
  bad.write_text("task: re3\nmodel:\n  conv_groups: [1, 2, 1, 5, 2]\n")
  with pytest.raises(ConfigError, match=r"conv_groups\[3\]"):
    load_model_config(str(bad))
  bad.write_text("task: tracker\nmodel: {}\n")
  with pytest.raises(ConfigError, match=r"task"):
    load_model_config(str(bad))
  # Other sections are not this loader's business.
  ok = tmp_path / "ok.yaml"
  ok.write_text("task: re3\nmodel:\n  lstm_units: 8\ndata: {anything: 1}\ntrainer: {x: 2}\n")
  task, cfg = load_model_config(str(ok), overrides=["model.fc6_units=12", "trainer.x=3"])
  assert task == "re3" and cfg.lstm_units == 8 and cfg.fc6_units == 12


@pytest.mark.parametrize("name", ["re3_small", "drlt_mnist_fixed"])
def test_summary_table_ends_with_the_parameter_count(name):
  from model.summary import summarize
  lines = summarize(str(REPO / f"configs/{name}.yaml"))
  task, cfg = load_model_config(str(REPO / f"configs/{name}.yaml"))
  if task == "re3":
    expected = count_parameters(cfg)["total"]
    assert any(line.startswith("fc6 ") for line in lines)
  else:
    from model.rl_agent import build_rl_agent
    expected = build_rl_agent(cfg).count_params()
  assert lines[-1] == str(expected)
  assert any("lstm" in line and "PeepholeLSTMCell" in line for line in lines)


def test_step_exports_as_saved_model_signature(tmp_path):
  """A module holding the net with a tf.function(step) saves and reloads."""
  net = build_re3(TINY)
  module = tf.Module()
  module.net = net
  u = TINY.lstm_units

  def step(prev, curr, h1, c1, h2, c2):
    labels, state = net.step(prev, curr, (h1, c1, h2, c2))
    return {"labels": labels, "state": tf.stack(state, axis=0)}

  crop = tf.TensorSpec([None, 67, 67, 3], tf.uint8)
  hidden = tf.TensorSpec([None, u], tf.float32)
  module.step = tf.function(step, input_signature=[crop, crop, hidden, hidden, hidden, hidden])
  tf.saved_model.save(module, str(tmp_path / "saved"))
  loaded = tf.saved_model.load(str(tmp_path / "saved"))
  rng = np.random.default_rng(9)
  prev, curr = _crops(rng, 3), _crops(rng, 3)
  state = _random_state(rng, 3, u)
  out = loaded.step(prev, curr, *state)
  labels, new_state = net.step(prev, curr, state)
  np.testing.assert_allclose(out["labels"].numpy(), labels.numpy(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["state"].numpy(), np.stack([s.numpy() for s in new_state]), rtol=1e-5, atol=1e-6)


def test_every_weight_gets_a_gradient_through_unroll():
  net = build_re3(TINY)
  rng = np.random.default_rng(10)
  prev, curr = _crops(rng, 2, 3), _crops(rng, 2, 3)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(tf.abs(net((prev, curr)) - 5.0)) + tf.add_n(net.losses)
  grads = tape.gradient(loss, net.trainable_variables)
  missing = [v.name for v, g in zip(net.trainable_variables, grads) if g is None]
  assert not missing
  assert all(np.all(np.isfinite(g.numpy())) for g in grads)
  # Peepholes, PReLU slopes and the forget bias are trained too.
  names = {v.name.split("/")[-1].split(":")[0] for v in net.trainable_variables}
  assert {"peephole_i", "peephole_f", "peephole_o", "alpha", "bias", "recurrent_kernel"} <= names
