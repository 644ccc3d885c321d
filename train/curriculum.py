"""Curriculum stages and plateau detection.

A task's training is a sequence of stages (configs: trainer.stages). A stage
ends after its `steps`, or earlier when the smoothed loss has plateaued; the
last stage runs until trainer.train_steps. The stage counter and the plateau
state are tf.Variables so they are checkpointed with the model: their
checkpoint keys (`stage`, `stage_start`, `best_loss`, `ema_loss`,
`since_best`) are those of every earlier checkpoint, which keeps restoring.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict

import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class Stage:
  """One curriculum stage as the trainer sees it."""
  index: int
  batch_size: int                 # global batch
  steps: int = 0                  # 0 = until plateau / end of training
  plateau_patience: int = 0
  plateau_min_delta: float = 0.01
  description: str = ""
  info: Dict[str, float] = dataclasses.field(default_factory=dict)  # logged as scalars


class Curriculum:
  """The current stage and its plateau state (checkpointed variables).

  Plateau: an exponential moving average of the loss with time constant
  plateau_patience / 10 steps; the stage has plateaued when that average has
  not improved on its best by plateau_min_delta (relative) for
  plateau_patience steps (0 = no plateau detection).
  """

  def __init__(self):
    self.stage = tf.Variable(0, dtype=tf.int64, trainable=False, name="stage")
    self.stage_start = tf.Variable(0, dtype=tf.int64, trainable=False, name="stage_start")
    self.best_loss = tf.Variable(np.inf, dtype=tf.float64, trainable=False, name="best_loss")
    self.ema_loss = tf.Variable(np.nan, dtype=tf.float64, trainable=False, name="ema_loss")
    self.since_best = tf.Variable(0, dtype=tf.int64, trainable=False, name="since_best")

  def checkpoint_items(self) -> Dict[str, tf.Variable]:
    """The variables under their (unchanged) checkpoint keys."""
    return {"stage": self.stage, "stage_start": self.stage_start, "best_loss": self.best_loss,
            "ema_loss": self.ema_loss, "since_best": self.since_best}

  def current(self, num_stages: int) -> int:
    """The index of the stage to train (the last one once all have ended)."""
    return min(int(self.stage.numpy()), num_stages - 1)

  def update_plateau(self, stage: Stage, loss: float) -> bool:
    """Tracks the smoothed loss; True when the stage has plateaued."""
    if stage.plateau_patience <= 0:
      return False
    alpha = min(1.0, 10.0 / stage.plateau_patience)
    ema = float(self.ema_loss.numpy())
    ema = loss if math.isnan(ema) else (1 - alpha) * ema + alpha * loss
    self.ema_loss.assign(ema)
    if ema < float(self.best_loss.numpy()) * (1.0 - stage.plateau_min_delta):
      self.best_loss.assign(ema)
      self.since_best.assign(0)
    else:
      self.since_best.assign_add(1)
    return int(self.since_best.numpy()) >= stage.plateau_patience

  def stage_ended(self, stage: Stage, num_stages: int, step: int, plateau: bool) -> bool:
    """Whether `stage` ends at `step` (its step budget spent, or a plateau);
    the last stage never ends."""
    if stage.index >= num_stages - 1:
      return False
    in_stage = step - int(self.stage_start.numpy())
    return (stage.steps > 0 and in_stage >= stage.steps) or plateau

  def next_stage(self, step) -> None:
    """Moves to the next stage starting at `step`, with a fresh plateau state."""
    self.stage.assign_add(1)
    self.stage_start.assign(step)
    self.best_loss.assign(np.inf)
    self.ema_loss.assign(np.nan)
    self.since_best.assign(0)
