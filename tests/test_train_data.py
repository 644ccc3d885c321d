"""tf.data input: windows, in-graph crops and labels, mirroring, jitter, mixing."""

import numpy as np
import tensorflow as tf

from configs.experiment import DataConfig, JitterConfig
from model import geometry
from pipelines import schema
from train import data, toy_data


def _cfg(train_dir, **kw):
  kw.setdefault("canvas_size", [96, 128])
  kw.setdefault("shuffle_buffer", 4)
  return DataConfig(train_dir=str(train_dir), **kw)


def test_clip_starts_skip_absent_frames():
  boxes = np.tile(np.array([[1, 1, 5, 5]], np.float32), (8, 1))
  boxes[3] = np.nan          # absent
  boxes[6] = [4, 4, 4, 9]    # zero width
  starts = data.valid_clip_starts_tf(tf.constant(boxes), 2).numpy()
  np.testing.assert_array_equal(starts, [0, 1, 4])
  assert data.valid_clip_starts_tf(tf.constant(boxes), 4).numpy().size == 0
  track = {"images": tf.constant([b"x"] * 8), "boxes_xyxy": tf.constant(boxes),
           "height": tf.constant(10, tf.int64), "width": tf.constant(10, tf.int64),
           "track_id": tf.constant(b"t")}
  clips = data.sample_clips_tf(track, 3, 16)
  assert clips["boxes"].shape == (16, 3, 4)
  assert np.isfinite(clips["boxes"].numpy()).all()
  assert data.sample_clips_tf(track, 4, 5)["images"].shape[0] == 0


def test_crops_and_labels_match_the_geometry_module(tmp_path):
  toy_data.write_toy_records(str(tmp_path), num_tracks=2, frames=6, num_shards=1)
  track = schema.parse_track(next(iter(tf.data.TFRecordDataset(
      data.find_record_files(str(tmp_path), "train")))).numpy())
  frames = data.decode_frames_tf(tf.constant(track.images[:4]), 3)
  clip = {"images": tf.constant(track.images[:4]), "boxes": tf.constant(track.boxes_xyxy[:4])}
  for mirror in (0.0, 1.0):
    cfg = _cfg(tmp_path, mirror_prob=mirror, jitter=JitterConfig(enabled=False))
    ex = data.re3_example_tf(clip, cfg, "crops", 0.0, crop_size=64)
    boxes = track.boxes_xyxy[:4].astype(np.float64)
    imgs = frames.numpy()
    if mirror:
      boxes = geometry.mirror_xyxy_tf(tf.constant(boxes), track.width).numpy()
      imgs = imgs[:, :, ::-1]
    windows = geometry.crop_window_xyxy(boxes[:-1])
    np.testing.assert_allclose(ex["windows"].numpy(), windows, atol=1e-4)
    np.testing.assert_allclose(ex["labels"].numpy(), geometry.box_to_label(boxes[1:], windows),
                               atol=1e-4)
    # crops cut from the (mirrored) frames at those windows
    want_prev = geometry.crop_tf(imgs[:-1], windows.astype(np.float32), size=64).numpy()
    want_curr = geometry.crop_tf(imgs[1:], windows.astype(np.float32), size=64).numpy()
    assert ex["prev"].dtype == tf.uint8 and ex["prev"].shape == (3, 64, 64, 3)
    np.testing.assert_allclose(ex["prev"].numpy(), want_prev, atol=1.01)
    np.testing.assert_allclose(ex["curr"].numpy(), want_curr, atol=1.01)


def test_frames_layout_pads_and_shrinks_without_moving_boxes():
  frames = tf.cast(tf.random.uniform([3, 50, 60, 3], 0, 255, seed=1), tf.uint8)
  boxes = tf.constant([[10, 12, 30, 40]] * 3, tf.float32)
  out, b, hw = data.fit_canvas_tf(frames, boxes, [64, 64])
  assert out.shape == (3, 64, 64, 3)
  np.testing.assert_array_equal(out[:, :50, :60].numpy(), frames.numpy())
  assert out[:, 50:].numpy().max() == 0 and out[:, :, 60:].numpy().max() == 0
  np.testing.assert_allclose(b.numpy(), boxes.numpy())
  np.testing.assert_array_equal(hw.numpy(), [50, 60])
  out, b, hw = data.fit_canvas_tf(frames, boxes, [25, 60])     # half size
  np.testing.assert_array_equal(hw.numpy(), [25, 30])
  np.testing.assert_allclose(b.numpy()[0], [5, 6, 15, 20])


