"""Validation during training: the Re3 network run as a tracker on held-out
tracks, as at test time (Re3 paper, section III-C, "Tracking at test time"):

* initialize: the first frame fed twice (both crops at the given box) from the
  zero state; the output is discarded and the state kept as the initial state;
* each step: both crops at the previous output box (previous image, current
  image); the output becomes the new box;
* every `reset_every` frames: the current image cropped at the new box is fed
  as both crops from the initial state; its state replaces the LSTM state.

All validation tracks advance together as one batch (frames padded to a
common size with zeros, which is what a crop sees outside the image anyway).
The full tracker with export and protocols is model/tracker.py; this is the
minimal batched loop that validation during training needs.
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import tensorflow as tf

from model import geometry
from model.tracker import RESET_EVERY


def _pad_batch(frames: List[np.ndarray], h: int, w: int) -> np.ndarray:
  out = np.zeros((len(frames), h, w, frames[0].shape[-1]), np.uint8)
  for i, f in enumerate(frames):
    out[i, :f.shape[0], :f.shape[1]] = f
  return out


def track_boxes(model, tracks: List[Dict[str, np.ndarray]], reset_every: int = RESET_EVERY,
                crop_size: int = geometry.CROP_SIZE) -> List[np.ndarray]:
  """Runs the tracker on every track from its first box; returns predicted
  boxes [N, 4] per track (row 0 = the given box)."""
  h = max(t["frames"].shape[1] for t in tracks)
  w = max(t["frames"].shape[2] for t in tracks)
  lengths = [len(t["frames"]) for t in tracks]
  n = max(lengths)

  @tf.function(reduce_retracing=True)
  def step(prev_img, curr_img, box, state):
    window = geometry.crop_window_xyxy_tf(geometry.crop_box_xyxy_tf(box))
    prev = geometry.crop_tf(prev_img, window, size=crop_size)
    curr = geometry.crop_tf(curr_img, window, size=crop_size)
    label, state = model.step(prev, curr, state, training=False)
    return geometry.label_to_box_tf(tf.cast(label, tf.float32), window), state

  def frame(i):
    return _pad_batch([t["frames"][min(i, len(t["frames"]) - 1)] for t in tracks], h, w)

  box = tf.constant(np.stack([t["boxes"][0] for t in tracks]).astype(np.float32))
  zero = model.zero_state(len(tracks))
  first = tf.constant(frame(0))
  _, init_state = step(first, first, box, zero)
  state = init_state
  out = [[t["boxes"][0]] for t in tracks]
  prev_img = first
  for i in range(1, n):
    curr_img = tf.constant(frame(i))
    box, state = step(prev_img, curr_img, box, state)
    if i % reset_every == 0:
      _, state = step(curr_img, curr_img, box, init_state)
    b = box.numpy()
    for k in range(len(tracks)):
      if i < lengths[k]:
        out[k].append(b[k])
    prev_img = curr_img
  return [np.asarray(o, np.float64) for o in out]


def track_iou(model, tracks: List[Dict[str, np.ndarray]], reset_every: int = RESET_EVERY,
              crop_size: int = geometry.CROP_SIZE) -> Dict[str, float]:
  """Mean IoU (over frames after the first with a ground-truth box, pooled over
  tracks) and the mean of per-track mean IoUs."""
  preds = track_boxes(model, tracks, reset_every, crop_size)
  pooled, per_track = [], []
  for t, p in zip(tracks, preds):
    gt = t["boxes"][1:len(p)]
    ok = geometry.box_is_valid_xyxy(gt)
    if not ok.any():
      continue
    ious = geometry.iou_xyxy(p[1:][ok], gt[ok])
    pooled.extend(ious.tolist())
    per_track.append(float(np.mean(ious)))
  return {"iou": float(np.mean(pooled)) if pooled else 0.0,
          "track_mean_iou": float(np.mean(per_track)) if per_track else 0.0}
