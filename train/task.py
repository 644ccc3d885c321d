"""The Task interface: what the trainer needs from a training task.

A task (train/re3_task.py, train/rl_task.py) says what each curriculum stage
is, builds its model and per-replica dataset, and computes the per-replica
loss; train/trainer.py runs any task under train/runtime.py's strategy.
"""

from __future__ import annotations

from typing import Dict

import tensorflow as tf
import tf_keras as keras

from train.curriculum import Stage


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