def test_jitter_follows_the_laplace_recipe():
  cfg = JitterConfig()
  boxes = tf.constant([[100.0, 100.0, 140.0, 180.0]] * 20000)
  out = geometry.jitter_xyxy_tf(boxes, [400, 400], cfg, seed=3).numpy()
  w, h = 40.0, 80.0
  c = (out[:, :2] + out[:, 2:]) / 2
  dx, dy = (c[:, 0] - 120) / w, (c[:, 1] - 140) / h
  # centers stay inside the true box
  assert (np.abs(dx) < 0.5).all() and (np.abs(dy) < 0.5).all()
  # Laplace(0, 1/5): median |shift| = ln(2)/5 (slightly less: far draws are retried)
  assert 0.11 < np.median(np.abs(dx)) < 0.145 and 0.11 < np.median(np.abs(dy)) < 0.145
  sw, sh = (out[:, 2] - out[:, 0]) / w, (out[:, 3] - out[:, 1]) / h
  assert sw.min() >= 0.6 - 1e-5 and sw.max() <= 1.4 + 1e-5
  assert abs(np.median(sw) - 1.0) < 0.01 and 0.03 < np.median(np.abs(sh - 1)) < 0.06
  assert not np.allclose(out, boxes.numpy())
  off = geometry.jitter_xyxy_tf(boxes[:5], [400, 400], JitterConfig(enabled=False)).numpy()
  np.testing.assert_array_equal(off, boxes.numpy()[:5])


def test_dataset_layouts_and_weighted_mixing(tmp_path):
  a, b = tmp_path / "a", tmp_path / "b"
  toy_data.write_toy_records(str(a), num_tracks=3, frames=6, height=48, width=64, name="aaa")
  toy_data.write_toy_records(str(b), num_tracks=3, frames=6, height=40, width=80, name="bbb")
  cfg = _cfg(f"{a},{b}", train_weights=[0.8, 0.2], canvas_size=[48, 80])
  ds = data.re3_dataset(cfg, unroll=2, batch_size=4, self_train_prob=1.0, seed=0, crop_size=32)
  batch = next(iter(ds))
  assert batch["frames"].shape == (4, 3, 48, 80, 3) and batch["gt_windows"].shape == (4, 2, 4)
  assert batch["self_train"].numpy().all()
  ds = data.re3_dataset(cfg, unroll=3, batch_size=2, self_train_prob=0.0, seed=0, crop_size=32)
  batch = next(iter(ds))
  assert batch["prev"].shape == (2, 3, 32, 32, 3) and batch["labels"].shape == (2, 3, 4)
  # the two directories are mixed 80/20: their frame sizes tell them apart
  ds = data.re3_dataset(cfg, unroll=1, batch_size=50, self_train_prob=0.0, seed=1,
                        mode="frames", crop_size=16)
  hws = np.concatenate([b["image_hw"].numpy() for b in ds.take(4)])
  from_a = np.mean(hws[:, 1] == 64)
  assert set(map(tuple, hws.tolist())) == {(48, 64), (40, 80)}
  assert 0.68 < from_a < 0.92, from_a


def test_crop_pairs_join_unroll_one_stages(tmp_path):
  tracks, pairs = tmp_path / "t", tmp_path / "p"
  toy_data.write_toy_records(str(tracks), num_tracks=2, frames=4, height=48, width=64)
  crop = np.full((32, 32, 3), 200, np.uint8)
  enc = tf.io.encode_png(crop).numpy()
  pairs.mkdir()
  with tf.io.TFRecordWriter(str(pairs / "pairs-train.tfrecord-00000-of-00001")) as w:
    for i in range(4):
      w.write(schema.serialize_crop_pair(enc, enc, [1.0, 2.0, 3.0, 4.0], f"p{i}"))
  cfg = _cfg(tracks, crop_pair_dir=str(pairs), crop_pair_weight=1.0, mirror_prob=0.0)
  batch = next(iter(data.re3_dataset(cfg, unroll=1, batch_size=3, self_train_prob=0.0,
                                     crop_size=32)))
  assert batch["prev"].shape == (3, 1, 32, 32, 3)
  np.testing.assert_allclose(batch["labels"].numpy()[:, 0], [[1, 2, 3, 4]] * 3)
  assert (batch["curr"].numpy() == 200).all()
