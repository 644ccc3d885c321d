"""Re3 training: self-training crops inside the step, loss goes down, NaN stop."""

import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from configs import experiment
from configs.base import ConfigError
from model import geometry
from model.re3 import build_re3
from train import curriculum, re3_task, toy_data, trainer as trainer_lib
from tests.train_helpers import SMOKE, read_log, tiny_overrides


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("toy")
  toy_data.write_toy_records(str(out), num_tracks=8, frames=12, height=96, width=128)
  return str(out)


def _tiny_net():
  cfg = experiment.load_experiment(SMOKE).model
  return build_re3(cfg), cfg


def test_self_training_crops_follow_the_predictions():
  net, mcfg = _tiny_net()
  rng = np.random.default_rng(0)
  frames = tf.constant(rng.integers(0, 255, size=(2, 4, 64, 80, 3)), tf.uint8)
  boxes = tf.constant(np.tile([[20.0, 16.0, 44.0, 40.0]], (2, 4, 1)), tf.float32)
  gt_windows = geometry.crop_window_xyxy_tf(boxes[:, :-1] + 1.5)
  use_pred = tf.constant([True, False])
  with tf.GradientTape(persistent=True) as tape:
    out = re3_task.self_training_unroll(net, frames, boxes, gt_windows, use_pred,
                                        mcfg.crop_size, training=True)
    loss = tf.reduce_sum(out["labels"])
  labels, windows = out["labels"].numpy(), out["windows"].numpy()
  for t in range(2):
    # sequence 0: the window at t+1 is the 2x window around the box predicted at t
    pred_box = geometry.label_to_box(labels[0, t], windows[0, t])
    pred_box = geometry.crop_box_xyxy_tf(tf.constant(pred_box, tf.float32)).numpy()
    np.testing.assert_allclose(windows[0, t + 1], geometry.crop_window_xyxy(pred_box),
                               rtol=1e-5, atol=1e-3)
    assert not np.allclose(windows[0, t + 1], gt_windows.numpy()[0, t + 1], atol=0.5)
  # sequence 1 (not self-training) uses the ground-truth windows
  np.testing.assert_allclose(windows[1], gt_windows.numpy()[1], atol=1e-5)
  np.testing.assert_allclose(windows[:, 0], gt_windows.numpy()[:, 0], atol=1e-5)
  # targets are the truth relative to the window actually used
  np.testing.assert_allclose(out["targets"].numpy(),
                             geometry.box_to_label(boxes.numpy()[:, 1:], windows), atol=1e-4)
  # the crops of the last step were cut at the last windows
  want = geometry.crop_tf(frames[:, -1], windows[:, -1], size=mcfg.crop_size)
  np.testing.assert_allclose(out["curr_last"].numpy(), want.numpy(), atol=1e-3)
  # no gradient flows through where the crop was cut, but the loss has one
  assert all(g is None for g in tape.gradient(out["windows"], net.trainable_variables))
  grads = tape.gradient(loss, net.trainable_variables)
  assert sum(float(tf.reduce_sum(tf.abs(g))) for g in grads if g is not None) > 0


def test_nudge_moves_lost_boxes_towards_the_truth():
  truth = tf.constant([[10.0, 10.0, 20.0, 20.0]])
  lost = tf.constant([[200.0, 200.0, 210.0, 210.0]])
  fixed = re3_task.nudge_boxes_tf(lost, truth, truth, 0.7, iterations=100)
  cov = geometry.coverage_xyxy_tf(geometry.crop_window_xyxy_tf(fixed), truth).numpy()
  assert cov[0] >= 0.7
  same = re3_task.nudge_boxes_tf(truth, truth, truth, 0.7)
  np.testing.assert_allclose(same.numpy(), truth.numpy())


