"""MNIST reading, the moving-MNIST generator and the build_moving_mnist job."""

import gzip
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from pipelines import build_moving_mnist, options, schema, shards
from pipelines.readers import mnist
from pipelines.synthetic import moving_mnist as mm


def _idx(array):
  header = bytes([0, 0, 8, array.ndim]) + b"".join(
      int(d).to_bytes(4, "big") for d in array.shape)
  return header + np.ascontiguousarray(array, np.uint8).tobytes()


@pytest.fixture(scope="module")
def real(shared_dir):
  d = str(shared_dir / "data" / "mnist")
  return {s: mnist.load_mnist(d, s) for s in ("train", "test")}


def test_reads_the_real_idx_files(real):
  train_x, train_y = real["train"]
  test_x, test_y = real["test"]
  assert train_x.shape == (5000, 28, 28) and test_x.shape == (10000, 28, 28)
  assert np.bincount(train_y).tolist() == [500] * 10
  assert test_y[:5].tolist() == [7, 2, 1, 0, 4]  # the official test set's first labels
  assert train_x.dtype == np.uint8 and train_x.max() == 255


def test_plain_gz_and_npz_forms_agree(tmp_path, real):
  x, y = real["test"][0][:50], real["test"][1][:50]
  plain, gz, npz = tmp_path / "plain", tmp_path / "gz", tmp_path / "npz"
  for d in (plain, gz, npz):
    d.mkdir()
  (plain / "t10k-images-idx3-ubyte").write_bytes(_idx(x))
  (plain / "t10k-labels-idx1-ubyte").write_bytes(_idx(y))
  (gz / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(x)))
  (gz / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(y)))
  np.savez(npz / "mnist.npz", x_train=x[:10], y_train=y[:10], x_test=x, y_test=y)
  for d in (plain, gz, npz):
    got_x, got_y = mnist.load_mnist(str(d), "test")
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)
  np.testing.assert_array_equal(mnist.load_mnist(str(npz / "mnist.npz"), "train")[0], x[:10])


def test_malformed_files_are_clear_errors_naming_them(tmp_path, real):
  x, y = real["test"][0][:20], real["test"][1][:20]

  def case(name, files, match, split="test"):
    d = tmp_path / name
    d.mkdir()
    for fname, data in files.items():
      (d / fname).write_bytes(data)
    with pytest.raises(mnist.MnistError, match=match):
      mnist.load_mnist(str(d), split)

  img, lab = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
  case("truncated", {img: _idx(x)[:-7], lab: _idx(y)}, f"{img}: IDX header promises")
  case("magic", {img: b"\x01\x02" + _idx(x)[2:], lab: _idx(y)}, f"{img}: bad IDX magic")
  case("gzip", {img + ".gz": b"not gzip at all", lab: _idx(y)}, "not a valid gzip file")
  case("count", {img: _idx(x), lab: _idx(y[:19])}, "has 20 images but .* has 19 labels")
  case("label", {img: _idx(x), lab: _idx(np.full(20, 12, np.uint8))}, "label 12 is not a digit")
  case("nolabels", {img: _idx(x)}, "no matching labels file")
  case("empty", {}, "no MNIST test data")
  case("npz", {"mnist.npz": b"PK\x03\x04 broken"}, "mnist.npz: not a readable .npz")
  case("dims", {img: _idx(y), lab: _idx(y)}, "expected an idx3 image file")
  with pytest.raises(mnist.MnistError, match="does not exist"):
    mnist.load_mnist(str(tmp_path / "nowhere"), "train")


def _white_squares(n=3):
  """Digits that are all ink: the drawn pixels are exactly the square."""
  return np.full((n, 28, 28), 255, np.uint8), np.arange(n, dtype=np.uint8)


@pytest.mark.parametrize("variant", ["fixed", "scalable"])
def test_boxes_are_the_drawn_squares(variant):
  cfg = mm.MovingMnistConfig(variant=variant)
  digits, labels = _white_squares()
  all_sides = []
  for seed in range(4):
    frames, boxes, label = mm.generate_sequence(cfg, digits, labels, 100,
                                                np.random.default_rng(seed))
    assert frames.shape == (100, 100, 100) and label in (0, 1, 2)
    sides = boxes[:, 2] - boxes[:, 0]
    np.testing.assert_array_equal(sides, boxes[:, 3] - boxes[:, 1])
    for frame, box in zip(frames, boxes):
      ys, xs = np.nonzero(frame)
      np.testing.assert_array_equal([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], box)
      assert len(xs) == (box[2] - box[0]) * (box[3] - box[1])
    if variant == "scalable":
      assert len(np.unique(sides)) > 1
      # Per-frame factor in [1 - 0.5%, 1 + 2%] before rounding to pixels.
      assert np.all(np.abs(np.diff(sides)) <= 0.02 * sides[1:] + 1)
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    steps = np.linalg.norm(np.diff(centers, axis=0), axis=1)
    assert steps.max() <= cfg.max_speed + 2 and steps.mean() > 0.5  # it moves, not jumps
    all_sides.append(sides)
  all_sides = np.concatenate(all_sides)
  if variant == "fixed":
    assert np.all(all_sides == 28)
  else:
    assert all_sides.min() >= 14 and all_sides.max() <= 56
    assert all_sides.max() - all_sides.min() > 15


