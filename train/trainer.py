"""The task-agnostic custom training loop under tf.distribute.

A task (train/re3_task.py, train/rl_task.py) says what a phase (curriculum
stage) is, builds its model and per-replica dataset, and computes the
per-replica loss; this module does everything else:

* the strategy (one device, MirroredStrategy over local GPUs or logical CPUs,
  MultiWorkerMirroredStrategy from TF_CONFIG), input sharded with
  `distribute_datasets_from_function`;
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
  TF's PreemptionCheckpointHandler makes every worker save at the same step
  and exit with PREEMPTED_EXIT_CODE when any of them gets SIGTERM, and
  propagates an op error on one worker to all (restart them to resume);
* mixed precision (`mixed_float16` with dynamic loss scaling, or
  `mixed_bfloat16`) and XLA (`jit_compile` on the loss-and-gradient function);
* TensorBoard scalars, crop images with boxes, a log line (or tqdm bar) and a
  JSON-lines log `train_log.jsonl` the tests and plots read.

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
import sys
import time
from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

from configs.experiment import ExperimentConfig, RuntimeConfig, TrainerConfig
from train import summaries

log = logging.getLogger("train")


PREEMPTED_EXIT_CODE = 42  # a worker saved on SIGTERM and stopped: restart it


class TrainingDiverged(RuntimeError):
  """The loss (or the gradient) became NaN or infinite."""


@dataclasses.dataclass
class Phase:
  """One curriculum stage as the trainer sees it."""
  index: int
  batch_size: int                 # global batch
  steps: int = 0                  # 0 = until plateau / end of training
  plateau_patience: int = 0
  plateau_min_delta: float = 0.01
  description: str = ""
  info: Dict[str, float] = dataclasses.field(default_factory=dict)  # logged as scalars


class Task:
  """What the trainer needs from a task (see Re3Task and RLTask)."""

  name = "task"

  def build_model(self) -> keras.Model:
    raise NotImplementedError

  def num_phases(self) -> int:
    raise NotImplementedError

  def phase(self, index: int) -> Phase:
    raise NotImplementedError

  def dataset(self, phase: Phase, input_context: tf.distribute.InputContext,
              seed: int) -> tf.data.Dataset:
    """Per-replica batches (batch = input_context.get_per_replica_batch_size)."""
    raise NotImplementedError

  def initial_carry(self, model, phase: Phase, per_replica_batch: int):
    """Tensors carried from one step to the next (e.g. an LSTM state), or None."""
    return None

  def loss(self, model, batch, carry, phase: Phase, step):
    """-> (loss scaled for the global batch, metrics {name: replica share},
    vis: tensors for `summary_images`, new carry)."""
    raise NotImplementedError

  def jit_compatible(self, phase: Phase) -> bool:
    """False when the phase's loss has ops without XLA kernels; the task then
    compiles what it can itself (runtime.jit_compile)."""
    return True

  def summary_images(self, vis) -> tf.Tensor:
    """uint8 [k, H, W, 3] images with boxes drawn, from loss()'s vis (run
    outside the XLA-compiled part: drawing ops have no XLA kernels)."""
    raise NotImplementedError

  def validate(self, model) -> Dict[str, float]:
    return {}


# ---------------------------------------------------------------------------
# Runtime: strategy, precision
# ---------------------------------------------------------------------------


def make_strategy(runtime: RuntimeConfig) -> tf.distribute.Strategy:
  """The tf.distribute strategy named by runtime.distribution."""
  if runtime.distribution == "multi_worker_mirrored":
    kwargs = {}
    if runtime.collective_timeout_s > 0:
      kwargs["communication_options"] = tf.distribute.experimental.CommunicationOptions(
          timeout_seconds=runtime.collective_timeout_s)
    return tf.distribute.MultiWorkerMirroredStrategy(**kwargs)
  gpus = tf.config.list_logical_devices("GPU")
  if runtime.distribution == "mirrored":
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    if runtime.num_devices:
      if runtime.num_devices > len(devices):
        raise ValueError(f"runtime.num_devices={runtime.num_devices} but only {len(devices)} "
                         f"local devices: {devices}")
      devices = devices[:runtime.num_devices]
    return tf.distribute.MirroredStrategy(devices)
  device = runtime.device or (gpus[0].name if gpus else "/cpu:0")
  return tf.distribute.OneDeviceStrategy(device)


def set_precision(runtime: RuntimeConfig) -> None:
  keras.mixed_precision.set_global_policy(runtime.mixed_precision)


def learning_rate_schedule(cfg: TrainerConfig):
  if cfg.lr_schedule == "constant":
    return cfg.learning_rate
  if cfg.lr_schedule == "piecewise":
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        [int(b) for b in cfg.lr_boundaries], [float(v) for v in cfg.lr_values])
  # linear: from learning_rate to 0 over train_steps (the RL paper's annealing)
  return keras.optimizers.schedules.PolynomialDecay(
      cfg.learning_rate, decay_steps=cfg.train_steps, end_learning_rate=0.0, power=1.0)


def _is_chief(strategy) -> bool:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type == "chief":
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return (task_type in (None, "worker") and (task_id or 0) == 0 and not has_chief)


def _worker_name(strategy) -> str:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None:
    return "local"
  return f"{resolver.task_type}_{resolver.task_id}"


# ---------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------


class Trainer:
  """Runs `task` under `cfg.runtime` with checkpoints in `model_dir`."""

  def __init__(self, cfg: ExperimentConfig, model_dir: str, task: Task,
               strategy: Optional[tf.distribute.Strategy] = None):
    self.cfg = cfg
    self.tcfg = cfg.trainer
    self.model_dir = model_dir
    self.task = task
    self.strategy = strategy or make_strategy(cfg.runtime)
    self.is_chief = _is_chief(self.strategy)
    self.num_replicas = self.strategy.num_replicas_in_sync
    for i in range(task.num_phases()):
      bs = task.phase(i).batch_size
      if bs % self.num_replicas:
        raise ValueError(f"stage {i}: global batch {bs} is not divisible by the "
                         f"{self.num_replicas} replicas")
    tf.io.gfile.makedirs(model_dir)
    if self.is_chief:
      self.ckpt_dir = model_dir
    else:
      self.ckpt_dir = os.path.join(model_dir, ".worker_tmp", _worker_name(self.strategy))
    previous_policy = keras.mixed_precision.global_policy()
    set_precision(cfg.runtime)  # layers take their dtype policy when built
    try:
      with self.strategy.scope():
        self.model = task.build_model()
    finally:
      keras.mixed_precision.set_global_policy(previous_policy)
    with self.strategy.scope():
      opt = keras.optimizers.Adam(
          learning_rate=learning_rate_schedule(self.tcfg), beta_1=self.tcfg.adam_beta1,
          beta_2=self.tcfg.adam_beta2, epsilon=self.tcfg.adam_epsilon)
      self.loss_scaling = cfg.runtime.mixed_precision == "mixed_float16"
      if self.loss_scaling:
        opt = keras.mixed_precision.LossScaleOptimizer(opt)
      self.optimizer = opt
      self.optimizer.build(self.model.trainable_variables)
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    self.stage = tf.Variable(0, dtype=tf.int64, trainable=False, name="stage")
    self.stage_start = tf.Variable(0, dtype=tf.int64, trainable=False, name="stage_start")
    self.best_loss = tf.Variable(np.inf, dtype=tf.float64, trainable=False, name="best_loss")
    self.ema_loss = tf.Variable(np.nan, dtype=tf.float64, trainable=False, name="ema_loss")
    self.since_best = tf.Variable(0, dtype=tf.int64, trainable=False, name="since_best")
    self.checkpoint = tf.train.Checkpoint(
        model=self.model, optimizer=self.optimizer, step=self.step, stage=self.stage,
        stage_start=self.stage_start, best_loss=self.best_loss, ema_loss=self.ema_loss,
        since_best=self.since_best)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, self.ckpt_dir, max_to_keep=self.tcfg.keep_checkpoints,
        step_counter=self.step, checkpoint_name="ckpt")
    self.restored_from = None
    self._writer = (tf.summary.create_file_writer(os.path.join(model_dir, "train"))
                    if self.is_chief else tf.summary.create_noop_writer())
    self._log_path = os.path.join(model_dir, "train_log.jsonl")
    self.last_metrics: Dict[str, float] = {}

  # -- checkpoints ------------------------------------------------------------

  def restore(self) -> Optional[str]:
    """Restores the latest checkpoint of model_dir (every worker reads the chief's)."""
    latest = tf.train.latest_checkpoint(self.model_dir)
    if latest:
      self.checkpoint.restore(latest).assert_existing_objects_matched()
      self.restored_from = latest
      self._event("restored", checkpoint=latest, step=int(self.step.numpy()),
                  stage=int(self.stage.numpy()))
      log.info("restored %s: step %d, stage %d", latest, int(self.step.numpy()),
               int(self.stage.numpy()))
    return latest

  def save(self) -> str:
    path = self.manager.save(checkpoint_number=int(self.step.numpy()))
    if not self.is_chief:
      tf.io.gfile.rmtree(self.ckpt_dir)  # non-chief copies exist only because TF needs them
    return path

  def _preemption_handler(self):
    """Multi-worker fault tolerance: TF's PreemptionCheckpointHandler. When any
    worker gets SIGTERM (a preemption, or an operator restarting it), every
    worker saves a checkpoint at the same step and exits with code
    PREEMPTED_EXIT_CODE; restarting the workers resumes from it. It also
    propagates an op error on one worker to all of them, so none hangs in a
    collective."""
    if not isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
      return None
    resolver = self.strategy.cluster_resolver
    if resolver is None or not resolver.cluster_spec().as_dict():
      return None
    return tf.distribute.experimental.PreemptionCheckpointHandler(
        resolver, self.checkpoint, checkpoint_dir=self.model_dir,
        termination_config=tf.distribute.experimental.TerminationConfig(
            save_fn=self._preemption_save, exit_fn=lambda: sys.exit(PREEMPTED_EXIT_CODE)))

  def _remove_handler_scratch(self):
    """The handler makes an (unused: we save through save_fn) scratch directory
    beside model_dir on non-chief workers and removes it only when it exits on
    preemption; remove it after a normal finish."""
    if self.is_chief:
      return
    resolver = self.strategy.cluster_resolver
    scratch = os.path.join(os.path.dirname(os.path.abspath(self.model_dir)),
                           f"workertemp_{resolver.task_id}")
    if tf.io.gfile.exists(scratch):
      tf.io.gfile.rmtree(scratch)

  def _preemption_save(self, *args, **kwargs):
    del args, kwargs
    path = self.save()
    self._event("preempted", step=int(self.step.numpy()), stage=int(self.stage.numpy()),
                checkpoint=path)
    log.warning("preemption: saved %s at step %d; exiting with code %d", path,
                int(self.step.numpy()), PREEMPTED_EXIT_CODE)

  # -- logging ----------------------------------------------------------------

  def _event(self, kind: str, **fields) -> None:
    if not self.is_chief:
      return
    rec = {"event": kind, "time": time.time()}
    rec.update(fields)
    with open(self._log_path, "a") as f:
      f.write(json.dumps(rec) + "\n")

  # -- the step ---------------------------------------------------------------

  def _make_train_fn(self, phase: Phase):
    model, optimizer, task = self.model, self.optimizer, self.task
    clip = self.tcfg.clip_grad_norm
    loss_scaling = self.loss_scaling
    num_replicas = self.num_replicas

    def grads_fn(batch, carry, step):
      variables = model.trainable_variables
      with tf.GradientTape() as tape:
        loss, metrics, vis, new_carry = task.loss(model, batch, carry, phase, step)
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

    if self.cfg.runtime.jit_compile and task.jit_compatible(phase):
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

  # -- curriculum -------------------------------------------------------------

  def _update_plateau(self, phase: Phase, loss: float) -> bool:
    """Tracks a smoothed loss; True when the stage has plateaued."""
    if phase.plateau_patience <= 0:
      return False
    alpha = min(1.0, 10.0 / phase.plateau_patience)
    ema = float(self.ema_loss.numpy())
    ema = loss if math.isnan(ema) else (1 - alpha) * ema + alpha * loss
    self.ema_loss.assign(ema)
    if ema < float(self.best_loss.numpy()) * (1.0 - phase.plateau_min_delta):
      self.best_loss.assign(ema)
      self.since_best.assign(0)
    else:
      self.since_best.assign_add(1)
    return int(self.since_best.numpy()) >= phase.plateau_patience

  def _next_stage(self) -> None:
    self.stage.assign_add(1)
    self.stage_start.assign(self.step)
    self.best_loss.assign(np.inf)
    self.ema_loss.assign(np.nan)
    self.since_best.assign(0)

  # -- main loop --------------------------------------------------------------

  def train(self) -> Dict[str, Any]:
    """Trains until trainer.train_steps; returns the last metrics."""
    handler = self._preemption_handler()  # restores model_dir's checkpoint itself
    self.restore()
    tcfg = self.tcfg
    total_steps = tcfg.train_steps
    self._event("start", step=int(self.step.numpy()), stage=int(self.stage.numpy()),
                replicas=self.num_replicas)
    bar = None
    if self.cfg.runtime.progress_bar and self.is_chief:
      from tqdm import tqdm
      bar = tqdm(total=total_steps, initial=int(self.step.numpy()), unit="step")
    last_saved = int(self.step.numpy()) if self.restored_from else -1
    try:
      while int(self.step.numpy()) < total_steps:
        stage = min(int(self.stage.numpy()), self.task.num_phases() - 1)
        phase = self.task.phase(stage)
        per_replica = phase.batch_size // self.num_replicas
        seed = self.cfg.data.seed + int(self.step.numpy())
        dist_ds = self.strategy.distribute_datasets_from_function(
            lambda ctx, phase=phase, seed=seed: self.task.dataset(phase, ctx, seed))
        iterator = iter(dist_ds)
        carry = self.strategy.run(
            lambda: self.task.initial_carry(self.model, phase, per_replica))
        train_fn = self._make_train_fn(phase)
        self._event("stage", step=int(self.step.numpy()), stage=stage, description=phase.description)
        log.info("stage %d: %s (global batch %d on %d replicas)", stage, phase.description,
                 phase.batch_size, self.num_replicas)
        t_last, n_last = time.time(), int(self.step.numpy())
        stage_done = False
        while int(self.step.numpy()) < total_steps and not stage_done:
          step_t = tf.constant(int(self.step.numpy()), tf.int64)
          if handler is not None:
            metrics, images, carry = handler.run(train_fn, iterator, carry, step_t)
          else:
            metrics, images, carry = train_fn(iterator, carry, step_t)
          values = {k: float(v.numpy()) for k, v in metrics.items()}
          step = int(self.step.numpy()) + 1
          if not (math.isfinite(values["loss"]) and values["applied"] > 0.5):
            good = self.manager.latest_checkpoint if self.is_chief else None
            msg = (f"non-finite loss or gradient at step {step} (stage {stage}): loss="
                   f"{values['loss']}, grad_norm={values['grad_norm']}; the update was not "
                   f"applied and training stops. Last good checkpoint kept: "
                   f"{good or 'none (no checkpoint was written yet)'}")
            self._event("diverged", step=step, stage=stage, loss=values["loss"],
                        grad_norm=values["grad_norm"], checkpoint=good)
            raise TrainingDiverged(msg)
          self.step.assign(step)
          self.last_metrics = values
          plateau = self._update_plateau(phase, values["loss"])
          in_stage = step - int(self.stage_start.numpy())
          if stage < self.task.num_phases() - 1:
            stage_done = (phase.steps > 0 and in_stage >= phase.steps) or plateau
          if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{values['loss']:.4f}", stage=stage)
          if step % tcfg.log_every == 0 or step == total_steps or stage_done:
            now = time.time()
            ex_per_s = (step - n_last) * phase.batch_size / max(now - t_last, 1e-9)
            t_last, n_last = now, step
            lr = float(self._current_lr())
            self._log_step(step, stage, values, lr, ex_per_s, bar is None)
            self._summaries(step, stage, phase, values, lr, ex_per_s,
                            images if step % tcfg.image_summary_every == 0 else None)
          elif step % tcfg.summary_every == 0:
            self._summaries(step, stage, phase, values, float(self._current_lr()), None,
                            images if step % tcfg.image_summary_every == 0 else None)
          if stage_done:
            self._next_stage()
            log.info("stage %d ends at step %d (%s)", stage, step,
                     "plateau" if plateau else "step budget")
          if step % tcfg.checkpoint_every == 0 or stage_done or step == total_steps:
            self.save()
            last_saved = step
          if tcfg.val_every and step % tcfg.val_every == 0 and step != total_steps:
            self._validate(step)
      if int(self.step.numpy()) != last_saved:
        self.save()
      result = dict(self.last_metrics)
      result.update(self._validate(int(self.step.numpy())))
      result["step"] = int(self.step.numpy())
      result["stage"] = int(self.stage.numpy())
      self._event("done", **{k: v for k, v in result.items() if isinstance(v, (int, float))})
      if handler is not None:
        self._remove_handler_scratch()
      return result
    finally:
      if bar is not None:
        bar.close()
      self._writer.flush()

  def _current_lr(self):
    """The learning rate of the last update (tf_keras optimizers report the
    schedule's value at the step they last applied)."""
    opt = self.optimizer.inner_optimizer if self.loss_scaling else self.optimizer
    lr = opt.learning_rate
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
      return lr(opt.iterations).numpy()
    return tf.convert_to_tensor(lr).numpy()

  def _log_step(self, step, stage, values, lr, ex_per_s, to_log):
    text = (f"step {step}/{self.tcfg.train_steps} stage {stage} loss {values['loss']:.4f} "
            + " ".join(f"{k} {v:.4g}" for k, v in sorted(values.items())
                       if k not in ("loss", "applied"))
            + f" lr {lr:.3g} {ex_per_s:.1f} ex/s")
    if to_log and self.is_chief:
      log.info(text)
    self._event("step", step=step, stage=stage, lr=lr, examples_per_sec=ex_per_s,
                **{k: v for k, v in values.items() if k != "applied"})

  def _summaries(self, step, stage, phase, values, lr, ex_per_s, images):
    with self._writer.as_default(step=step):
      for k, v in values.items():
        if k != "applied":
          summaries.scalar(f"train/{k}", v)
      summaries.scalar("train/learning_rate", lr)
      summaries.scalar("train/stage", stage)
      for k, v in phase.info.items():
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
