"""Readers (no Beam): benchmark sequences on the real data, ALOV .ann, VOC XML,
images, and their errors on malformed input."""

import io
import os
import re

import numpy as np
import pytest
from PIL import Image

from pipelines import images, schema
from pipelines.readers import alov, det, fs, sequences
from pipelines.readers.voc_xml import VocXmlError, parse_voc_xml

from tests import dataset_trees as trees


def _gt_rows(path):
  """Independent parse of a ground-truth file: any of , tab space separators."""
  rows = []
  for line in open(path).read().splitlines():
    if line.strip():
      rows.append([float(v) for v in re.split(r"[,\s]+", line.strip())])
  return np.asarray(rows)


def _xywh1_to_xyxy0(rows):
  x, y, w, h = rows.T
  return np.stack([x - 1, y - 1, x - 1 + w, y - 1 + h], axis=-1)


# ---------------------------------------------------------------------------
# Real sequences in ../shared/data/tracking
# ---------------------------------------------------------------------------


def test_otb_real_sequences_match_ground_truth(shared_dir):
  root = shared_dir / "data/tracking/otb"
  seqs = sequences.read_sequences("otb", str(root))
  names = sorted(p.name for p in root.iterdir() if p.is_dir())
  assert [s.name for s in seqs] == names and len(seqs) == 7
  for s in seqs:
    rows = _gt_rows(root / s.name / "groundtruth_rect.txt")
    assert len(s) == len(rows) == len(s.frame_paths)
    np.testing.assert_allclose(s.boxes_xyxy, _xywh1_to_xyxy0(rows))
    assert s.visible.all() and s.source == "otb"
    np.testing.assert_array_equal(s.frame_index, np.arange(len(rows)))
    # frame i is the file numbered i + 1
    assert [os.path.basename(p) for p in s.frame_paths] == [
        f"{i + 1:04d}.jpg" for i in range(len(rows))]


def test_vot_polygons_become_bounds(shared_dir):
  folder = shared_dir / "data/tracking/vot/bag"
  s = sequences.read_sequence("vot", str(folder))
  rows = _gt_rows(folder / "groundtruth.txt")
  assert rows.shape[1] == 8 and len(s) == len(rows) == 196
  xs, ys = rows[:, 0::2] - 1, rows[:, 1::2] - 1
  np.testing.assert_allclose(s.boxes_xyxy, np.stack(
      [xs.min(1), ys.min(1), xs.max(1), ys.max(1)], axis=1))
  assert os.path.basename(s.frame_paths[-1]) == "00000196.jpg"


def test_lasot_and_uav123_real(shared_dir):
  las = sequences.read_sequences("lasot", str(shared_dir / "data/tracking/train/lasot"))
  assert len(las) == 1
  s = las[0]
  rows = _gt_rows(shared_dir / "data/tracking/train/lasot/airplane-1/groundtruth.txt")
  flags = open(shared_dir / "data/tracking/train/lasot/airplane-1/full_occlusion.txt").read()
  n_flags = len([v for v in re.split(r"[,\s]+", flags.strip()) if v])
  assert len(s) == len(rows) == n_flags == 2788 and s.label == "airplane"
  np.testing.assert_allclose(s.boxes_xyxy, _xywh1_to_xyxy0(rows))
  uav = sequences.read_sequences("uav123", str(shared_dir / "data/tracking/train/uav123"))
  assert [u.name for u in uav] == ["wakeboard5"]
  rows = _gt_rows(shared_dir / "data/tracking/train/uav123/anno/wakeboard5.txt")
  assert len(uav[0]) == len(rows) == 559
  finite = np.all(np.isfinite(rows), axis=1)
  np.testing.assert_array_equal(uav[0].visible, finite)
  np.testing.assert_allclose(uav[0].boxes_xyxy[finite], _xywh1_to_xyxy0(rows[finite]))


def test_lasot_format_sample_heads(shared_dir, tmp_path):
  """Real LaSOT ground-truth heads (no images in the sample): give them images."""
  for seq in ("airplane-1", "airplane-2"):
    gt = (shared_dir / "data/format-samples/lasot_mmtracking" / seq / "groundtruth.txt").read_text()
    rows = _gt_rows(shared_dir / "data/format-samples/lasot_mmtracking" / seq / "groundtruth.txt")
    d = tmp_path / seq
    (d / "img").mkdir(parents=True)
    (d / "groundtruth.txt").write_text(gt)
    for i in range(len(rows)):
      (d / "img" / f"{i + 1:08d}.jpg").write_bytes(b"")
    s = sequences.read_sequence("lasot", str(d))
    assert len(s) == len(rows) == 25
    np.testing.assert_allclose(s.boxes_xyxy, _xywh1_to_xyxy0(rows))


