"""Box formats, IoU, and the Re3 crop geometry: the single source of truth.

Box formats (the format is always in the name):

  xywh       (x, y, w, h): top-left corner and size, pixels (OpenCV / OTB style)
  xyxy       (x1, y1, x2, y2): corners in continuous pixel coordinates, x2 = x + w
  yxyx_norm  (y1, x1, y2, x2): the normalized box `tf.image.crop_and_resize` wants,
             where 0 and 1 are the centers of the first and last pixel

Continuous coordinates put pixel i over [i, i + 1), so its center is i + 0.5.

Re3 crops: the crop window of a box with center (cx, cy) and size (w, h) is
the box scaled by 2 around its center: (cx - w, cy - h, cx + w, cy + h). It is
warped to 227x227 (each axis independently), with zeros outside the image. The
network's regression target ("label") is the target's xyxy box relative to the
window, in [0, 1] of the window, times 10: a still target reads
(2.5, 2.5, 7.5, 7.5).

Every function has a NumPy version and, where training or serving needs it in
the graph, a TensorFlow twin with the `_tf` suffix; tests check they agree.
"""

from __future__ import annotations

import numpy as np

CROP_SIZE = 227
CROP_SCALE = 2.0
LABEL_SCALE = 10.0

# ---------------------------------------------------------------------------
# NumPy: box conversions
# ---------------------------------------------------------------------------


def xywh_to_xyxy(boxes):
  b = np.asarray(boxes, dtype=np.float64)
  return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:4]], axis=-1)


def xyxy_to_xywh(boxes):
  b = np.asarray(boxes, dtype=np.float64)
  return np.concatenate([b[..., :2], b[..., 2:4] - b[..., :2]], axis=-1)


def xyxy_center(boxes):
  b = np.asarray(boxes, dtype=np.float64)
  return (b[..., :2] + b[..., 2:4]) / 2.0


def xyxy_size(boxes):
  b = np.asarray(boxes, dtype=np.float64)
  return b[..., 2:4] - b[..., :2]


def polygon_to_xyxy(points):
  """(..., 2k) polygon corners x1, y1, x2, y2, ... -> axis-aligned xyxy bounds."""
  p = np.asarray(points, dtype=np.float64)
  xs, ys = p[..., 0::2], p[..., 1::2]
  return np.stack([xs.min(-1), ys.min(-1), xs.max(-1), ys.max(-1)], axis=-1)


def xyxy_to_yxyx_norm(boxes, height, width):
  """Pixel xyxy -> crop_and_resize's normalized yxyx (pixel-center convention).

  A continuous coordinate x maps to sample position x - 0.5 in pixel-index
  units, normalized by (size - 1).
  """
  b = np.asarray(boxes, dtype=np.float64)
  h = max(float(height) - 1.0, 1.0)
  w = max(float(width) - 1.0, 1.0)
  return np.stack([(b[..., 1] - 0.5) / h, (b[..., 0] - 0.5) / w,
                   (b[..., 3] - 0.5) / h, (b[..., 2] - 0.5) / w], axis=-1)


def box_is_valid_xyxy(boxes, height=None, width=None):
  """Finite, positive size and (if the image size is given) overlapping the image."""
  b = np.asarray(boxes, dtype=np.float64)
  ok = np.all(np.isfinite(b), axis=-1) & (b[..., 2] > b[..., 0]) & (b[..., 3] > b[..., 1])
  if height is not None and width is not None:
    ok &= (b[..., 2] > 0) & (b[..., 3] > 0) & (b[..., 0] < width) & (b[..., 1] < height)
  return ok


def clip_xyxy(boxes, height, width):
  b = np.asarray(boxes, dtype=np.float64)
  return np.stack([np.clip(b[..., 0], 0, width), np.clip(b[..., 1], 0, height),
                   np.clip(b[..., 2], 0, width), np.clip(b[..., 3], 0, height)], axis=-1)


# ---------------------------------------------------------------------------
# NumPy: metrics
# ---------------------------------------------------------------------------


def iou_xyxy(a, b):
  """Elementwise IoU of broadcastable xyxy boxes; 0 where the union is empty."""
  a = np.asarray(a, dtype=np.float64)
  b = np.asarray(b, dtype=np.float64)
  iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
  ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
  inter = iw * ih
  area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
  area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
  union = area_a + area_b - inter
  with np.errstate(invalid="ignore", divide="ignore"):
    out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
  return np.nan_to_num(out, nan=0.0)


