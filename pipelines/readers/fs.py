"""Tiny filesystem layer: plain `os` for local paths, tf.io.gfile for URLs.

The readers are used on a laptop (local paths, no TF import needed) and on
Beam workers pointed at gs:// or hdfs:// roots; both go through here, and so
do the output-directory checks of pipelines.output_dir (write_text, remove,
makedirs).
"""

from __future__ import annotations

import os
from typing import List

# Lower-case image file extensions every reader accepts (matched case-insensitively).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def is_image_file(name: str) -> bool:
  """Whether a file name (or path) names an image: one of IMAGE_EXTENSIONS in
  any case, and not a dot file."""
  base = os.path.basename(str(name).rstrip("/"))
  return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def is_remote(path: str) -> bool:
  """A URL (gs://, hdfs://, ...), read and written through tf.io.gfile."""
  return "://" in str(path)


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only for remote paths
  return tf.io.gfile


def exists(path: str) -> bool:
  return _gfile().exists(path) if is_remote(path) else os.path.exists(path)


def isdir(path: str) -> bool:
  return _gfile().isdir(path) if is_remote(path) else os.path.isdir(path)


def isfile(path: str) -> bool:
  if is_remote(path):
    g = _gfile()
    return g.exists(path) and not g.isdir(path)
  return os.path.isfile(path)


def listdir(path: str) -> List[str]:
  """Sorted entry names (no trailing slashes)."""
  if is_remote(path):
    names = [n.rstrip("/") for n in _gfile().listdir(path)]
  else:
    names = os.listdir(path)
  return sorted(names)


def join(*parts: str) -> str:
  return os.path.join(*parts)


def read_bytes(path: str) -> bytes:
  if is_remote(path):
    with _gfile().GFile(path, "rb") as f:
      return f.read()
  with open(path, "rb") as f:
    return f.read()


def read_text(path: str) -> str:
  return read_bytes(path).decode("utf-8", errors="replace")


def write_text(path: str, text: str) -> None:
  if is_remote(path):
    with _gfile().GFile(path, "w") as f:
      f.write(text)
    return
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)


def remove(path: str) -> None:
  if is_remote(path):
    _gfile().remove(path)
  else:
    os.remove(path)


def makedirs(path: str) -> None:
  if is_remote(path):
    _gfile().makedirs(path)
  else:
    os.makedirs(path, exist_ok=True)
