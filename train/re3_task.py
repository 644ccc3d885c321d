"""Re3 training (Gordon et al. 2018, section III-C) as a trainer Task.

* Curriculum: the configured stages (paper: 2 unrolls batch 64, doubling the
  unrolls and halving the batch on plateau up to 32 unrolls batch 4).
* Loss: L1 between predicted and true labels (Re3 label convention: sum over
  the 4 coordinates, mean over batch and time), plus the model's L2 weight
  decay (model.weight_decay, added by the trainer from model.losses).
* Learning to fix mistakes: in a self-training stage each sequence is, with
  the stage's probability, cropped around the network's own previous
  predictions. This happens inside the training step (`self_training_unroll`):
  predict step t, turn the label into a box in the frame, cut both crops of
  step t+1 around it with tf.image.crop_and_resize, all in one graph, with
  tf.stop_gradient on the crop window (no gradient flows through where the
  crop was cut). Other sequences use the jittered ground-truth windows.
* Validation: the network run as a tracker (its own crops, LSTM state reset
  every trainer.val_reset_every frames, as at test time) on held-out records;
  the metric is the mean IoU over frames with a ground-truth box.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from configs.experiment import ExperimentConfig
from model import geometry
from model.towers import caffenet_import, efficientnet_import, nanotrack, nanotrack_head
from model.re3 import build_re3, init_head_from_hint
from train import data as data_lib
from train.curriculum import Stage
from train.task import Task, init_from_model
from train.validation import track_iou

log = logging.getLogger("train")


def nudge_boxes_tf(boxes, truth, target, min_coverage: float, iterations: int = 20):
  """The public Re3 code's safeguard (off when min_coverage is 0): move a
  predicted search box towards the truth (box = 0.9 box + 0.1 truth) until
  its 2x window covers at least `min_coverage` of the target box."""
  for _ in range(iterations):
    cov = geometry.coverage_xyxy_tf(geometry.crop_window_xyxy_tf(boxes), target)
    boxes = tf.where((cov < min_coverage)[:, None], 0.9 * boxes + 0.1 * truth, boxes)
  return boxes


def self_training_unroll(model, frames, boxes, gt_windows, use_pred, crop_size: int,
                         training: bool = True, min_coverage: float = 0.0,
                         step_fn=None) -> Dict[str, tf.Tensor]:
  """Unrolls Re3 over T steps, cutting each step's crops inside the graph.

  frames [B, T+1, H, W, C], boxes [B, T+1, 4] (truth, pixels), gt_windows
  [B, T, 4] (windows around the jittered truth), use_pred [B] bool.
  Step t's window is gt_windows[:, t] for ground-truth sequences; for
  self-training sequences (t > 0) it is the 2x window around the box the
  network predicted at t-1 (label mapped back through that step's window).
  Returns labels [B, T, 4] (predicted), targets [B, T, 4] (truth relative to
  the window used), windows [B, T, 4], pred_boxes [B, T, 4] and the crops of
  the last step (prev_last, curr_last) for summaries. `step_fn` replaces
  model.step (e.g. an XLA-compiled version of it).
  """
  step_fn = step_fn or model.step
  frames = tf.convert_to_tensor(frames)
  boxes = tf.cast(boxes, tf.float32)
  gt_windows = tf.cast(gt_windows, tf.float32)
  use_pred = tf.convert_to_tensor(use_pred)
  b = tf.shape(frames)[0]
  steps = frames.shape[1] - 1
  state = model.zero_state(b)      # a template (model.template) comes from step 0's prev crop
  pred_box = None
  labels, targets, windows, pred_boxes = [], [], [], []
  prev = curr = None
  for t in range(steps):
    window = gt_windows[:, t]
    if pred_box is not None:
      search = pred_box
      if min_coverage > 0:
        search = nudge_boxes_tf(search, boxes[:, t], boxes[:, t + 1], min_coverage)
      window = tf.where(use_pred[:, None], geometry.crop_window_xyxy_tf(search), window)
    window = tf.stop_gradient(window)
    prev = geometry.crop_tf(frames[:, t], window, size=crop_size)
    curr = geometry.crop_tf(frames[:, t + 1], window, size=crop_size)
    label, state = step_fn(prev, curr, state, training=training)
    label = tf.cast(label, tf.float32)
    pred_box = tf.stop_gradient(geometry.crop_box_xyxy_tf(geometry.label_to_box_tf(label, window)))
    labels.append(label)
    targets.append(geometry.box_to_label_tf(boxes[:, t + 1], window))
    windows.append(window)
    pred_boxes.append(pred_box)
  return {"labels": tf.stack(labels, axis=1), "targets": tf.stack(targets, axis=1),
          "windows": tf.stack(windows, axis=1), "pred_boxes": tf.stack(pred_boxes, axis=1),
          "prev_last": prev, "curr_last": curr}


def l1_label_loss(pred, target):
  """Per-example Re3 loss: sum over the 4 coordinates of |pred - target|,
  mean over time -> [B]."""
  return tf.reduce_mean(tf.reduce_sum(tf.abs(pred - target), axis=-1), axis=-1)


def draw_label_boxes(crops, pred_labels, true_labels, max_images: int = 3):
  """Crops [B, S, S, C] with the predicted (red) and true (green) label boxes
  drawn -> uint8 [k, S, S, 3] for tf.summary.image."""
  k = tf.minimum(tf.shape(crops)[0], max_images)
  img = tf.cast(tf.clip_by_value(crops[:k], 0, 255), tf.float32) / 255.0
  if img.shape[-1] == 1:
    img = tf.image.grayscale_to_rgb(img)

  def yxyx(label):  # ordered and clipped to the crop (draw_bounding_boxes warns otherwise)
    l = tf.clip_by_value(tf.cast(label[:k], tf.float32) / geometry.LABEL_SCALE, 0.0, 1.0)
    l = tf.where(tf.math.is_finite(l), l, tf.zeros_like(l))
    return tf.stack([tf.minimum(l[:, 1], l[:, 3]), tf.minimum(l[:, 0], l[:, 2]),
                     tf.maximum(l[:, 1], l[:, 3]), tf.maximum(l[:, 0], l[:, 2])], axis=-1)

  img = tf.image.draw_bounding_boxes(img, yxyx(pred_labels)[:, None], tf.constant([[1.0, 0, 0, 1]]))
  img = tf.image.draw_bounding_boxes(img, yxyx(true_labels)[:, None], tf.constant([[0, 1.0, 0, 1]]))
  return tf.cast(tf.round(img * 255.0), tf.uint8)


class Re3Task(Task):
  name = "re3"

  def __init__(self, cfg: ExperimentConfig):
    self.cfg = cfg
    self.stages = cfg.trainer.stages
    self._val_tracks: Optional[List[Dict[str, np.ndarray]]] = None
    self._jit_step = None

  def build_model(self):
    net = build_re3(self.cfg.model)
    if self.cfg.trainer.head_bias_init:
      net.head.bias.assign(tf.constant(self.cfg.trainer.head_bias_init, net.head.bias.dtype))
    if self.cfg.trainer.init_caffenet:
      loaded = caffenet_import.load_caffenet_weights(net, self.cfg.trainer.init_caffenet)
      log.info("tower initialised from %s: %s", self.cfg.trainer.init_caffenet,
               ", ".join(sorted(loaded)))
    if self.cfg.trainer.init_tower:
      path = self.cfg.trainer.init_tower
      if self.cfg.model.tower == "nanotrack_v2":
        path = nanotrack.find_weights() if path == "auto" else path
        loaded = nanotrack.load_tower_weights(net, path)
        if self.cfg.model.template == "nano_head":
          loaded.update(nanotrack_head.load_head_weights(net, nanotrack_head.head_beside(path)))
          init_head_from_hint(net)
      else:
        if path == "auto":
          path = efficientnet_import.find_installed_weights(self.cfg.model.tower.split("_")[-1])
        loaded = efficientnet_import.load_tower_weights(net, path)
      log.info("tower initialised from %s (%d tensors)", path, len(loaded))
    if self.cfg.trainer.init_model:
      init_from_model(net, self.cfg.trainer.init_model)
    return net

  def num_stages(self) -> int:
    return len(self.stages)

  def stage(self, index: int) -> Stage:
    st = self.stages[index]
    return Stage(index=index, batch_size=st.batch_size, steps=st.steps,
                 plateau_patience=st.plateau_patience, plateau_min_delta=st.plateau_min_delta,
                 description=(f"unroll {st.unroll}, batch {st.batch_size}, "
                              f"self-training p={st.self_train_prob}"),
                 info={"unroll": float(st.unroll), "self_train_prob": float(st.self_train_prob)})

  def source_requirements(self):
    lengths = [st.unroll + 1 for st in self.stages]
    return lengths, False, [st.unroll + 1 for st in self.stages if st.unroll == 1]

  def mode(self, stage: Stage) -> str:
    st = self.stages[stage.index]
    return "frames" if st.self_train_prob > 0 and st.unroll > 1 else "crops"

  def dataset(self, stage, input_context, seed):
    st = self.stages[stage.index]
    batch = (input_context.get_per_replica_batch_size(stage.batch_size)
             if input_context else stage.batch_size)
    return data_lib.re3_dataset(self.cfg.data, st.unroll, batch, st.self_train_prob,
                                input_context=input_context, seed=seed, mode=self.mode(stage),
                                crop_size=self.cfg.model.crop_size, checked=self.checked_sources)

  def forward(self, model, batch, stage: Stage, training: bool = True):
    """-> (pred labels [B, T, 4], target labels [B, T, 4], crops of the last step)."""
    if self.mode(stage) == "crops":
      pred, _ = model.unroll(batch["prev"], batch["curr"], training=training)
      return tf.cast(pred, tf.float32), batch["labels"], batch["curr"][:, -1]
    step_fn = None
    if self.cfg.runtime.jit_compile:
      # crop_and_resize has no XLA kernel: compile the network step alone
      if self._jit_step is None:
        self._jit_step = tf.function(model.step, jit_compile=True)
      step_fn = self._jit_step
    out = self_training_unroll(model, batch["frames"], batch["boxes"], batch["gt_windows"],
                               batch["self_train"], self.cfg.model.crop_size, training=training,
                               min_coverage=self.cfg.trainer.self_train_min_coverage,
                               step_fn=step_fn)
    return out["labels"], out["targets"], out["curr_last"]

  def jit_compatible(self, stage: Stage) -> bool:
    return self.mode(stage) == "crops"

  def loss(self, model, batch, carry, stage, step):
    pred, target, crops = self.forward(model, batch, stage, training=True)
    per_example = l1_label_loss(pred, target)
    loss = tf.nn.compute_average_loss(per_example, global_batch_size=stage.batch_size)
    iou = tf.reduce_mean(geometry.iou_xyxy_tf(pred, target), axis=-1)  # IoU is invariant to
    metrics = {"iou": tf.nn.compute_average_loss(iou, global_batch_size=stage.batch_size)}
    # (per-axis scaling, so IoU of labels = IoU of the boxes in the frame)
    k = 3
    vis = {"crops": crops[:k], "pred": pred[:k, -1], "true": target[:k, -1]}
    return loss, metrics, vis, None

  def summary_images(self, vis):
    return draw_label_boxes(vis["crops"], vis["pred"], vis["true"])

  def validate(self, model) -> Dict[str, float]:
    d = self.cfg.data
    if not d.val_dir:
      return {}
    if self._val_tracks is None:
      self._val_tracks = data_lib.load_val_tracks(d.val_dir, d.val_split, d.val_tracks,
                                                  d.val_max_frames, d.channels)
    return track_iou(model, self._val_tracks, self.cfg.trainer.val_reset_every,
                     self.cfg.model.crop_size)
