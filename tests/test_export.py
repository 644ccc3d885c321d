"""SavedModel export: same boxes as in-process tracking, stateless signatures,
saved_model_cli, the RL agent, and clear errors."""

import os
import subprocess
import sys

from absl import flags
import numpy as np
import pytest
import tensorflow as tf

from model import export
from model.loading import load_model
from model.tracker import Re3MultiTracker, Re3Tracker, RLAgentTracker
from tests import tracking_utils as tu

@pytest.fixture(scope="module")
def re3_net():
  net = tu.tiny_re3(seed=4)
  net.head.kernel.assign(net.head.kernel * 0.1)
  net.head.bias.assign(tf.constant([2.5, 2.5, 7.5, 7.5]))
  return net


@pytest.fixture(scope="module")
def re3_export(re3_net, tmp_path_factory):
  root = tmp_path_factory.mktemp("re3")
  model_dir = tu.make_model_dir(str(root / "model"), re3_net, "re3")
  out = str(root / "export")
  info = export.export(model_dir, out)
  assert info["task"] == "re3" and info["checkpoint"].endswith("ckpt-1")
  assert os.path.exists(os.path.join(out, "config.yaml"))
  return model_dir, out


@pytest.fixture(scope="module")
def loaded(re3_export):
  return tf.saved_model.load(re3_export[1])


@pytest.fixture(scope="module")
def frames(shared_dir):
  return tu.otb_frames(shared_dir, "Deer", 6)


def _track(tracker, imgs, box):
  tracker.init(imgs[0], box)
  return np.array([tracker.update(f)[1] for f in imgs[1:]])


