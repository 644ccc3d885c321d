"""The experiment config: strict loading, overrides, early failure of the CLI."""

import glob
import os
import time

import pytest
import yaml
from absl import flags

from configs import experiment
from configs.base import ConfigError
from configs.model import RESET_EVERY
from model import summary, tracker
from tests.train_helpers import REPO, SMOKE, run_train
from train import quickstart, train as train_entry


def _write(tmp_path, data, name="exp.yaml"):
  path = tmp_path / name
  path.write_text(yaml.safe_dump(data))
  return str(path)


def _smoke_raw():
  with open(SMOKE) as f:
    return yaml.safe_load(f)


def test_every_yaml_in_configs_loads_strictly():
  paths = sorted(glob.glob(str(REPO / "configs" / "*.yaml")))
  assert any(p.endswith("re3_smoke.yaml") for p in paths)
  for path in paths:
    cfg = experiment.load_experiment(path)
    assert cfg.task in ("re3", "rl_agent")
    assert cfg.trainer.train_steps >= 1


def test_unknown_key_names_the_section(tmp_path):
  raw = _smoke_raw()
  raw["trainer"]["train_stepz"] = 5
  with pytest.raises(ConfigError, match=r"under 'trainer': train_stepz"):
    experiment.load_experiment(_write(tmp_path, raw))
  raw = _smoke_raw()
  raw["model"]["lstm_unitz"] = 5
  with pytest.raises(ConfigError, match="lstm_unitz"):
    experiment.load_experiment(_write(tmp_path, raw))
  with pytest.raises(ConfigError, match="unknown config key"):
    experiment.load_experiment(SMOKE, ["runtime.distributon=mirrored"])


def test_bad_values_name_the_key():
  with pytest.raises(ConfigError, match=r"stages\[1\].*batch_size"):
    experiment.load_experiment(SMOKE, ["trainer.stages.1.batch_size=0"])
  with pytest.raises(ConfigError, match="runtime.distribution"):
    experiment.load_experiment(SMOKE, ["runtime.distribution=tpu"])
  with pytest.raises(ConfigError, match="train_weights"):
    experiment.load_experiment(SMOKE, ["data.train_dir=a,b", "data.train_weights=[1.0]"])
  with pytest.raises(ConfigError, match="expected an integer"):
    experiment.load_experiment(SMOKE, ["trainer.train_steps=lots"])
  with pytest.raises(ConfigError, match="never ends"):
    experiment.load_experiment(SMOKE, ["trainer.stages.0.steps=0"])


def test_dotted_overrides_reach_lists_and_sections():
  cfg = experiment.load_experiment(SMOKE, [
      "trainer.train_steps=7", "trainer.checkpoint_every=3", "data.train_dir=/x,/y",
      "trainer.stages.1.self_train_prob=0.25", "runtime.mixed_precision=mixed_bfloat16"])
  assert cfg.trainer.train_steps == 7 and cfg.trainer.checkpoint_every == 3
  assert cfg.data.dirs() == ["/x", "/y"]
  assert cfg.trainer.stages[1].self_train_prob == 0.25
  assert cfg.runtime.mixed_precision == "mixed_bfloat16"
  assert cfg.model.crop_size == 64


def test_list_index_overrides_in_brackets_equal_dotted_indices():
  brackets = experiment.load_experiment(SMOKE, ["trainer.stages[1].steps=5",
                                                "model.conv_filters[-1]=24"])
  dotted = experiment.load_experiment(SMOKE, ["trainer.stages.1.steps=5",
                                              "model.conv_filters.-1=24"])
  assert brackets.trainer.stages[1].steps == 5 and brackets.model.conv_filters[-1] == 24
  assert experiment.config_diff(brackets, dotted) == []
  with pytest.raises(ConfigError, match=r"index 2 of 'trainer.stages' out of range"):
    experiment.load_experiment(SMOKE, ["trainer.stages[2].steps=5"])
  with pytest.raises(ConfigError, match=r"'trainer.train_steps' is not a list"):
    experiment.load_experiment(SMOKE, ["trainer.train_steps[0]=5"])


