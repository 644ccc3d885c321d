"""Damaged checkpoints, two writers on one directory, boxes infinite in float32,
damaged calibration inputs and YAML keys given twice (issue 22): each ends in
one line naming the file, key or holder, and nothing valid is lost."""

import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from PIL import Image

from configs import cli as cli_errors
from configs import dir_lock, experiment
from configs.model import load_model_config
from model import export, loading
from model.export_tflite import CalibrationCrops
from model.re3 import build_re3
from model.tracker import Re3MultiTracker, Re3Tracker
from pipelines import calibration
from train import task as task_lib, toy_data, track
from train.eval import cli as eval_cli
from tests import tracking_utils as tu
from tests.train_helpers import SMOKE, read_log
from tests.train_helpers import set_flags as _sets, train_in_process as _train, tree_digest as _tree_digest


@pytest.fixture(scope="module")
def net():
  return tu.tiny_re3(seed=5)


@pytest.fixture(scope="module")
def re3_dir(net, tmp_path_factory):
  return tu.make_model_dir(tmp_path_factory.mktemp("re3"), net, "re3")


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("toy")
  toy_data.write_toy_records(str(out), num_tracks=6, frames=10, height=96, width=128)
  return str(out)


def _cut_data_file(folder) -> str:
  """Truncates the one checkpoint data file in `folder` to half its size -> its path."""
  data, = glob.glob(os.path.join(str(folder), "*.data-*"))
  os.truncate(data, os.path.getsize(data) // 2)
  return data


def _frames_dir(path, n=3, size=(48, 64)):
  os.makedirs(path, exist_ok=True)
  rng = np.random.default_rng(0)
  for i in range(n):
    Image.fromarray(rng.integers(0, 255, size + (3,), dtype=np.uint8)).save(
        os.path.join(path, f"f{i + 1:03d}.png"))
  return str(path)


def _call(module, prog, argv, capsys, expected=eval_cli.EXPECTED_ERRORS):
  """A command's main in-process through its entry point's guard -> (exit code,
  last stderr line, stderr)."""
  fv = flags.FlagValues()
  module.define_flags(fv)
  fv([prog] + argv)
  code = cli_errors.call(prog, module.main, [], fv, expected)
  err = capsys.readouterr().err
  lines = [l for l in err.splitlines() if l.strip()]
  return code, (lines[-1] if lines else ""), err








def _dead_pid() -> int:
  gone = subprocess.Popen([sys.executable, "-c", "pass"])
  gone.wait()
  return gone.pid


def _lock_text(pid, job):
  return json.dumps({"pid": pid, "host": socket.gethostname(), "job": job,
                     "started": "2020-01-01T00:00:00Z"})


# ---------------------------------------------------------------------------
# 1. A checkpoint or SavedModel whose data file is cut short
# ---------------------------------------------------------------------------


def test_a_damaged_checkpoint_is_named_by_every_loader(re3_dir, tmp_path, capsys):
  saved = export.export(re3_dir, str(tmp_path / "saved"))["export_dir"]
  bad_dir = tmp_path / "bad_dir"
  shutil.copytree(re3_dir, bad_dir)
  data = _cut_data_file(bad_dir / "checkpoints")
  bad_saved = tmp_path / "bad_saved"
  shutil.copytree(saved, bad_saved)
  saved_data = _cut_data_file(bad_saved / "variables")
  cut_short = re.escape(data) + r" \(\d+ bytes\): checkpoint data cut short"
  loaders = [lambda: loading.load_model(str(bad_dir)),
             lambda: Re3Tracker.load(str(bad_dir)),
             lambda: task_lib.init_from_model(tu.tiny_re3(), str(bad_dir))]
  for load in loaders:
    with pytest.raises(ValueError, match=cut_short):
      load()
  with pytest.raises(ValueError, match=re.escape(saved_data) + r" \(\d+ bytes\): checkpoint "
                                       "data cut short"):
    Re3Tracker.load(str(bad_saved))
  # the exports: one line, nothing written
  for fmt, out in (("savedmodel", tmp_path / "out"), ("onnx", tmp_path / "out.onnx")):
    code, last, err = _call(export, "model.export", ["--model_dir", str(bad_dir), "--export_dir",
                                                     str(out), "--format", fmt], capsys,
                            export.EXPECTED_ERRORS)
    assert code == 2 and "Traceback" not in err, err
    assert re.match("model.export: " + cut_short, last), last
    assert not glob.glob(str(out) + "*")
  # train.track --model
  frames = _frames_dir(tmp_path / "frames")
  code, last, err = _call(track, "train.track", ["--model", str(bad_dir), "--input", frames,
                                                 "--box", "5,5,20,20"], capsys)
  assert code == 2 and "Traceback" not in err and re.match("train.track: " + cut_short, last)


def test_a_restart_on_a_damaged_checkpoint_writes_nothing_and_can_fall_back(toy_dir, tmp_path,
                                                                          capsys):
  model_dir = tmp_path / "run"
  args = ["--config", SMOKE, "--model_dir", str(model_dir)]
  code, _, err = _train(args + _sets(toy_dir, steps=2, **{"trainer.checkpoint_every": 1}),
                        capsys)
  assert code == 0, err[-3000:]
  data = glob.glob(str(model_dir / "ckpt-2.data-*"))[0]
  os.truncate(data, os.path.getsize(data) // 2)
  before = _tree_digest(model_dir)
  # a restart with a changed config: refused before config.yaml, config-<time>.yaml or the log
  code, last, err = _train(args + _sets(toy_dir, steps=4, **{"trainer.checkpoint_every": 1}),
                           capsys)
  assert code == 2 and "Traceback" not in err
  assert last.startswith(f"train.train: checkpoint error: {data} (")
  assert "checkpoint data cut short" in last
  assert f"--fall_back_to_intact_checkpoint to continue from {model_dir / 'ckpt-1'}" in last
  assert _tree_digest(model_dir) == before
  # with the flag: continues from ckpt-1, the damaged files kept aside
  code, _, err = _train(args + _sets(toy_dir, steps=4, **{"trainer.checkpoint_every": 1})
                        + ["--fall_back_to_intact_checkpoint"], capsys)
  assert code == 0, err[-3000:]
  assert os.path.exists(data + ".damaged") and os.path.exists(str(model_dir / "ckpt-2.index"))
  restored = [r for r in read_log(model_dir) if r["event"] == "restored"]
  assert restored[-1]["step"] == 1 and restored[-1]["checkpoint"].endswith("ckpt-1")
  assert [r["step"] for r in read_log(model_dir) if r["event"] == "done"] == [2, 4]
  loading.check_checkpoint_data(str(model_dir / "ckpt-4"))     # the new checkpoints are whole


def test_init_model_takes_the_default_model():
  config = os.path.join(loading.DEFAULT_MODEL_DIR, "config.yaml")
  _, model_cfg = load_model_config(config)
  ckpt = task_lib.init_from_model(build_re3(model_cfg), "default")
  assert os.path.dirname(ckpt) == loading.DEFAULT_MODEL_DIR


# ---------------------------------------------------------------------------
# 2. Two exports or two trainings on one directory at once
# ---------------------------------------------------------------------------


def test_a_second_export_is_refused_naming_the_first(re3_dir, tmp_path):
  out = tmp_path / "export"
  out.mkdir()
  busy = rf"--export_dir {re.escape(str(out))} is in use by model.export \(pid {os.getpid()} " \
         "on this host"
  with dir_lock.DirLock(str(out / ".export.lock"), "model.export", "the export"):
    with pytest.raises(dir_lock.LockBusy, match=busy):
      export.export(re3_dir, str(out))
    assert os.listdir(out) == [".export.lock"]
  one_file = tmp_path / "step.onnx"
  with dir_lock.DirLock(str(one_file) + ".lock", "model.export", "the export"):
    with pytest.raises(dir_lock.LockBusy, match=rf"in use by model.export \(pid {os.getpid()}"):
      export.export(re3_dir, str(one_file), fmt="onnx")
  assert not os.path.exists(one_file)
  # free again: the export runs and leaves no lock behind
  export.export(re3_dir, str(out))
  assert "saved_model.pb" in os.listdir(out) and ".export.lock" not in os.listdir(out)


def test_a_killed_export_is_cleared_or_explained(re3_dir, tmp_path, caplog):
  # a stale lock and what the killed export wrote: removed with warnings, then exported
  out = tmp_path / "export"
  (out / "variables").mkdir(parents=True)
  (out / "variables" / "variables.index").write_bytes(b"partial")
  (out / ".export.lock").write_text(_lock_text(_dead_pid(), "model.export"))
  export.export(re3_dir, str(out))
  assert "removing the stale lock" in caplog.text
  assert "removed what an export that did not finish" in caplog.text
  assert ".export.lock" not in os.listdir(out)
  Re3Tracker.load(str(out))
  # a one-file export: its temporary file of the dead process goes too
  pid = _dead_pid()
  tfl = tmp_path / "step.tflite"
  partial = str(tmp_path / f"step.partial-{pid}.tflite")
  with open(partial, "wb") as f:
    f.write(b"half a model")
  (tmp_path / "step.tflite.lock").write_text(_lock_text(pid, "model.export"))
  export.export(re3_dir, str(tfl), fmt="tflite")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "step.tflite"]
  Re3Tracker.load(str(tfl))
  # a folder an unlocked export left (variables/, no saved_model.pb): the message says so
  old = tmp_path / "old"
  (old / "variables").mkdir(parents=True)
  with pytest.raises(ValueError, match="holds variables/ but no saved_model.pb, the remains of "
                                       "an export that did not finish; remove it"):
    export.export(re3_dir, str(old))


def test_a_second_training_on_one_model_dir_is_refused(toy_dir, tmp_path, capsys, caplog):
  model_dir = tmp_path / "run"
  model_dir.mkdir()
  args = ["--config", SMOKE, "--model_dir", str(model_dir)] + _sets(toy_dir, steps=1)
  lock_path = model_dir / ".train.lock"
  with dir_lock.DirLock(str(lock_path), "train.train", "the run"):
    code, last, err = _train(args, capsys)
    assert code == 2 and "Traceback" not in err
    assert last.startswith(f"train.train: --model_dir {model_dir} is in use by train.train "
                           f"(pid {os.getpid()} on this host")
    assert str(lock_path) in last
    assert os.listdir(model_dir) == [".train.lock"]      # nothing written
  # a lock of a run that is gone: taken over with a warning
  lock_path.write_text(_lock_text(_dead_pid(), "train.train"))
  code, _, err = _train(args, capsys)
  assert code == 0, err[-3000:]
  assert "removing the stale lock" in caplog.text
  assert not lock_path.exists()


# ---------------------------------------------------------------------------
# 3. A box finite in float64 but infinite in float32
# ---------------------------------------------------------------------------


def test_a_box_beyond_float32_is_refused(net, re3_dir, tmp_path, capsys):
  frame = np.full((100, 160, 3), 50, np.uint8)
  big = (0, 0, 1e39, 1e39)
  with pytest.raises(ValueError, match="beyond float32's range"):
    Re3Tracker.from_net(net).init(frame, big)
  multi = Re3MultiTracker.from_net(net)
  with pytest.raises(ValueError, match="beyond float32's range"):
    multi.add("a", frame, big)
  assert multi.target_ids == []
  frames = _frames_dir(tmp_path / "frames")
  code, last, err = _call(track, "train.track", ["--model", re3_dir, "--input", frames,
                                                 "--box", "0,0,1e39,1e39"], capsys)
  assert code == 2 and "Traceback" not in err
  assert last.startswith("train.track: box [0.0, 0.0, 1e+39, 1e+39] has a value beyond float32")


# ---------------------------------------------------------------------------
# 6. Calibration: a damaged record shard, a damaged .npz
# ---------------------------------------------------------------------------


def test_calibration_names_a_damaged_shard(tmp_path, capsys, caplog):
  records = tmp_path / "records"
  shards = toy_data.write_toy_records(str(records), num_tracks=4, frames=6, num_shards=2)
  damaged = sorted(shards)[1]
  os.truncate(damaged, os.path.getsize(damaged) // 2)
  out = tmp_path / "calib.npz"
  code, _, err = _call(calibration, "pipelines.calibration",
                       ["--records", str(records), "--crop_size", "32", "--out", str(out)],
                       capsys)
  assert code == 0 and "Traceback" not in err, err
  assert damaged in caplog.text and "unreadable after" in caplog.text
  assert len(CalibrationCrops.load(str(out)).prev) > 0          # the readable records serve
  # nothing readable at all: one line naming the damaged files
  junk = tmp_path / "junk"
  junk.mkdir()
  (junk / "toy-train.tfrecord-00000-of-00001").write_bytes(b"not a record file at all")
  code, last, err = _call(calibration, "pipelines.calibration",
                          ["--records", str(junk), "--crop_size", "32", "--out",
                           str(tmp_path / "c2.npz")], capsys)
  assert code == 2 and "Traceback" not in err
  assert "damaged record files: " + str(junk / "toy-train.tfrecord-00000-of-00001") in last


def test_a_damaged_calibration_file_is_named(re3_dir, tmp_path, capsys):
  rng = np.random.default_rng(0)
  crops = rng.integers(0, 255, (2, 227, 227, 3), dtype=np.uint8)
  path = str(tmp_path / "calib.npz")
  CalibrationCrops(crops, crops, np.zeros(2, np.int32)).save(path)
  os.truncate(path, os.path.getsize(path) // 2)
  out = tmp_path / "int8.tflite"
  code, last, err = _call(export, "model.export",
                          ["--model_dir", re3_dir, "--export_dir", str(out), "--format",
                           "tflite", "--quantize", "int8", "--calibration", path], capsys,
                          export.EXPECTED_ERRORS)
  assert code == 2 and "Traceback" not in err
  assert last.startswith(f"model.export: {path}: not a calibration crops file")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.npz"]    # no partial, no lock


# ---------------------------------------------------------------------------
# 8. A YAML key given twice in one section
# ---------------------------------------------------------------------------


def test_a_yaml_key_given_twice_is_refused(tmp_path, capsys):
  path = tmp_path / "twice.yaml"
  path.write_text("task: re3\nmodel: {}\ntrainer:\n  train_steps: 30\n  learning_rate: 0.001\n"
                  "  train_steps: 5\n")
  code, last, err = _train(["--config", str(path), "--model_dir", str(tmp_path / "m")], capsys)
  assert code == 2 and "Traceback" not in err
  assert last == (f"train.train: config error: {path}:6: trainer.train_steps is given twice "
                  "(first on line 4); keep one")
  assert not (tmp_path / "m").exists()
  # inside a list element too; the same key in two sections is fine
  path.write_text("task: re3\ntrainer:\n  stages:\n  - {unroll: 2, batch_size: 4, unroll: 3}\n")
  with pytest.raises(ValueError, match=r"twice.yaml:4: trainer.stages\[0\].unroll is given twice"):
    experiment.load_experiment(str(path))
  path.write_text("task: re3\nmodel: {}\ndata:\n  seed: 1\nruntime:\n  seed: 2\n")
  cfg = experiment.load_experiment(str(path))
  assert (cfg.data.seed, cfg.runtime.seed) == (1, 2)
