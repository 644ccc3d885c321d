"""Shard naming and lookup of the record files the pipelines write.

Kept free of Apache Beam so training, evaluation and tools that only read
records do not pay for importing it.
"""

from __future__ import annotations

import hashlib
import os
from typing import List, Optional


def shard_for_key(key: str, num_shards: int) -> int:
  """Stable shard of a key (sha256, never Python's salted hash())."""
  digest = hashlib.sha256(key.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") % num_shards


def shard_path(output_dir: str, name: str, split: str, shard: int, num_shards: int) -> str:
  return os.path.join(output_dir, f"{name}-{split}.tfrecord-{shard:05d}-of-{num_shards:05d}")


def record_files(path_or_dir: str, name: Optional[str] = None,
                 split: Optional[str] = None) -> List[str]:
  """The shard files of a dataset directory (sorted), or of a glob pattern."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # keeps this module TF-free to import
  if any(ch in path_or_dir for ch in "*?["):
    files = tf.io.gfile.glob(path_or_dir)
  elif tf.io.gfile.isdir(path_or_dir):
    pattern = f"{name or '*'}-{split or '*'}.tfrecord-*-of-*"
    files = tf.io.gfile.glob(os.path.join(path_or_dir, pattern))
  else:
    files = [path_or_dir] if tf.io.gfile.exists(path_or_dir) else []
  return sorted(f for f in files if ".tmp" not in os.path.basename(f))
