"""Image decoding and encoding shared by the dataset jobs and the readers.

Why one module: every job must treat a corrupt or odd image the same way
(grayscale, palette, RGBA and CMYK files exist in ImageNet and ALOV), and
every error must name the file so a reject or a crash says what to fix.
PIL is used (not tf.image) because it is cheap to import in Beam workers,
reads the header without decoding (`image_size`) and reports truncated
JPEGs instead of padding them with grey.
"""

from __future__ import annotations

import io
import re
from typing import Tuple, Union

import numpy as np
from PIL import Image, ImageFile

from pipelines.readers import fs

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ImageError(ValueError):
  """An image that cannot be read; the message names the file."""


def _pil():
  # Never pad truncated files silently: a truncated JPEG must be an error.
  ImageFile.LOAD_TRUNCATED_IMAGES = False
  return Image


def _to_rgb(img, name: str) -> np.ndarray:
  if img.mode != "RGB":
    if img.mode in ("RGBA", "LA", "P", "PA"):
      # Transparent pixels over black, like a decoder that drops alpha.
      img = img.convert("RGBA").convert("RGB")
    else:
      img = img.convert("RGB")  # L, I;16, CMYK, YCbCr, ...
  arr = np.asarray(img, dtype=np.uint8)
  if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
    raise ImageError(f"{name}: decoded to an unusable array of shape {arr.shape}")
  return arr


def decode_image_rgb(data: bytes, name: str = "<bytes>") -> np.ndarray:
  """Encoded bytes (JPEG, PNG, ...) -> HxWx3 uint8 RGB; ImageError naming `name`."""
  Image = _pil()
  if not data:
    raise ImageError(f"{name}: empty file")
  try:
    with Image.open(io.BytesIO(data)) as img:
      img.load()  # full decode: truncated / corrupt data raises here
      return _to_rgb(img, name)
  except ImageError:
    raise
  except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ...  # pylint: disable=broad-except
    raise ImageError(f"{name}: cannot decode image ({_describe(e)})") from e


def _describe(e: Exception) -> str:
  """Exception text without memory addresses (PIL prints `<_io.BytesIO object
  at 0x...>`), so reject records are identical across runs."""
  return f"{type(e).__name__}: " + re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", "<data>", str(e))


def read_bytes(path: str) -> bytes:
  """Whole file, local or any filesystem tf.io.gfile knows (gs://, ...)."""
  return fs.read_bytes(path)


def load_image_rgb(path: str) -> np.ndarray:
  """File -> HxWx3 uint8 RGB (grayscale/RGBA converted); ImageError naming the file."""
  try:
    data = read_bytes(path)
  except OSError as e:
    raise ImageError(f"{path}: cannot read file ({e})") from e
  return decode_image_rgb(data, str(path))


def image_size(path_or_bytes: Union[str, bytes]) -> Tuple[int, int]:
  """(height, width) from the header only (no pixel decode)."""
  Image = _pil()
  name = "<bytes>" if isinstance(path_or_bytes, (bytes, bytearray)) else str(path_or_bytes)
  try:
    data = path_or_bytes if isinstance(path_or_bytes, (bytes, bytearray)) else read_bytes(
        path_or_bytes)
    with Image.open(io.BytesIO(data)) as img:
      w, h = img.size
  except Exception as e:  # pylint: disable=broad-except
    raise ImageError(f"{name}: cannot read image header ({_describe(e)})") from e
  return int(h), int(w)


def _encode(array: np.ndarray, caller: str, **save_options) -> bytes:
  """uint8 HxW or HxWxC (C = 1 saved as HxW) -> the bytes of PIL's save(**save_options)."""
  Image = _pil()
  arr = np.asarray(array)
  if arr.dtype != np.uint8:
    raise ImageError(f"{caller}: expected uint8, got {arr.dtype}")
  if arr.ndim == 3 and arr.shape[2] == 1:
    arr = arr[..., 0]
  buf = io.BytesIO()
  Image.fromarray(arr).save(buf, **save_options)
  return buf.getvalue()


def encode_jpeg(array: np.ndarray, quality: int = 90) -> bytes:
  """HxWx3 (or HxW) uint8 -> JPEG bytes; deterministic for the same input."""
  return _encode(array, "encode_jpeg", format="JPEG", quality=int(quality))


def encode_png(array: np.ndarray) -> bytes:
  """HxWx{1,3,4} or HxW uint8 -> PNG bytes (lossless)."""
  return _encode(array, "encode_png", format="PNG")


def is_jpeg(data: bytes) -> bool:
  return data[:3] == JPEG_MAGIC


def is_png(data: bytes) -> bool:
  return data[:8] == PNG_MAGIC


def frame_bytes_for_record(data: bytes, name: str = "<bytes>", max_side: int = 0):
  """Validates an encoded frame and returns (bytes_to_store, height, width, scale).

  Keeps the original bytes when they are a JPEG or PNG that decodes fine and
  needs no downscaling (no generation loss, no re-encode cost); otherwise
  re-encodes as JPEG (other formats, or longer side over `max_side` > 0).
  `scale` is (sx, sy), the factors to apply to pixel x and y coordinates
  ((1.0, 1.0) when unchanged).
  Raises ImageError naming `name` on a corrupt image.
  """
  arr = decode_image_rgb(data, name)
  h, w = arr.shape[:2]
  if max_side and max(h, w) > max_side:
    Image = _pil()
    factor = float(max_side) / float(max(h, w))
    nw, nh = max(1, int(round(w * factor))), max(1, int(round(h * factor)))
    arr = np.asarray(Image.fromarray(arr).resize((nw, nh), Image.BILINEAR))
    # Per-axis factors: rounding makes them differ slightly.
    return encode_jpeg(arr), nh, nw, (nw / float(w), nh / float(h))
  if (is_jpeg(data) and _is_rgb_jpeg(data)) or (is_png(data) and _is_rgb_png(data)):
    return data, h, w, (1.0, 1.0)
  return encode_jpeg(arr), h, w, (1.0, 1.0)


def _is_rgb_jpeg(data: bytes) -> bool:
  """True for 3-channel JPEGs (grayscale and CMYK ones are re-encoded so every
  stored frame decodes to 3 channels with tf.io.decode_jpeg(channels=3) too)."""
  Image = _pil()
  with Image.open(io.BytesIO(data)) as img:
    return img.mode == "RGB"


def _is_rgb_png(data: bytes) -> bool:
  Image = _pil()
  with Image.open(io.BytesIO(data)) as img:
    return img.mode == "RGB"
