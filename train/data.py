"""tf.data input for training: track records -> clips (runs of consecutive frames) ->
decoded, mirrored, jittered, cropped batches, all inside the input graph.

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

from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from configs.experiment import DataConfig
from model import geometry
from pipelines import schema, shards

CROP = geometry.CROP_SIZE
AUTOTUNE = tf.data.AUTOTUNE


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


def valid_clip_starts_tf(boxes, length: int):
  """Start indices s such that frames s .. s+length-1 all have valid boxes."""
  ok = tf.cast(geometry.box_is_valid_xyxy_tf(boxes), tf.int32)
  n = tf.shape(ok)[0]
  csum = tf.concat([[0], tf.cumsum(ok)], axis=0)
  num = tf.maximum(n - length + 1, 0)
  sums = csum[length:length + num] - csum[:num]
  return tf.cast(tf.where(tf.equal(sums, length))[:, 0], tf.int32)


def sample_clips_tf(track: Dict[str, tf.Tensor], length: int, count: int, seed=None):
  """Draws `count` clips (with replacement) of `length` frames from a parsed
  track; returns a dict whose leading axis is the clip (0 if none fits)."""
  starts = valid_clip_starts_tf(track["boxes_xyxy"], length)
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
                crop_size: int = CROP) -> tf.data.Dataset:
  """Batched Re3 training examples for one curriculum stage.

  batch_size is the batch of this input pipeline (the per-replica batch under
  tf.distribute). mode: "crops" or "frames"; default "frames" exactly when the
  stage self-trains.
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
  sources, source_weights = [], []
  for i, (d, w) in enumerate(zip(dirs, weights)):
    if w <= 0:
      continue
    files = find_record_files(d, cfg.train_split)
    s = None if seed is None else seed + 1000 * i
    ds = _record_stream(files, input_context, cfg.cycle_length, s)
    ds = ds.map(schema.parse_track_tf, num_parallel_calls=calls)
    ds = ds.map(lambda t: sample_clips_tf(t, unroll + 1, cfg.windows_per_track),
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
    for j, d in enumerate(cfg.pair_dirs()):
      files = find_record_files(d, cfg.crop_pair_split, what="data.crop_pair_dir")
      s = None if seed is None else seed + 7919 * (j + 1)
      ds = _record_stream(files, input_context, cfg.cycle_length, s)
      ds = ds.shuffle(cfg.shuffle_buffer, seed=s)
      ds = ds.map(lambda r: crop_pair_example_tf(r, cfg, crop_size=crop_size),
                  num_parallel_calls=calls,
                  deterministic=False)
      pair_sources.append(ds)
    total = sum(source_weights)
    source_weights = [w * (1 - cfg.crop_pair_weight) / total for w in source_weights]
    source_weights += [cfg.crop_pair_weight / len(pair_sources)] * len(pair_sources)
    sources += pair_sources
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
  """First `length` frames of a video: frames float32 0..1 [L, S, S, C], boxes [L, 4]."""
  frames = decode_frames_tf(track["images"][:length], cfg.channels)
  boxes = tf.cast(track["boxes_xyxy"][:length], tf.float32)
  width = tf.cast(tf.shape(frames)[2], tf.float32)
  mirror = tf.random.uniform([]) < cfg.mirror_prob
  boxes = tf.where(mirror, geometry.mirror_xyxy_tf(boxes, width), boxes)
  frames = tf.cond(mirror, lambda: tf.reverse(frames, axis=[2]), lambda: frames)
  frames, boxes, _ = fit_canvas_tf(frames, boxes, [frame_size, frame_size])
  frames = tf.cast(frames, tf.float32) / 255.0
  return {"frames": tf.ensure_shape(frames, [length, frame_size, frame_size, cfg.channels]),
          "boxes": tf.ensure_shape(boxes, [length, 4])}


def rl_dataset(cfg: DataConfig, window: int, windows_per_video: int, batch_size: int,
               frame_size: int, input_context: Optional[tf.distribute.InputContext] = None,
               seed: Optional[int] = None) -> tf.data.Dataset:
  """Windows of `window` frames in video order, `batch_size` videos in parallel.

  Each element: frames [B, T, S, S, C] float32, boxes [B, T, 4], first [] bool
  (True on the first window of a new video batch: the LSTM state restarts).
  Videos shorter than windows_per_video * T frames or with an invalid box in
  them are skipped.
  """
  dirs = cfg.dirs()
  if not dirs:
    raise DataError("data.train_dir is empty: set it to the moving-MNIST record directory")
  length = window * windows_per_video
  calls = _calls(cfg.num_parallel_calls)
  weights = list(cfg.train_weights) or [1.0] * len(dirs)
  sources = []
  for i, d in enumerate(dirs):
    files = find_record_files(d, cfg.train_split)
    ds = _record_stream(files, input_context, cfg.cycle_length,
                        None if seed is None else seed + 1000 * i)
    ds = ds.map(schema.parse_track_tf, num_parallel_calls=calls)
    ds = ds.filter(lambda t: tf.shape(t["images"])[0] >= length)
    ds = ds.filter(lambda t: tf.reduce_all(geometry.box_is_valid_xyxy_tf(t["boxes_xyxy"][:length])))
    ds = ds.shuffle(cfg.shuffle_buffer, seed=seed)
    ds = ds.map(lambda t: rl_video_tf(t, cfg, length, frame_size), num_parallel_calls=calls,
                deterministic=False)
    sources.append(ds)
  ds = sources[0] if len(sources) == 1 else tf.data.Dataset.sample_from_datasets(
      sources, weights=[w / sum(weights) for w in weights], seed=seed)
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
