"""The track record schema: the contract between the pipelines, training,
evaluation and any outside tool. Keep these keys.

Track records: one `tf.train.SequenceExample` per track segment.
  context
    track/id        bytes   stable unique key (also the shard key)
    track/source    bytes   vid, alov, det, synthetic, mnist, otb, vot, lasot, ...
    track/label     bytes   class name / synset where known (may be empty)
    image/height    int64   size of the stored frames
    image/width     int64
  feature_lists (one entry per frame)
    image/encoded   bytes   JPEG or PNG of the whole frame
    bbox/xmin, bbox/ymin, bbox/xmax, bbox/ymax   float  pixels in the stored frame (xyxy)
    bbox/visible    int64   0 where the target is occluded, absent or not annotated
    bbox/occlusion  float   occluded fraction of the target in [0, 1] (-1 = unknown)
    frame/index     int64   index of the frame in the source video

Boxes of frames where the target is absent are stored as NaN.

Crop-pair records: one `tf.train.Example` per pair, for first-stage training.
    crop/prev/encoded  bytes   227x227 crop of the previous frame (JPEG/PNG)
    crop/curr/encoded  bytes   227x227 crop of the current frame, same window
    label/box          float*4 target in the current crop, Re3 label convention
    track/id           bytes

Object records (ImageNet DET and friends, consumed by the synthetic job) are
track records of length 1 with source "det".
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

import numpy as np

# --- keys --------------------------------------------------------------------
TRACK_ID = "track/id"
TRACK_SOURCE = "track/source"
TRACK_LABEL = "track/label"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
IMAGE_ENCODED = "image/encoded"
BBOX_XMIN = "bbox/xmin"
BBOX_YMIN = "bbox/ymin"
BBOX_XMAX = "bbox/xmax"
BBOX_YMAX = "bbox/ymax"
BBOX_VISIBLE = "bbox/visible"
BBOX_OCCLUSION = "bbox/occlusion"
FRAME_INDEX = "frame/index"
BBOX_KEYS = (BBOX_XMIN, BBOX_YMIN, BBOX_XMAX, BBOX_YMAX)

CROP_PREV = "crop/prev/encoded"
CROP_CURR = "crop/curr/encoded"
LABEL_BOX = "label/box"

# Human-readable description written into dataset_info.json.
TRACK_FEATURES = {
    "context": {
        TRACK_ID: "bytes", TRACK_SOURCE: "bytes", TRACK_LABEL: "bytes",
        IMAGE_HEIGHT: "int64", IMAGE_WIDTH: "int64",
    },
    "feature_lists": {
        IMAGE_ENCODED: "bytes", BBOX_XMIN: "float", BBOX_YMIN: "float",
        BBOX_XMAX: "float", BBOX_YMAX: "float", BBOX_VISIBLE: "int64",
        BBOX_OCCLUSION: "float", FRAME_INDEX: "int64",
    },
    "box_format": "xyxy pixels in the stored frame; NaN where absent",
}
CROP_PAIR_FEATURES = {
    CROP_PREV: "bytes", CROP_CURR: "bytes", LABEL_BOX: "float[4] (Re3 label)",
    TRACK_ID: "bytes",
}


# --- rejects -----------------------------------------------------------------
# Every job writes OUT/rejected-{split}.jsonl: one JSON object per skipped
# input, {"path", "reason"[, "detail"][, extra fields such as "track"]}.


class RejectReason:
  """The one vocabulary of reject reasons (the `reason` field) of all jobs."""
  # files
  MISSING_IMAGE = "missing_image"              # no such image, or not readable
  CORRUPT_IMAGE = "corrupt_image"              # does not decode
  FRAME_SIZE_MISMATCH = "frame_size_mismatch"  # a frame of another size than the track's
  MISSING_ANNOTATION = "missing_annotation"
  MALFORMED_ANNOTATION = "malformed_annotation"
  NO_ANNOTATION = "no_annotation"              # a photo with no XML and no boxes.csv line
  BAD_BOXES_LINE = "bad_boxes_line"            # a boxes.csv line that cannot be parsed
  # videos and tracks
  EMPTY_VIDEO = "empty_video"
  NO_VALID_FRAMES = "no_valid_frames"
  UNANNOTATED_FRAMES = "unannotated_frames"    # images after the last ground-truth row, left out
  # boxes and objects
  BAD_BOX = "bad_box"                          # zero / negative size, not finite
  BOX_OUTSIDE_IMAGE = "box_outside_image"
  SMALL_OBJECT = "small_object"                # under the minimum fraction of the image
  NO_OBJECTS = "no_objects"
  # records
  MALFORMED_RECORD = "malformed_record"
  BAD_RECORD = "bad_record"
  CORRUPT_RECORD_FILE = "corrupt_record_file"
  # the simulator
  NO_SOURCE_OBJECTS = "no_source_objects"
  DUPLICATE_OBJECT_KEY = "duplicate_object_key"
  INVALID_BOX = "invalid_box"
  SMALL_BOX = "small_box"
  NO_BOX = "no_box"
  NO_UNOCCLUDED_START = "no_unoccluded_start"


@dataclasses.dataclass(frozen=True)
class Reject:
  """One skipped input: where (file, file:line, track id), why (a RejectReason)
  and what exactly; `extra` adds fields (e.g. track=..., record=...)."""
  path: str
  reason: str
  detail: str = ""
  extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def to_json_dict(self) -> Dict[str, Any]:
    """The line written to rejected-{split}.jsonl (detail only when set)."""
    record: Dict[str, Any] = {"path": str(self.path), "reason": self.reason}
    if self.detail:
      record["detail"] = str(self.detail)
    record.update(self.extra)
    return record


class RejectError(ValueError):
  """An input that gives no output; `reason` is its RejectReason and the
  message its detail. The readers' and sources' errors derive from it."""

  def __init__(self, reason: str, message: str):
    super().__init__(message)
    self.reason = reason

  def to_reject(self, path: str, **extra) -> Reject:
    return Reject(path, self.reason, str(self), extra)


@dataclasses.dataclass
class Track:
  """One track segment in memory (what a record holds)."""
  track_id: str
  source: str
  height: int
  width: int
  images: List[bytes]                 # encoded frames
  boxes_xyxy: np.ndarray              # [N, 4] float32, NaN where absent
  visible: np.ndarray                 # [N] int64 0/1
  frame_index: np.ndarray             # [N] int64
  occlusion: Optional[np.ndarray] = None  # [N] float32, -1 unknown
  label: str = ""

  def __post_init__(self):
    self.boxes_xyxy = np.asarray(self.boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    self.visible = np.asarray(self.visible, dtype=np.int64).reshape(-1)
    self.frame_index = np.asarray(self.frame_index, dtype=np.int64).reshape(-1)
    n = len(self.images)
    if self.occlusion is None:
      self.occlusion = np.full([n], -1.0, dtype=np.float32)
    self.occlusion = np.asarray(self.occlusion, dtype=np.float32).reshape(-1)
    for name in ("boxes_xyxy", "visible", "frame_index", "occlusion"):
      if len(getattr(self, name)) != n:
        raise ValueError(
            f"track {self.track_id!r}: {name} has {len(getattr(self, name))} entries "
            f"for {n} frames")

  def __len__(self):
    return len(self.images)


def _bytes_feature(values):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only to (de)serialize
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _float_feature(values):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only to (de)serialize
  return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _int_feature(values):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only to (de)serialize
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _as_bytes(s) -> bytes:
  return s if isinstance(s, bytes) else str(s).encode("utf-8")


def track_to_example(track: Track):
  """Track -> tf.train.SequenceExample."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only to (de)serialize
  context = tf.train.Features(feature={
      TRACK_ID: _bytes_feature([_as_bytes(track.track_id)]),
      TRACK_SOURCE: _bytes_feature([_as_bytes(track.source)]),
      TRACK_LABEL: _bytes_feature([_as_bytes(track.label)]),
      IMAGE_HEIGHT: _int_feature([int(track.height)]),
      IMAGE_WIDTH: _int_feature([int(track.width)]),
  })

  def flist(features):
    return tf.train.FeatureList(feature=features)

  lists = {
      IMAGE_ENCODED: flist([_bytes_feature([im]) for im in track.images]),
      BBOX_VISIBLE: flist([_int_feature([int(v)]) for v in track.visible]),
      BBOX_OCCLUSION: flist([_float_feature([float(v)]) for v in track.occlusion]),
      FRAME_INDEX: flist([_int_feature([int(v)]) for v in track.frame_index]),
  }
  for i, key in enumerate(BBOX_KEYS):
    lists[key] = flist([_float_feature([float(v)]) for v in track.boxes_xyxy[:, i]])
  return tf.train.SequenceExample(
      context=context, feature_lists=tf.train.FeatureLists(feature_list=lists))


