"""build_crop_pairs: pairs of consecutive visible frames, crops at the previous
box's Re3 window, Re3 labels, seeded jitter reproducible."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from model import geometry
from pipelines import build_crop_pairs, images, options, schema, shards

from tests import dataset_trees as trees

H, W = 90, 120
BOXES = [[30, 20, 60, 50], [33, 22, 63, 52], [np.nan] * 4, [40, 25, 70, 55], [42, 26, 72, 56],
         [44, 27, 74, 57]]
VISIBLE = [1, 1, 0, 1, 1, 1]


def _frame(i):
  """A gradient image (smooth, so JPEG round trips stay close) that moves."""
  y, x = np.mgrid[0:H, 0:W]
  img = np.stack([(x * 2 + i * 7) % 256, (y * 2 + i * 3) % 256, (x + y) % 256], -1)
  return img.astype(np.uint8)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
  root = tmp_path_factory.mktemp("pairs")
  in_dir = str(root / "tracks")
  os.makedirs(in_dir)
  frames = [images.encode_png(_frame(i)) for i in range(len(BOXES))]  # lossless input
  track = schema.Track(track_id="vid/v0/0/0000", source="vid", height=H, width=W, images=frames,
                       boxes_xyxy=BOXES, visible=VISIBLE, frame_index=list(range(10, 16)),
                       label="n1")
  still = schema.Track(track_id="otb/S/0000", source="otb", height=H, width=W,
                       images=[frames[0], frames[0]], boxes_xyxy=[BOXES[0], BOXES[0]],
                       visible=[1, 1], frame_index=[0, 1])
  lonely = schema.Track(track_id="otb/L/0000", source="otb", height=H, width=W,
                        images=[frames[0], frames[1]], boxes_xyxy=[BOXES[0], BOXES[2]],
                        visible=[1, 0], frame_index=[0, 1])
  with tf.io.TFRecordWriter(os.path.join(in_dir, "toy-train.tfrecord-00000-of-00001")) as w:
    for t in (track, still, lonely):
      w.write(schema.serialize_track(t))
  runs = {}
  for tag, extra in [("plain", []), ("jit_a", ["--crop_pairs_jitter", "--crop_pairs_seed=3"]),
                     ("jit_b", ["--crop_pairs_jitter", "--crop_pairs_seed=3"]),
                     ("jit_c", ["--crop_pairs_jitter", "--crop_pairs_seed=4"])]:
    out = str(root / tag)
    counters = build_crop_pairs.main([f"--input_dir={in_dir}", f"--output_dir={out}",
                                      "--num_shards=2", "--crop_pairs_quality=95"] + extra)
    runs[tag] = (out, counters)
  return runs


def _read(out):
  got = {}
  for path in shards.record_files(out, "crop_pairs", "train"):
    for raw in tf.data.TFRecordDataset(path):
      ex = tf.io.parse_single_example(raw, {
          "crop/prev/encoded": tf.io.FixedLenFeature([], tf.string),
          "crop/curr/encoded": tf.io.FixedLenFeature([], tf.string),
          "label/box": tf.io.FixedLenFeature([4], tf.float32),
          "track/id": tf.io.FixedLenFeature([], tf.string)})
      got[ex["track/id"].numpy().decode()] = {k: v.numpy() for k, v in ex.items()}
  return got


def test_pairs_crops_and_labels(pairs):
  out, counters = pairs["plain"]
  got = _read(out)
  # (10,11), (13,14), (14,15) from the track; (0,1) of the still track; none from "lonely"
  assert sorted(got) == ["otb/S/0000/000001", "vid/v0/0/0000/000011", "vid/v0/0/0000/000014",
                         "vid/v0/0/0000/000015"]
  assert counters["pairs"] == 4 and counters["tracks_without_pairs"] == 1
  np.testing.assert_allclose(got["otb/S/0000/000001"]["label/box"], [2.5, 2.5, 7.5, 7.5],
                             atol=1e-5)
  for i in (1, 4, 5):
    key = f"vid/v0/0/0000/{10 + i:06d}"
    window = geometry.crop_window_xyxy(np.asarray(BOXES[i - 1], np.float64))
    np.testing.assert_allclose(got[key]["label/box"],
                               geometry.box_to_label(np.asarray(BOXES[i]), window), atol=1e-5)
    for name, j in (("crop/prev/encoded", i - 1), ("crop/curr/encoded", i)):
      crop = images.decode_image_rgb(got[key][name])
      ref = geometry.crop_reference(_frame(j), window)
      assert crop.shape == (227, 227, 3)
      assert np.abs(crop.astype(float) - ref).mean() < 2.0, (key, name)
  info = json.load(open(os.path.join(out, "dataset_info.json")))
  assert info["record_kind"] == "crop_pair" and info["splits"]["train"]["num_tracks"] == 4


def test_jitter_is_seeded_and_moves_the_window(pairs):
  a, b, c = (_read(pairs[t][0]) for t in ("jit_a", "jit_b", "jit_c"))
  plain = _read(pairs["plain"][0])
  files = lambda t: {n: open(os.path.join(pairs[t][0], n), "rb").read()  # noqa: E731
                     for n in os.listdir(pairs[t][0])}
  assert files("jit_a") == files("jit_b")
  assert any(not np.allclose(a[k]["label/box"], c[k]["label/box"]) for k in a)
  assert all(not np.allclose(a[k]["label/box"], plain[k]["label/box"]) for k in a)
  for k in a:
    lab = a[k]["label/box"]
    # jittered search box: the target stays inside the window, roughly centered
    assert lab[2] > lab[0] and lab[3] > lab[1]
    assert -1.0 < lab[0] < 6.0 and 4.0 < lab[2] < 11.0


def test_jitter_box_keeps_center_inside():
  rng = build_crop_pairs.pair_rng(0, "k")
  box = np.array([10.0, 10.0, 30.0, 50.0])
  for _ in range(50):
    j = build_crop_pairs.jitter_box(box, 60, 40, rng)
    c = (j[:2] + j[2:]) / 2
    assert np.all(c > box[:2]) and np.all(c < box[2:])
    size = j[2:] - j[:2]
    assert np.all(size >= 0.6 * (box[2:] - box[:2]) - 1e-9)
    assert np.all(size <= 1.4 * (box[2:] - box[:2]) + 1e-9)


def test_missing_records_fail_before_the_pipeline(tmp_path):
  (tmp_path / "in").mkdir()
  trees.write(str(tmp_path / "in/x-val.tfrecord-00000-of-00001"), b"")
  with pytest.raises(options.JobConfigError, match="no track record shards of split 'train'"):
    build_crop_pairs.main([f"--input_dir={tmp_path / 'in'}", f"--output_dir={tmp_path / 'o'}"])