def iou_xywh(a, b):
  return iou_xyxy(xywh_to_xyxy(a), xywh_to_xyxy(b))


def center_error_xyxy(a, b):
  """Euclidean distance between box centers, pixels."""
  d = xyxy_center(a) - xyxy_center(b)
  return np.sqrt(np.sum(d * d, axis=-1))


# ---------------------------------------------------------------------------
# NumPy: Re3 crop windows and labels
# ---------------------------------------------------------------------------


def crop_window_xyxy(boxes, scale=CROP_SCALE):
  """The search window around a box: same center, size scaled by `scale`."""
  c = xyxy_center(boxes)
  half = xyxy_size(boxes) * (scale / 2.0)
  return np.concatenate([c - half, c + half], axis=-1)


def box_to_label(boxes_xyxy, windows_xyxy):
  """Box in image pixels -> Re3 label (xyxy in window units, times 10)."""
  b = np.asarray(boxes_xyxy, dtype=np.float64)
  w = np.asarray(windows_xyxy, dtype=np.float64)
  origin = np.concatenate([w[..., :2], w[..., :2]], axis=-1)
  size = np.concatenate([w[..., 2:4] - w[..., :2]] * 2, axis=-1)
  return (b - origin) / size * LABEL_SCALE


def label_to_box(labels, windows_xyxy):
  """Inverse of `box_to_label`: Re3 label -> xyxy in image pixels (not clipped)."""
  l = np.asarray(labels, dtype=np.float64)
  w = np.asarray(windows_xyxy, dtype=np.float64)
  origin = np.concatenate([w[..., :2], w[..., :2]], axis=-1)
  size = np.concatenate([w[..., 2:4] - w[..., :2]] * 2, axis=-1)
  return l / LABEL_SCALE * size + origin


def crop_reference(image, window_xyxy, size=CROP_SIZE):
  """Reference crop with PIL, GOTURN/Re3 style: the window is rounded to whole
  pixels, the part inside the image is resized bilinearly into the matching
  part of the output, and the rest is zero. Returns uint8 (size, size, C).
  """
  from PIL import Image  # local: only the reference path needs PIL

  img = np.asarray(image)
  if img.ndim == 2:
    img = img[..., None]
  h, w, c = img.shape
  x1, y1, x2, y2 = [int(round(v)) for v in np.asarray(window_xyxy, dtype=np.float64)]
  if x2 <= x1:
    x2 = x1 + 1
  if y2 <= y1:
    y2 = y1 + 1
  out = np.zeros((size, size, c), dtype=np.uint8)
  ix1, iy1, ix2, iy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
  if ix2 <= ix1 or iy2 <= iy1:
    return out
  sx, sy = size / (x2 - x1), size / (y2 - y1)
  ox1, oy1 = int(round((ix1 - x1) * sx)), int(round((iy1 - y1) * sy))
  ox2, oy2 = int(round((ix2 - x1) * sx)), int(round((iy2 - y1) * sy))
  ox2, oy2 = max(ox2, ox1 + 1), max(oy2, oy1 + 1)
  patch = img[iy1:iy2, ix1:ix2]
  chans = []
  for ch in range(c):
    pil = Image.fromarray(np.ascontiguousarray(patch[..., ch]))
    chans.append(np.asarray(pil.resize((ox2 - ox1, oy2 - oy1), Image.BILINEAR)))
  out[oy1:oy2, ox1:ox2] = np.stack(chans, axis=-1)
  return out


# ---------------------------------------------------------------------------
# TensorFlow twins (imported lazily so NumPy-only users do not load TF)
# ---------------------------------------------------------------------------


def _tf():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf


def xywh_to_xyxy_tf(boxes):
  tf = _tf()
  b = tf.convert_to_tensor(boxes)
  return tf.concat([b[..., :2], b[..., :2] + b[..., 2:4]], axis=-1)


def xyxy_to_xywh_tf(boxes):
  tf = _tf()
  b = tf.convert_to_tensor(boxes)
  return tf.concat([b[..., :2], b[..., 2:4] - b[..., :2]], axis=-1)


