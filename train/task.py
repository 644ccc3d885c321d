"""The Task interface: what the trainer needs from a training task.

A task (train/re3_task.py, train/rl_task.py) says what each curriculum stage
is, builds its model and per-replica dataset, and computes the per-replica
loss; train/trainer.py runs any task under train/runtime.py's strategy.
"""

from __future__ import annotations

import logging
from typing import Dict

import tensorflow as tf
import tf_keras as keras

from model import loading
from train.curriculum import Stage

log = logging.getLogger(__name__)


def init_from_model(net: keras.Model, path: str) -> str:
  """Assigns every weight of `net` from a trained model (trainer.init_model: a
  training model_dir, a checkpoint prefix, or "default": the shipped model)
  of the same network -> the checkpoint read. Fails naming the checkpoint
  when it does not hold this network (a variable missing or of another
  shape), or naming the damaged file (model.loading.DamagedCheckpoint); the
  optimizer's slots and the step are not read: the run starts at step 0."""
  try:
    path = loading.resolve_model_path(path)
  except ValueError as e:
    raise ValueError(f"trainer.init_model {path!r}: {e}") from None
  ckpt = loading.find_checkpoint(path) if tf.io.gfile.isdir(path) else path
  if not ckpt or not tf.io.gfile.exists(ckpt + ".index"):
    raise ValueError(f"trainer.init_model {path!r}: no checkpoint there (a training model_dir "
                     "or a checkpoint prefix)")
  loading.restore_weights(net, ckpt, f"trainer.init_model {ckpt}: does not hold this network "
                                     "as `model`")
  log.info("weights initialised from %s", ckpt)
  return ckpt


class Task:
  """What the trainer needs from a task (see Re3Task and RLTask)."""

  name = "task"
  # The shards each stage reads, from train.data.check_sources before training
  # (None: every shard of every source).
  checked_sources = None

  def source_requirements(self):
    """-> (frames of a clip of each stage, whether clips start at a track's
    first frame, the clip lengths of stages that also read crop pairs): what
    train.data.check_sources checks every source against."""
    raise NotImplementedError

  def build_model(self) -> keras.Model:
    raise NotImplementedError

  def num_stages(self) -> int:
    raise NotImplementedError

  def stage(self, index: int) -> Stage:
    raise NotImplementedError

  def dataset(self, stage: Stage, input_context: tf.distribute.InputContext,
              seed: int) -> tf.data.Dataset:
    """Per-replica batches (batch = input_context.get_per_replica_batch_size)."""
    raise NotImplementedError

  def initial_carry(self, model, stage: Stage, per_replica_batch: int):
    """Tensors carried from one step to the next (e.g. an LSTM state), or None."""
    return None

  def loss(self, model, batch, carry, stage: Stage, step):
    """-> (loss scaled for the global batch, metrics {name: replica share},
    vis: tensors for `summary_images`, new carry)."""
    raise NotImplementedError

  def jit_compatible(self, stage: Stage) -> bool:
    """False when the stage's loss has ops without XLA kernels; the task then
    compiles what it can itself (runtime.jit_compile)."""
    return True

  def summary_images(self, vis) -> tf.Tensor:
    """uint8 [k, H, W, 3] images with boxes drawn, from loss()'s vis (run
    outside the XLA-compiled part: drawing ops have no XLA kernels)."""
    raise NotImplementedError

  def validate(self, model) -> Dict[str, float]:
    return {}
