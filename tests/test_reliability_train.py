"""Training faults (issue 12): records without a usable clip, corrupt shards,
gaps in frame/index, a restart with another architecture, a killed checkpoint
write, a model_dir that cannot be used. Each names the culprit in one line,
exits 2 before training starts, and leaves what was valid as it was."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from configs import experiment
from pipelines import schema, shards
from train import data, toy_data
from train import train as train_entry
from tests.train_helpers import REPO, SMOKE, env, read_log, tiny_overrides, train_cmd
from tests.train_helpers import set_flags as _sets, train_in_process as _main, tree_digest as _tree_digest


def _write_tracks(out_dir, tracks, name="bad", num_shards=1):
  os.makedirs(out_dir, exist_ok=True)
  paths = [shards.shard_path(str(out_dir), name, "train", s, num_shards) for s in range(num_shards)]
  writers = [tf.io.TFRecordWriter(p) for p in paths]
  for i, t in enumerate(tracks):
    writers[i % num_shards].write(schema.serialize_track(t))
  for w in writers:
    w.close()
  return paths


def _track(track_id, frames, frame_index=None, nan=False, seed=0):
  t = toy_data.toy_track(np.random.default_rng(seed), track_id, frames=frames, height=48, width=64)
  if nan:
    t.boxes_xyxy[:] = np.nan
  if frame_index is not None:
    t.frame_index = np.asarray(frame_index, np.int64)
  return t


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("toy")
  toy_data.write_toy_records(str(out), num_tracks=6, frames=10, height=96, width=128)
  return str(out)


@pytest.fixture(scope="module")
def short_dir(tmp_path_factory):
  """Only 2-frame tracks: no 3-frame clip for an unroll-2 stage."""
  out = tmp_path_factory.mktemp("short")
  _write_tracks(out, [_track(f"short/{i}", 2, seed=i) for i in range(3)])
  return str(out)


@pytest.fixture(scope="module")
def nan_dir(tmp_path_factory):
  """Long tracks whose boxes are all NaN."""
  out = tmp_path_factory.mktemp("nan")
  _write_tracks(out, [_track(f"nan/{i}", 8, nan=True, seed=i) for i in range(2)])
  return str(out)








# ---------------------------------------------------------------------------
# 1. No usable clip: named before training, never a hang
# ---------------------------------------------------------------------------


def test_source_without_usable_clip_exits_2_in_time(short_dir, tmp_path):
  """The command that used to spin forever: a timeout here fails the test."""
  model_dir = tmp_path / "run"
  try:
    proc = subprocess.run(train_cmd("--config", SMOKE, "--model_dir", str(model_dir),
                                    *_sets(short_dir)),
                          cwd=str(REPO), env=env(), capture_output=True, text=True, timeout=180)
  except subprocess.TimeoutExpired:
    pytest.fail("training on records without a usable clip did not stop within 180 s")
  assert proc.returncode == 2, proc.stderr[-3000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("train.train: data error: data.train_dir")
  assert repr(short_dir) in last and "no clip of 3 consecutive frames" in last
  assert "Traceback" not in proc.stderr
  assert not os.path.exists(model_dir / "config.yaml")   # nothing written


def test_all_nan_source_is_named(nan_dir):
  cfg = experiment.load_experiment(SMOKE, tiny_overrides(nan_dir))
  with pytest.raises(data.DataError, match=r"'%s'.*no clip of 3 .*longest: 0 frames" % nan_dir):
    data.check_sources(cfg.data, [3])


def test_one_unusable_source_among_several_is_named_or_skipped(toy_dir, short_dir, tmp_path,
                                                               capsys, caplog):
  both = f"{toy_dir},{short_dir}"
  code, last, err = _main(["--config", SMOKE, "--model_dir", str(tmp_path / "a"),
                           *_sets(both)], capsys)
  assert code == 2 and repr(short_dir) in last and "data.skip_unusable=true" in last
  assert repr(toy_dir) not in last
  # asked to skip: trains on the usable source and says which one it left out
  model_dir = tmp_path / "b"
  os.makedirs(model_dir / "ckpt-7_temp")                  # case 12 rides along (see below)
  (model_dir / "ckpt-7_temp" / "part-00000-of-00001.index").write_bytes(b"partial")
  os.makedirs(model_dir / "other-3_temp")
  code, last, err = _main(["--config", SMOKE, "--model_dir", str(model_dir),
                           *_sets(both, **{"data.skip_unusable": "true"})], capsys)
  assert code == 0, err[-3000:]
  assert f"{short_dir!r}: no clip of 3" in caplog.text and "left out" in caplog.text
  assert [r["step"] for r in read_log(model_dir) if r["event"] == "done"] == [2]
  # 12: the unfinished checkpoint write is gone (with a warning), nothing else is touched
  assert not os.path.exists(model_dir / "ckpt-7_temp")
  assert "ckpt-7_temp: a checkpoint write that did not finish" in caplog.text
  assert os.path.isdir(model_dir / "other-3_temp")
  assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-2")


def test_every_stage_is_checked(toy_dir, tmp_path):
  """A source serving stage 0 (3-frame clips) but not stage 1 (11 frames)."""
  cfg = experiment.load_experiment(SMOKE, tiny_overrides(
      toy_dir, **{"trainer.stages": "[{unroll: 2, batch_size: 4, steps: 1}, "
                                    "{unroll: 10, batch_size: 4}]"}))
  with pytest.raises(data.DataError, match="no clip of 11 consecutive frames.*longest: 10"):
    data.check_sources(cfg.data, [3, 11])


def test_rl_videos_are_checked_from_the_track_start(toy_dir, tmp_path):
  """The RL agent walks videos from their first frame (data.rl_dataset's filter)."""
  cfg = experiment.load_experiment(SMOKE, tiny_overrides(toy_dir))
  assert data.check_sources(cfg.data, [10], leading=True).track_sources(10)[0][0] == 0
  with pytest.raises(data.DataError, match="no clip of 11 .* from a track start.*longest: 10"):
    data.check_sources(cfg.data, [11], leading=True)
  late = tmp_path / "late"
  t = _track("late/0", 8)
  t.boxes_xyxy[0] = np.nan                    # 7 good frames, but not from the first frame
  _write_tracks(late, [t])
  cfg.data.train_dir = str(late)
  assert data.check_sources(cfg.data, [7]).track_sources(7)
  with pytest.raises(data.DataError, match="from a track start.*longest: 0 frames"):
    data.check_sources(cfg.data, [7], leading=True)


# ---------------------------------------------------------------------------
# 9. Gaps in frame/index break clips
# ---------------------------------------------------------------------------


def test_a_gap_in_frame_index_breaks_clips():
  boxes = tf.constant(np.tile([[1.0, 1.0, 5.0, 5.0]], (5, 1)), tf.float32)
  starts = lambda index, gap=0: data.valid_clip_starts_tf(  # noqa: E731
      boxes[:len(index)], 2, tf.constant(index, tf.int64), gap).numpy().tolist()
  assert starts([0, 1, 3, 4]) == [0, 2]              # frame 2 was rejected: no pair 1 -> 3
  assert starts([0, 1, 3, 4], gap=2) == [0, 1, 2]    # allowed by data.max_frame_gap
  assert starts([0, 5, 10, 20]) == [0, 1]            # ALOV's every-5th frame: its own step
  assert starts([0, 1, 1, 2]) == [0, 2]              # a step that does not go forward
  assert data.valid_clip_starts_tf(boxes, 3).numpy().tolist() == [0, 1, 2]  # no index: all link
  frame_ok, link_ok = data.clip_links_tf(boxes, tf.constant([0, 1, 3, 4, 5], tf.int64))
  assert data.usable_runs(frame_ok.numpy(), link_ok.numpy()) == (3, 2)


def test_gaps_make_a_source_unusable_and_the_sampled_clips_skip_them(tmp_path):
  out = tmp_path / "gaps"
  # 6 frames, every other frame missing after frame 1: the longest clip is 2 frames
  _write_tracks(out, [_track("gap/0", 6, frame_index=[0, 1, 3, 5, 7, 9])])
  cfg = experiment.load_experiment(SMOKE, tiny_overrides(str(out)))
  with pytest.raises(data.DataError, match="no clip of 3 .*longest: 2 frames"):
    data.check_sources(cfg.data, [3])
  cfg.data.max_frame_gap = 2
  assert data.check_sources(cfg.data, [3]).track_sources(3)[0][0] == 0
  # the training input draws its 2-frame clips only where no frame is missing
  record = next(iter(tf.data.TFRecordDataset(data.find_record_files(str(out), "train"))))
  track = schema.parse_track_tf(record)
  clips = data.sample_clips_tf(track, 2, 20, seed=1)
  images = track["images"].numpy()
  assert clips["images"].shape[0] == 20
  assert all(list(c) == [images[0], images[1]] for c in clips["images"].numpy())


# ---------------------------------------------------------------------------
# 10. A truncated or non-TFRecord shard among the training shards
# ---------------------------------------------------------------------------


@pytest.fixture()
def corrupt_dir(toy_dir, tmp_path):
  out = tmp_path / "corrupt"
  shutil.copytree(toy_dir, out)
  good = sorted(os.listdir(out))
  name = shards.shard_path(str(out), "toy", "train", 0, 2)
  truncated = os.path.join(out, "cut-train.tfrecord-00000-of-00001")
  with open(name, "rb") as f:
    blob = f.read()
  with open(truncated, "wb") as f:
    f.write(blob[:len(blob) // 2])
  garbage = os.path.join(out, "junk-train.tfrecord-00000-of-00001")
  with open(garbage, "w") as f:
    f.write("this is not a TFRecord file\n" * 20)
  return str(out), truncated, garbage, good


def test_corrupt_shard_is_named_before_training(corrupt_dir, tmp_path, capsys):
  out, truncated, garbage, _ = corrupt_dir
  model_dir = tmp_path / "run"
  code, last, err = _main(["--config", SMOKE, "--model_dir", str(model_dir), *_sets(out)], capsys)
  assert code == 2 and "Traceback" not in err
  assert last.startswith("train.train: data error: ")
  assert (truncated in last or garbage in last) and "not a readable TFRecord file" in last
  assert not os.path.exists(model_dir / "config.yaml")


def test_corrupt_shards_are_skipped_with_a_warning_when_asked(corrupt_dir):
  out, truncated, garbage, good = corrupt_dir
  cfg = experiment.load_experiment(SMOKE, tiny_overrides(out, **{"data.skip_unusable": "true"}))
  checked = data.check_sources(cfg.data, [3])
  (_, files), = checked.track_sources(3)
  assert sorted(os.path.basename(f) for f in files) == good     # the valid shards, all of them
  ds = data.re3_dataset(cfg.data, 2, 2, 0.0, seed=0, mode="crops", crop_size=64,
                        checked=checked)
  batch = next(iter(ds))
  assert batch["prev"].shape == (2, 2, 64, 64, 3)


# ---------------------------------------------------------------------------
# 2. A restart with another architecture; allowed changes are recorded
# ---------------------------------------------------------------------------


def test_restart_refuses_an_architecture_change_and_records_allowed_ones(toy_dir, tmp_path,
                                                                          capsys):
  model_dir = tmp_path / "run"
  base_args = ["--config", SMOKE, "--model_dir", str(model_dir)]
  code, _, err = _main(base_args + _sets(toy_dir, steps=2), capsys)
  assert code == 0, err[-3000:]
  before = _tree_digest(model_dir)
  with open(model_dir / "config.yaml") as f:
    saved_text = f.read()
  # an architecture change: refused, the keys named, the directory untouched
  code, last, err = _main(base_args + _sets(toy_dir, steps=4) + ["--set", "model.fc6_units=64"],
                          capsys)
  assert code == 2 and "Traceback" not in err
  assert last.startswith("train.train: config error: ")
  assert "model.fc6_units 32 -> 64" in last and "trainer.train_steps" not in last
  assert _tree_digest(model_dir) == before
  # also through a plain restart (--set without --config)
  code, last, _ = _main(["--model_dir", str(model_dir), "--set", "model.lstm_units=8"], capsys)
  assert code == 2 and "model.lstm_units 32 -> 8" in last
  assert _tree_digest(model_dir) == before
  # an allowed change: resumes, logs old and new values, keeps the previous config
  code, _, err = _main(base_args + _sets(toy_dir, steps=4), capsys)
  assert code == 0, err[-3000:]
  changed = [r for r in read_log(model_dir) if r["event"] == "config_changed"]
  assert len(changed) == 1
  assert changed[0]["changes"]["trainer.train_steps"] == {"old": 2, "new": 4}
  kept = changed[0]["previous_config"]
  assert os.path.basename(kept).startswith("config-") and kept.endswith(".yaml")
  with open(kept) as f:
    assert f.read() == saved_text
  restored = [r for r in read_log(model_dir) if r["event"] == "restored"]
  assert restored and restored[-1]["step"] == 2
  assert [r["step"] for r in read_log(model_dir) if r["event"] == "done"] == [2, 4]


# ---------------------------------------------------------------------------
# 11. model_dir that is a file or cannot be written
# ---------------------------------------------------------------------------


def test_model_dir_that_is_a_file_or_unwritable(toy_dir, tmp_path, capsys):
  a_file = tmp_path / "model.txt"
  a_file.write_text("keep me\n")
  code, last, err = _main(["--config", SMOKE, "--model_dir", str(a_file), *_sets(toy_dir)],
                          capsys)
  assert code == 2 and "Traceback" not in err
  assert last == f"train.train: config error: --model_dir {a_file}: is a file, not a directory"
  assert a_file.read_text() == "keep me\n"
  code, last, _ = _main(["--config", SMOKE, "--model_dir", str(a_file / "sub"), *_sets(toy_dir)],
                        capsys)
  assert code == 2 and f"{a_file} is a file" in last
  # /sys refuses new entries even to root (a chmod'ed folder would not stop root)
  code, last, _ = _main(["--config", SMOKE, "--model_dir", "/sys/re3_model_dir",
                         *_sets(toy_dir)], capsys)
  assert code == 2 and "--model_dir /sys/re3_model_dir: /sys is not writable" in last


def test_verbose_shows_the_traceback(short_dir, tmp_path, capsys):
  code, last, err = _main(["--config", SMOKE, "--model_dir", str(tmp_path / "v"), "--verbose",
                           *_sets(short_dir)], capsys)
  assert code == 2 and "Traceback" in err and last.startswith("train.train: data error:")


def test_restart_event_log_is_json(tmp_path):
  """record_config_change writes a JSON line with plain values."""
  (tmp_path / "config.yaml").write_text("task: re3\n")
  kept = train_entry.record_config_change(str(tmp_path), {"trainer.learning_rate": (0.1, 0.01)})
  rec = json.loads((tmp_path / "train_log.jsonl").read_text().splitlines()[-1])
  assert rec["changes"] == {"trainer.learning_rate": {"old": 0.1, "new": 0.01}}
  assert open(kept).read() == "task: re3\n"


def test_full_disk_during_training_is_one_line_naming_the_path(toy_dir, tmp_path, capsys,
                                                                monkeypatch):
  """The second checkpoint write hits a full disk (TensorFlow's
  ResourceExhaustedError, as its file writer raises for ENOSPC): one line
  naming the checkpoint, exit 2, the first checkpoint kept."""
  real_save = tf.train.CheckpointManager.save
  calls = []

  def save(self, checkpoint_number=None, **kwargs):
    calls.append(checkpoint_number)
    if len(calls) == 2:
      raise tf.errors.ResourceExhaustedError(
          None, None, f"{self.directory}/ckpt-{checkpoint_number}_temp/part-00000-of-00001"
          ".data-00000-of-00001.tempstate1; No space left on device")
    return real_save(self, checkpoint_number=checkpoint_number, **kwargs)
  monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
  model_dir = tmp_path / "m"
  code, last, err = _main(["--config", SMOKE, "--model_dir", str(model_dir),
                           *_sets(toy_dir, steps=4, **{"trainer.checkpoint_every": 2})], capsys)
  assert code == 2 and "Traceback" not in err, err[-3000:]
  kept = tf.train.latest_checkpoint(str(model_dir))
  assert kept and kept.endswith("ckpt-2")
  assert last == (f"train.train: cannot write checkpoint {model_dir}/ckpt-4: {model_dir}/"
                  "ckpt-4_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; No space left "
                  f"on device; training stopped at step 4. Last good checkpoint kept: {kept}")


def test_a_train_log_that_cannot_be_written_names_it(toy_dir, tmp_path, capsys, monkeypatch):
  from train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  model_dir = tmp_path / "m"
  real_open = open

  def full_log(path, mode="r", *args, **kwargs):
    if str(path).endswith("train_log.jsonl") and "a" in mode:
      raise OSError(28, "No space left on device")
    return real_open(path, mode, *args, **kwargs)
  monkeypatch.setattr(trainer_lib, "open", full_log, raising=False)
  code, last, err = _main(["--config", SMOKE, "--model_dir", str(model_dir),
                           *_sets(toy_dir, steps=1)], capsys)
  assert code == 2 and "Traceback" not in err, err[-3000:]
  assert last == (f"train.train: cannot write {model_dir}/train_log.jsonl: [Errno 28] No space "
                  "left on device")