# ---------------------------------------------------------------------------
# Layout rules on small trees
# ---------------------------------------------------------------------------


def _empty_frames(folder, n, digits):
  folder.mkdir(parents=True, exist_ok=True)
  for i in range(1, n + 1):
    (folder / f"{i:0{digits}d}.jpg").write_bytes(b"")


def test_uav123_split_sequence_uses_benchmark_frame_range(tmp_path):
  # person8_2 of the 10 fps release covers frames 359..509 of person8/.
  _empty_frames(tmp_path / "data_seq/person8", 509, 6)
  (tmp_path / "anno").mkdir()
  (tmp_path / "anno/person8_2.txt").write_text("".join(f"{i},5,10,10\n" for i in range(151)))
  s = sequences.read_sequence("uav123", str(tmp_path / "anno/person8_2.txt"))
  assert len(s) == 151 and s.frame_index[0] == 358 and s.frame_index[-1] == 508
  assert s.frame_paths[0].endswith("person8/000359.jpg")
  np.testing.assert_allclose(s.boxes_xyxy[3], [2, 4, 12, 14])
  # A row count matching no known range is an error naming the file.
  (tmp_path / "anno/person8_2.txt").write_text("1,5,10,10\n" * 150)
  with pytest.raises(sequences.SequenceFormatError, match="person8_2.txt"):
    sequences.read_sequence("uav123", str(tmp_path / "anno/person8_2.txt"))


def test_uav123_official_nesting(tmp_path):
  _empty_frames(tmp_path / "data_seq/UAV123/car2", 3, 6)
  (tmp_path / "anno/UAV123").mkdir(parents=True)
  (tmp_path / "anno/UAV123/car2.txt").write_text("1,1,5,5\nNaN,NaN,NaN,NaN\n2,2,5,5\n")
  (s,) = sequences.read_sequences("uav123", str(tmp_path))
  assert s.name == "car2" and s.visible.tolist() == [True, False, True]
  assert np.isnan(s.boxes_xyxy[1]).all()


def test_otb_multiple_targets_and_start_frame(tmp_path):
  _empty_frames(tmp_path / "Jogging/img", 3, 4)
  (tmp_path / "Jogging/groundtruth_rect.1.txt").write_text("1 1 5 5\n2 2 5 5\n3 3 5 5\n")
  (tmp_path / "Jogging/groundtruth_rect.2.txt").write_text("4\t4\t5\t5\n5\t5\t5\t5\n6\t6\t5\t5\n")
  seqs = sequences.read_sequences("otb", str(tmp_path))
  assert [s.name for s in seqs] == ["Jogging.1", "Jogging.2"]
  np.testing.assert_allclose(seqs[1].boxes_xyxy[0], [3, 3, 8, 8])
  with pytest.raises(sequences.SequenceFormatError, match="2 targets"):
    sequences.read_sequence("otb", str(tmp_path / "Jogging"))
  # David's ground truth starts at frame 300 (OTB configSeqs).
  _empty_frames(tmp_path / "David/img", 305, 4)
  (tmp_path / "David/groundtruth_rect.txt").write_text("1,1,5,5\n" * 6)
  s = sequences.read_sequence("otb", str(tmp_path / "David"))
  assert s.frame_index.tolist() == list(range(299, 305))
  assert s.frame_paths[0].endswith("0300.jpg")


def test_got10k_test_split_keeps_unannotated_frames(tmp_path):
  _empty_frames(tmp_path / "GOT-10k_Test_000001", 4, 8)
  (tmp_path / "GOT-10k_Test_000001/groundtruth.txt").write_text("10,10,20,20\n")
  s = sequences.read_sequence("got10k", str(tmp_path / "GOT-10k_Test_000001"))
  assert len(s) == 4 and s.visible.tolist() == [True, False, False, False]
  assert np.isnan(s.boxes_xyxy[1:]).all()


@pytest.mark.parametrize("content,match", [
    ("1,2,3,4,5\n", r"groundtruth.txt:1: expected 4 or 8 values, got 5"),
    ("1,2,3,4\n\n1,2,3,4\n", r"groundtruth.txt:2: blank line"),
    ("1,2,x,4\n", r"groundtruth.txt:1: non-numeric"),
    ("m1,2,3\n", r"masks"),
    ("", r"empty ground-truth"),
])
def test_malformed_ground_truth_names_file_and_line(tmp_path, content, match):
  _empty_frames(tmp_path / "s", 3, 8)
  (tmp_path / "s/groundtruth.txt").write_text(content)
  with pytest.raises(sequences.SequenceFormatError, match=match):
    sequences.read_sequence("vot", str(tmp_path / "s"))