def serialize_track(track: Track) -> bytes:
  """Deterministic bytes (map fields sorted), so re-runs write identical files."""
  return track_to_example(track).SerializeToString(deterministic=True)


def _specs():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only to (de)serialize
  context = {
      TRACK_ID: tf.io.FixedLenFeature([], tf.string),
      TRACK_SOURCE: tf.io.FixedLenFeature([], tf.string),
      TRACK_LABEL: tf.io.FixedLenFeature([], tf.string, default_value=b""),
      IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64),
      IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64),
  }
  sequence = {
      IMAGE_ENCODED: tf.io.FixedLenSequenceFeature([], tf.string),
      BBOX_XMIN: tf.io.FixedLenSequenceFeature([], tf.float32),
      BBOX_YMIN: tf.io.FixedLenSequenceFeature([], tf.float32),
      BBOX_XMAX: tf.io.FixedLenSequenceFeature([], tf.float32),
      BBOX_YMAX: tf.io.FixedLenSequenceFeature([], tf.float32),
      BBOX_VISIBLE: tf.io.FixedLenSequenceFeature([], tf.int64),
      BBOX_OCCLUSION: tf.io.FixedLenSequenceFeature([], tf.float32, allow_missing=True),
      FRAME_INDEX: tf.io.FixedLenSequenceFeature([], tf.int64),
  }
  return context, sequence


