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
import json
import math
import uuid
from typing import List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np

from pipelines import core, job_flags
from pipelines.core import count, reject

# Reasons written to rejected-{split}.jsonl (one vocabulary for all jobs).
CORRUPT_IMAGE = "corrupt_image"
MISSING_IMAGE = "missing_image"
MALFORMED_ANNOTATION = "malformed_annotation"
BAD_BOX = "bad_box"                    # zero / negative size, not finite
BOX_OUTSIDE_IMAGE = "box_outside_image"
EMPTY_VIDEO = "empty_video"
FRAME_SIZE_MISMATCH = "frame_size_mismatch"
NO_VALID_FRAMES = "no_valid_frames"

DEFAULT_SEGMENT_LENGTH = job_flags.DEFAULT_SEGMENT_LENGTH


def check_track_options(opts) -> None:
  core.check_common_options(opts)
  if opts.segment_length is None or opts.segment_length < 2:
    raise core.JobConfigError(f"--segment_length must be >= 2, got {opts.segment_length}")
  if opts.max_side is None or opts.max_side < 0:
    raise core.JobConfigError(f"--max_side must be >= 0, got {opts.max_side}")


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
  from pipelines import images, schema  # pylint: disable=g-import-not-at-top
  kept_images, boxes, visible, index, occ = [], [], [], [], []
  size = None
  for i, path in enumerate(task.frame_paths):
    try:
      data = images.read_bytes(path)
    except Exception as e:  # OSError, or gfile's NotFoundError  # pylint: disable=broad-except
      yield reject(path, MISSING_IMAGE, f"image for {task.ann_refs[i]} not readable: {e}")
      continue
    try:
      stored, h, w, (sx, sy) = images.frame_bytes_for_record(data, path, max_side)
    except images.ImageError as e:
      yield reject(path, CORRUPT_IMAGE, str(e))
      continue
    if size is None:
      size = (h, w)
    elif (h, w) != size:
      yield reject(path, FRAME_SIZE_MISMATCH,
                   f"{h}x{w} where earlier frames of {task.track_id} are {size[0]}x{size[1]}")
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
      yield reject(task.ann_refs[i], BOX_OUTSIDE_IMAGE,
                   f"frame {int(task.frame_index[i])}: box {np.round(box, 2).tolist()} "
                   f"outside the {h}x{w} image {path}",
                   track=task.track_id)
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
    yield reject(task.track_id, NO_VALID_FRAMES,
                 f"none of the {len(task)} frames of this segment could be read")
    return
  track = schema.Track(
      track_id=task.track_id, source=task.source, label=task.label, height=size[0],
      width=size[1], images=kept_images, boxes_xyxy=np.asarray(boxes, np.float32),
      visible=visible, frame_index=index, occlusion=occ)
  count("segments")
  count("frames", len(kept_images))
  count("visible_frames", int(sum(visible)))
  yield (task.track_id, schema.serialize_track(track), len(kept_images))


class BuildAndWriteShard(beam.DoFn):
  """(shard, [SegmentTask]) -> the shard file, written in key order one
  record at a time, plus rejects.

  Building records here, after the GroupByKey, means only the small tasks
  are shuffled (never the frames: on Dataflow shuffled bytes cost time and
  money, and locally they cross process boundaries), and a worker holds one
  record in memory, not a whole shard. The output layout, temporary names
  and the metadata handed to the finalize step are those of
  core.WriteShardedRecords.
  """

  def __init__(self, output_dir: str, name: str, split: str, num_shards: int, run_id: str,
               max_side: int):
    self._output_dir = output_dir
    self._name = name
    self._split = split
    self._num_shards = int(num_shards)
    self._run_id = run_id
    self._max_side = int(max_side or 0)

  def process(self, element):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    shard, items = element
    tasks = sorted((t for t in items if t is not None), key=lambda t: t.track_id)
    for a, b in zip(tasks, tasks[1:]):
      if a.track_id == b.track_id:
        raise ValueError(f"duplicate record key {a.track_id!r} in {self._name}-{self._split}")
    final = core.shard_path(self._output_dir, self._name, self._split, shard, self._num_shards)
    tmp = f"{final}.tmp-{self._run_id}"
    records = frames = 0
    with tf.io.TFRecordWriter(tmp) as writer:
      for task in tasks:
        for out in build_segment(task, self._max_side):
          if isinstance(out, beam.pvalue.TaggedOutput):
            yield out
            continue
          _, data, num_frames = out
          writer.write(data)
          records += 1
          frames += int(num_frames)
    count("records_written", records)
    yield {"shard": shard, "tmp": tmp, "final": final, "num_records": records,
           "num_frames": frames}


def _reject_key(r: dict) -> str:
  return json.dumps(r, sort_keys=True)


class DedupRejects(beam.PTransform):
  """Drops exact duplicate reject records (a bad frame shared by two tracks)."""

  def expand(self, pcoll):
    return (pcoll
            | "RejectToJson" >> beam.Map(_reject_key)
            | "DistinctRejects" >> beam.Distinct()
            | "RejectFromJson" >> beam.Map(json.loads))


def write_tracks(tasks_and_rejects, opts, name: str, extra_info: Optional[dict] = None):
  """(SegmentTasks, stage-1 rejects) -> shard files, rejected file, dataset_info.

  Same output contract as core.WriteShardedRecords (stable hash of the key
  picks the shard, records sorted by key, every shard exists, temporary
  names renamed at the end), with the records built inside the shard writer.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from pipelines import schema  # pylint: disable=g-import-not-at-top
  tasks, rejects1 = tasks_and_rejects
  pipeline = tasks.pipeline
  n = int(opts.num_shards)
  tf.io.gfile.makedirs(opts.output_dir)
  run_id = uuid.uuid4().hex[:12]
  keyed = tasks | "KeyByShard" >> beam.Map(lambda t: (core.shard_for_key(t.track_id, n), t))
  empty = pipeline | "AllShards" >> beam.Create([(i, None) for i in range(n)])
  written = ((keyed, empty) | "FlattenShards" >> beam.Flatten()
             | "GroupByShard" >> beam.GroupByKey()
             | "BuildAndWriteShard" >> beam.ParDo(BuildAndWriteShard(
                 opts.output_dir, name, opts.split, n, run_id, opts.max_side)).with_outputs(
                     core.REJECTED_TAG, main="shards"))
  rejects = ((rejects1, written[core.REJECTED_TAG]) | "AllRejects" >> beam.Flatten()
             | "Dedup" >> DedupRejects())
  # pylint: disable=protected-access
  return (pipeline
          | "FinalizeTrigger" >> beam.Create([None])
          | "Finalize" >> beam.Map(
              core.finalize_split, shards=beam.pvalue.AsList(written.shards),
              rejects=beam.pvalue.AsList(rejects), output_dir=opts.output_dir, name=name,
              split=opts.split, num_shards=n, record_kind="track",
              features=schema.TRACK_FEATURES, extra_info=extra_info or {}))


def tasks_from_annotation(ann, track_prefix: str, segment_length: int,
                          ann_ref: str) -> List[SegmentTask]:
  """SegmentTasks for a readers.sequences.SequenceAnnotation (one track)."""
  return make_tasks(track_prefix, ann.source, ann.label, ann.frame_paths, ann.boxes_xyxy,
                    ann.visible, ann.frame_index, [ann_ref] * len(ann), segment_length,
                    occlusion=ann.occlusion)
