"""The Re3 occluded-track simulator and the build_synthetic Beam job."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from pipelines import build_synthetic, images, options, schema, shards, writer
from pipelines.synthetic import procedural, rng as srng, simulator, sources
from pipelines.synthetic.simulator import Scene, SimObject, SimulatorConfig

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)


def _solid(h, w, color):
  return np.tile(np.array(color, np.uint8), (h, w, 1))


def _solid_scene(gen, cfg, target_texture, object_box, behind=3, front=6):
  """Black background, blue patches behind, a target, green occluders in front."""
  size = cfg.canvas_size

  def patch(color, side):
    speed = float(gen.uniform(0, 0.3))
    return SimObject(_solid(8, 8, color), (0, 0, 8, 8),
                     (gen.uniform(side, size - side), gen.uniform(side, size - side)),
                     (side, side * gen.uniform(0.6, 1.6)), speed, gen.uniform(0, 2 * math.pi),
                     min_obj=4, max_obj=size / 3)

  th, tw = target_texture.shape[:2]
  target = SimObject(target_texture, object_box, (size / 2, size / 2), (tw, th), 0.2, 0.3,
                     min_obj=6, max_obj=size / 3)
  objects = ([patch(BLUE, 14) for _ in range(behind)] + [target]
             + [patch(GREEN, 18) for _ in range(front)])
  return Scene(np.zeros((size, size, 3), np.uint8), objects, behind, cfg)


def _is(frame, color):
  return np.all(frame == np.array(color, np.uint8), axis=-1)


def test_occlusion_is_the_hidden_fraction_of_the_rendered_target():
  cfg = SimulatorConfig(canvas_size=96, occlusion_threshold=0.4)
  gen = np.random.default_rng(3)
  scene = _solid_scene(gen, cfg, _solid(20, 28, RED), (0, 0, 28, 20))
  seen_partial = seen_hidden = 0
  for _ in range(250):
    scene.step(gen)
    frame = scene.render()
    box = scene.target_box()
    # A target texture without context: its box is whole pixels.
    np.testing.assert_allclose(box, np.round(box), atol=1e-9)
    x0, y0, x1, y1 = np.round(box).astype(int)
    red = _is(frame, RED)
    assert red.sum() == red[y0:y1, x0:x1].sum(), "target pixels outside its box"
    hidden = 1.0 - red[y0:y1, x0:x1].mean()
    # Everything hiding the target is a front occluder (green).
    assert np.all(_is(frame, GREEN)[y0:y1, x0:x1] | red[y0:y1, x0:x1])
    assert scene.occlusion() == pytest.approx(hidden, abs=1e-12)
    seen_partial += 0 < hidden < 1
    seen_hidden += hidden > cfg.occlusion_threshold
  assert seen_partial > 10 and seen_hidden > 3  # the check saw real occlusions


def test_box_is_the_objects_extent_inside_a_context_patch():
  cfg = SimulatorConfig(canvas_size=128)
  texture = _solid(40, 60, BLUE)
  texture[10:30, 15:45] = RED  # the object: x 15..45, y 10..30 of the texture
  gen = np.random.default_rng(0)
  scene = _solid_scene(gen, cfg, texture, (15, 10, 45, 30), behind=0, front=0)
  for _ in range(60):
    scene.step(gen)
    frame = scene.render()
    box = scene.target_box()
    # Bilinear resizing blends the object's border with the context around
    # it: pixels more red than blue (over half object) span the box to
    # within a pixel, and pure red ones lie inside it.
    ys, xs = np.nonzero(frame[..., 0].astype(int) > frame[..., 2])
    np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], box, atol=1.0)
    ys, xs = np.nonzero(_is(frame, RED))
    assert xs.min() >= box[0] and ys.min() >= box[1]
    assert xs.max() + 1 <= box[2] and ys.max() + 1 <= box[3]


def test_motion_follows_the_re3_constants():
  cfg = SimulatorConfig(canvas_size=200, size_velocity_noise=0.05)
  gen = np.random.default_rng(1)
  obj = SimObject(_solid(10, 20, RED), (0, 0, 20, 10), (100, 100), (40, 20), 0.5, 0.0,
                  min_obj=10, max_obj=120)
  for _ in range(2000):
    obj.step(gen, cfg)
    assert 0.0 <= obj.speed <= cfg.max_speed
    assert abs(obj.vw) <= cfg.max_size_velocity and abs(obj.vh) <= cfg.max_size_velocity
    assert obj.ar0 / cfg.aspect_range - 1e-9 <= obj.w / obj.h <= obj.ar0 * cfg.aspect_range + 1e-9
    assert 10 - 1e-6 <= max(obj.w, obj.h) <= 120 + 1e-6
    assert obj.w / 2 - 1e-9 <= obj.cx <= 200 - obj.w / 2 + 1e-9
    assert obj.h / 2 - 1e-9 <= obj.cy <= 200 - obj.h / 2 + 1e-9
  # A bounce: heading straight into the right border, no noise.
  still = SimulatorConfig(canvas_size=200, speed_noise=0, heading_noise=0,
                          size_velocity_noise=0)
  obj = SimObject(_solid(10, 10, RED), (0, 0, 10, 10), (185, 100), (20, 20), 1.0, 0.0,
                  min_obj=5, max_obj=50)
  obj.step(gen, still)
  assert obj.speed == pytest.approx(0.5)  # halved
  assert math.cos(obj.heading) == pytest.approx(-1.0)  # now heading left
  assert obj.cx == pytest.approx(190.0)  # put back inside


def test_tracks_start_unoccluded_and_flag_occlusion():
  cfg = SimulatorConfig(canvas_size=128, track_length=24, occlusion_threshold=0.3)
  occluded = 0
  for i in range(6):
    gen = srng.track_rng(5, i)
    image, objects = procedural.make_image(gen, 96, 160)
    assert image.dtype == np.uint8 and objects
    sim = simulator.simulate_track(image, objects[0][0], gen, cfg)
    assert len(sim.frames) == 24 and sim.frames[0].shape == (128, 128, 3)
    assert sim.occlusion[0] == 0.0
    np.testing.assert_array_equal(sim.visible, sim.occlusion <= 0.3)
    assert np.all((sim.occlusion >= 0) & (sim.occlusion <= 1))
    assert np.all(sim.boxes_xyxy[:, :2] >= 0) and np.all(sim.boxes_xyxy[:, 2:] <= 128)
    assert np.all(sim.boxes_xyxy[:, 2:] > sim.boxes_xyxy[:, :2])
    occluded += int(np.count_nonzero(sim.occlusion))
  assert occluded > 0


def test_procedural_images_are_textured_not_flat():
  image, objects = procedural.make_image(np.random.default_rng(7))
  assert 320 <= image.shape[0] <= 480 and image.shape[2] == 3
  assert len(np.unique(image.reshape(-1, 3), axis=0)) > 1000
  for box, label in objects:
    assert label in procedural.SHAPES
    x0, y0, x1, y1 = box.astype(int)
    assert image[y0:y1, x0:x1].std() > 5


def _args(out, *extra):
  return ["--output_dir", str(out), "--num_tracks", "3", "--track_length", "6",
          "--canvas_size", "96", "--num_shards", "2", "--seed", "11", *extra]


def _read_plain_tf(path):
  """Parses with tf.io only (the contract other tools rely on)."""
  ctx_spec = {"track/id": tf.io.FixedLenFeature([], tf.string),
              "track/source": tf.io.FixedLenFeature([], tf.string),
              "image/height": tf.io.FixedLenFeature([], tf.int64)}
  seq_spec = {k: tf.io.FixedLenSequenceFeature([], tf.float32)
              for k in ("bbox/xmin", "bbox/ymin", "bbox/xmax", "bbox/ymax", "bbox/occlusion")}
  seq_spec["image/encoded"] = tf.io.FixedLenSequenceFeature([], tf.string)
  seq_spec["bbox/visible"] = tf.io.FixedLenSequenceFeature([], tf.int64)
  out = []
  for raw in tf.data.TFRecordDataset(path):
    ctx, seq = tf.io.parse_single_sequence_example(raw, ctx_spec, seq_spec)
    out.append((ctx, seq))
  return out


def test_job_is_deterministic_and_writes_plain_tf_records(tmp_path):
  a, b = tmp_path / "a", tmp_path / "b"
  build_synthetic.main(_args(a, "--preview", "2", "--preview_frames", "3"))
  build_synthetic.main(_args(b))
  files_a = shards.record_files(str(a), "synthetic", "train")
  assert [os.path.basename(f) for f in files_a] == [
      "synthetic-train.tfrecord-00000-of-00002", "synthetic-train.tfrecord-00001-of-00002"]
  for fa in files_a:
    assert open(fa, "rb").read() == open(str(b / os.path.basename(fa)), "rb").read()
  parsed = [r for f in files_a for r in _read_plain_tf(f)]
  assert len(parsed) == 3
  for ctx, seq in parsed:
    assert ctx["track/source"].numpy() == b"synthetic" and ctx["image/height"] == 96
    frame = tf.io.decode_jpeg(seq["image/encoded"][0]).numpy()
    assert frame.shape == (96, 96, 3)
    occ = seq["bbox/occlusion"].numpy()
    assert len(occ) == 6 and occ[0] == 0.0
    np.testing.assert_array_equal(seq["bbox/visible"].numpy(), occ <= 0.5)
  info = json.load(open(a / "dataset_info.json"))
  assert info["name"] == "synthetic" and info["splits"]["train"]["num_frames"] == 18
  assert info["splits"]["train"]["simulator"]["canvas_size"] == 96
  preview = images.load_image_rgb(str(a / "preview-train.png"))
  assert preview.shape[0] > 2 * 96 and preview.std() > 5


def _write_object_records(path, tracks_and_garbage):
  with tf.io.TFRecordWriter(str(path)) as w:
    for item in tracks_and_garbage:
      w.write(item if isinstance(item, bytes) else schema.serialize_track(item))


def test_job_reads_det_records_and_annotated_photos(tmp_path):
  gen = np.random.default_rng(0)
  photos = tmp_path / "photos"
  (photos / "sub").mkdir(parents=True)
  det = tmp_path / "det"
  det.mkdir()
  img, objs = procedural.make_image(gen, 120, 160)
  box = objs[0][0]
  # A DET-style object record, and one record that is not a track record.
  obj_track = schema.Track(track_id="det/x/0", source="det", height=img.shape[0],
                           width=img.shape[1], images=[images.encode_jpeg(img)],
                           boxes_xyxy=box[None], visible=[1], frame_index=[0], label="n0001")
  _write_object_records(det / "det-train.tfrecord-00000-of-00001", [obj_track, b"garbage"])
  twin = schema.Track(track_id="det/x/1", source="det", height=img.shape[0], width=img.shape[1],
                      images=[images.encode_jpeg(img)], boxes_xyxy=box[None], visible=[1],
                      frame_index=[0], label="twin")
  # The same object in two shard files: reported, never used (no duplicate tracks).
  _write_object_records(det / "det-train.tfrecord-00000-of-00002", [twin])
  _write_object_records(det / "det-train.tfrecord-00001-of-00002", [twin])
  # A photo with a VOC XML, one listed in boxes.csv, one with no annotation,
  # one with broken XML, and a bad boxes.csv line.
  open(photos / "a.jpg", "wb").write(images.encode_jpeg(img))
  x0, y0, x1, y1 = [int(v) for v in box]
  open(photos / "a.xml", "w").write(
      f"<annotation><filename>a</filename><size><width>{img.shape[1]}</width>"
      f"<height>{img.shape[0]}</height></size><object><name>cat</name><bndbox>"
      f"<xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
      f"</annotation>")
  open(photos / "sub" / "b.png", "wb").write(images.encode_png(img))
  open(photos / "sub" / "boxes.csv", "w").write(
      f"image,xmin,ymin,xmax,ymax,label\nb.png,{x0},{y0},{x1},{y1},dog\nb.png,1,2,x,4\n")
  open(photos / "c.jpg", "wb").write(images.encode_jpeg(img))
  open(photos / "d.jpg", "wb").write(images.encode_jpeg(img))
  open(photos / "d.xml", "w").write("<annotation><size><width>3")
  out = tmp_path / "out"
  build_synthetic.main(["--output_dir", str(out), "--det_dir", str(det), "--images_dir",
                        str(photos), "--num_tracks", "8", "--track_length", "4",
                        "--canvas_size", "64", "--num_shards", "1", "--seed", "2"])
  tracks = [schema.parse_track(r.numpy()) for r in tf.data.TFRecordDataset(
      shards.record_files(str(out), "synthetic", "train"))]
  assert len(tracks) == 8
  assert {t.label for t in tracks} <= {"n0001", "cat", "dog"} and len({t.label for t in tracks}) > 1
  assert all(t.source == "synthetic" and t.occlusion[0] == 0 for t in tracks)
  rejects = [json.loads(l) for l in open(out / "rejected-train.jsonl")]
  reasons = {r["reason"]: r["path"] for r in rejects}
  assert reasons["bad_record"].endswith("det-train.tfrecord-00000-of-00001")
  assert reasons["no_annotation"].endswith("c.jpg")
  assert reasons["malformed_annotation"].endswith("d.xml")
  assert "boxes.csv:3" in reasons["bad_boxes_line"]
  assert reasons["duplicate_object_key"] == "det/x/1"


def _voc(box, size=(120, 160), name="n0001"):
  x0, y0, x1, y1 = box
  return (f"<annotation><size><width>{size[1]}</width><height>{size[0]}</height></size>"
          f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
          f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object></annotation>")


def test_det_root_objects_use_build_det_keys_and_rules(tmp_path):
  ann = tmp_path / "Annotations" / "DET" / "train" / "n0001"
  data = tmp_path / "Data" / "DET" / "train" / "n0001"
  ann.mkdir(parents=True)
  data.mkdir(parents=True)
  img = procedural.make_image(np.random.default_rng(1), 120, 120)[0]
  (data / "n0001_1.JPEG").write_bytes(images.encode_jpeg(img))
  (ann / "n0001_1.xml").write_text(_voc((10, 20, 60, 90), img.shape[:2]))
  (data / "n0001_2.JPEG").write_bytes(images.encode_jpeg(img))
  (ann / "n0001_2.xml").write_text(_voc((10, 20, 12, 22), img.shape[:2]))  # 4 px^2
  (ann / "n0001_3.xml").write_text(_voc((10, 20, 60, 90), img.shape[:2]))  # no image
  fn = build_synthetic.ReadXmlObjectsFn(0.01, str(tmp_path), "train")
  out = {}
  for name in ("n0001_1", "n0001_2", "n0001_3"):
    out[name] = list(fn.process(str(ann / f"{name}.xml")))
  obj, = out["n0001_1"]
  assert obj.key == "det/train/n0001/n0001_1/00" and obj.label == "n0001"
  assert obj.image_path.endswith("n0001_1.JPEG") and obj.annotated_size == (120, 120)
  np.testing.assert_allclose(obj.box_in(img, 0.01), [10, 20, 60, 90])
  # A decoded image half the annotated size: the box is scaled with it.
  np.testing.assert_allclose(obj.box_in(img[::2, ::2], 0.01), [5, 10, 30, 45])
  assert [r.value["reason"] for r in out["n0001_2"]] == ["small_object"]
  assert [r.value["reason"] for r in out["n0001_3"]] == ["missing_image"]


def test_det_root_and_build_det_records_give_the_same_tracks(tmp_path):
  """Both --det_dir routes see the same objects under the same keys (build_det's
  track ids, boxes judged and scaled alike), so they write the same bytes."""
  from pipelines import build_det
  from tests import dataset_trees
  root = str(tmp_path / "det_root")
  dataset_trees.make_det_tree(root)
  # Drop the corrupt image: build_det rejects it while reading, the
  # simulator only when a track picks it, so the object sets would differ.
  bad = "ILSVRC2014_train_0000/ILSVRC2014_train_00000003"
  os.remove(os.path.join(root, "Annotations/DET/train", bad + ".xml"))
  os.remove(os.path.join(root, "Data/DET/train", bad + ".JPEG"))
  build_det.main([f"--input_dir={root}", f"--output_dir={tmp_path / 'det_records'}",
                  "--num_shards=2"])
  common = ["--num_tracks", "6", "--track_length", "3", "--canvas_size", "64",
            "--num_shards", "1", "--seed", "4"]
  build_synthetic.main(["--output_dir", str(tmp_path / "a"), "--det_dir", root, *common])
  build_synthetic.main(["--output_dir", str(tmp_path / "b"), "--det_dir",
                        str(tmp_path / "det_records"), *common])
  files = [shards.record_files(str(tmp_path / d), "synthetic", "train")[0] for d in "ab"]
  data = [open(f, "rb").read() for f in files]
  assert data[0] == data[1]
  labels = {schema.parse_track(r.numpy()).label for r in tf.data.TFRecordDataset(files[0])}
  assert labels <= {"n01440764", "n02084071"} and labels
  reasons = {json.loads(l)["reason"] for l in open(tmp_path / "a" / "rejected-train.jsonl")}
  assert {"small_object", "bad_box", "malformed_annotation", "no_objects", "missing_image",
          "box_outside_image"} <= reasons


def test_unreadable_image_is_rejected_not_crashed(tmp_path):
  bad = tmp_path / "bad.jpg"
  bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
  obj = sources.SourceObject(key="img/bad.jpg#0", name=str(bad), box_xyxy=(1, 1, 20, 20),
                             image_path=str(bad))
  fn = build_synthetic.SimulateTrackFn(SimulatorConfig(canvas_size=64, track_length=2), 0, 90,
                                       0.01)
  fn.setup()
  out = list(fn.process((obj, 4)))
  assert len(out) == 1 and out[0].tag == writer.REJECTED_TAG
  assert out[0].value["reason"] == "corrupt_image" and out[0].value["track"] == 4
  assert "bad.jpg" in out[0].value["path"]


@pytest.mark.parametrize("flags, message", [
    (["--num_tracks", "-1"], "--num_tracks"),
    (["--track_length", "0"], "--track_length"),
    (["--canvas_size", "8"], "--canvas_size"),
    (["--target_max_size", "0.6"], "does not fit in the canvas"),
    (["--max_speed", "0"], "--max_speed"),
    (["--occlusion_threshold", "1.5"], "--occlusion_threshold"),
    (["--occluders_front", "-2"], "--occluders_front"),
    (["--heading_noise", "nan"], "--heading_noise"),
    (["--jpeg_quality", "0"], "--jpeg_quality"),
    (["--seed", "-3"], "--seed"),
    (["--det_dir", "/no/such/dir"], "--det_dir"),
    (["--occluder_front", "3"], "unknown flag"),
])
def test_nonsense_options_fail_before_the_pipeline(tmp_path, flags, message):
  with pytest.raises(options.JobConfigError, match=message):
    build_synthetic.main(["--output_dir", str(tmp_path / "o"), *flags])
  assert not (tmp_path / "o").exists()


def test_empty_det_dir_is_refused(tmp_path):
  with pytest.raises(options.JobConfigError, match="neither track record shards"):
    build_synthetic.main(["--output_dir", str(tmp_path / "o"), "--det_dir", str(tmp_path)])


def test_help_lists_the_jobs_own_flags(capsys):
  assert build_synthetic.main(["--help"]) == {}
  text = capsys.readouterr().out
  for flag in ("--num_tracks", "--canvas_size", "--seed", "--occlusion_threshold",
               "--det_dir", "--images_dir", "--preview", "--speed_noise"):
    assert flag in text
