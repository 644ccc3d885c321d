"""Training entry point.

  python -m train.train --config configs/re3_small.yaml --model_dir DIR [--set key=value ...]
  python -m train.train --model_dir DIR          # restart: reads DIR/config.yaml

The config is loaded and validated (strictly: unknown keys and bad values fail
here, before TensorFlow does any work), the record directories are checked,
the resolved config is saved as DIR/config.yaml, then the task trains under
the configured tf.distribute strategy, resuming from DIR's latest checkpoint
if there is one. Multi-worker runs take the cluster from TF_CONFIG; start the
same command on every worker with the same --model_dir (shared storage).

Before anything is written:
* --model_dir must be a directory (or creatable) and writable;
* on a restart the config is compared with the saved DIR/config.yaml: a change
  of the task, the network (model.*) or runtime.mixed_precision (the layout of
  the optimizer state) is refused naming the keys, once DIR holds a
  checkpoint; other changes (learning rate, steps, data...) are recorded in
  train_log.jsonl (event config_changed, old and new values) and the previous
  config.yaml is kept as config-<time>.yaml;
* one run per model_dir: the chief holds MODEL_DIR/.train.lock while it
  runs; a second run is refused naming the first (a lock whose process is
  gone is removed with a warning);
* on a restart the latest checkpoint is read once in full: a damaged one (a
  data file cut short, ...) stops the run naming the file and the newest
  intact checkpoint; --fall_back_to_intact_checkpoint continues from that one
  and keeps the damaged files as *.damaged;
* every shard of every record source is read once (train.data.check_sources):
  a shard that is not a readable TFRecord and a source with no clip long
  enough for a stage are named (data.skip_unusable=true leaves them out with
  a warning instead).

Exit codes: 0 done, 2 bad config or data, or a model_dir that cannot be
written during training (a full disk: the path named, the last good
checkpoint kept) (one line `train.train: message`; the traceback with
--verbose), 3 training diverged (NaN/inf loss).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from typing import Any, Dict, Tuple

from configs import quiet

quiet.setup()

from absl import app, flags  # noqa: E402

from configs import base, dir_lock, experiment  # noqa: E402
from configs import cli as cli_errors  # noqa: E402
from configs.base import ConfigError  # noqa: E402

PROG = "train.train"
# Keys a restart may not change once the model_dir holds a checkpoint: they
# fix the layout of the checkpointed network and optimizer state.
FIXED_ON_RESTART = ("task", "model", "runtime.mixed_precision")


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
  flags.DEFINE_bool("fall_back_to_intact_checkpoint", False,
                    "When the latest checkpoint of --model_dir is damaged (a data file cut "
                    "short, ...), continue from the newest intact earlier one; its files are "
                    "kept as *.damaged. Without it such a restart stops naming the file.",
                    flag_values=flag_values)
  cli_errors.define_verbose_flag(flag_values)

log = logging.getLogger("train")


def build_task(cfg):
  # The task modules import TensorFlow: only once the config is known to be good.
  if cfg.task == "re3":
    from train.re3_task import Re3Task  # pylint: disable=g-import-not-at-top
    return Re3Task(cfg)
  from train.rl_task import RLTask  # pylint: disable=g-import-not-at-top
  return RLTask(cfg)


def check_model_dir(model_dir: str) -> None:
  """ConfigError unless model_dir is a directory we can write, or can be made
  one (nothing is created here)."""
  if os.path.exists(model_dir) and not os.path.isdir(model_dir):
    raise ConfigError(f"--model_dir {model_dir}: is a file, not a directory")
  probe = model_dir
  while not os.path.exists(probe):
    probe = os.path.dirname(probe)
  if not os.path.isdir(probe):
    raise ConfigError(f"--model_dir {model_dir}: {probe} is a file, not a directory")
  try:
    os.rmdir(tempfile.mkdtemp(prefix=".write-test-", dir=probe))
  except OSError as e:
    raise ConfigError(f"--model_dir {model_dir}: {probe} is not writable "
                      f"({e.strerror or e})") from None


def _value(tree: Dict[str, Any], dotted: str):
  for part in dotted.split("."):
    if not isinstance(tree, dict) or part not in tree:
      return None
    tree = tree[part]
  return tree


def restart_changes(cfg, model_dir: str) -> Dict[str, Tuple[Any, Any]]:
  """{dotted key: (saved value, new value)} against model_dir/config.yaml.

  Raises ConfigError naming the keys when a FIXED_ON_RESTART key differs and
  the model_dir holds a checkpoint (the network could not be restored).
  """
  saved = os.path.join(model_dir, "config.yaml")
  if not os.path.exists(saved):
    return {}
  prev = experiment.load_experiment(saved)
  keys = experiment.config_diff(prev, cfg)
  old, new = base.to_dict(prev), base.to_dict(cfg)
  changes = {k: (_value(old, k), _value(new, k)) for k in keys}
  fixed = [k for k in keys if any(k == f or k.startswith(f + ".") for f in FIXED_ON_RESTART)]
  if fixed and os.path.exists(os.path.join(model_dir, "checkpoint")):
    raise ConfigError(
        f"--model_dir {model_dir} holds a checkpoint of another architecture: "
        + ", ".join(f"{k} {changes[k][0]!r} -> {changes[k][1]!r}" for k in fixed)
        + f" differ from {saved} (left untouched); train in a new --model_dir, "
        "or drop these changes to resume")
  return changes


def load_config(config_path, model_dir, overrides):
  """The experiment config for this run; on a restart, checked against the
  saved config.yaml (restart_changes) before anything is written."""
  saved = os.path.join(model_dir, "config.yaml")
  path = config_path or saved
  if not config_path and not os.path.exists(saved):
    raise ConfigError(f"no --config given and {saved} does not exist")
  cfg = experiment.load_experiment(path, overrides)
  changed = restart_changes(cfg, model_dir)
  if changed:
    log.warning("config differs from the saved %s in: %s", saved, ", ".join(changed))
  return cfg


def record_config_change(model_dir: str, changes: Dict[str, Tuple[Any, Any]]) -> str:
  """Keeps the saved config.yaml as config-<time>.yaml and logs the changes
  (event config_changed) in train_log.jsonl; -> the kept file's path."""
  saved = os.path.join(model_dir, "config.yaml")
  stamp = time.strftime("%Y%m%d-%H%M%S")
  kept = os.path.join(model_dir, f"config-{stamp}.yaml")
  n = 1
  while os.path.exists(kept):
    kept = os.path.join(model_dir, f"config-{stamp}-{n}.yaml")
    n += 1
  shutil.copy2(saved, kept)
  rec = {"event": "config_changed", "time": time.time(), "previous_config": kept,
         "changes": {k: {"old": a, "new": b} for k, (a, b) in changes.items()}}
  with open(os.path.join(model_dir, "train_log.jsonl"), "a") as f:
    f.write(json.dumps(rec) + "\n")
  return kept