def test_missing_image_and_bad_flags(tmp_path):
  _empty_frames(tmp_path / "a-1/img", 2, 8)
  (tmp_path / "a-1/groundtruth.txt").write_text("1,1,5,5\n1,1,5,5\n1,1,5,5\n")
  with pytest.raises(sequences.SequenceFormatError, match="no image") as e:
    sequences.read_sequence("lasot", str(tmp_path / "a-1"))
  assert e.value.reason == "missing_image"
  _empty_frames(tmp_path / "a-1/img", 3, 8)
  (tmp_path / "a-1/out_of_view.txt").write_text("0,0")
  with pytest.raises(sequences.SequenceFormatError, match="out_of_view.txt: 2 flags for 3"):
    sequences.read_sequence("lasot", str(tmp_path / "a-1"))
  with pytest.raises(sequences.SequenceFormatError, match="does not exist"):
    sequences.read_sequences("otb", str(tmp_path / "nope"))
  with pytest.raises(ValueError, match="unknown sequence kind"):
    sequences.read_sequences("trackingnet", str(tmp_path))


# ---------------------------------------------------------------------------
# ALOV
# ---------------------------------------------------------------------------


def test_alov_real_ann_file(shared_dir):
  text = (shared_dir / "data/format-samples/alov/01-Light_video00001.ann").read_text()
  rows, errors = alov.parse_ann(text, "x.ann")
  assert errors == [] and len(rows) == 19
  assert [r.frame for r in rows] == list(range(1, 92, 5))
  box = alov.corners_to_xyxy(rows[0].corners)[0]
  # line 1: 1080.2 187.84 1012.9 187.84 1012.9 269.56 1080.2 269.56 (GOTURN: bounds - 1)
  np.testing.assert_allclose(box, [1011.9, 186.84, 1079.2, 268.56])


def test_alov_parse_errors_are_per_line():
  rows, errors = alov.parse_ann("1 1 1 5 1 5 5 1 5\nfoo\n6 1 1 5 1 5 5 1\n6 1 1 5 1 5 5 1 5\n"
                                "6 2 2 6 2 6 6 2 6\n", "v.ann")
  assert [r.frame for r in rows] == [1, 6]
  assert [e[0] for e in errors] == [2, 3, 5]
  assert "v.ann:5: frame 6 already annotated on line 4" in errors[2][1]


# ---------------------------------------------------------------------------
# VOC XML and DET rules
# ---------------------------------------------------------------------------


