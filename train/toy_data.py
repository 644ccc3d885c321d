"""Tiny synthetic track records for smoke runs, tests and benchmarks.

A textured rectangle drifts over a textured background; frames are JPEG (or
PNG) in the standard track-record schema (pipelines.schema) and the shard
layout of pipelines.shards (`{name}-{split}.tfrecord-00000-of-0000N`), so the
training input reads them exactly like the pipelines' output. This is not the
Re3 simulator (pipelines/synthetic): it exists so that training
can be exercised without any dataset at hand.
"""

from __future__ import annotations

import os
from typing import List

import numpy as np
import tensorflow as tf

from pipelines import schema, shards


def toy_track(rng: np.random.Generator, track_id: str, frames: int = 12, height: int = 96,
              width: int = 128, channels: int = 3, fmt: str = "jpeg") -> schema.Track:
  """One track: a noisy bright rectangle moving with constant velocity plus noise."""
  bg = (rng.uniform(0, 120, size=(height // 8 + 1, width // 8 + 1, channels))
        .repeat(8, 0).repeat(8, 1)[:height, :width])
  tex = rng.uniform(140, 255, size=(height, width, channels))
  bw, bh = rng.uniform(0.15, 0.3) * width, rng.uniform(0.15, 0.3) * height
  x, y = rng.uniform(0, width - bw), rng.uniform(0, height - bh)
  vx, vy = rng.normal(0, 2.0), rng.normal(0, 2.0)
  images, boxes = [], []
  for _ in range(frames):
    img = bg + rng.normal(0, 5, size=bg.shape)
    x0, y0 = int(round(x)), int(round(y))
    x1, y1 = int(round(x + bw)), int(round(y + bh))
    img[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = tex[max(y0, 0):max(y1, 0),
                                                            max(x0, 0):max(x1, 0)]
    img = np.clip(img, 0, 255).astype(np.uint8)
    data = (tf.io.encode_jpeg(img, quality=90) if fmt == "jpeg" else tf.io.encode_png(img))
    images.append(data.numpy())
    boxes.append([x0, y0, x1, y1])
    vx += rng.normal(0, 0.5)
    vy += rng.normal(0, 0.5)
    x = float(np.clip(x + vx, -bw / 2, width - bw / 2))
    y = float(np.clip(y + vy, -bh / 2, height - bh / 2))
  return schema.Track(track_id=track_id, source="synthetic", height=height, width=width,
                      images=images, boxes_xyxy=np.asarray(boxes, np.float32),
                      visible=np.ones(frames, np.int64), frame_index=np.arange(frames),
                      label="toy")


def write_toy_records(output_dir: str, num_tracks: int = 8, frames: int = 12, height: int = 96,
                      width: int = 128, channels: int = 3, split: str = "train",
                      name: str = "toy", num_shards: int = 2, seed: int = 0,
                      fmt: str = "jpeg") -> List[str]:
  """Writes `num_tracks` toy tracks into `num_shards` shard files; returns them."""
  rng = np.random.default_rng(seed)
  tf.io.gfile.makedirs(output_dir)
  tracks = [toy_track(rng, f"{name}/{i:04d}", frames, height, width, channels, fmt)
            for i in range(num_tracks)]
  paths = [shards.shard_path(output_dir, name, split, s, num_shards) for s in range(num_shards)]
  writers = [tf.io.TFRecordWriter(p) for p in paths]
  for t in tracks:
    writers[shards.shard_for_key(t.track_id, num_shards)].write(schema.serialize_track(t))
  for w in writers:
    w.close()
  return paths


def toy_records_exist(output_dir: str, split: str = "train") -> bool:
  return bool(os.path.isdir(output_dir) and shards.record_files(output_dir, "toy", split))