def test_real_digits_lie_in_their_boxes(real):
  digits, labels = real["train"]
  for variant in ("fixed", "scalable"):
    cfg = mm.MovingMnistConfig(variant=variant)
    for seed in range(3):
      frames, boxes, label = mm.generate_sequence(cfg, digits, labels, 20,
                                                  np.random.default_rng(seed))
      assert 0 <= label <= 9
      for frame, box in zip(frames, boxes):
        ys, xs = np.nonzero(frame)
        assert xs.min() >= box[0] and ys.min() >= box[1]
        assert xs.max() < box[2] and ys.max() < box[3]
        # MNIST centers each digit's mass in its 28x28 square.
        w = frame[ys, xs].astype(float)
        cx, cy = (xs + 0.5) @ w / w.sum(), (ys + 0.5) @ w / w.sum()
        side = box[2] - box[0]
        assert abs(cx - (box[0] + box[2]) / 2) < 0.12 * side
        assert abs(cy - (box[1] + box[3]) / 2) < 0.12 * side


def test_noisy_variant_has_dots_and_a_distractor(real):
  digits, labels = real["test"]
  cfg = mm.MovingMnistConfig(variant="noisy")
  frames, boxes, _ = mm.generate_sequence(cfg, digits, labels, 10, np.random.default_rng(1))
  quiet = mm.MovingMnistConfig(variant="noisy", noise_dots=0)
  frames_q, boxes_q, _ = mm.generate_sequence(quiet, digits, labels, 10,
                                              np.random.default_rng(1))
  np.testing.assert_array_equal(boxes, boxes_q)  # the dots do not move anything
  for f, fq in zip(frames, frames_q):
    assert np.count_nonzero((f == 255) & (fq != 255)) > 300  # ~500 dots, some land on ink
  # The distractor digit shows outside the target's square.
  assert sum(np.count_nonzero(fq[~_mask(b)]) for fq, b in zip(frames_q, boxes)) > 50


@pytest.mark.parametrize("motion", ["static", "moving"])
def test_noisy_distractor_is_static_by_default_or_moves(real, motion):
  digits, labels = real["test"]
  cfg = mm.MovingMnistConfig(variant="noisy", noise_dots=0, distractor_motion=motion)
  changed = []
  for seed in range(6):
    frames, boxes, _ = mm.generate_sequence(cfg, digits, labels, 12, np.random.default_rng(seed))
    # The distractor's pixels: what the frame shows outside the target's square,
    # compared with frame 0 where neither frame's target square covers it.
    outside = [np.where(_mask(b), 0, f) for f, b in zip(frames, boxes)]
    free = [~_mask(boxes[0]) & ~_mask(b) for b in boxes]
    changed.append(max(np.count_nonzero((outside[0] != o) & m) for o, m in zip(outside, free)))
  if motion == "static":
    assert max(changed) == 0, changed
  else:  # a moving distractor can hide behind the target for a while, not in most sequences
    assert sum(c > 0 for c in changed) >= 4, changed
  assert mm.MovingMnistConfig().distractor_motion == "static"
  with pytest.raises(ValueError, match="--mnist_distractor_motion"):
    mm.MovingMnistConfig(variant="noisy", distractor_motion="drifting").validate()


def _mask(box):
  m = np.zeros((100, 100), bool)
  x0, y0, x1, y1 = box.astype(int)
  m[y0:y1, x0:x1] = True
  return m


def _run(out, *extra, shared):
  return build_moving_mnist.main([
      "--variant", "scalable", "--mnist_dir", str(shared / "data" / "mnist"),
      "--output_dir", str(out), "--num_train", "4", "--num_test", "2", "--train_length", "5",
      "--test_length", "9", "--num_shards", "2", "--seed", "7", *extra])


def test_job_writes_both_splits_deterministically(tmp_path, shared_dir):
  a, b = tmp_path / "a", tmp_path / "b"
  _run(a, "--preview", "2", shared=shared_dir)
  _run(b, shared=shared_dir)
  names = sorted(f for f in os.listdir(a) if ".tfrecord-" in f)
  assert names == [f"moving_mnist_scalable-{s}.tfrecord-0000{i}-of-00002"
                   for s in ("test", "train") for i in range(2)]
  for n in names:
    assert (a / n).read_bytes() == (b / n).read_bytes()
  info = json.load(open(a / "dataset_info.json"))
  assert info["name"] == "moving_mnist_scalable"
  assert info["splits"]["train"]["num_tracks"] == 4 and info["splits"]["train"]["num_frames"] == 20
  assert info["splits"]["test"]["num_tracks"] == 2 and info["splits"]["test"]["num_frames"] == 18
  assert (a / "preview-train.png").stat().st_size > 1000 and (a / "preview-test.png").exists()
  for split, length in (("train", 5), ("test", 9)):
    for raw in tf.data.TFRecordDataset(shards.record_files(str(a), split=split)):
      ctx, seq = tf.io.parse_single_sequence_example(
          raw, context_features={"track/label": tf.io.FixedLenFeature([], tf.string),
                                 "track/source": tf.io.FixedLenFeature([], tf.string)},
          sequence_features={k: tf.io.FixedLenSequenceFeature([], tf.float32)
                             for k in schema.BBOX_KEYS} | {
                                 "image/encoded": tf.io.FixedLenSequenceFeature([], tf.string)})
      assert ctx["track/source"].numpy() == b"mnist" and ctx["track/label"].numpy().isdigit()
      boxes = tf.stack([seq[k] for k in schema.BBOX_KEYS], -1).numpy()
      assert len(boxes) == length
      for enc, box in zip(seq["image/encoded"], boxes):
        assert enc.numpy()[:8] == b"\x89PNG\r\n\x1a\n"
        frame = tf.io.decode_png(enc).numpy()
        assert frame.shape == (100, 100, 1)
        ys, xs = np.nonzero(frame[..., 0])
        assert xs.min() >= box[0] and xs.max() < box[2]
        assert ys.min() >= box[1] and ys.max() < box[3]