def test_voc_xml_fields_and_errors(tmp_path):
  text = trees.voc_xml("ILSVRC2015_VID_train_0000/x", "000010", 1280, 720,
                       [{"trackid": 3, "name": "n02691156", "box": [10, 20, 300, 400],
                         "occluded": 1}])
  ann = parse_voc_xml(text.encode())
  assert (ann.width, ann.height, ann.filename) == (1280, 720, "000010")
  (o,) = ann.objects
  assert (o.trackid, o.name, o.occluded, o.generated) == (3, "n02691156", True, False)
  assert (o.xmin, o.ymin, o.xmax, o.ymax) == (10, 20, 300, 400)
  path = tmp_path / "bad.xml"
  path.write_text(text[: len(text) // 2])
  with pytest.raises(VocXmlError, match=r"bad\.xml: malformed or truncated"):
    parse_voc_xml(str(path))
  path.write_text(text.replace("<ymin>20</ymin>", ""))
  with pytest.raises(VocXmlError, match=r"bad\.xml <object> #0 <bndbox>: missing <ymin>"):
    parse_voc_xml(str(path))
  path.write_text(text.replace("<width>1280</width>", "<width>wide</width>"))
  with pytest.raises(VocXmlError, match=r"<width> is not a number"):
    parse_voc_xml(str(path))


def test_det_judge_box_rules():
  box = det.judge_box([20, 10, 100, 70], 40, 60, (80, 120), 0.01)
  np.testing.assert_allclose(box, [10, 5, 50, 35])

  def reason(*args):
    with pytest.raises(det.BoxRejected) as e:
      det.judge_box(*args)
    assert isinstance(e.value, schema.RejectError)
    return e.value.reason

  assert reason([5, 5, 5, 9], 40, 60, None, 0.01) == "bad_box"
  assert reason([61, 5, 70, 9], 40, 60, None, 0.01) == "box_outside_image"
  assert reason([0, 0, 4, 4], 40, 60, None, 0.01) == "small_object"  # 16/2400
  assert reason([5, 5, 5, 9], 40, 60, (80, 120), 0.01) == "bad_box"
  np.testing.assert_allclose(det.judge_box([-5, -5, 30, 30], 40, 60, None, 0.01),
                             [0, 0, 30, 30])


def test_reject_record_and_errors():
  """One Reject record for every job: detail only when set, extra fields after."""
  r = schema.Reject("a.xml", schema.RejectReason.BAD_BOX, "zero size", {"track": "t/0"})
  assert r.to_json_dict() == {"path": "a.xml", "reason": "bad_box", "detail": "zero size",
                              "track": "t/0"}
  assert schema.Reject("b", schema.RejectReason.EMPTY_VIDEO).to_json_dict() == {
      "path": "b", "reason": "empty_video"}
  e = sequences.SequenceFormatError("gt.txt: line 3: 3 values")
  assert isinstance(e, schema.RejectError) and isinstance(e, ValueError)
  assert e.to_reject("gt.txt").to_json_dict() == {
      "path": "gt.txt", "reason": "malformed_annotation", "detail": "gt.txt: line 3: 3 values"}


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------


def _png(arr):
  buf = io.BytesIO()
  Image.fromarray(arr).save(buf, format="PNG")
  return buf.getvalue()


def test_images_modes_and_errors(tmp_path):
  gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
  out = images.decode_image_rgb(_png(gray), "g.png")
  assert out.shape == (3, 4, 3) and (out[..., 0] == gray).all()
  rgba = np.zeros((2, 2, 4), np.uint8)
  rgba[..., 1] = 200
  rgba[..., 3] = 255
  assert images.decode_image_rgb(_png(rgba)).tolist() == [[[0, 200, 0]] * 2] * 2
  p = tmp_path / "c.jpg"
  p.write_bytes(trees.CORRUPT_JPEG)
  with pytest.raises(images.ImageError, match=r"c\.jpg: cannot decode"):
    images.load_image_rgb(str(p))
  good = images.encode_jpeg(trees.frame(30, 40, 1))
  with pytest.raises(images.ImageError, match="half.jpg"):
    images.decode_image_rgb(good[: len(good) // 2], "half.jpg")
  assert images.image_size(good) == (30, 40)
  # Original JPEG bytes are kept; grayscale ones re-encoded to RGB; downscaling scales.
  kept, h, w, scale = images.frame_bytes_for_record(good, "f.jpg")
  assert kept is good and (h, w, scale) == (30, 40, (1.0, 1.0))
  gray_jpeg = images.encode_jpeg(gray)
  rgb, _, _, _ = images.frame_bytes_for_record(gray_jpeg, "g.jpg")
  assert rgb != gray_jpeg and images.decode_image_rgb(rgb).shape == (3, 4, 3)
  small, h, w, (sx, sy) = images.frame_bytes_for_record(good, "f.jpg", max_side=20)
  assert (h, w) == (15, 20) and sx == pytest.approx(0.5) and sy == pytest.approx(0.5)
  assert images.decode_image_rgb(small).shape == (15, 20, 3)


def test_is_image_file_one_rule_for_all_readers():
  """One extension list, case-insensitive, dot files skipped (the readers' rule)."""
  for name in ("a.jpg", "b.JPEG", "c.png", "d.BMP", "e.gif", "f.tif", "g.TIFF", "h.webp",
               "dir/00000001.jpg"):
    assert fs.is_image_file(name), name
  for name in (".a.jpg", "._00000001.jpg", "a.xml", "a.txt", "jpg", "a.jpg.bak"):
    assert not fs.is_image_file(name), name
  assert fs.IMAGE_EXTENSIONS == tuple(e.lower() for e in fs.IMAGE_EXTENSIONS)


def test_sequence_frames_accept_every_image_extension(tmp_path):
  """Frames of any IMAGE_EXTENSIONS type (any case) are listed; dot files are not."""
  for i, ext in enumerate((".jpg", ".TIF", ".webp"), start=1):
    (tmp_path / f"{i:04d}{ext}").write_bytes(b"x")
  (tmp_path / "._0004.jpg").write_bytes(b"x")
  (tmp_path / "notes.txt").write_bytes(b"x")
  frames = sequences.list_frames(str(tmp_path))
  assert sorted(frames) == [1, 2, 3]


@pytest.mark.parametrize("files, kind", [
    (["groundtruth_rect.txt"], "otb"), (["groundtruth_rect.2.txt", "img"], "otb"),
    (["groundtruth.txt", "full_occlusion.txt"], "lasot"), (["groundtruth.txt", "out_of_view.txt"], "lasot"),
    (["groundtruth.txt", "absence.label"], "got10k"), (["groundtruth.txt", "cover.label"], "got10k"),
    (["groundtruth.txt", "color"], "vot"), (["0001.jpg", "0002.jpg"], None)])
def test_detect_kind_from_ground_truth_names(tmp_path, files, kind):
  for name in files:
    (tmp_path / name).write_text("")
  assert sequences.detect_kind(str(tmp_path)) == kind
