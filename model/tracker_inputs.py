"""Input rules shared by every tracker behind the `init`/`update` interface
(Re3Tracker, Re3MultiTracker, the OpenCV and stay-put baselines).

NumPy only, so the baselines and the evaluation code can use the same rules
without loading TensorFlow. One place means a bad box is refused with the same
message whichever tracker it is handed to.
"""

from __future__ import annotations

import numpy as np

# Boxes go through float32 graphs: a larger magnitude is infinite there.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def as_rgb(image) -> np.ndarray:
  """HxWx3 uint8 RGB from HxW / HxWx1 grayscale, HxWx4 RGBA or HxWx3 RGB.

  RGBA drops alpha (no compositing: a tracker sees what the camera saw).
  """
  img = np.asarray(image)
  if img.dtype != np.uint8:
    raise ValueError(f"image must be uint8, got dtype {img.dtype}")
  if img.ndim == 2:
    img = img[..., None]
  if img.ndim != 3 or img.shape[0] == 0 or img.shape[1] == 0:
    raise ValueError(f"image must be HxW, HxWx1, HxWx3 or HxWx4, got shape {img.shape}")
  c = img.shape[2]
  if c == 1:
    return np.repeat(img, 3, axis=2)
  if c == 4:
    return np.ascontiguousarray(img[..., :3])
  if c == 3:
    return img
  raise ValueError(f"image must have 1, 3 or 4 channels, got {c} (shape {img.shape})")


def check_box_xywh(box_xywh, height: int, width: int, what: str = "box") -> np.ndarray:
  """Float64 (x, y, w, h), or a ValueError saying what is wrong with it:
  not 4 values, NaN/inf (in float64, or in the float32 the trackers compute
  in: beyond FLOAT32_MAX), zero or negative size, or wholly outside the image."""
  try:
    b = np.asarray(box_xywh, dtype=np.float64).reshape(-1)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{what} {box_xywh!r} is not 4 numbers (x, y, w, h)") from e
  if b.shape != (4,):
    raise ValueError(f"{what} must have 4 values (x, y, w, h), got {b.size}: {box_xywh!r}")
  if not np.all(np.isfinite(b)):
    raise ValueError(f"{what} {b.tolist()} has a NaN or infinite value")
  if np.any(np.abs(b) > FLOAT32_MAX):
    raise ValueError(f"{what} {b.tolist()} has a value beyond float32's range "
                     f"(+-{FLOAT32_MAX:.4g}): infinite in the tracker's float32 graph")
  if b[2] <= 0 or b[3] <= 0:
    raise ValueError(f"{what} {b.tolist()} has zero or negative size (w={b[2]}, h={b[3]})")
  if not box_overlaps_image(b, height, width):
    raise ValueError(f"{what} {b.tolist()} lies wholly outside the {width}x{height} image")
  return b


def box_overlaps_image(box_xywh, height: int, width: int) -> bool:
  """True when the box is finite, has positive size and shares area with the image."""
  b = np.asarray(box_xywh, dtype=np.float64).reshape(-1)
  if (b.shape != (4,) or not np.all(np.isfinite(b)) or np.any(np.abs(b) > FLOAT32_MAX)
      or b[2] <= 0 or b[3] <= 0):
    return False
  return bool(b[0] < width and b[1] < height and b[0] + b[2] > 0 and b[1] + b[3] > 0)
