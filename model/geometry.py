"""Box formats, IoU, and the Re3 crop geometry: the single source of truth.

About 400 lines by design: every box rule, with its NumPy and TensorFlow twins side by side,
lives here and nowhere else.

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

The box a crop is cut around (`crop_box_xyxy`): the network may predict a
flipped, degenerate or non-finite box, and the tracker, in-training validation
and self-training all cut their next crops around such predictions with the
same rule: a non-finite coordinate becomes 0, corners are ordered, and width
and height are widened about the center to at least MIN_CROP_BOX (1 pixel).

Ground-truth jitter (`jitter_xyxy`), the GOTURN / public Re3 recipe: the center
moves by Laplace(0, center_scale) * (w, h), width and height are scaled by
clip(Laplace(1, size_scale), size_min, size_max); of `max_tries` draws the first
whose center stays inside the true box and the image is used, else the box is
kept. The parameters are a `configs.experiment.JitterConfig` (its defaults are
the recipe's constants).

Every function has a NumPy version and, where training or serving needs it in
the graph, a TensorFlow twin with the `_tf` suffix; tests check they agree.
"""

from __future__ import annotations

import types

import numpy as np

from configs.experiment import JitterConfig

CROP_SIZE = 227
CROP_SCALE = 2.0
LABEL_SCALE = 10.0
MIN_CROP_BOX = 1.0  # pixels: the smallest width/height of the box a crop is cut around

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


def mirror_xyxy(boxes, width):
  """Horizontal flip of xyxy boxes in an image `width` pixels wide."""
  b = np.asarray(boxes, dtype=np.float64)
  return np.stack([width - b[..., 2], b[..., 1], width - b[..., 0], b[..., 3]], axis=-1)


def box_is_valid_xyxy(boxes, height=None, width=None):
  """Finite, positive size and (if the image size is given) overlapping the image."""
  b = np.asarray(boxes, dtype=np.float64)
  ok = np.all(np.isfinite(b), axis=-1) & (b[..., 2] > b[..., 0]) & (b[..., 3] > b[..., 1])
  if height is not None and width is not None:
    ok &= (b[..., 2] > 0) & (b[..., 3] > 0) & (b[..., 0] < width) & (b[..., 1] < height)
  return ok


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


def coverage_xyxy(windows, boxes):
  """Fraction of each box's area inside its window (area floored at 1e-6)."""
  w = np.asarray(windows, dtype=np.float64)
  b = np.asarray(boxes, dtype=np.float64)
  iw = np.maximum(np.minimum(w[..., 2], b[..., 2]) - np.maximum(w[..., 0], b[..., 0]), 0.0)
  ih = np.maximum(np.minimum(w[..., 3], b[..., 3]) - np.maximum(w[..., 1], b[..., 1]), 0.0)
  area = np.maximum((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]), 1e-6)
  return iw * ih / area


def iou_xywh(a, b):
  return iou_xyxy(xywh_to_xyxy(a), xywh_to_xyxy(b))


def center_error_xyxy(a, b):
  """Euclidean distance between box centers, pixels."""
  d = xyxy_center(a) - xyxy_center(b)
  return np.sqrt(np.sum(d * d, axis=-1))


# ---------------------------------------------------------------------------
# NumPy: Re3 crop windows and labels
# ---------------------------------------------------------------------------


def crop_box_xyxy(boxes):
  """The box a crop window is cut around (see the module docstring): non-finite
  coordinates -> 0, corners ordered, at least MIN_CROP_BOX wide and tall about
  the center. A valid box of at least MIN_CROP_BOX is returned unchanged.
  """
  return _crop_box_rule(np, np.asarray(boxes, dtype=np.float64))


def _crop_box_rule(xp, b):
  """crop_box_xyxy written once for NumPy (xp = numpy) and TensorFlow (xp = _tf_ops():
  the same names over TF ops, which keep the input's float dtype)."""
  b = xp.where(xp.isfinite(b), b, xp.zeros_like(b))
  lo = xp.minimum(b[..., :2], b[..., 2:4])
  hi = xp.maximum(b[..., :2], b[..., 2:4])
  center = (lo + hi) / 2.0
  half = xp.maximum(hi - lo, MIN_CROP_BOX) / 2.0
  return xp.concatenate([center - half, center + half], axis=-1)


def crop_window_xyxy(boxes, scale=CROP_SCALE):
  """The search window around a box: same center, size scaled by `scale`."""
  c = xyxy_center(boxes)
  half = xyxy_size(boxes) * (scale / 2.0)
  return np.concatenate([c - half, c + half], axis=-1)