def parse_track_tf(serialized) -> Dict[str, Any]:
  """Graph-mode parser for tf.data: returns a flat dict of tensors:
  track_id, source, label, height, width, images [N] (encoded), boxes_xyxy [N,4],
  visible [N] int64, occlusion [N], frame_index [N]."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only to (de)serialize
  context_spec, seq_spec = _specs()
  ctx, seq = tf.io.parse_single_sequence_example(
      serialized, context_features=context_spec, sequence_features=seq_spec)
  boxes = tf.stack([seq[k] for k in BBOX_KEYS], axis=-1)
  return {
      "track_id": ctx[TRACK_ID], "source": ctx[TRACK_SOURCE], "label": ctx[TRACK_LABEL],
      "height": ctx[IMAGE_HEIGHT], "width": ctx[IMAGE_WIDTH],
      "images": seq[IMAGE_ENCODED], "boxes_xyxy": boxes, "visible": seq[BBOX_VISIBLE],
      "occlusion": seq[BBOX_OCCLUSION], "frame_index": seq[FRAME_INDEX],
  }


def parse_track(serialized: bytes) -> Track:
  """Eager parse into a `Track` (for tools, evaluation and tests)."""
  t = parse_track_tf(serialized)
  occ = t["occlusion"].numpy()
  n = int(t["images"].shape[0])
  if occ.shape[0] != n:
    occ = np.full([n], -1.0, np.float32)
  return Track(
      track_id=t["track_id"].numpy().decode(), source=t["source"].numpy().decode(),
      label=t["label"].numpy().decode(), height=int(t["height"]), width=int(t["width"]),
      images=list(t["images"].numpy()), boxes_xyxy=t["boxes_xyxy"].numpy(),
      visible=t["visible"].numpy(), frame_index=t["frame_index"].numpy(), occlusion=occ)


def crop_pair_to_example(prev_encoded: bytes, curr_encoded: bytes, label_box, track_id: str):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only to (de)serialize
  label = np.asarray(label_box, dtype=np.float32).reshape(-1)
  if label.shape != (4,):
    raise ValueError(f"crop pair {track_id!r}: label/box needs 4 values, got {label.shape}")
  return tf.train.Example(features=tf.train.Features(feature={
      CROP_PREV: _bytes_feature([prev_encoded]),
      CROP_CURR: _bytes_feature([curr_encoded]),
      LABEL_BOX: _float_feature(label.tolist()),
      TRACK_ID: _bytes_feature([_as_bytes(track_id)]),
  }))


def serialize_crop_pair(prev_encoded, curr_encoded, label_box, track_id) -> bytes:
  return crop_pair_to_example(prev_encoded, curr_encoded, label_box, track_id).SerializeToString(
      deterministic=True)


def parse_crop_pair_tf(serialized):
  """Graph-mode parser: dict with prev, curr (encoded), label [4], track_id."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only to (de)serialize
  spec = {
      CROP_PREV: tf.io.FixedLenFeature([], tf.string),
      CROP_CURR: tf.io.FixedLenFeature([], tf.string),
      LABEL_BOX: tf.io.FixedLenFeature([4], tf.float32),
      TRACK_ID: tf.io.FixedLenFeature([], tf.string),
  }
  ex = tf.io.parse_single_example(serialized, spec)
  return {"prev": ex[CROP_PREV], "curr": ex[CROP_CURR], "label": ex[LABEL_BOX],
          "track_id": ex[TRACK_ID]}
