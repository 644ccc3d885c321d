"""Training entry point.

  python -m train.train --config configs/re3_small.yaml --model_dir DIR [--set key=value ...]
  python -m train.train --model_dir DIR          # restart: reads DIR/config.yaml

The config is loaded and validated (strictly: unknown keys and bad values fail
here, before TensorFlow does any work), the record directories are checked,
the resolved config is saved as DIR/config.yaml, then the task trains under
the configured tf.distribute strategy, resuming from DIR's latest checkpoint
if there is one. Multi-worker runs take the cluster from TF_CONFIG; start the
same command on every worker with the same --model_dir (shared storage).

Exit codes: 0 done, 2 bad config or data, 3 training diverged (NaN/inf loss).
"""

from __future__ import annotations

import logging
import os
import sys

from absl import app, flags

from configs import experiment
from configs.base import ConfigError


def define_flags(flag_values=flags.FLAGS):
  """Defines the entry point's flags (on demand, so importing this module next
  to other entry points never clashes)."""
  flags.DEFINE_string("config", None, "Experiment YAML (default: MODEL_DIR/config.yaml).",
                      flag_values=flag_values)
  flags.DEFINE_string("model_dir", None, "Checkpoints, summaries, config.yaml, train_log.jsonl.",
                      flag_values=flag_values)
  flags.DEFINE_multi_string("set", [], "Dotted override, e.g. --set trainer.train_steps=100 or "
                            "--set trainer.stages[1].steps=5 (configs.base.apply_overrides).",
                            flag_values=flag_values)
  flags.DEFINE_bool("toy_records", False,
                    "Write a tiny synthetic record set into MODEL_DIR/toy_records and train on "
                    "it (smoke runs without any dataset).", flag_values=flag_values)

log = logging.getLogger("train")


def build_task(cfg):
  # The task modules import TensorFlow: only once the config is known to be good.
  if cfg.task == "re3":
    from train.re3_task import Re3Task  # pylint: disable=g-import-not-at-top
    return Re3Task(cfg)
  from train.rl_task import RLTask  # pylint: disable=g-import-not-at-top
  return RLTask(cfg)


def load_config(config_path, model_dir, overrides):
  """The experiment config for this run (and warnings for a changed restart)."""
  saved = os.path.join(model_dir, "config.yaml")
  path = config_path or saved
  if not config_path and not os.path.exists(saved):
    raise ConfigError(f"no --config given and {saved} does not exist")
  cfg = experiment.load_experiment(path, overrides)
  if config_path and os.path.exists(saved):
    prev = experiment.load_experiment(saved)
    changed = experiment.config_diff(prev, cfg)
    if changed:
      log.warning("config differs from the saved %s in: %s", saved, ", ".join(changed))
  return cfg


def check_data(cfg) -> None:
  """Fails early (exit 2) when a record directory is missing or empty."""
  # train.data imports TensorFlow: only once the config is known to be good.
  from train import data  # pylint: disable=g-import-not-at-top
  dirs = cfg.data.dirs()
  if not dirs:
    raise data.DataError("data.train_dir is empty: point it at record directories with "
                         "--set data.train_dir=DIR[,DIR...] (or use --toy_records)")
  for d in dirs:
    data.find_record_files(d, cfg.data.train_split)
  for d in cfg.data.pair_dirs():
    data.find_record_files(d, cfg.data.crop_pair_split, what="data.crop_pair_dir")
  if cfg.data.val_dir:
    data.find_record_files(cfg.data.val_dir, cfg.data.val_split, what="data.val_dir")


def run(config_path, model_dir, overrides, toy_records=False):
  """Loads, checks and trains; returns the trainer's final metrics."""
  model_dir = experiment.resolve_path(model_dir)
  cfg = load_config(config_path, model_dir, overrides)
  return run_config(cfg, model_dir, toy_records)


def run_config(cfg, model_dir, toy_records=False):
  """Trains a loaded config (TensorFlow is imported from here on)."""
  # TensorFlow is imported only once the config is known to be good.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from train import runtime, toy_data, trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  if toy_records:
    toy_dir = os.path.join(model_dir, "toy_records")
    if not toy_data.toy_records_exist(toy_dir):
      channels = cfg.data.channels
      toy_data.write_toy_records(toy_dir, num_tracks=16, frames=40, channels=channels,
                                 fmt="jpeg" if channels == 3 else "png")
    cfg.data.train_dir = toy_dir
  check_data(cfg)
  strategy = runtime.make_strategy(cfg.runtime)  # first: multi-worker needs it before any op
  tf.random.set_seed(cfg.runtime.seed)
  tr = trainer_lib.Trainer(cfg, model_dir, build_task(cfg), strategy=strategy)
  if tr.is_chief:
    experiment.save_experiment(cfg, os.path.join(model_dir, "config.yaml"))
  return tr.train()


def main(argv, flag_values=None):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flag_values or flags.FLAGS
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
  if not f.model_dir:
    print("error: --model_dir is required", file=sys.stderr)
    return 2
  model_dir = experiment.resolve_path(f.model_dir)
  try:  # no TensorFlow work before the config is known to be good
    cfg = load_config(f.config, model_dir, f.set)
  except ConfigError as e:
    print(f"config error: {e}", file=sys.stderr)
    return 2
  # TensorFlow is imported only once the config is known to be good.
  from train.data import DataError  # pylint: disable=g-import-not-at-top
  from train.trainer import TrainingDiverged  # pylint: disable=g-import-not-at-top
  try:
    result = run_config(cfg, model_dir, f.toy_records)
  except (ConfigError, DataError) as e:
    print(f"{'config' if isinstance(e, ConfigError) else 'data'} error: {e}", file=sys.stderr)
    return 2
  except TrainingDiverged as e:
    print(f"training diverged: {e}", file=sys.stderr)
    return 3
  log.info("done: %s", ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in sorted(result.items())))
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(main)
