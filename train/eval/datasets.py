"""Evaluation datasets: what evaluation needs of a sequence, and its loaders.

--dataset KIND:DIR, KIND one of
  otb | vot | lasot | uav123 | got10k   sequence folders, read by
                                       pipelines.readers.sequences (the same readers
                                       as pipelines.build_sequences)
  mnist                                moving-MNIST track records (split, default test)

Occluded frames are those whose ground truth is valid and that the data marks as
occluded: `visible` False with a box (LaSOT full occlusion, GOT-10k cover 0, VID
occluded) or an occlusion fraction above 0 (GOT-10k cover, synthetic records).

Frames are views (`frames[i]` -> HxWx3 uint8 RGB) that decode on access, so a
protocol run decodes only the frames it tracks.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, List, Optional, Sequence

import numpy as np

from pipelines import schema, shards
from pipelines.images import decode_image_rgb, load_image_rgb
from pipelines.readers import sequences as sequence_readers
from train.eval import metrics

MNIST_KIND = "mnist"
KINDS = sequence_readers.KINDS + (MNIST_KIND,)


@dataclasses.dataclass
class EvalSequence:
  """What evaluation needs of a sequence, whatever it was read from."""
  name: str
  frames: Sequence          # frames[i] -> HxWx3 uint8 RGB (lazy)
  gt_xyxy: np.ndarray       # [N, 4], NaN where absent
  occluded: np.ndarray      # [N] bool

  def __len__(self):
    return self.gt_xyxy.shape[0]


class LazyFrames:
  """`frames[i]` decodes frame i on demand with `loader` (default: pipelines.images)."""

  def __init__(self, paths: Sequence[str],
               loader: Optional[Callable[[str], np.ndarray]] = None):
    self.paths = list(paths)
    self.loader = loader or load_image_rgb

  def __len__(self):
    return len(self.paths)

  def __getitem__(self, i):
    return self.loader(self.paths[i])


class DecodedFrames:
  """Encoded frames (from records) decoded on access."""

  def __init__(self, images: List[bytes], name: str):
    self.images, self.name = images, name

  def __len__(self):
    return len(self.images)

  def __getitem__(self, i):
    return decode_image_rgb(self.images[i], f"{self.name}[{i}]")


class Head:
  """The first `n` frames of a frame view."""

  def __init__(self, frames, n: int):
    self.frames, self.n = frames, min(n, len(frames))

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    if i >= self.n:
      raise IndexError(i)
    return self.frames[i]


def occlusion_mask(boxes_xyxy, visible, occlusion=None) -> np.ndarray:
  """Frames with a valid box that the data marks as occluded."""
  valid = metrics.valid_ground_truth(boxes_xyxy)
  mask = ~np.asarray(visible, dtype=bool)
  if occlusion is not None:
    mask |= np.asarray(occlusion, dtype=np.float64) > 0
  return valid & mask


def parse_dataset(spec: str, kinds=KINDS):
  """--dataset KIND:DIR -> (kind, dir), KIND one of `kinds`; clear errors for a
  bad kind or a missing dir."""
  if ":" not in spec:
    raise ValueError(f"--dataset must be KIND:DIR with KIND one of {kinds}, got {spec!r}")
  kind, path = spec.split(":", 1)
  kind = kind.strip().lower()
  if kind not in kinds:
    raise ValueError(f"--dataset kind {kind!r} unknown; expected one of {kinds}")
  if not os.path.exists(path):
    raise ValueError(f"--dataset directory {path!r} does not exist")
  return kind, path


def _benchmark_sequences(kind: str, path: str) -> List[EvalSequence]:
  return [EvalSequence(s.name, LazyFrames(s.frame_paths), s.boxes_xyxy,
                       occlusion_mask(s.boxes_xyxy, s.visible, s.occlusion))
          for s in sequence_readers.read_sequences(kind, path)]


def _record_sequences(path: str, split: str) -> List[EvalSequence]:
  import tensorflow as tf  # only to read records  # pylint: disable=g-import-not-at-top
  files = shards.record_files(path, None, split)
  if not files:
    raise ValueError(f"{path}: no track records for split {split!r} "
                     f"(expected files like moving_mnist_fixed-{split}.tfrecord-*)")
  out = []
  for record in tf.data.TFRecordDataset(files):
    t = schema.parse_track(record.numpy())
    boxes = t.boxes_xyxy.astype(np.float64)
    out.append(EvalSequence(t.track_id, DecodedFrames(t.images, t.track_id), boxes,
                            occlusion_mask(boxes, t.visible.astype(bool), t.occlusion)))
  return out


def load_sequences(kind: str, path: str, split: str = "test", names: Sequence[str] = (),
                   max_sequences: int = 0, max_frames: int = 0) -> List[EvalSequence]:
  """Sequences of a benchmark folder or of moving-MNIST records, sorted by name."""
  if kind in sequence_readers.KINDS:
    out = _benchmark_sequences(kind, path)
  elif kind == MNIST_KIND:
    out = _record_sequences(path, split)
  else:
    raise ValueError(f"dataset kind {kind!r} unknown; expected one of {KINDS}")
  if names:
    wanted = set(names)
    out = [s for s in out if s.name in wanted]
    missing = wanted - {s.name for s in out}
    if missing:
      raise ValueError(f"--sequences: not in {path}: {sorted(missing)}")
  out.sort(key=lambda s: s.name)
  if max_sequences:
    out = out[:max_sequences]
  if max_frames:
    out = [EvalSequence(s.name, Head(s.frames, max_frames), s.gt_xyxy[:max_frames],
                        s.occluded[:max_frames]) for s in out]
  if not out:
    raise ValueError(f"{path}: no {kind} sequences found")
  return out