def test_train_and_summary_commands_parse_the_same_set_syntax(tmp_path):
  """--set of train.train and of model.summary go through one parser: the
  same list-index override gives the same model config in both."""
  sets = ["model.conv_filters[0]=12", "model.skip_filters[2]=6", "trainer.stages[1].steps=5"]
  train_flags, summary_flags = flags.FlagValues(), flags.FlagValues()
  train_entry.define_flags(train_flags)
  summary.define_flags(summary_flags)
  set_args = [a for s in sets for a in ("--set", s)]
  train_flags(["train", "--config", SMOKE, "--model_dir", str(tmp_path)] + set_args)
  summary_flags(["summary", "--config", SMOKE] + set_args)
  assert train_flags.set == summary_flags.set == sets
  cfg = train_entry.load_config(train_flags.config, str(tmp_path), train_flags.set)
  assert cfg.trainer.stages[1].steps == 5
  lines = summary.summarize(summary_flags.config, summary_flags.set)
  raw = _smoke_raw()
  raw["model"]["conv_filters"][0] = 12
  raw["model"]["skip_filters"][2] = 6
  assert cfg.model == experiment.load_experiment(_write(tmp_path, raw)).model
  assert lines[-1] == summary.summarize(_write(tmp_path, raw, "direct.yaml"))[-1]
  assert lines[-1] != summary.summarize(SMOKE)[-1]


def test_quickstart_takes_the_config_and_set_flags_of_train(tmp_path):
  """train.quickstart names its training config and overrides as train.train does."""
  sets = ["trainer.stages[0].steps=3", "data.shuffle_buffer=4"]
  train_flags, quick_flags = flags.FlagValues(), flags.FlagValues()
  train_entry.define_flags(train_flags)
  quickstart.define_flags(quick_flags)
  set_args = [a for s in sets for a in ("--set", s)]
  train_flags(["train", "--config", SMOKE, "--model_dir", str(tmp_path)] + set_args)
  quick_flags(["quickstart", "--config", SMOKE, "--output_dir", str(tmp_path)] + set_args)
  assert quick_flags.config == train_flags.config == SMOKE
  assert quick_flags.set == train_flags.set == sets
  assert "train_config" not in quick_flags and "train_set" not in quick_flags


def test_saved_config_round_trips(tmp_path):
  cfg = experiment.load_experiment(SMOKE, ["trainer.train_steps=11"])
  path = str(tmp_path / "config.yaml")
  experiment.save_experiment(cfg, path)
  again = experiment.load_experiment(path)
  assert experiment.config_diff(cfg, again) == []
  assert experiment.config_diff(cfg, experiment.load_experiment(path, ["trainer.train_steps=3"])) \
      == ["trainer.train_steps"]


def test_cli_rejects_unknown_key_before_any_work(tmp_path):
  raw = _smoke_raw()
  raw["data"]["trian_dir"] = "/nowhere"
  path = _write(tmp_path, raw)
  model_dir = tmp_path / "run"
  t0 = time.time()
  proc = run_train("--config", path, "--model_dir", str(model_dir), timeout=120)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "trian_dir" in proc.stderr and "unknown config key" in proc.stderr
  # nothing was written: no checkpoint, no saved config
  assert not os.path.exists(model_dir / "config.yaml")
  assert not glob.glob(str(model_dir / "ckpt-*"))
  assert time.time() - t0 < 60


def test_cli_reports_missing_records(tmp_path):
  proc = run_train("--config", SMOKE, "--model_dir", str(tmp_path / "run"),
                   "--set", f"data.train_dir={tmp_path / 'empty'}", timeout=120)
  assert proc.returncode == 2
  assert "no '*-train.tfrecord-*' record files" in proc.stderr


def test_reset_period_is_one_constant():
  """The validation tracker's default reset period is the trackers' (configs.model.RESET_EVERY)."""
  assert RESET_EVERY == 32
  assert tracker.RESET_EVERY is RESET_EVERY
  assert experiment.TrainerConfig().val_reset_every == RESET_EVERY
