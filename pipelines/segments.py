"""What the track-building Beam jobs (VID, ALOV, benchmark sequences) share.

Every job works in two stages so that the work spreads over workers evenly
even when one video is much longer than the others (LaSOT's 2,788-frame
airplane-1 next to 71-frame OTB Deer):

1. per video, cheap: parse the annotations, build one track per object, cut
   it into `SegmentTask`s (paths, boxes, flags; no pixels), reject bad
   annotations;
2. the tasks (small) are grouped by output shard (stable hash of the key), and
   each shard's writer builds its records in key order, one at a time: read
   and validate each frame (decode once), keep the original JPEG/PNG bytes
   when they decode fine (re-encode only other formats or when --max_side
   downscales), check each box against the real image size, serialize and
   append to the shard. Frames never go through a shuffle.

A frame shared by several tracks is decoded once per track; a bad file seen
by several segments yields one reject because rejects are de-duplicated.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

from pipelines import images, schema
from pipelines.schema import Reject, RejectReason
from pipelines.writer import WriteShardedRecords, count, reject


@dataclasses.dataclass
class SegmentTask:
  """One track segment to build: everything but the pixels.

  boxes_xyxy are in the annotation's pixel frame; `annotated_size` (h, w), when
  known (VOC XML <size>), is the size those boxes refer to: if the decoded
  image differs, the boxes are scaled to it. `ann_refs` name, per frame, the
  annotation a box came from (for reject messages).
  """
  track_id: str
  source: str
  label: str
  frame_paths: List[str]
  boxes_xyxy: np.ndarray
  visible: np.ndarray
  frame_index: np.ndarray
  occlusion: np.ndarray
  ann_refs: List[str]
  annotated_size: Optional[List[Optional[Tuple[int, int]]]] = None

  def __len__(self):
    return len(self.frame_paths)


def segment_bounds(n: int, max_length: int) -> List[Tuple[int, int]]:
  """[start, end) ranges cutting n frames into ceil(n / max_length) nearly
  equal parts (no stub segment of 1-2 frames at the end)."""
  if n <= 0:
    return []
  parts = int(math.ceil(n / float(max_length)))
  edges = [int(round(i * n / float(parts))) for i in range(parts + 1)]
  return [(edges[i], edges[i + 1]) for i in range(parts)]


def make_tasks(track_prefix: str, source: str, label: str, frame_paths: Sequence[str],
               boxes_xyxy, visible, frame_index, ann_refs: Sequence[str],
               segment_length: int, occlusion=None,
               annotated_size=None) -> List[SegmentTask]:
  """Cuts one whole track into segment tasks keyed `{track_prefix}/{k:04d}`."""
  boxes_xyxy = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
  visible = np.asarray(visible, bool).reshape(-1)
  frame_index = np.asarray(frame_index, np.int64).reshape(-1)
  n = len(frame_paths)
  occlusion = (np.full([n], -1.0, np.float32) if occlusion is None
               else np.asarray(occlusion, np.float32).reshape(-1))
  tasks = []
  for k, (a, b) in enumerate(segment_bounds(n, segment_length)):
    tasks.append(SegmentTask(
        track_id=f"{track_prefix}/{k:04d}", source=source, label=label,
        frame_paths=list(frame_paths[a:b]), boxes_xyxy=boxes_xyxy[a:b].copy(),
        visible=visible[a:b].copy(), frame_index=frame_index[a:b].copy(),
        occlusion=occlusion[a:b].copy(), ann_refs=list(ann_refs[a:b]),
        annotated_size=None if annotated_size is None else list(annotated_size[a:b])))
  return tasks


def box_outside(box, height: int, width: int) -> bool:
  """True when a finite box does not overlap the image at all."""
  x1, y1, x2, y2 = box
  return x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height


def build_segment(task: SegmentTask, max_side: int = 0):
  """Reads, validates and serializes one segment.

  Yields reject TaggedOutputs, then (key, serialized SequenceExample,
  num_frames) unless no frame survived.
  """
  kept_images, boxes, visible, index, occ = [], [], [], [], []
  size = None
  for i, path in enumerate(task.frame_paths):
    try:
      data = images.read_bytes(path)
    except Exception as e:  # OSError, or gfile's NotFoundError  # pylint: disable=broad-except
      yield reject(Reject(path, RejectReason.MISSING_IMAGE,
                          f"image for {task.ann_refs[i]} not readable: {e}"))
      continue
    try:
      stored, h, w, (sx, sy) = images.frame_bytes_for_record(data, path, max_side)
    except images.ImageError as e:
      yield reject(Reject(path, RejectReason.CORRUPT_IMAGE, str(e)))
      continue
    if size is None:
      size = (h, w)
    elif (h, w) != size:
      yield reject(Reject(
          path, RejectReason.FRAME_SIZE_MISMATCH,
          f"{h}x{w} where earlier frames of {task.track_id} are {size[0]}x{size[1]}"))
      continue
    box = np.array(task.boxes_xyxy[i], np.float64)
    vis = bool(task.visible[i])
    if task.annotated_size is not None and task.annotated_size[i] is not None:
      ah, aw = task.annotated_size[i]
      dh, dw = int(round(h / sy)), int(round(w / sx))  # decoded size before --max_side
      if (dh, dw) != (int(ah), int(aw)):
        # The annotation was made on another size of this image: scale (GOTURN/Re3 rule).
        box = box * np.array([dw / aw, dh / ah, dw / aw, dh / ah])
        count("boxes_scaled_to_decoded_size")
    box = box * np.array([sx, sy, sx, sy])
    if np.all(np.isfinite(box)) and box_outside(box, h, w):
      yield reject(Reject(
          task.ann_refs[i], RejectReason.BOX_OUTSIDE_IMAGE,
          f"frame {int(task.frame_index[i])}: box {np.round(box, 2).tolist()} "
          f"outside the {h}x{w} image {path}", {"track": task.track_id}))
      box = np.full([4], np.nan)
      vis = False
    if not np.all(np.isfinite(box)):
      vis = False
    kept_images.append(stored)
    boxes.append(box)
    visible.append(int(vis))
    index.append(int(task.frame_index[i]))
    occ.append(float(task.occlusion[i]))
  if not kept_images:
    yield reject(Reject(task.track_id, RejectReason.NO_VALID_FRAMES,
                        f"none of the {len(task)} frames of this segment could be read"))
    return
  track = schema.Track(
      track_id=task.track_id, source=task.source, label=task.label, height=size[0],
      width=size[1], images=kept_images, boxes_xyxy=np.asarray(boxes, np.float32),
      visible=visible, frame_index=index, occlusion=occ)
  count("segments")
  count("frames", len(kept_images))
  count("visible_frames", int(sum(visible)))
  yield (task.track_id, schema.serialize_track(track), len(kept_images))


def _task_key(task: SegmentTask) -> str:
  return task.track_id


def write_tracks(tasks_and_rejects, opts, name: str, extra_info: Optional[dict] = None):
  """(SegmentTasks, stage-1 rejects) -> shard files, rejected file, dataset_info.

  The writer's output contract, with the records built inside the shard
  writer (`build_segment` as its build step, so only the small tasks are
  shuffled) and duplicate rejects dropped.
  """
  return tasks_and_rejects | "Write" >> WriteShardedRecords(
      opts.output_dir, name, opts.split, opts.num_shards, extra_info=extra_info,
      build=functools.partial(build_segment, max_side=int(opts.max_side or 0)),
      key=_task_key, dedup_rejects=True)


def tasks_from_annotation(ann, track_prefix: str, segment_length: int,
                          ann_ref: str) -> List[SegmentTask]:
  """SegmentTasks for a readers.sequences.SequenceAnnotation (one track)."""
  return make_tasks(track_prefix, ann.source, ann.label, ann.frame_paths, ann.boxes_xyxy,
                    ann.visible, ann.frame_index, [ann_ref] * len(ann), segment_length,
                    occlusion=ann.occlusion)