def test_loss_goes_down_on_a_small_synthetic_set(toy_dir, tmp_path):
  cfg = experiment.load_experiment(SMOKE, tiny_overrides(
      # 80 steps with inputs scaled by 1/64 (as the from-scratch configs do):
      # over 6 seeds the last/first loss ratio was 0.25-0.40; at 40 steps and
      # unscaled inputs it ranged 0.41-0.79, too close to the bar below.
      toy_dir, steps=80, **{"trainer.stages": "[{unroll: 2, batch_size: 8}]",
                            "model.input_scale": 0.015625,
                            "trainer.lr_schedule": "constant", "trainer.learning_rate": 0.01,
                            "trainer.head_bias_init": "[]",
                            "trainer.image_summary_every": 20,
                            "data.val_dir": toy_dir, "data.val_split": "train",
                            "data.val_tracks": 2, "data.val_max_frames": 8}))
  tr = trainer_lib.Trainer(cfg, str(tmp_path / "run"), re3_task.Re3Task(cfg))
  result = tr.train()
  losses = [r["loss"] for r in read_log(tmp_path / "run") if r["event"] == "step"]
  assert len(losses) == 80 and all(np.isfinite(losses))
  first, last = np.mean(losses[:8]), np.mean(losses[-8:])
  assert last < 0.75 * first, (first, last)
  assert result["step"] == 80 and 0.0 <= result["val_iou"] <= 1.0
  assert tf.train.latest_checkpoint(str(tmp_path / "run")).endswith("ckpt-80")
  # TensorBoard summaries: scalars and crop images with boxes
  tags = {}
  for path in (tmp_path / "run" / "train").iterdir():
    for rec in tf.data.TFRecordDataset(str(path)):
      for v in event_pb2.Event.FromString(rec.numpy()).summary.value:
        tags[v.tag] = v
  for tag in ("train/loss", "train/learning_rate", "train/stage", "train/examples_per_sec",
              "train/unroll", "val/iou"):
    assert tags[tag].metadata.plugin_data.plugin_name == "scalars", tag
  img = tags["train/crops_pred_red_true_green"]
  assert img.metadata.plugin_data.plugin_name == "images"
  assert tf.io.decode_png(img.tensor.string_val[2]).shape == (64, 64, 3)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(toy_dir, tmp_path):
  cfg = experiment.load_experiment(SMOKE, tiny_overrides(
      toy_dir, steps=30, **{"trainer.lr_schedule": "constant", "trainer.learning_rate": 1e30,
                            "trainer.checkpoint_every": 1}))
  model_dir = str(tmp_path / "run")
  tr = trainer_lib.Trainer(cfg, model_dir, re3_task.Re3Task(cfg))
  with pytest.raises(trainer_lib.TrainingDiverged, match="non-finite loss") as err:
    tr.train()
  events = read_log(model_dir)
  bad = [e for e in events if e["event"] == "diverged"][0]
  latest = tf.train.latest_checkpoint(model_dir)
  assert latest is not None and str(latest) in str(err.value)
  saved_step = int(latest.rsplit("-", 1)[1])
  assert saved_step == bad["step"] - 1
  # the kept checkpoint holds finite weights and the step it was saved at
  net, _ = _tiny_net()
  step = tf.Variable(0, dtype=tf.int64)
  tf.train.Checkpoint(model=net, step=step).restore(latest).expect_partial()
  assert int(step.numpy()) == saved_step
  assert all(np.isfinite(v.numpy()).all() for v in net.weights)


def test_plateau_ends_a_stage(toy_dir, tmp_path):
  cfg = experiment.load_experiment(SMOKE, tiny_overrides(toy_dir, steps=5))
  tr = trainer_lib.Trainer(cfg, str(tmp_path / "run"), re3_task.Re3Task(cfg))
  stage = curriculum.Stage(index=0, batch_size=4, plateau_patience=20, plateau_min_delta=0.01)
  for i in range(60):                      # improving: never a plateau
    assert not tr.curriculum.update_plateau(stage, 10.0 - 0.1 * i)
  flags = [tr.curriculum.update_plateau(stage, 4.0) for _ in range(60)]   # flat from here on
  first = flags.index(True)
  assert 20 <= first < 40, first
  tr.curriculum.next_stage(tr.step)
  assert int(tr.curriculum.stage.numpy()) == 1 and int(tr.curriculum.since_best.numpy()) == 0