def test_another_seed_gives_other_sequences(real):
  digits, labels = real["test"]
  cfg = mm.MovingMnistConfig(variant="fixed")
  from pipelines.synthetic import rng
  a = mm.generate_sequence(cfg, digits, labels, 5, rng.track_rng(1, "moving_mnist", "x", 0))
  b = mm.generate_sequence(cfg, digits, labels, 5, rng.track_rng(1, "moving_mnist", "x", 0))
  c = mm.generate_sequence(cfg, digits, labels, 5, rng.track_rng(2, "moving_mnist", "x", 0))
  np.testing.assert_array_equal(a[0], b[0])
  assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("flags, message", [
    (["--variant", "wobbly"], "--variant must be one of fixed|scalable|noisy"),
    (["--variant", "fixed", "--num_train", "-5"], "--num_train"),
    (["--variant", "fixed", "--test_length", "0"], "--test_length"),
    (["--variant", "scalable", "--mnist_max_side", "120"], "larger than the canvas"),
    (["--variant", "fixed", "--mnist_digit_size", "140"], "--mnist_digit_size"),
    (["--variant", "noisy", "--mnist_noise_dots", "-1"], "--mnist_noise_dots"),
    (["--variant", "fixed", "--mnist_momentum", "1.0"], "--mnist_momentum"),
    (["--variant", "fixed", "--momentum", "0.5"], "unknown flag"),
    (["--num_train", "3"], "--variant is required"),
])
def test_nonsense_options_fail_before_the_pipeline(tmp_path, shared_dir, flags, message):
  with pytest.raises(options.JobConfigError, match=message):
    build_moving_mnist.main(["--mnist_dir", str(shared_dir / "data" / "mnist"),
                             "--output_dir", str(tmp_path / "o"), *flags])
  assert not (tmp_path / "o").exists()


def test_missing_mnist_dir_names_it(tmp_path):
  with pytest.raises(options.JobConfigError, match="nowhere"):
    build_moving_mnist.main(["--variant", "fixed", "--mnist_dir", str(tmp_path / "nowhere"),
                             "--output_dir", str(tmp_path / "o")])


def test_val_split_uses_held_out_training_digits(tmp_path, shared_dir):
  out = tmp_path / "v"
  _run(out, "--num_val", "3", "--val_length", "6", "--val_digits", "40", shared=shared_dir)
  info = json.load(open(out / "dataset_info.json"))
  assert info["splits"]["val"]["num_tracks"] == 3 and info["splits"]["val"]["num_frames"] == 18
  assert info["splits"]["val"]["digits"] == "MNIST training split, the last 40 digits"
  assert info["splits"]["train"]["digits"] == "MNIST training split, all but the last 40 digits"
  digits, labels = mnist.load_mnist(str(shared_dir / "data" / "mnist"), "train")
  cfg = mm.MovingMnistConfig(variant="scalable")
  from pipelines.synthetic import rng
  # each record is the generator's sequence drawn from the held-out digits only
  for split, pool in (("val", slice(-40, None)), ("train", slice(None, -40))):
    records = {}
    for raw in tf.data.TFRecordDataset(shards.record_files(str(out), split=split)):
      track = schema.parse_track(raw.numpy())
      records[track.track_id] = track
    assert len(records) == (3 if split == "val" else 4)
    for index in range(len(records)):
      track = records[build_moving_mnist.track_id("scalable", split, index)]
      want, boxes, _ = mm.generate_sequence(
          cfg, digits[pool], labels[pool], len(track.images),
          rng.track_rng(7, "moving_mnist", "scalable", split, index))
      got = np.stack([tf.io.decode_png(im).numpy()[..., 0] for im in track.images])
      np.testing.assert_array_equal(got, want)
      np.testing.assert_allclose(track.boxes_xyxy, boxes)


def test_val_digits_must_leave_training_digits(tmp_path, shared_dir):
  with pytest.raises(options.JobConfigError, match="--val_digits"):
    _run(tmp_path / "o", "--num_val", "2", "--val_digits", "999999", shared=shared_dir)