def _window_frame(xp, w):
  """(origin, size) of xyxy windows, each repeated for both corners ([..., 4]): the
  frame Re3 labels are measured in (xp: numpy, or _tf_ops() for TensorFlow)."""
  origin = xp.concatenate([w[..., :2], w[..., :2]], axis=-1)
  size = xp.concatenate([w[..., 2:4] - w[..., :2]] * 2, axis=-1)
  return origin, size


def box_to_label(boxes_xyxy, windows_xyxy):
  """Box in image pixels -> Re3 label (xyxy in window units, times 10)."""
  b = np.asarray(boxes_xyxy, dtype=np.float64)
  origin, size = _window_frame(np, np.asarray(windows_xyxy, dtype=np.float64))
  return (b - origin) / size * LABEL_SCALE


def label_to_box(labels, windows_xyxy):
  """Inverse of `box_to_label`: Re3 label -> xyxy in image pixels (not clipped)."""
  l = np.asarray(labels, dtype=np.float64)
  origin, size = _window_frame(np, np.asarray(windows_xyxy, dtype=np.float64))
  return l / LABEL_SCALE * size + origin


def jitter_xyxy(box, height: int, width: int, rng: np.random.Generator,
                cfg: JitterConfig) -> np.ndarray:
  """The ground-truth jitter of one xyxy box (module docstring), drawing from
  `rng` try by try; the box itself if no try fits or `cfg.enabled` is off."""
  box = np.asarray(box, np.float64)
  if not cfg.enabled:
    return box
  wh = box[2:] - box[:2]
  center = (box[:2] + box[2:]) / 2.0
  for _ in range(cfg.max_tries):
    c = center + rng.laplace(0.0, cfg.center_scale, size=2) * wh
    s = wh * np.clip(rng.laplace(1.0, cfg.size_scale, size=2), cfg.size_min, cfg.size_max)
    if (np.all(c > box[:2]) and np.all(c < box[2:]) and 0 <= c[0] < width
        and 0 <= c[1] < height):
      return np.concatenate([c - s / 2.0, c + s / 2.0])
  return box


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
  import tensorflow as tf  # local: keeps TensorFlow out of NumPy-only users (pipelines, baselines)
  return tf


def box_is_valid_xyxy_tf(boxes):
  """[..., 4] -> [...] bool: finite with positive width and height."""
  tf = _tf()
  boxes = tf.convert_to_tensor(boxes)
  finite = tf.reduce_all(tf.math.is_finite(boxes), axis=-1)
  safe = tf.where(tf.math.is_finite(boxes), boxes, tf.zeros_like(boxes))
  return finite & (safe[..., 2] > safe[..., 0]) & (safe[..., 3] > safe[..., 1])


def mirror_xyxy_tf(boxes, width):
  tf = _tf()
  boxes = tf.convert_to_tensor(boxes)
  width = tf.cast(width, boxes.dtype)
  return tf.stack([width - boxes[..., 2], boxes[..., 1], width - boxes[..., 0], boxes[..., 3]],
                  axis=-1)


def rot90_xyxy_tf(boxes, width):
  """Boxes xyxy in an image `width` pixels wide -> the same boxes after
  tf.image.rot90(image, k=1) (a quarter turn counter-clockwise): a pixel at
  (x, y) moves to (y, width - x)."""
  tf = _tf()
  boxes = tf.convert_to_tensor(boxes)
  width = tf.cast(width, boxes.dtype)
  return tf.stack([boxes[..., 1], width - boxes[..., 2], boxes[..., 3], width - boxes[..., 0]],
                  axis=-1)


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


def coverage_xyxy_tf(windows, boxes):
  tf = _tf()
  boxes = tf.convert_to_tensor(boxes)
  windows = tf.cast(tf.convert_to_tensor(windows), boxes.dtype)
  iw = tf.maximum(tf.minimum(windows[..., 2], boxes[..., 2])
                  - tf.maximum(windows[..., 0], boxes[..., 0]), 0.0)
  ih = tf.maximum(tf.minimum(windows[..., 3], boxes[..., 3])
                  - tf.maximum(windows[..., 1], boxes[..., 1]), 0.0)
  area = tf.maximum((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]), 1e-6)
  return iw * ih / area


def _tf_ops():
  """The NumPy names the shared rules (_crop_box_rule, _window_frame) use, over
  TensorFlow ops (any float dtype, bfloat16 included, where tf.experimental.numpy is not)."""
  tf = _tf()
  return types.SimpleNamespace(
      where=tf.where, isfinite=tf.math.is_finite, zeros_like=tf.zeros_like,
      minimum=tf.minimum, maximum=tf.maximum,
      concatenate=lambda parts, axis: tf.concat(parts, axis=axis))