def iou_xyxy_tf(a, b):
  tf = _tf()
  a = tf.convert_to_tensor(a)
  b = tf.cast(tf.convert_to_tensor(b), a.dtype)
  iw = tf.maximum(tf.minimum(a[..., 2], b[..., 2]) - tf.maximum(a[..., 0], b[..., 0]), 0.0)
  ih = tf.maximum(tf.minimum(a[..., 3], b[..., 3]) - tf.maximum(a[..., 1], b[..., 1]), 0.0)
  inter = iw * ih
  area_a = tf.maximum(a[..., 2] - a[..., 0], 0.0) * tf.maximum(a[..., 3] - a[..., 1], 0.0)
  area_b = tf.maximum(b[..., 2] - b[..., 0], 0.0) * tf.maximum(b[..., 3] - b[..., 1], 0.0)
  union = area_a + area_b - inter
  return tf.math.divide_no_nan(inter, union)


def center_error_xyxy_tf(a, b):
  tf = _tf()
  a = tf.convert_to_tensor(a)
  b = tf.cast(tf.convert_to_tensor(b), a.dtype)
  d = (a[..., :2] + a[..., 2:4]) / 2.0 - (b[..., :2] + b[..., 2:4]) / 2.0
  return tf.sqrt(tf.reduce_sum(d * d, axis=-1))


def crop_window_xyxy_tf(boxes, scale=CROP_SCALE):
  tf = _tf()
  b = tf.convert_to_tensor(boxes)
  c = (b[..., :2] + b[..., 2:4]) / 2.0
  half = (b[..., 2:4] - b[..., :2]) * (scale / 2.0)
  return tf.concat([c - half, c + half], axis=-1)


def box_to_label_tf(boxes_xyxy, windows_xyxy):
  tf = _tf()
  b = tf.convert_to_tensor(boxes_xyxy)
  w = tf.cast(tf.convert_to_tensor(windows_xyxy), b.dtype)
  origin = tf.concat([w[..., :2], w[..., :2]], axis=-1)
  size = tf.concat([w[..., 2:4] - w[..., :2]] * 2, axis=-1)
  return (b - origin) / size * LABEL_SCALE


def label_to_box_tf(labels, windows_xyxy):
  tf = _tf()
  l = tf.convert_to_tensor(labels)
  w = tf.cast(tf.convert_to_tensor(windows_xyxy), l.dtype)
  origin = tf.concat([w[..., :2], w[..., :2]], axis=-1)
  size = tf.concat([w[..., 2:4] - w[..., :2]] * 2, axis=-1)
  return l / LABEL_SCALE * size + origin


def window_to_crop_box_tf(windows_xyxy, height, width, size=CROP_SIZE):
  """Window (pixels) -> the normalized yxyx box for crop_and_resize such that
  output pixel j samples the window at its own pixel center, i.e. at
  x1 + (j + 0.5) * (x2 - x1) / size, matching `crop_reference`.
  """
  tf = _tf()
  w = tf.cast(tf.convert_to_tensor(windows_xyxy), tf.float32)
  height = tf.cast(height, tf.float32)
  width = tf.cast(width, tf.float32)
  step_x = (w[..., 2] - w[..., 0]) / size
  step_y = (w[..., 3] - w[..., 1]) / size
  # sample positions in pixel-index units (pixel i has its center at index i)
  x_first = w[..., 0] + 0.5 * step_x - 0.5
  y_first = w[..., 1] + 0.5 * step_y - 0.5
  x_last = x_first + (size - 1) * step_x
  y_last = y_first + (size - 1) * step_y
  hn = tf.maximum(height - 1.0, 1.0)
  wn = tf.maximum(width - 1.0, 1.0)
  return tf.stack([y_first / hn, x_first / wn, y_last / hn, x_last / wn], axis=-1)


def crop_tf(images, windows_xyxy, box_indices=None, size=CROP_SIZE):
  """Cuts Re3 crops inside the graph with `tf.image.crop_and_resize`.

  images: [B, H, W, C] (any numeric dtype; all images of the batch share H, W).
  windows_xyxy: [N, 4] crop windows in pixels.
  box_indices: [N] int32 index of the image each window is cut from
    (default: range(N), one window per image).
  Returns float32 [N, size, size, C] in the input's value range, zero outside.
  """
  tf = _tf()
  images = tf.convert_to_tensor(images)
  shape = tf.shape(images)
  boxes = window_to_crop_box_tf(windows_xyxy, shape[1], shape[2], size)
  if box_indices is None:
    box_indices = tf.range(tf.shape(boxes)[0], dtype=tf.int32)
  return tf.image.crop_and_resize(
      tf.cast(images, tf.float32), boxes, tf.cast(box_indices, tf.int32),
      crop_size=[size, size], method="bilinear", extrapolation_value=0.0)
