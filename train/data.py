"""tf.data input for training: track records -> clips (runs of consecutive frames) ->
decoded, mirrored, jittered, cropped batches, all inside the input graph.

Over 400 lines: the one input pipeline of both tasks; the record checks, clip sampling and the
Re3 and RL example builders share its reading, decoding and sampling helpers.

Two Re3 example layouts, picked per curriculum stage:

* "crops" (stages without self-training): the crop pairs are cut here with
  `model.geometry.crop_tf` (tf.image.crop_and_resize) around the jittered
  ground truth, in parallel map calls that overlap with the training step:
    prev, curr [T, 227, 227, C] uint8, labels [T, 4], windows [T, 4], boxes [T+1, 4]
* "frames" (self-training stages): the step itself must crop frame t+1 around
  the network's prediction at t, so whole frames travel to the step, padded
  (bottom/right, zeros) onto a fixed canvas so tracks of different sizes batch
  together; padding leaves pixel coordinates unchanged and zeros are exactly
  what a crop sees outside the image:
    frames [T+1, Hc, Wc, C] uint8, boxes [T+1, 4], gt_windows [T, 4],
    image_hw [2], self_train [] bool (drawn once per sequence, as the paper).

Pair t (t = 1..T) is (frame t-1, frame t) cut with the same window: the 2x
window around the (jittered) box of frame t-1; its label is the box of frame
t relative to that window (Re3 label convention of model.geometry).

Clips: T+1 consecutive frames whose boxes are all finite with positive size
(absent targets are NaN in the records); `data.windows_per_track` random
clips are drawn per track read, the encoded clips are shuffled, then decoded.
In the Re3 input "window" always means a crop window (a box in the frame);
the RL agent's window (`rl.window`) is its run of T frames, the paper's term.

Several record directories are mixed with `sample_from_datasets` and their
weights; crop-pair records join stages with unroll 1 (a pair is a clip of
one step). The RL agent reads whole videos and walks them window after
window (`rl_dataset`).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from configs.experiment import DataConfig
from model import geometry
from pipelines import schema, shards

CROP = geometry.CROP_SIZE
AUTOTUNE = tf.data.AUTOTUNE

log = logging.getLogger("train")


class DataError(ValueError):
  """Input records missing or unusable; the message names the directory."""


def _calls(n: int):
  return AUTOTUNE if n == -1 else n


def find_record_files(path: str, split: str, what: str = "data.train_dir") -> List[str]:
  """Shard files of one record directory (or glob / single file) for `split`."""
  files = shards.record_files(path, None, split)
  if not files and not tf.io.gfile.isdir(path):
    files = shards.record_files(path)
  if not files:
    raise DataError(f"{what}: no '*-{split}.tfrecord-*' record files in {path!r}")
  return files


# ---------------------------------------------------------------------------
# The check before training: every shard readable, every source able to serve
# ---------------------------------------------------------------------------


def _first_line(error: Exception) -> str:
  text = getattr(error, "message", None) or str(error)
  return next((l.strip() for l in text.splitlines() if l.strip()), type(error).__name__)


@dataclasses.dataclass
class SourceScan:
  """What one data.train_dir entry (or crop-pair directory) can serve."""
  what: str                                  # the config key, e.g. data.train_dir
  path: str
  index: int = 0                             # position in the key's comma list
  files: List[str] = dataclasses.field(default_factory=list)   # readable shards
  bad_files: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
  records: int = 0
  longest_clip: int = 0                      # frames
  longest_leading_clip: int = 0              # frames from a track's first frame


@tf.function(reduce_retracing=True)
def _clip_links_of_record(record, max_gap: int):
  t = schema.parse_track_tf(record)
  return clip_links_tf(t["boxes_xyxy"], t["frame_index"], max_gap)


def _scan_shard(path: str, scan: SourceScan, max_gap: int, tracks: bool) -> None:
  """Reads one shard to its end (shards.read_record_file, the one reader of
  damaged record files); raises DataError naming it when it is not a readable
  TFRecord of the expected records."""
  records, longest, leading = 0, 0, 0
  try:
    for index, record in shards.read_record_file(path):
      records = index + 1
      if tracks:
        frame_ok, link_ok = _clip_links_of_record(tf.constant(record), max_gap)
        run, lead = usable_runs(frame_ok.numpy(), link_ok.numpy())
        longest, leading = max(longest, run), max(leading, lead)
  except shards.CorruptRecordFile as e:
    raise DataError(f"not a readable TFRecord file: {e}") from None
  except tf.errors.InvalidArgumentError as e:
    raise DataError(f"{path}: record {records - 1} is not a track record "
                    f"({_first_line(e)})") from None
  scan.records += records
  scan.longest_clip = max(scan.longest_clip, longest)
  scan.longest_leading_clip = max(scan.longest_leading_clip, leading)


def scan_source(path: str, split: str, what: str = "data.train_dir", index: int = 0,
                max_gap: int = 0, tracks: bool = True, skip_bad: bool = False) -> SourceScan:
  """Reads every shard of a source once (boxes and frame indices of track
  records; crop-pair records are only counted). A bad shard raises DataError
  naming it, or with skip_bad is listed in bad_files and left out."""
  scan = SourceScan(what=what, path=path, index=index)
  for f in find_record_files(path, split, what=what):
    try:
      _scan_shard(f, scan, max_gap, tracks)
    except DataError as e:
      if not skip_bad:
        raise
      scan.bad_files.append((f, str(e)))
      log.warning("%s: shard left out (data.skip_unusable): %s", what, e)
      continue
    scan.files.append(f)
  return scan


@dataclasses.dataclass
class CheckedSources:
  """The result of check_sources: the shards each stage reads."""
  tracks: Dict[int, List[Tuple[int, List[str]]]]   # clip length -> [(train_dir index, files)]
  pairs: List[List[str]]                            # crop-pair shards per crop_pair_dir entry

  def track_sources(self, length: int) -> List[Tuple[int, List[str]]]:
    return self.tracks[length]


def check_sources(cfg: DataConfig, clip_lengths: Sequence[int], leading: bool = False,
                  pair_lengths: Sequence[int] = ()) -> CheckedSources:
  """Checks before training that every source can serve every stage.

  clip_lengths: the frames of a clip of each stage (Re3: unroll + 1; the RL
  agent: the frames it walks from a video's first frame, with leading=True);
  pair_lengths: those of the stages that also read crop pairs. A shard that is
  not a readable TFRecord, or a data.train_dir entry whose longest clip is too
  short for a stage (a 2-frame track for unroll 2, boxes all NaN, gaps in
  frame/index), raises DataError naming it: training would otherwise wait
  forever for a first batch. With data.skip_unusable they are left out with a
  warning, while each stage keeps at least one source.
  """
  dirs = cfg.dirs()
  weights = list(cfg.train_weights) or [1.0] * len(dirs)
  skip = cfg.skip_unusable
  scans = [scan_source(d, cfg.train_split, "data.train_dir", i, cfg.max_frame_gap, True, skip)
           for i, (d, w) in enumerate(zip(dirs, weights)) if w > 0]
  pairs = []
  if pair_lengths and cfg.crop_pair_weight > 0:
    for j, d in enumerate(cfg.pair_dirs()):
      scan = scan_source(d, cfg.crop_pair_split, "data.crop_pair_dir", j, tracks=False,
                         skip_bad=skip)
      if not scan.records:
        message = f"data.crop_pair_dir {d!r}: no readable crop-pair record"
        if not skip:
          raise DataError(message)
        log.warning("%s; left out (data.skip_unusable)", message)
        continue
      pairs.append(scan.files)
  out: Dict[int, List[Tuple[int, List[str]]]] = {}
  for length in sorted(set(clip_lengths)):
    usable = []
    for scan in scans:
      longest = scan.longest_leading_clip if leading else scan.longest_clip
      if scan.files and longest >= length:
        usable.append((scan.index, scan.files))
        continue
      why = (f"{scan.what} {scan.path!r}: no clip of {length} consecutive frames with valid "
             f"boxes{' from a track start' if leading else ''} in its {scan.records} records "
             f"(longest: {longest} frames; gaps in frame/index break clips, "
             f"data.max_frame_gap={cfg.max_frame_gap})")
      if not skip:
        raise DataError(f"{why}: remove it from data.train_dir, or set data.skip_unusable=true "
                        "to train without it")
      log.warning("%s: left out of the stages with %d-frame clips (data.skip_unusable)", why,
                  length)
    if not usable and not (length in pair_lengths and pairs):
      raise DataError(f"no source has a clip of {length} consecutive frames with valid boxes: "
                      + "; ".join(f"{s.path!r} longest "
                                  f"{s.longest_leading_clip if leading else s.longest_clip}"
                                  for s in scans))
    out[length] = usable
  return CheckedSources(tracks=out, pairs=pairs)


# ---------------------------------------------------------------------------
# Record streams
# ---------------------------------------------------------------------------


def _record_stream(files: Sequence[str], input_context: Optional[tf.distribute.InputContext],
                   cycle_length: int, seed: Optional[int], shuffle: bool = True) -> tf.data.Dataset:
  """Endless stream of serialized records, sharded across input pipelines.

  Shards files when there are at least as many files as pipelines (each
  worker reads its own files), else shards records.
  """
  ds = tf.data.Dataset.from_tensor_slices(list(files))
  n_pipes = input_context.num_input_pipelines if input_context else 1
  pipe = input_context.input_pipeline_id if input_context else 0
  shard_records = False
  if n_pipes > 1:
    if len(files) >= n_pipes:
      ds = ds.shard(n_pipes, pipe)
    else:
      shard_records = True
  if shuffle:
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  ds = ds.repeat()
  ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=max(1, cycle_length),
                     num_parallel_calls=AUTOTUNE, deterministic=not shuffle)
  if shard_records:
    ds = ds.shard(n_pipes, pipe)
  return ds


# ---------------------------------------------------------------------------
# Windows of consecutive frames
# ---------------------------------------------------------------------------


def clip_links_tf(boxes, frame_index=None, max_gap: int = 0):
  """The clip rule: which frames and which steps between neighbours a clip may use.

  -> (frame_ok [N] bool: the box is finite with positive size,
      link_ok [N-1] bool: frames j and j+1 may follow each other in a clip).
  A step of `frame/index` that does not go forward, or that is larger than
  `max_gap` source frames (0: larger than the track's smallest positive step),
  is a gap left by rejected frames and breaks clips (data.max_frame_gap).
  Without frame indices every step links.
  """
  frame_ok = geometry.box_is_valid_xyxy_tf(boxes)
  n = tf.shape(frame_ok)[0]
  if frame_index is None:
    return frame_ok, tf.ones([tf.maximum(n - 1, 0)], tf.bool)
  index = tf.cast(frame_index, tf.int64)
  steps = index[1:] - index[:-1]
  if max_gap > 0:
    allowed = tf.constant(max_gap, tf.int64)
  else:
    allowed = tf.reduce_min(tf.where(steps > 0, steps, tf.int64.max))
  return frame_ok, tf.logical_and(steps > 0, steps <= allowed)


def valid_clip_starts_tf(boxes, length: int, frame_index=None, max_gap: int = 0):
  """Start indices s such that frames s .. s+length-1 all have valid boxes and
  no gap between them (clip_links_tf)."""
  frame_ok, link_ok = clip_links_tf(boxes, frame_index, max_gap)
  ok = tf.cast(frame_ok, tf.int32)
  n = tf.shape(ok)[0]
  csum = tf.concat([[0], tf.cumsum(ok)], axis=0)
  lsum = tf.concat([[0], tf.cumsum(tf.cast(link_ok, tf.int32))], axis=0)
  num = tf.maximum(n - length + 1, 0)
  sums = csum[length:length + num] - csum[:num]
  links = lsum[length - 1:length - 1 + num] - lsum[:num]
  good = tf.logical_and(tf.equal(sums, length), tf.equal(links, length - 1))
  return tf.cast(tf.where(good)[:, 0], tf.int32)


def usable_runs(frame_ok: np.ndarray, link_ok: np.ndarray) -> Tuple[int, int]:
  """(longest clip, clip from the first frame) in frames that clip_links_tf's
  masks allow."""
  longest = leading = run = 0
  for j, ok in enumerate(np.asarray(frame_ok, bool)):
    if ok and run and link_ok[j - 1]:
      run += 1
    else:
      run = int(ok)
    if run == j + 1:
      leading = run
    longest = max(longest, run)
  return longest, leading


def sample_clips_tf(track: Dict[str, tf.Tensor], length: int, count: int, seed=None,
                    max_gap: int = 0):
  """Draws `count` clips (with replacement) of `length` frames from a parsed
  track; returns a dict whose leading axis is the clip (0 if none fits)."""
  starts = valid_clip_starts_tf(track["boxes_xyxy"], length, track.get("frame_index"), max_gap)
  n = tf.shape(starts)[0]
  pick = tf.random.uniform([count], 0, tf.maximum(n, 1), dtype=tf.int32, seed=seed)
  pick = pick[:tf.minimum(count, n * count)]  # empty when no clip fits
  idx = tf.gather(starts, pick)[:, None] + tf.range(length)[None, :]
  k = tf.shape(idx)[0]
  return {
      "images": tf.gather(track["images"], idx),
      "boxes": tf.gather(track["boxes_xyxy"], idx),
      "height": tf.fill([k], track["height"]),
      "width": tf.fill([k], track["width"]),
      "track_id": tf.fill([k], track["track_id"]),
  }


def decode_frames_tf(encoded, channels: int):
  """[n] encoded JPEG/PNG -> [n, H, W, channels] uint8 (frames of a track share a size)."""
  def one(x):
    img = tf.io.decode_image(x, channels=channels, expand_animations=False)
    return tf.ensure_shape(img, [None, None, channels])
  return tf.map_fn(one, encoded, fn_output_signature=tf.TensorSpec([None, None, channels], tf.uint8))


def fit_canvas_tf(frames, boxes, canvas_hw):
  """Scales frames [n, h, w, C] down to fit the canvas (boxes too), then pads
  bottom/right with zeros to exactly canvas_hw. Returns (frames, boxes, hw)."""
  ch, cw = int(canvas_hw[0]), int(canvas_hw[1])
  shape = tf.shape(frames)
  h = tf.cast(shape[1], tf.float32)
  w = tf.cast(shape[2], tf.float32)
  scale = tf.minimum(1.0, tf.minimum(ch / h, cw / w))
  new_h = tf.minimum(tf.cast(tf.round(h * scale), tf.int32), ch)
  new_w = tf.minimum(tf.cast(tf.round(w * scale), tf.int32), cw)

  def shrink():
    return tf.cast(tf.round(tf.clip_by_value(
        tf.image.resize(frames, [new_h, new_w], method="bilinear", antialias=True), 0, 255)),
                   tf.uint8)

  frames = tf.cond(scale < 1.0, shrink, lambda: frames)
  sx = tf.cast(new_w, tf.float32) / w
  sy = tf.cast(new_h, tf.float32) / h
  boxes = boxes * tf.stack([sx, sy, sx, sy])
  frames = tf.image.pad_to_bounding_box(frames, 0, 0, ch, cw)
  return frames, boxes, tf.stack([new_h, new_w])


def _to_uint8(x):
  return tf.cast(tf.round(tf.clip_by_value(x, 0.0, 255.0)), tf.uint8)


def crop_pairs_tf(frames, windows, crop_size: int = CROP):
  """Crop pairs of a window: frames [T+1, H, W, C], windows [T, 4] ->
  prev, curr [T, S, S, C] uint8, pair t cut from frames t and t+1."""
  prev = geometry.crop_tf(frames[:-1], windows, size=crop_size)
  curr = geometry.crop_tf(frames[1:], windows, size=crop_size)
  return _to_uint8(prev), _to_uint8(curr)


def re3_example_tf(clip: Dict[str, tf.Tensor], cfg: DataConfig, mode: str,
                   self_train_prob: float, seed=None, crop_size: int = CROP) -> Dict[str, tf.Tensor]:
  """One clip of T+1 encoded frames -> a training example (see module doc)."""
  frames = decode_frames_tf(clip["images"], cfg.channels)
  boxes = tf.cast(clip["boxes"], tf.float32)
  shape = tf.shape(frames)
  hw = shape[1:3]
  width = tf.cast(hw[1], tf.float32)
  mirror = tf.random.uniform([], seed=seed) < cfg.mirror_prob
  boxes = tf.where(mirror, geometry.mirror_xyxy_tf(boxes, width), boxes)
  if mode == "crops":
    # Everything is computed in mirrored coordinates; the crops are cut from
    # the unflipped frames at the mirrored-back windows and then flipped,
    # which equals cropping the flipped frames (and costs T crops, not T frames).
    search = geometry.jitter_xyxy_tf(boxes[:-1], hw, cfg.jitter, seed=seed)
    windows = geometry.crop_window_xyxy_tf(search)
    labels = geometry.box_to_label_tf(boxes[1:], windows)
    cut = tf.where(mirror, geometry.mirror_xyxy_tf(windows, width), windows)
    prev, curr = crop_pairs_tf(frames, cut, crop_size)
    prev = tf.cond(mirror, lambda: tf.reverse(prev, axis=[2]), lambda: prev)
    curr = tf.cond(mirror, lambda: tf.reverse(curr, axis=[2]), lambda: curr)
    t = unroll_of(clip)
    c = cfg.channels
    return {"prev": tf.ensure_shape(prev, [t, crop_size, crop_size, c]),
            "curr": tf.ensure_shape(curr, [t, crop_size, crop_size, c]),
            "labels": tf.ensure_shape(labels, [t, 4]), "windows": tf.ensure_shape(windows, [t, 4]),
            "boxes": tf.ensure_shape(boxes, [t + 1, 4])}
  frames = tf.cond(mirror, lambda: tf.reverse(frames, axis=[2]), lambda: frames)
  frames, boxes, hw = fit_canvas_tf(frames, boxes, cfg.canvas_size)
  search = geometry.jitter_xyxy_tf(boxes[:-1], hw, cfg.jitter, seed=seed)
  windows = geometry.crop_window_xyxy_tf(search)
  self_train = tf.random.uniform([], seed=seed) < self_train_prob
  t = unroll_of(clip)
  ch, cw = cfg.canvas_size
  return {"frames": tf.ensure_shape(frames, [t + 1, ch, cw, cfg.channels]),
          "boxes": tf.ensure_shape(boxes, [t + 1, 4]),
          "gt_windows": tf.ensure_shape(windows, [t, 4]), "image_hw": hw,
          "self_train": self_train}


def unroll_of(clip: Dict[str, tf.Tensor]) -> Optional[int]:
  """Static number of pairs T of a clip of T+1 frames (None if unknown)."""
  n = clip["images"].shape[0]
  return None if n is None else n - 1


def crop_pair_example_tf(serialized, cfg: DataConfig, seed=None,
                         crop_size: int = CROP) -> Dict[str, tf.Tensor]:
  """Crop-pair record -> an unroll-1 "crops" example (mirrored with mirror_prob)."""
  ex = schema.parse_crop_pair_tf(serialized)

  def dec(x):
    img = tf.io.decode_image(x, channels=cfg.channels, expand_animations=False)
    img = tf.ensure_shape(img, [None, None, cfg.channels])
    img = tf.cond(tf.reduce_all(tf.equal(tf.shape(img)[:2], [crop_size, crop_size])),
                  lambda: img, lambda: _to_uint8(tf.image.resize(img, [crop_size, crop_size])))
    return tf.ensure_shape(img, [crop_size, crop_size, cfg.channels])

  prev, curr, label = dec(ex["prev"]), dec(ex["curr"]), ex["label"]
  mirror = tf.random.uniform([], seed=seed) < cfg.mirror_prob
  scale = geometry.LABEL_SCALE
  flipped = tf.stack([scale - label[2], label[1], scale - label[0], label[3]])
  label = tf.where(mirror, flipped, label)
  prev = tf.cond(mirror, lambda: tf.reverse(prev, axis=[1]), lambda: prev)
  curr = tf.cond(mirror, lambda: tf.reverse(curr, axis=[1]), lambda: curr)
  # Windows/boxes are unknown for crop pairs: the unit window and its label box.
  window = tf.constant([[0.0, 0.0, 1.0, 1.0]])
  box = geometry.label_to_box_tf(label[None], window)
  return {"prev": prev[None], "curr": curr[None], "labels": label[None], "windows": window,
          "boxes": tf.concat([box, box], axis=0)}


def re3_dataset(cfg: DataConfig, unroll: int, batch_size: int, self_train_prob: float,
                input_context: Optional[tf.distribute.InputContext] = None,
                seed: Optional[int] = None, mode: Optional[str] = None,
                crop_size: int = CROP,
                checked: Optional[CheckedSources] = None) -> tf.data.Dataset:
  """Batched Re3 training examples for one curriculum stage.

  batch_size is the batch of this input pipeline (the per-replica batch under
  tf.distribute). mode: "crops" or "frames"; default "frames" exactly when the
  stage self-trains. `checked` (check_sources) gives the shards to read; without
  it every shard of every source is read.
  """
  dirs = cfg.dirs()
  if not dirs:
    raise DataError("data.train_dir is empty: set it to one or more record directories "
                    "(comma-separated), e.g. --set data.train_dir=/path/to/records")
  if mode is None:
    mode = "frames" if self_train_prob > 0 and unroll > 1 else "crops"
  if mode not in ("crops", "frames"):
    raise ValueError(f"mode must be crops or frames, got {mode!r}")
  calls = _calls(cfg.num_parallel_calls)
  weights = list(cfg.train_weights) or [1.0] * len(dirs)
  if checked is not None:
    track_files = checked.track_sources(unroll + 1)
  else:
    track_files = [(i, find_record_files(d, cfg.train_split))
                   for i, (d, w) in enumerate(zip(dirs, weights)) if w > 0]
  sources, source_weights = [], []
  for i, files in track_files:
    w = weights[i]
    s = None if seed is None else seed + 1000 * i
    ds = _record_stream(files, input_context, cfg.cycle_length, s)
    ds = ds.map(schema.parse_track_tf, num_parallel_calls=calls)
    ds = ds.map(lambda t: sample_clips_tf(t, unroll + 1, cfg.windows_per_track,
                                          max_gap=cfg.max_frame_gap),
                num_parallel_calls=calls)
    ds = ds.unbatch().shuffle(cfg.shuffle_buffer, seed=s)
    ds = ds.map(lambda clip: re3_example_tf(clip, cfg, mode, self_train_prob, crop_size=crop_size),
                num_parallel_calls=calls, deterministic=False)
    sources.append(ds)
    source_weights.append(float(w))
  if unroll == 1 and cfg.pair_dirs() and cfg.crop_pair_weight > 0:
    if mode != "crops":
      raise ValueError("crop-pair records need the crops layout")
    pair_sources = []
    pair_files = (checked.pairs if checked is not None else
                  [find_record_files(d, cfg.crop_pair_split, what="data.crop_pair_dir")
                   for d in cfg.pair_dirs()])
    for j, files in enumerate(pair_files):
      s = None if seed is None else seed + 7919 * (j + 1)
      ds = _record_stream(files, input_context, cfg.cycle_length, s)
      ds = ds.shuffle(cfg.shuffle_buffer, seed=s)
      ds = ds.map(lambda r: crop_pair_example_tf(r, cfg, crop_size=crop_size),
                  num_parallel_calls=calls,
                  deterministic=False)
      pair_sources.append(ds)
    if pair_sources:
      total = sum(source_weights)
      if total > 0:
        source_weights = [w * (1 - cfg.crop_pair_weight) / total for w in source_weights]
      source_weights += [cfg.crop_pair_weight / len(pair_sources)] * len(pair_sources)
      sources += pair_sources
  if not sources:
    raise DataError(f"no source for clips of {unroll + 1} frames in data.train_dir "
                    f"{cfg.train_dir!r}")
  if len(sources) == 1:
    ds = sources[0]
  else:
    total = sum(source_weights)
    ds = tf.data.Dataset.sample_from_datasets(
        sources, weights=[w / total for w in source_weights], seed=seed)
  ds = ds.batch(batch_size, drop_remainder=True)
  options = tf.data.Options()
  options.deterministic = False
  ds = ds.with_options(options)
  return ds.prefetch(_calls(cfg.prefetch))


# ---------------------------------------------------------------------------
# RL agent: whole videos walked T frames at a time (Algorithm 1)
# ---------------------------------------------------------------------------


def rl_video_tf(track: Dict[str, tf.Tensor], cfg: DataConfig, length: int,
                frame_size: int) -> Dict[str, tf.Tensor]:
  """First `length` frames of a video: frames float32 0..1 [L, S, S, C], boxes [L, 4].

  Whole-video augmentation (the same for every frame): mirrored left-right
  with data.mirror_prob, turned by k quarter turns when data.rotate90 (three
  coin flips, so k = 0, 1, 2, 3 with probabilities 1/8, 3/8, 3/8, 1/8; with
  mirroring every one of the 8 symmetries of the square can be drawn, not
  equally often), and played backwards with data.reverse_prob.
  """
  frames = decode_frames_tf(track["images"][:length], cfg.channels)
  boxes = tf.cast(track["boxes_xyxy"][:length], tf.float32)
  width = tf.cast(tf.shape(frames)[2], tf.float32)
  mirror = tf.random.uniform([]) < cfg.mirror_prob
  boxes = tf.where(mirror, geometry.mirror_xyxy_tf(boxes, width), boxes)
  frames = tf.cond(mirror, lambda: tf.reverse(frames, axis=[2]), lambda: frames)
  if cfg.rotate90:
    for _ in range(3):  # three coin flips, one quarter turn each: k ~ Binomial(3, 1/2)
      turn = tf.random.uniform([]) < 0.5
      boxes = tf.where(turn, geometry.rot90_xyxy_tf(boxes, tf.shape(frames)[2]), boxes)
      frames = tf.cond(turn, lambda f=frames: tf.image.rot90(f), lambda f=frames: f)
  if cfg.reverse_prob > 0:
    back = tf.random.uniform([]) < cfg.reverse_prob
    boxes = tf.where(back, tf.reverse(boxes, axis=[0]), boxes)
    frames = tf.cond(back, lambda: tf.reverse(frames, axis=[0]), lambda: frames)
  frames, boxes, _ = fit_canvas_tf(frames, boxes, [frame_size, frame_size])
  frames = tf.cast(frames, tf.float32) / 255.0
  return {"frames": tf.ensure_shape(frames, [length, frame_size, frame_size, cfg.channels]),
          "boxes": tf.ensure_shape(boxes, [length, 4])}


def rl_dataset(cfg: DataConfig, window: int, windows_per_video: int, batch_size: int,
               frame_size: int, input_context: Optional[tf.distribute.InputContext] = None,
               seed: Optional[int] = None,
               checked: Optional[CheckedSources] = None) -> tf.data.Dataset:
  """Windows of `window` frames in video order, `batch_size` videos in parallel.

  Each element: frames [B, T, S, S, C] float32, boxes [B, T, 4], first [] bool
  (True on the first window of a new video batch: the LSTM state restarts).
  Videos shorter than windows_per_video * T frames or with an invalid box or a
  gap (clip_links_tf) in them are skipped. `checked` (check_sources with
  leading=True) gives the shards to read.
  """
  dirs = cfg.dirs()
  if not dirs:
    raise DataError("data.train_dir is empty: set it to the moving-MNIST record directory")
  length = window * windows_per_video
  calls = _calls(cfg.num_parallel_calls)
  weights = list(cfg.train_weights) or [1.0] * len(dirs)
  if checked is not None:
    video_files = checked.track_sources(length)
  else:
    video_files = [(i, find_record_files(d, cfg.train_split)) for i, d in enumerate(dirs)]

  def whole_window(t):
    frame_ok, link_ok = clip_links_tf(t["boxes_xyxy"][:length], t["frame_index"][:length],
                                      cfg.max_frame_gap)
    return tf.logical_and(tf.reduce_all(frame_ok), tf.reduce_all(link_ok))

  sources, used_weights = [], []
  for i, files in video_files:
    ds = _record_stream(files, input_context, cfg.cycle_length,
                        None if seed is None else seed + 1000 * i)
    ds = ds.map(schema.parse_track_tf, num_parallel_calls=calls)
    ds = ds.filter(lambda t: tf.shape(t["images"])[0] >= length)
    ds = ds.filter(whole_window)
    ds = ds.shuffle(cfg.shuffle_buffer, seed=seed)
    ds = ds.map(lambda t: rl_video_tf(t, cfg, length, frame_size), num_parallel_calls=calls,
                deterministic=False)
    sources.append(ds)
    used_weights.append(weights[i])
  ds = sources[0] if len(sources) == 1 else tf.data.Dataset.sample_from_datasets(
      sources, weights=[w / sum(used_weights) for w in used_weights], seed=seed)
  ds = ds.batch(batch_size, drop_remainder=True)

  def windows(video):
    def one(j):
      start = j * window
      frames = video["frames"][:, start:start + window]
      return {"frames": tf.ensure_shape(frames, [batch_size, window] + frames.shape[2:]),
              "boxes": tf.ensure_shape(video["boxes"][:, start:start + window],
                                       [batch_size, window, 4]),
              "first": tf.equal(j, 0)}
    return tf.data.Dataset.range(windows_per_video).map(one)

  ds = ds.flat_map(windows)
  return ds.prefetch(_calls(cfg.prefetch))


# ---------------------------------------------------------------------------
# Validation tracks (held-out records, decoded eagerly once)
# ---------------------------------------------------------------------------


def load_val_tracks(path: str, split: str, max_tracks: int, max_frames: int,
                    channels: int = 3) -> List[Dict[str, np.ndarray]]:
  """Up to `max_tracks` tracks, each cut to its first `max_frames` frames from
  the first frame with a valid box: dicts with frames uint8 [N, H, W, C],
  boxes [N, 4] (NaN where absent), track_id."""
  files = find_record_files(path, split, what="data.val_dir")
  out = []
  for record in tf.data.TFRecordDataset(files):
    track = schema.parse_track(record.numpy())
    valid = geometry.box_is_valid_xyxy(track.boxes_xyxy)
    if valid.sum() < 2:
      continue
    first = int(np.argmax(valid))
    sl = slice(first, first + max_frames)
    images = decode_frames_tf(tf.constant(track.images[sl]), channels).numpy()
    out.append({"frames": images, "boxes": track.boxes_xyxy[sl].astype(np.float32),
                "track_id": track.track_id})
    if len(out) >= max_tracks:
      break
  if not out:
    raise DataError(f"data.val_dir: no track with two valid boxes in {path!r} ({split})")
  return out