def check_data(cfg, task=None):
  """Fails early (DataError, exit 2) when a record directory is missing or
  empty, or (given the task) a shard is unreadable or a source cannot serve a
  stage (train.data.check_sources); -> the checked sources, or None."""
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
  if task is None or not cfg.data.check_records:
    return None
  lengths, leading, pair_lengths = task.source_requirements()
  return data.check_sources(cfg.data, lengths, leading, pair_lengths)


LOCK_NAME = ".train.lock"


def lock_model_dir(model_dir: str) -> dir_lock.DirLock:
  """MODEL_DIR/.train.lock while this run trains there (configs/dir_lock.py):
  a second run on the same model_dir is refused naming the first, a lock of a
  run that is gone is removed with a warning."""
  os.makedirs(model_dir, exist_ok=True)
  return dir_lock.DirLock(os.path.join(model_dir, LOCK_NAME), PROG,
                          f"--model_dir {model_dir}").acquire()


def run(config_path, model_dir, overrides, toy_records=False, fall_back=False):
  """Loads, checks and trains; returns the trainer's final metrics."""
  model_dir = experiment.resolve_path(model_dir)
  cfg = load_config(config_path, model_dir, overrides)
  return run_config(cfg, model_dir, toy_records, fall_back)


def run_config(cfg, model_dir, toy_records=False, fall_back=False):
  """Trains a loaded config (TensorFlow is imported from here on). The chief
  holds model_dir's lock while it runs; a damaged latest checkpoint is found
  (train.trainer.check_restart_checkpoint) before anything is written, and
  `fall_back` resumes from the newest intact one."""
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
  changes = restart_changes(cfg, model_dir)
  task = build_task(cfg)
  check_data(cfg)    # names a missing directory before the strategy connects the workers
  strategy = runtime.make_strategy(cfg.runtime)  # first: multi-worker needs it before any op
  chief = runtime.is_chief(strategy)
  created = not os.path.exists(model_dir)
  held = lock_model_dir(model_dir) if chief else None
  try:
    restore_path = trainer_lib.check_restart_checkpoint(model_dir, fall_back, chief)
    task.checked_sources = check_data(cfg, task)   # reads the records (TensorFlow ops)
    tf.random.set_seed(cfg.runtime.seed)
    tr = trainer_lib.Trainer(cfg, model_dir, task, strategy=strategy)
    tr.restore_path = restore_path
    if tr.is_chief:
      if changes:
        log.info("previous config kept as %s", record_config_change(model_dir, changes))
      experiment.save_experiment(cfg, os.path.join(model_dir, "config.yaml"))
    return tr.train()
  finally:
    if held is not None:
      held.release()
      if created and os.path.isdir(model_dir) and not os.listdir(model_dir):
        os.rmdir(model_dir)   # a run that failed before writing leaves no empty model_dir


def main(argv, flag_values=None):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flag_values or flags.FLAGS
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
  verbose = bool(getattr(f, "verbose", False))
  if not f.model_dir:
    return cli_errors.report(PROG, ConfigError("--model_dir is required"))
  model_dir = experiment.resolve_path(f.model_dir)
  try:  # no TensorFlow work before the config is known to be good
    check_model_dir(model_dir)
    cfg = load_config(f.config, model_dir, f.set)
  except ConfigError as e:
    return cli_errors.report(PROG, e, verbose, prefix="config error: ")
  # TensorFlow is imported only once the config is known to be good.
  from train.data import DataError  # pylint: disable=g-import-not-at-top
  from train.trainer import TrainingDiverged  # pylint: disable=g-import-not-at-top
  from model.loading import DamagedCheckpoint  # pylint: disable=g-import-not-at-top
  try:
    result = run_config(cfg, model_dir, f.toy_records,
                        bool(getattr(f, "fall_back_to_intact_checkpoint", False)))
  except (ConfigError, DataError) as e:
    kind = "config" if isinstance(e, ConfigError) else "data"
    return cli_errors.report(PROG, e, verbose, prefix=f"{kind} error: ")
  except DamagedCheckpoint as e:
    return cli_errors.report(PROG, e, verbose, prefix="checkpoint error: ")
  except TrainingDiverged as e:
    return cli_errors.report(PROG, e, verbose, code=3, prefix="training diverged: ")
  except cli_errors.EXPECTED_ERRORS as e:   # e.g. a batch the replicas cannot share
    return cli_errors.report(PROG, e, verbose)
  log.info("done: %s", ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in sorted(result.items())))
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli_errors.flags_parser(__doc__))
