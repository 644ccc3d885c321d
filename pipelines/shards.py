"""Shard naming and lookup of the record files the pipelines write.

Kept free of Apache Beam so training, evaluation and tools that only read
records do not pay for importing it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Iterator, List, Optional, Tuple

from pipelines.schema import RejectError, RejectReason


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


class CorruptRecordFile(RejectError):
  """A record file that is damaged (truncated, bad checksum) or not a TFRecord
  file at all; the message names the file and how far it could be read."""

  def __init__(self, path: str, records_read: int, cause: str):
    super().__init__(RejectReason.CORRUPT_RECORD_FILE,
                     f"{path}: unreadable after {records_read} records "
                     f"(truncated, damaged or not a TFRecord file): {cause}")
    self.path = path
    self.records_read = records_read


def read_record_file(path: str) -> Iterator[Tuple[int, bytes]]:
  """(index, serialized record) of every record of one shard file, in order.

  A file that is damaged midway yields the records before the damage and then
  raises CorruptRecordFile (also logged in one line naming the file), so the
  jobs keep what is readable and reject the rest.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # keeps this module TF-free to import
  index = 0
  try:
    for raw in tf.data.TFRecordDataset(path):
      yield index, raw.numpy()
      index += 1
  except tf.errors.OpError as e:  # DataLossError for damaged files, and other read errors
    lines = (e.message or str(e)).strip().splitlines()
    error = CorruptRecordFile(path, index, lines[0] if lines else type(e).__name__)
    logging.warning("%s", error)
    raise error from None