def crop_box_xyxy_tf(boxes):
  return _crop_box_rule(_tf_ops(), _tf().convert_to_tensor(boxes))


def crop_window_xyxy_tf(boxes, scale=CROP_SCALE):
  tf = _tf()
  b = tf.convert_to_tensor(boxes)
  c = (b[..., :2] + b[..., 2:4]) / 2.0
  half = (b[..., 2:4] - b[..., :2]) * (scale / 2.0)
  return tf.concat([c - half, c + half], axis=-1)


def box_to_label_tf(boxes_xyxy, windows_xyxy):
  tf = _tf()
  b = tf.convert_to_tensor(boxes_xyxy)
  origin, size = _window_frame(_tf_ops(), tf.cast(tf.convert_to_tensor(windows_xyxy), b.dtype))
  return (b - origin) / size * LABEL_SCALE


def label_to_box_tf(labels, windows_xyxy):
  tf = _tf()
  l = tf.convert_to_tensor(labels)
  origin, size = _window_frame(_tf_ops(), tf.cast(tf.convert_to_tensor(windows_xyxy), l.dtype))
  return l / LABEL_SCALE * size + origin


def damp_labels_tf(labels, scale_rate: float, aspect_rate: float):
  """Damped Re3 labels [..., 4]: the change of scale (geometric mean of width
  and height) and of aspect ratio from the previous box, which is the middle
  of the crop window in label units (the window is CROP_SCALE times the box),
  raised to `scale_rate` and `aspect_rate`; the centre is kept. Rates of 1
  return the labels unchanged (configs.model: track_scale_rate / track_aspect_rate)."""
  tf = _tf()
  l = tf.convert_to_tensor(labels)
  if scale_rate == 1.0 and aspect_rate == 1.0:
    return l
  center = (l[..., :2] + l[..., 2:]) / 2.0
  prev = LABEL_SCALE / CROP_SCALE
  ratio = tf.maximum(l[..., 2:] - l[..., :2], 1e-3 * prev) / prev    # [..., 2] w, h change
  scale = tf.sqrt(ratio[..., :1] * ratio[..., 1:])
  half = prev / 2.0 * scale ** scale_rate * (ratio / scale) ** aspect_rate
  return tf.concat([center - half, center + half], axis=-1)


def _laplace_tf(shape, loc, scale, seed=None):
  """Laplace(loc, scale) samples by inverting the CDF of a uniform draw."""
  tf = _tf()
  u = tf.random.uniform(shape, -0.5 + 1e-7, 0.5 - 1e-7, seed=seed)
  return loc - scale * tf.sign(u) * tf.math.log1p(-2.0 * tf.abs(u))


def jitter_xyxy_tf(boxes, image_hw, cfg: JitterConfig, seed=None):
  """`jitter_xyxy` vectorized over boxes [N, 4] (all tries drawn at once; the
  first try that fits is used, the box itself where none does)."""
  tf = _tf()
  boxes = tf.cast(boxes, tf.float32)
  if not cfg.enabled:
    return boxes
  n = tf.shape(boxes)[0]
  tries = cfg.max_tries
  wh = boxes[:, 2:] - boxes[:, :2]
  center = (boxes[:, :2] + boxes[:, 2:]) / 2.0
  shift = _laplace_tf([tries, n, 2], 0.0, cfg.center_scale, seed=seed) * wh[None]
  scale = tf.clip_by_value(_laplace_tf([tries, n, 2], 1.0, cfg.size_scale, seed=seed),
                           cfg.size_min, cfg.size_max)
  new_c = center[None] + shift
  new_wh = wh[None] * scale
  h = tf.cast(image_hw[0], tf.float32)
  w = tf.cast(image_hw[1], tf.float32)
  inside_box = tf.reduce_all((new_c > boxes[None, :, :2]) & (new_c < boxes[None, :, 2:]), axis=-1)
  inside_img = ((new_c[..., 0] >= 0) & (new_c[..., 0] < w) & (new_c[..., 1] >= 0)
                & (new_c[..., 1] < h))
  ok = inside_box & inside_img                                       # [tries, N]
  first = tf.argmax(tf.cast(ok, tf.int32), axis=0, output_type=tf.int32)  # first ok try
  any_ok = tf.reduce_any(ok, axis=0)
  gather_idx = tf.stack([first, tf.range(n)], axis=-1)
  c = tf.gather_nd(new_c, gather_idx)
  s = tf.gather_nd(new_wh, gather_idx)
  jittered = tf.concat([c - s / 2.0, c + s / 2.0], axis=-1)
  return tf.where(any_ok[:, None], jittered, boxes)