def test_checkpoint_keys_of_the_curriculum_are_unchanged(toy_dir, tmp_path):
  """The curriculum state moved to train/curriculum.py under the same top-level
  checkpoint keys, so checkpoints written before the move still restore."""
  cfg = experiment.load_experiment(SMOKE, tiny_overrides(toy_dir, steps=2))
  tr = trainer_lib.Trainer(cfg, str(tmp_path / "run"), re3_task.Re3Task(cfg))
  tr.curriculum.next_stage(tr.step)
  path = tr.save()
  keys = {name.split("/")[0] for name, _ in tf.train.list_variables(path)}
  assert {"model", "optimizer", "step", "stage", "stage_start", "best_loss", "ema_loss",
          "since_best"} <= keys
  again = trainer_lib.Trainer(cfg, str(tmp_path / "run"), re3_task.Re3Task(cfg))
  assert again.restore() == path
  assert int(again.curriculum.stage.numpy()) == 1


def _write_caffenet(path, model_cfg, seed=0):
  """A CaffeNet-layout weight file ({'convN': [W (out, in/g, kh, kw), b]}) for model_cfg."""
  rng, weights, cin = np.random.default_rng(seed), {}, 3
  for n, (f, k, g) in enumerate(zip(model_cfg.conv_filters, model_cfg.conv_kernels,
                                    model_cfg.conv_groups), start=1):
    weights[f"conv{n}"] = [rng.normal(0, 0.05, (f, cin // g, k, k)).astype(np.float32),
                           rng.normal(0, 0.5, (f,)).astype(np.float32)]
    cin = f
  np.save(path, weights, allow_pickle=True)
  return weights


def test_init_caffenet_starts_the_tower_from_the_file_and_a_restart_keeps_training(toy_dir, tmp_path):
  cfg = experiment.load_experiment(SMOKE, tiny_overrides(toy_dir, steps=2))
  path = str(tmp_path / "caffenet.npy")
  weights = _write_caffenet(path, cfg.model)
  cfg = experiment.load_experiment(SMOKE, tiny_overrides(toy_dir, steps=2, **{
      "trainer.init_caffenet": path}))
  tr = trainer_lib.Trainer(cfg, str(tmp_path / "run"), re3_task.Re3Task(cfg))
  # conv1: Caffe (out, in, kh, kw) BGR -> Keras (kh, kw, in, out) RGB
  want = np.transpose(weights["conv1"][0][:, ::-1], (2, 3, 1, 0))
  np.testing.assert_allclose(tr.model.conv1.kernel.numpy(), want)
  np.testing.assert_allclose(tr.model.conv5.bias.numpy(), weights["conv5"][1])
  tr.train()
  trained = tr.model.conv1.kernel.numpy()
  assert not np.allclose(trained, want)
  # A restart restores its checkpoint, not the file.
  again = trainer_lib.Trainer(cfg, str(tmp_path / "run"), re3_task.Re3Task(cfg))
  again.restore()
  np.testing.assert_allclose(again.model.conv1.kernel.numpy(), trained)


def test_init_caffenet_is_checked_before_work_starts(toy_dir, tmp_path):
  with pytest.raises(ConfigError, match="model.input_scale"):
    experiment.load_experiment(SMOKE, tiny_overrides(toy_dir, **{
        "trainer.init_caffenet": "w.npy", "model.input_scale": 0.5}))
  rl = os.path.join(os.path.dirname(SMOKE), "drlt_mnist_fixed.yaml")
  with pytest.raises(ConfigError, match="task re3"):
    experiment.load_experiment(rl, ["trainer.init_caffenet=w.npy"])
  cfg = experiment.load_experiment(SMOKE, tiny_overrides(toy_dir, **{
      "trainer.init_caffenet": str(tmp_path / "missing.npy")}))
  with pytest.raises(Exception, match="missing.npy"):
    trainer_lib.Trainer(cfg, str(tmp_path / "run"), re3_task.Re3Task(cfg))
