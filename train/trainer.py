"""The task-agnostic custom training loop under tf.distribute.

About 400 lines: the loop and its bookkeeping (checkpoints, event log, summaries, validation
schedule); the task, strategy, precision and curriculum are the modules named below.

A task (train/task.py; train/re3_task.py, train/rl_task.py) says what each
curriculum stage is (train/curriculum.py), builds its model and per-replica
dataset, and computes the per-replica loss; train/runtime.py makes the
strategy, sets the precision and handles preemption; this module runs the
loop:

* input sharded with `distribute_datasets_from_function`;
* global-batch loss scaling: a replica's loss is sum(per-example) / GLOBAL
  batch (`tf.nn.compute_average_loss`), regularization is divided by the
  number of replicas, gradients are summed across replicas: the update of a
  global batch does not depend on how many replicas share it;
* gradients are all-reduced explicitly, then (optionally) clipped by their
  global norm, then applied with `skip_gradients_aggregation`; an update whose
  loss or gradient is not finite is not applied, and the job stops with
  `TrainingDiverged` keeping the last good checkpoint;
* `tf.train.CheckpointManager` over model, optimizer (with its iteration
  count, which drives the learning-rate schedule), step, curriculum stage and
  plateau state; `--model_dir` alone restores it all. Under multi-worker
  training every worker saves (the chief into model_dir, the others into
  throw-away directories, as TF requires) and all restore from model_dir;
* dynamic loss scaling under `mixed_float16`, XLA (`jit_compile` on the
  loss-and-gradient function);
* TensorBoard scalars, crop images with boxes, a log line (or tqdm bar), a
  JSON-lines log `train_log.jsonl` the tests and plots read, and validation
  every trainer.val_every steps and at the end;
* a checkpoint, train_log.jsonl line or summary that cannot be written (a
  full disk, a quota) stops the job with `ModelDirWriteError` naming the path
  (train.train: one line, exit 2); the last good checkpoint stays.

The input position is not checkpointed (its shuffle buffers hold decoded
frames and would make checkpoints huge): a restarted job reseeds its input
pipeline with the restored step, so it does not replay the same windows.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import time
from typing import Any, Dict, List, Optional

import tensorflow as tf
import tf_keras as keras
from tqdm import tqdm

from configs.experiment import ExperimentConfig, TrainerConfig
from model import loading
from train import runtime, summaries
from train.curriculum import Curriculum, Stage
from train.task import Task

log = logging.getLogger("train")


class TrainingDiverged(RuntimeError):
  """The loss (or the gradient) became NaN or infinite."""


class ModelDirWriteError(OSError):
  """A checkpoint, train_log.jsonl or the summaries could not be written (a
  full disk, a quota, a lost mount); the message names the path. Training
  stops; what was written before stays (the last good checkpoint)."""


def _reason(error: BaseException) -> str:
  """The last line of TensorFlow's or the OS's message (e.g. 'No space left on device')."""
  if isinstance(error, OSError) and error.strerror:
    return f"[Errno {error.errno}] {error.strerror}"
  lines = [l.strip() for l in str(getattr(error, "message", None) or error).splitlines()
           if l.strip()]
  return lines[-1] if lines else type(error).__name__


def learning_rate_schedule(cfg: TrainerConfig):
  if cfg.lr_schedule == "constant":
    return cfg.learning_rate
  if cfg.lr_schedule == "piecewise":
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        [int(b) for b in cfg.lr_boundaries], [float(v) for v in cfg.lr_values])
  # linear: from learning_rate to 0 over train_steps (the RL paper's annealing)
  return keras.optimizers.schedules.PolynomialDecay(
      cfg.learning_rate, decay_steps=cfg.train_steps, end_learning_rate=0.0, power=1.0)


CHECKPOINT_NAME = "ckpt"
# What a checkpoint write killed midway leaves: TF writes ckpt-N into the
# folder ckpt-N_temp and moves the files out when the write is complete.
_PARTIAL_CHECKPOINT = re.compile(rf"^{CHECKPOINT_NAME}-\d+_temp$")


def remove_partial_checkpoints(ckpt_dir: str) -> List[str]:
  """Removes the trainer's own unfinished checkpoint writes (ckpt-N_temp) from
  ckpt_dir, with a warning each; -> the removed paths."""
  removed = []
  if not tf.io.gfile.isdir(ckpt_dir):
    return removed
  for name in sorted(tf.io.gfile.listdir(ckpt_dir)):
    name = name.rstrip("/")
    path = os.path.join(ckpt_dir, name)
    if _PARTIAL_CHECKPOINT.match(name) and tf.io.gfile.isdir(path):
      tf.io.gfile.rmtree(path)
      removed.append(path)
      log.warning("removed %s: a checkpoint write that did not finish", path)
  return removed


DAMAGED_SUFFIX = ".damaged"
# The train.train flag that resumes from the newest intact checkpoint.
FALL_BACK_FLAG = "fall_back_to_intact_checkpoint"


def _checkpoint_paths(model_dir: str):
  """[(path as the state file gives it, absolute path)] of model_dir's
  checkpoint state, oldest first, and the state (None without one)."""
  state = tf.train.get_checkpoint_state(model_dir)
  if state is None:
    return [], None
  names = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
  return [(n, n if os.path.isabs(n) else os.path.join(model_dir, n)) for n in names], state


def check_restart_checkpoint(model_dir: str, fall_back: bool = False,
                             chief: bool = True) -> Optional[str]:
  """The checkpoint a restart of model_dir restores, read in full first
  (model.loading.check_checkpoint_data), or None for a fresh run. Called
  before the run writes anything.

  A damaged latest checkpoint -> loading.DamagedCheckpoint naming its file
  and the newest intact earlier checkpoint, with the flag that resumes from
  it. With `fall_back` that checkpoint is returned; the chief moves the
  damaged checkpoint's files aside (NAME.damaged) and drops it from the
  checkpoint state, with a warning, so later restarts do not meet it again.
  """
  latest = tf.train.latest_checkpoint(model_dir)
  if not latest:
    return None
  try:
    loading.check_checkpoint_data(latest)
    return latest
  except loading.DamagedCheckpoint as e:
    damaged = e
  entries, state = _checkpoint_paths(model_dir)
  intact = None
  for _, path in reversed(entries):
    if os.path.normpath(path) == os.path.normpath(latest) or not tf.io.gfile.exists(
        path + ".index"):
      continue
    try:
      loading.check_checkpoint_data(path)
    except loading.DamagedCheckpoint:
      continue
    intact = path
    break
  what = f"{damaged.detail}: the latest checkpoint of --model_dir {model_dir} is damaged"
  if intact is None:
    raise loading.DamagedCheckpoint(
        f"{what} and no earlier intact checkpoint is kept; copy it again, or move "
        f"{latest}.* away to train from step 0", damaged.detail)
  if not fall_back:
    raise loading.DamagedCheckpoint(
        f"{what}; rerun with --{FALL_BACK_FLAG} to continue from {intact} (the newest intact "
        "one; the damaged files are then kept as *" + DAMAGED_SUFFIX + "), or copy it again",
        damaged.detail)
  if chief:
    moved = []
    for f in sorted(tf.io.gfile.glob(latest + ".*")):
      if not f.endswith(DAMAGED_SUFFIX):
        tf.io.gfile.rename(f, f + DAMAGED_SUFFIX, overwrite=True)
        moved.append(f + DAMAGED_SUFFIX)
    keep = [(n, p) for n, p in entries if os.path.normpath(p) != os.path.normpath(latest)]
    times = list(state.all_model_checkpoint_timestamps)
    keep_times = ([t for (n, p), t in zip(entries, times)
                   if os.path.normpath(p) != os.path.normpath(latest)]
                  if len(times) == len(entries) else None)
    name = next(n for n, p in keep if p == intact)
    tf.compat.v1.train.update_checkpoint_state(
        model_dir, name, all_model_checkpoint_paths=[n for n, _ in keep],
        all_model_checkpoint_timestamps=keep_times,
        last_preserved_timestamp=state.last_preserved_timestamp)
    log.warning("%s; continuing from %s (--%s); the damaged files are kept as %s",
                what, intact, FALL_BACK_FLAG, ", ".join(moved))
  return intact


@dataclasses.dataclass
class _StageRun:
  """The state of the stage being trained: its input, carry and step function."""
  stage: Stage
  iterator: Any
  carry: Any
  train_fn: Any
  t_last: float   # time and step of the last throughput measurement
  n_last: int


class Trainer:
  """Runs `task` under `cfg.runtime` with checkpoints in `model_dir`."""

  def __init__(self, cfg: ExperimentConfig, model_dir: str, task: Task,
               strategy: Optional[tf.distribute.Strategy] = None):
    self.cfg = cfg
    self.tcfg = cfg.trainer
    self.model_dir = model_dir
    self.task = task
    self.strategy = strategy or runtime.make_strategy(cfg.runtime)
    self.is_chief = runtime.is_chief(self.strategy)
    self.num_replicas = self.strategy.num_replicas_in_sync
    self._check_batches()
    tf.io.gfile.makedirs(model_dir)
    self.ckpt_dir = runtime.worker_checkpoint_dir(self.strategy, model_dir, self.is_chief)
    if self.is_chief:
      remove_partial_checkpoints(self.ckpt_dir)
    self.loss_scaling = runtime.uses_loss_scaling(cfg.runtime)
    self.model = self._build_model()
    self.optimizer = self._build_optimizer()
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    self.curriculum = Curriculum()
    self.checkpoint = tf.train.Checkpoint(
        model=self.model, optimizer=self.optimizer, step=self.step,
        **self.curriculum.checkpoint_items())
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, self.ckpt_dir, max_to_keep=self.tcfg.keep_checkpoints,
        step_counter=self.step, checkpoint_name=CHECKPOINT_NAME)
    self.restored_from = None
    self.restore_path: Optional[str] = None
    self._writer = (tf.summary.create_file_writer(os.path.join(model_dir, "train"))
                    if self.is_chief else tf.summary.create_noop_writer())
    self._log_path = os.path.join(model_dir, "train_log.jsonl")
    self.last_metrics: Dict[str, float] = {}

  def _check_batches(self) -> None:
    for i in range(self.task.num_stages()):
      bs = self.task.stage(i).batch_size
      if bs % self.num_replicas:
        raise ValueError(f"stage {i}: global batch {bs} is not divisible by the "
                         f"{self.num_replicas} replicas")

  def _build_model(self) -> keras.Model:
    with runtime.precision_policy(self.cfg.runtime), self.strategy.scope():
      return self.task.build_model()

  def _build_optimizer(self):
    with self.strategy.scope():
      opt = keras.optimizers.Adam(
          learning_rate=learning_rate_schedule(self.tcfg), beta_1=self.tcfg.adam_beta1,
          beta_2=self.tcfg.adam_beta2, epsilon=self.tcfg.adam_epsilon)
      if self.loss_scaling:
        opt = keras.mixed_precision.LossScaleOptimizer(opt)
      opt.build(self.model.trainable_variables)
    return opt

  def _step(self) -> int:
    return int(self.step.numpy())

  def _stage_index(self) -> int:
    return int(self.curriculum.stage.numpy())

  # -- checkpoints ------------------------------------------------------------

  def restore(self) -> Optional[str]:
    """Restores `restore_path` when set (check_restart_checkpoint's choice),
    else the latest checkpoint of model_dir (every worker reads the chief's)."""
    latest = self.restore_path or tf.train.latest_checkpoint(self.model_dir)
    if latest:
      try:
        self.checkpoint.restore(latest).assert_existing_objects_matched()
      except (IndexError, tf.errors.OpError) as e:
        if not loading.is_bundle_read_error(e):
          raise
        raise loading.damaged_checkpoint(latest, e) from None
      self.restored_from = latest
      self._event("restored", checkpoint=latest, step=self._step(), stage=self._stage_index())
      log.info("restored %s: step %d, stage %d", latest, self._step(), self._stage_index())
    return latest

  def save(self) -> str:
    try:
      path = self.manager.save(checkpoint_number=self._step())
    except (tf.errors.OpError, OSError) as e:   # a full disk, a quota, a lost mount
      good = self.manager.latest_checkpoint if self.is_chief else None
      raise ModelDirWriteError(
          f"cannot write checkpoint {self.ckpt_dir}/{CHECKPOINT_NAME}-{self._step()}: "
          f"{_reason(e)}; training stopped at step {self._step()}. Last good checkpoint "
          f"kept: {good or 'none (no checkpoint was written yet)'}") from e
    if not self.is_chief:
      tf.io.gfile.rmtree(self.ckpt_dir)  # non-chief copies exist only because TF needs them
    return path

  def _preemption_save(self, *args, **kwargs):
    del args, kwargs
    path = self.save()
    self._event("preempted", step=self._step(), stage=self._stage_index(), checkpoint=path)
    log.warning("preemption: saved %s at step %d; exiting with code %d", path, self._step(),
                runtime.PREEMPTED_EXIT_CODE)

  # -- logging ----------------------------------------------------------------

  def _event(self, kind: str, **fields) -> None:
    if not self.is_chief:
      return
    rec = {"event": kind, "time": time.time()}
    rec.update(fields)
    try:
      with open(self._log_path, "a") as f:
        f.write(json.dumps(rec) + "\n")
    except OSError as e:
      raise ModelDirWriteError(f"cannot write {self._log_path}: {_reason(e)}") from e

  # -- the step ---------------------------------------------------------------

  def _make_train_fn(self, stage: Stage):
    model, optimizer, task = self.model, self.optimizer, self.task
    clip = self.tcfg.clip_grad_norm
    loss_scaling = self.loss_scaling
    num_replicas = self.num_replicas

    def grads_fn(batch, carry, step):
      variables = model.trainable_variables
      with tf.GradientTape() as tape:
        loss, metrics, vis, new_carry = task.loss(model, batch, carry, stage, step)
        reg = tf.add_n([tf.cast(l, tf.float32) for l in model.losses]) if model.losses else 0.0
        total = loss + tf.nn.scale_regularization_loss(reg)
        scaled = optimizer.get_scaled_loss(total) if loss_scaling else total
      grads = tape.gradient(scaled, variables)
      if loss_scaling:
        grads = optimizer.get_unscaled_gradients(grads)
      grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
               for g, v in zip(grads, variables)]
      metrics = dict(metrics)
      metrics["loss"] = loss
      metrics["regularization"] = tf.nn.scale_regularization_loss(reg)
      return grads, metrics, vis, new_carry

    if self.cfg.runtime.jit_compile and task.jit_compatible(stage):
      grads_fn = tf.function(grads_fn, jit_compile=True)

    def replica_step(batch, carry, step):
      grads, metrics, vis, new_carry = grads_fn(batch, carry, step)
      images = task.summary_images(vis)
      ctx = tf.distribute.get_replica_context()
      if num_replicas > 1:
        grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        total_loss = ctx.all_reduce(tf.distribute.ReduceOp.SUM, metrics["loss"])
      else:
        total_loss = metrics["loss"]
      gnorm = tf.linalg.global_norm(grads)
      if clip > 0:
        grads, _ = tf.clip_by_global_norm(grads, clip, use_norm=gnorm)
      finite = tf.math.is_finite(total_loss)
      if not loss_scaling:  # with loss scaling, inf gradients are normal: the optimizer skips them
        finite = tf.logical_and(finite, tf.math.is_finite(gnorm))

      # apply_gradients cannot sit in a tf.cond under a distribution strategy
      # (it is a synchronization point), so a non-finite step applies zero
      # gradients instead; the trainer then stops without saving.
      if not loss_scaling:
        grads = [tf.where(finite, g, tf.zeros_like(g)) for g in grads]
      optimizer.apply_gradients(zip(grads, model.trainable_variables),
                                skip_gradients_aggregation=True)
      metrics["grad_norm"] = gnorm / num_replicas      # summed over replicas below
      metrics["applied"] = tf.cast(finite, tf.float32) / num_replicas
      return metrics, images, new_carry

    strategy = self.strategy

    @tf.function
    def train_fn(iterator, carry, step):
      batch = next(iterator)
      metrics, images, new_carry = strategy.run(replica_step, args=(batch, carry, step))
      reduced = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                 for k, v in metrics.items()}
      first_images = strategy.experimental_local_results(images)[0]
      return reduced, first_images, new_carry

    return train_fn

  # -- main loop --------------------------------------------------------------

  def train(self) -> Dict[str, Any]:
    """Trains until trainer.train_steps; returns the last metrics."""
    handler = runtime.preemption_handler(self.strategy, self.checkpoint, self.model_dir,
                                         self._preemption_save)  # restores model_dir itself
    self.restore()
    self._event("start", step=self._step(), stage=self._stage_index(),
                replicas=self.num_replicas)
    bar = None
    if self.cfg.runtime.progress_bar and self.is_chief:
      bar = tqdm(total=self.tcfg.train_steps, initial=self._step(), unit="step")
    self._last_saved = self._step() if self.restored_from else -1
    try:
      while self._step() < self.tcfg.train_steps:
        self._train_stage(handler, bar)
      result = self._finish(handler)
    except BaseException:
      self._flush_summaries(raise_errors=False)   # the error in flight is the one to report
      raise
    finally:
      if bar is not None:
        bar.close()
    self._flush_summaries()
    return result

  def _flush_summaries(self, raise_errors: bool = True) -> None:
    try:
      self._writer.flush()
    except (tf.errors.OpError, OSError) as e:
      path = os.path.join(self.model_dir, "train")
      if raise_errors:
        raise ModelDirWriteError(f"cannot write the summaries in {path}: {_reason(e)}") from e
      log.warning("cannot write the summaries in %s: %s", path, _reason(e))

  def _start_stage(self) -> _StageRun:
    """The input, carry and step function of the current stage."""
    stage = self.task.stage(self.curriculum.current(self.task.num_stages()))
    per_replica = stage.batch_size // self.num_replicas
    seed = self.cfg.data.seed + self._step()
    dist_ds = self.strategy.distribute_datasets_from_function(
        lambda ctx: self.task.dataset(stage, ctx, seed))
    carry = self.strategy.run(lambda: self.task.initial_carry(self.model, stage, per_replica))
    self._event("stage", step=self._step(), stage=stage.index, description=stage.description)
    log.info("stage %d: %s (global batch %d on %d replicas)", stage.index, stage.description,
             stage.batch_size, self.num_replicas)
    return _StageRun(stage=stage, iterator=iter(dist_ds), carry=carry,
                     train_fn=self._make_train_fn(stage), t_last=time.time(),
                     n_last=self._step())

  def _train_stage(self, handler, bar) -> None:
    """Trains the current stage until it ends or training does."""
    run = self._start_stage()
    stage_done = False
    while self._step() < self.tcfg.train_steps and not stage_done:
      values, images = self._run_step(run, handler)
      step = self._step()
      plateau = self.curriculum.update_plateau(run.stage, values["loss"])
      stage_done = self.curriculum.stage_ended(run.stage, self.task.num_stages(), step, plateau)
      if bar is not None:
        bar.update(1)
        bar.set_postfix(loss=f"{values['loss']:.4f}", stage=run.stage.index)
      self._report(run, step, values, images, stage_done, to_log=bar is None)
      if stage_done:
        self.curriculum.next_stage(self.step)
        log.info("stage %d ends at step %d (%s)", run.stage.index, step,
                 "plateau" if plateau else "step budget")
      if (step % self.tcfg.checkpoint_every == 0 or stage_done
          or step == self.tcfg.train_steps):
        self.save()
        self._last_saved = step
      if (self.tcfg.val_every and step % self.tcfg.val_every == 0
          and step != self.tcfg.train_steps):
        self._validate(step)

  def _run_step(self, run: _StageRun, handler):
    """One update; -> (metrics as floats, summary images). Raises
    TrainingDiverged (without counting the step) when it was not applied."""
    step_t = tf.constant(self._step(), tf.int64)
    if handler is not None:
      metrics, images, run.carry = handler.run(run.train_fn, run.iterator, run.carry, step_t)
    else:
      metrics, images, run.carry = run.train_fn(run.iterator, run.carry, step_t)
    values = {k: float(v.numpy()) for k, v in metrics.items()}
    step = self._step() + 1
    if not (math.isfinite(values["loss"]) and values["applied"] > 0.5):
      good = self.manager.latest_checkpoint if self.is_chief else None
      self._event("diverged", step=step, stage=run.stage.index, loss=values["loss"],
                  grad_norm=values["grad_norm"], checkpoint=good)
      raise TrainingDiverged(
          f"non-finite loss or gradient at step {step} (stage {run.stage.index}): loss="
          f"{values['loss']}, grad_norm={values['grad_norm']}; the update was not "
          f"applied and training stops. Last good checkpoint kept: "
          f"{good or 'none (no checkpoint was written yet)'}")
    self.step.assign(step)
    self.last_metrics = values
    return values, images

  def _report(self, run: _StageRun, step, values, images, stage_done, to_log) -> None:
    """The log line and event every log_every steps (and at a stage's or the
    run's end), TensorBoard summaries every summary_every steps."""
    tcfg = self.tcfg
    images = images if step % tcfg.image_summary_every == 0 else None
    if step % tcfg.log_every == 0 or step == tcfg.train_steps or stage_done:
      now = time.time()
      ex_per_s = (step - run.n_last) * run.stage.batch_size / max(now - run.t_last, 1e-9)
      run.t_last, run.n_last = now, step
      lr = float(self._current_lr())
      self._log_step(step, run.stage.index, values, lr, ex_per_s, to_log)
      self._summaries(step, run.stage, values, lr, ex_per_s, images)
    elif step % tcfg.summary_every == 0:
      self._summaries(step, run.stage, values, float(self._current_lr()), None, images)

  def _finish(self, handler) -> Dict[str, Any]:
    """The last save and validation; -> the final metrics."""
    if self._step() != self._last_saved:
      self.save()
    result = dict(self.last_metrics)
    result.update(self._validate(self._step()))
    result["step"] = self._step()
    result["stage"] = self._stage_index()
    self._event("done", **{k: v for k, v in result.items() if isinstance(v, (int, float))})
    if handler is not None:
      runtime.remove_handler_scratch(self.strategy, self.model_dir, self.is_chief)
    return result

  def _current_lr(self):
    """The learning rate of the last update (tf_keras optimizers report the
    schedule's value at the step they last applied)."""
    opt = self.optimizer.inner_optimizer if self.loss_scaling else self.optimizer
    lr = opt.learning_rate
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
      return lr(opt.iterations).numpy()
    return tf.convert_to_tensor(lr).numpy()

  def _log_step(self, step, stage_index, values, lr, ex_per_s, to_log):
    text = (f"step {step}/{self.tcfg.train_steps} stage {stage_index} loss {values['loss']:.4f} "
            + " ".join(f"{k} {v:.4g}" for k, v in sorted(values.items())
                       if k not in ("loss", "applied"))
            + f" lr {lr:.3g} {ex_per_s:.1f} ex/s")
    if to_log and self.is_chief:
      log.info(text)
    self._event("step", step=step, stage=stage_index, lr=lr, examples_per_sec=ex_per_s,
                **{k: v for k, v in values.items() if k != "applied"})

  def _summaries(self, step, stage: Stage, values, lr, ex_per_s, images):
    with self._writer.as_default(step=step):
      for k, v in values.items():
        if k != "applied":
          summaries.scalar(f"train/{k}", v)
      summaries.scalar("train/learning_rate", lr)
      summaries.scalar("train/stage", stage.index)
      for k, v in stage.info.items():
        summaries.scalar(f"train/{k}", v)
      if ex_per_s is not None:
        summaries.scalar("train/examples_per_sec", ex_per_s)
      if images is not None:
        summaries.image("train/crops_pred_red_true_green", images, max_outputs=4)

  def _validate(self, step) -> Dict[str, float]:
    if not self.is_chief:
      return {}
    t0 = time.time()
    metrics = self.task.validate(self.model)
    if not metrics:
      return {}
    metrics = {f"val_{k}": float(v) for k, v in metrics.items()}
    with self._writer.as_default(step=step):
      for k, v in metrics.items():
        summaries.scalar(f"val/{k[4:]}", v)
    self._event("validation", step=step, seconds=time.time() - t0, **metrics)
    log.info("validation at step %d: %s", step,
             ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())))
    return metrics