def _samples(w, size: int):
  """Where a crop of windows [..., 4] (xyxy pixels) samples the image: output
  pixel j at the window's own pixel center x1 + (j + 0.5) * (x2 - x1) / size,
  in pixel-index units (pixel i has its center at index i). Returns
  (x_first, y_first, step_x, step_y): the one rule of crop_tf and crop_cv2."""
  step_x = (w[..., 2] - w[..., 0]) / size
  step_y = (w[..., 3] - w[..., 1]) / size
  return w[..., 0] + 0.5 * step_x - 0.5, w[..., 1] + 0.5 * step_y - 0.5, step_x, step_y


def window_to_crop_box_tf(windows_xyxy, height, width, size=CROP_SIZE):
  """Window (pixels) -> the normalized yxyx box for crop_and_resize such that
  output pixel j samples the window at its own pixel center, i.e. at
  x1 + (j + 0.5) * (x2 - x1) / size, matching `crop_reference`.
  """
  tf = _tf()
  w = tf.cast(tf.convert_to_tensor(windows_xyxy), tf.float32)
  height = tf.cast(height, tf.float32)
  width = tf.cast(width, tf.float32)
  x_first, y_first, step_x, step_y = _samples(w, size)
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
  if images.dtype not in (tf.uint8, tf.float32):   # crop_and_resize reads uint8 as it is:
    images = tf.cast(images, tf.float32)           # no float copy of a whole frame per call
  return tf.image.crop_and_resize(
      images, boxes, tf.cast(box_indices, tf.int32),
      crop_size=[size, size], method="bilinear", extrapolation_value=0.0)


def crop_windows_xywh(boxes_xywh) -> np.ndarray:
  """The crop windows of xywh boxes [N, 4], cut around their crop boxes
  (crop_box_xyxy): NumPy twin of model.tracking_graphs.crop_windows_tf."""
  return crop_window_xyxy(crop_box_xyxy(xywh_to_xyxy(np.asarray(boxes_xywh, np.float64))))


def crop_cv2(image, windows_xyxy, size=CROP_SIZE) -> np.ndarray:
  """`crop_tf` on the host with OpenCV: crops of one image [H, W, C] at
  windows [N, 4] -> float32 [N, size, size, C], for the runtimes that step
  outside TensorFlow (model.runtimes.StepGraph: about 40 us a crop against a
  TensorFlow call's 0.5 ms).

  The same sample positions (`_samples`) and the same rule outside the image
  (a row or column sampled outside [0, H-1] / [0, W-1] is zero): the pixels
  the crop samples are converted to float32 and warped bilinearly, so the
  crop equals crop_tf's up to float rounding (tests/test_geometry.py)."""
  import cv2  # pylint: disable=g-import-not-at-top  # a core dependency; only the host path needs it
  img = np.asarray(image)
  w = np.asarray(windows_xyxy, np.float64).reshape(-1, 4)
  h, wd = img.shape[:2]
  x0, y0, sx, sy = _samples(w, size)
  j = np.arange(size)
  out = np.zeros((len(w), size, size, img.shape[2]), np.float32)
  for n in range(len(w)):
    xs, ys = x0[n] + j * sx[n], y0[n] + j * sy[n]
    cols = (xs >= 0) & (xs <= wd - 1)
    rows = (ys >= 0) & (ys <= h - 1)
    if not cols.any() or not rows.any():
      continue
    # the pixels the inside samples read: floor(first) .. floor(last) + 1
    xa, xb = int(np.floor(xs[cols][0])), min(wd, int(np.floor(xs[cols][-1])) + 2)
    ya, yb = int(np.floor(ys[rows][0])), min(h, int(np.floor(ys[rows][-1])) + 2)
    region = img[ya:yb, xa:xb].astype(np.float32)
    m = np.array([[sx[n], 0.0, x0[n] - xa], [0.0, sy[n], y0[n] - ya]])
    dst = out[n] if img.shape[2] > 1 else out[n, :, :, 0]          # warped in place
    cv2.warpAffine(region, m, (size, size), dst=dst,
                   flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    if not rows.all():
      out[n][~rows] = 0.0
    if not cols.all():
      out[n][:, ~cols] = 0.0
  return out