def test_exported_and_in_process_boxes_agree(re3_net, re3_export, loaded, frames):
  model_dir, _ = re3_export
  imgs, gt = frames
  want = _track(Re3Tracker.from_net(re3_net, reset_period=2), imgs, gt[0])
  from_export = _track(Re3Tracker(loaded, reset_period=2), imgs, gt[0])
  np.testing.assert_allclose(from_export, want, atol=1e-4)
  multi = Re3MultiTracker(loaded, reset_period=2)
  multi.add_many(imgs[0], {1: gt[0], 2: (40, 60, 30, 30)})
  boxes = [multi.update(f)[1][1] for f in imgs[1:]]
  np.testing.assert_allclose(boxes, want, atol=1e-3)
  # the training model_dir restores the same weights (Re3Tracker.load builds its graph on them)
  task, net, ckpt, config_path = load_model(model_dir)
  assert task == "re3" and ckpt.endswith("ckpt-1") and config_path.endswith("config.yaml")
  for a, b in zip(net.variables, re3_net.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_stateless_signatures_reproduce_the_tracker(loaded, frames):
  """A serving client: keep state and initial state, set reset every 2nd step."""
  imgs, gt = frames
  want = _track(Re3Tracker(loaded, reset_period=2), imgs, gt[0])
  sigs = loaded.signatures
  assert {"init", "track_step", "track_step_crops", "init_batch", "track_step_batch",
          "track_step_crops_batch", "serving_default"} <= set(sigs.keys())
  box = tf.constant(gt[0], tf.float32)
  state = sigs["init"](image=tf.constant(imgs[0]), box=box)["state"]
  initial = state
  got = []
  for t in range(1, len(imgs)):
    r = sigs["track_step"](prev_image=tf.constant(imgs[t - 1]), image=tf.constant(imgs[t]), box=box,
                           state=state, initial_state=initial, reset=tf.constant(t % 2 == 0))
    box, state = r["box"], r["state"]
    got.append(box.numpy())
  # Same math in another op order (images cropped every step vs carried
  # crops): float32 round-off, well under a thousandth of a pixel.
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
  # batched: two targets at once give each one's single result
  rb = sigs["track_step_batch"](
      prev_image=tf.constant(imgs[0]), image=tf.constant(imgs[1]),
      boxes=tf.constant([gt[0], gt[0] + [5, 5, 0, 0]], tf.float32),
      state=tf.stack([initial, initial]), initial_state=tf.stack([initial, initial]),
      reset=tf.constant([False, False]))
  np.testing.assert_allclose(rb["boxes"].numpy()[0], want[0], atol=1e-3)


def test_crops_signature_equals_images_signature(loaded):
  """On flat images with the window inside them, the crops are exact constants,
  so the crop-level and image-level signatures must give the same step."""
  sigs = loaded.signatures
  prev = np.full([120, 160, 3], 30, np.uint8)
  curr = np.full([120, 160, 3], 200, np.uint8)
  box = tf.constant([60.0, 40.0, 30.0, 20.0])
  state = sigs["init"](image=tf.constant(prev), box=box)["state"]
  a = sigs["track_step"](prev_image=tf.constant(prev), image=tf.constant(curr), box=box, state=state,
                         initial_state=state, reset=tf.constant(False))
  b = sigs["track_step_crops"](prev_crop=tf.constant(np.full([227, 227, 3], 30, np.uint8)),
                               crop=tf.constant(np.full([227, 227, 3], 200, np.uint8)), box=box,
                               state=state)
  np.testing.assert_allclose(b["box"].numpy(), a["box"].numpy(), atol=1e-4)
  np.testing.assert_allclose(b["state"].numpy(), a["state"].numpy(), atol=1e-5)
  assert b["label"].shape == (4,)


def test_rl_agent_export(tmp_path):
  agent = tu.tiny_rl(seed=5)
  model_dir = tu.make_model_dir(str(tmp_path / "rl"), agent, "rl_agent", sub="")
  out = str(tmp_path / "rl_export")
  assert export.export(model_dir, out)["task"] == "rl_agent"
  rng = np.random.default_rng(0)
  frames = rng.integers(0, 255, size=[5, 100, 100], dtype=np.uint8)
  mu, _ = agent.unroll(tf.constant(frames[None, ..., None]))
  want = agent.decode_actions(mu).numpy()[0]
  got = tf.saved_model.load(out).signatures["track"](
      frames=tf.constant(frames[None, ..., None]))["boxes_xyxy"].numpy()[0]
  np.testing.assert_allclose(got, want, atol=1e-3)
  for path in (model_dir, out):
    trk = RLAgentTracker.load(path)
    trk.init(frames[0], None)
    boxes = [trk.initial_prediction_xywh] + [trk.update(f)[1] for f in frames[1:]]
    np.testing.assert_allclose(np.array(boxes)[:, :2], want[:, :2], atol=1e-3)
    np.testing.assert_allclose(np.array(boxes)[:, 2:] + np.array(boxes)[:, :2], want[:, 2:],
                               atol=1e-3)
  with pytest.raises(ValueError, match="not a Re3 tracker export"):
    Re3Tracker.load(out)
  with pytest.raises(ValueError, match="takes 100x100 frames"):
    RLAgentTracker.load(out).init(np.zeros([50, 50], np.uint8))


def test_load_errors(tmp_path, re3_net, re3_export):
  with pytest.raises(ValueError, match="no config.yaml"):
    Re3Tracker.load(str(tmp_path))
  # a checkpoint that does not hold the network as `model=`
  bad = tmp_path / "bad"
  tu.make_model_dir(str(bad), re3_net, "re3")
  wrong = tmp_path / "wrong"
  os.makedirs(wrong)
  (wrong / "config.yaml").write_text((bad / "config.yaml").read_text())
  tf.train.Checkpoint(step=tf.Variable(1)).save(str(wrong / "ckpt"))
  with pytest.raises(ValueError, match="does not hold this re3 network"):
    load_model(str(wrong))
  empty = tmp_path / "empty"
  os.makedirs(empty)
  (empty / "config.yaml").write_text((bad / "config.yaml").read_text())
  with pytest.raises(ValueError, match="no checkpoint found"):
    Re3Tracker.load(str(empty))
  with pytest.raises(ValueError, match="not empty"):
    export.export(str(bad), re3_export[1])


@pytest.mark.slow
def test_command_line_export_then_saved_model_cli_show_and_run(re3_net, re3_export, tmp_path):
  out = str(tmp_path / "exp")
  fv = flags.FlagValues()
  export.define_flags(fv)
  fv(["model.export", "--model_dir", re3_export[0], "--export_dir", out])
  export.main([], fv)                                   # the command line's main()
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
  show = subprocess.run(cli + ["show", "--dir", out, "--all"], env=env, capture_output=True,
                        text=True)
  assert show.returncode == 0, show.stderr[-2000:]
  for name in ("init", "track_step", "track_step_batch", "track_step_crops_batch"):
    assert f"signature_def['{name}']" in show.stdout
  image = np.zeros([90, 120, 3], np.uint8)
  image[30:60, 40:80] = 255
  np.save(tmp_path / "image.npy", image)
  np.save(tmp_path / "box.npy", np.array([40, 30, 40, 30], np.float32))
  run = subprocess.run(cli + ["run", "--dir", out, "--tag_set", "serve", "--signature_def", "init",
                              "--inputs", f"image={tmp_path}/image.npy;box={tmp_path}/box.npy",
                              "--outdir", str(tmp_path / "res")],
                       env=env, capture_output=True, text=True)
  assert run.returncode == 0, run.stderr[-2000:]
  state = np.load(tmp_path / "res" / "state.npy")
  want = Re3Tracker.from_net(re3_net).graph.init(tf.constant(image),
                                                 tf.constant([40.0, 30, 40, 30]))["state"]
  np.testing.assert_allclose(state, want.numpy(), atol=1e-5)
