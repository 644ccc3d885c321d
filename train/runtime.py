"""The training runtime: devices and strategy, mixed precision, the roles of
the workers and multi-worker preemption handling.

* strategy: one device, MirroredStrategy over local GPUs (or logical CPUs),
  MultiWorkerMirroredStrategy from TF_CONFIG;
* precision: `mixed_float16` (the trainer adds dynamic loss scaling) or
  `mixed_bfloat16`, set as the Keras global policy while the model is built;
* preemption: TF's PreemptionCheckpointHandler makes every worker save at the
  same step and exit with PREEMPTED_EXIT_CODE when any of them gets SIGTERM,
  and propagates an op error on one worker to all (restart them to resume).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterator

import tensorflow as tf
import tf_keras as keras

from configs.experiment import RuntimeConfig

PREEMPTED_EXIT_CODE = 42  # a worker saved on SIGTERM and stopped: restart it


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


@contextlib.contextmanager
def precision_policy(runtime: RuntimeConfig) -> Iterator[None]:
  """runtime.mixed_precision as the Keras global policy inside the block
  (layers take their dtype policy when built), the previous one after it."""
  previous = keras.mixed_precision.global_policy()
  set_precision(runtime)
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


def uses_loss_scaling(runtime: RuntimeConfig) -> bool:
  """float16 needs dynamic loss scaling; bfloat16 and float32 do not."""
  return runtime.mixed_precision == "mixed_float16"


def is_chief(strategy) -> bool:
  """Whether this worker writes the checkpoints, summaries and event log."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type == "chief":
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return (task_type in (None, "worker") and (task_id or 0) == 0 and not has_chief)


def worker_name(strategy) -> str:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None:
    return "local"
  return f"{resolver.task_type}_{resolver.task_id}"


def preemption_handler(strategy, checkpoint: tf.train.Checkpoint, model_dir: str,
                       save_fn: Callable[[], None]):
  """Multi-worker fault tolerance: TF's PreemptionCheckpointHandler, or None
  outside a multi-worker cluster. When any worker gets SIGTERM (a preemption,
  or an operator restarting it), every worker calls `save_fn` at the same step
  and exits with code PREEMPTED_EXIT_CODE; restarting the workers resumes from
  the checkpoint. It also propagates an op error on one worker to all of
  them, so none hangs in a collective. It restores model_dir's checkpoint
  itself."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return None
  resolver = strategy.cluster_resolver
  if resolver is None or not resolver.cluster_spec().as_dict():
    return None
  return tf.distribute.experimental.PreemptionCheckpointHandler(
      resolver, checkpoint, checkpoint_dir=model_dir,
      termination_config=tf.distribute.experimental.TerminationConfig(
          save_fn=save_fn, exit_fn=lambda: sys.exit(PREEMPTED_EXIT_CODE)))


def remove_handler_scratch(strategy, model_dir: str, chief: bool) -> None:
  """The handler makes an (unused: the trainer saves through save_fn) scratch
  directory beside model_dir on non-chief workers and removes it only when it
  exits on preemption; this removes it after a normal finish."""
  if chief:
    return
  scratch = os.path.join(os.path.dirname(os.path.abspath(model_dir)),
                         f"workertemp_{strategy.cluster_resolver.task_id}")
  if tf.io.gfile.exists(scratch):
    tf.io.gfile.rmtree(scratch)


def worker_checkpoint_dir(strategy, model_dir: str, chief: bool) -> str:
  """Where this worker saves: model_dir for the chief, a throw-away directory
  for the others (TF needs every worker to save; only the chief's is kept)."""
  if chief:
    return model_dir
  return os.path.join(model_dir, ".worker_tmp", worker_name(strategy))

