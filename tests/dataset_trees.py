"""Tiny dataset trees in the real layouts, for the reader and job tests.

Each builder writes small JPEGs (distinct content per frame, so a mix-up of
frames is caught), annotation files formatted like the real ones, and the
bad inputs the jobs must reject; it returns what the records must contain
(`expected`) and the exact set of rejects (`rejects`: (path, reason) pairs).
"""

from __future__ import annotations

import os
from typing import Dict, List, Tuple

import numpy as np

from pipelines import images

CORRUPT_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x13" * 40  # JPEG header, garbage body


def frame(h: int, w: int, seed: int) -> np.ndarray:
  rng = np.random.RandomState(seed)
  base = rng.randint(0, 255, size=(1, 1, 3))
  img = np.broadcast_to(base, (h, w, 3)).astype(np.uint8).copy()
  img[: h // 2, : w // 2] = rng.randint(0, 255, size=3)
  return img


def write_jpeg(path: str, h: int, w: int, seed: int) -> bytes:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  data = images.encode_jpeg(frame(h, w, seed), quality=80)
  with open(path, "wb") as f:
    f.write(data)
  return data


def write(path: str, data) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  mode = "wb" if isinstance(data, bytes) else "w"
  with open(path, mode) as f:
    f.write(data)


# ---------------------------------------------------------------------------
# VOC XML (VID / DET), formatted like the ILSVRC files
# ---------------------------------------------------------------------------


def voc_xml(folder: str, filename: str, width: int, height: int, objects: List[dict],
            database: str = "ILSVRC_2015") -> str:
  parts = [
      "<annotation>",
      f"\t<folder>{folder}</folder>",
      f"\t<filename>{filename}</filename>",
      "\t<source>",
      f"\t\t<database>{database}</database>",
      "\t</source>",
      "\t<size>",
      f"\t\t<width>{width}</width>",
      f"\t\t<height>{height}</height>",
      "\t</size>",
  ]
  for o in objects:
    parts.append("\t<object>")
    if "trackid" in o:
      parts.append(f"\t\t<trackid>{o['trackid']}</trackid>")
    parts += [
        f"\t\t<name>{o['name']}</name>",
        "\t\t<bndbox>",
        f"\t\t\t<xmax>{o['box'][2]}</xmax>",
        f"\t\t\t<xmin>{o['box'][0]}</xmin>",
        f"\t\t\t<ymax>{o['box'][3]}</ymax>",
        f"\t\t\t<ymin>{o['box'][1]}</ymin>",
        "\t\t</bndbox>",
    ]
    if "trackid" in o:
      parts += [f"\t\t<occluded>{int(o.get('occluded', 0))}</occluded>",
                f"\t\t<generated>{int(o.get('generated', 0))}</generated>"]
    else:
      parts += ["\t\t<truncated>0</truncated>", "\t\t<difficult>0</difficult>"]
    parts.append("\t</object>")
  parts.append("</annotation>\n")
  return "\n".join(parts)


NAN4 = [np.nan] * 4


def make_vid_tree(root: str):
  """Three videos in the train subset (with the group level) and one in val.

  Video A (64x48, 6 frames, tracks 0 and 1): track 0 is occluded in frame 2;
  track 1 is absent in frame 2 (inside its span 1..3); frame 4's XML is
  truncated (both tracks unannotated there); frame 5's JPEG is corrupt.
  Video B (image 64x48, XML <size> 128x96: boxes scale by 0.5): frame 1's box
  has zero width; frame 2's box is outside the image; frame 3 has an XML but
  no image. Video C: XMLs without any object (empty video).
  """
  group = "ILSVRC2015_VID_train_0000"
  ann = lambda rel: os.path.join(root, "Annotations/VID/train", rel)  # noqa: E731
  img = lambda rel: os.path.join(root, "Data/VID/train", rel)  # noqa: E731
  expected = {}   # track_id prefix -> dict(frames=[bytes], boxes, visible, index, label)
  rejects = set()

  # --- video A
  va = f"{group}/ILSVRC2015_train_00000000"
  t0 = {0: [10, 5, 30, 25], 1: [12, 6, 32, 26], 2: [14, 7, 34, 27], 3: [16, 8, 36, 28],
        4: [18, 9, 38, 29], 5: [20, 10, 40, 30]}
  t1 = {1: [40, 20, 60, 40], 3: [42, 22, 62, 42]}
  data_a = {}
  for n in range(6):
    if n == 5:
      write(img(f"{va}/{n:06d}.JPEG"), CORRUPT_JPEG)
      rejects.add((img(f"{va}/{n:06d}.JPEG"), "corrupt_image"))
    else:
      data_a[n] = write_jpeg(img(f"{va}/{n:06d}.JPEG"), 48, 64, seed=100 + n)
    objs = [{"trackid": 0, "name": "n02691156", "box": t0[n], "occluded": n == 2}]
    if n in t1:
      objs.append({"trackid": 1, "name": "n02958343", "box": t1[n]})
    text = voc_xml(va, f"{n:06d}", 64, 48, objs)
    if n == 4:
      text = text[: len(text) // 2]  # truncated file
      rejects.add((ann(f"{va}/{n:06d}.xml"), "malformed_annotation"))
    write(ann(f"{va}/{n:06d}.xml"), text)
  expected[f"vid/{va}/0"] = dict(
      frames=[data_a[n] for n in range(5)],
      boxes=[t0[0], t0[1], t0[2], t0[3], NAN4], visible=[1, 1, 0, 1, 0],
      index=[0, 1, 2, 3, 4], label="n02691156", size=(48, 64))
  expected[f"vid/{va}/1"] = dict(
      frames=[data_a[n] for n in (1, 2, 3)], boxes=[t1[1], NAN4, t1[3]], visible=[1, 0, 1],
      index=[1, 2, 3], label="n02958343", size=(48, 64))

  # --- video B (XML size is twice the real image size)
  vb = f"{group}/ILSVRC2015_train_00000001"
  boxes_b = {0: [20, 10, 60, 50], 1: [40, 20, 40, 60], 2: [140, 10, 180, 50], 3: [20, 10, 60, 50]}
  data_b = {}
  for n in range(4):
    if n != 3:
      data_b[n] = write_jpeg(img(f"{vb}/{n:06d}.JPEG"), 48, 64, seed=200 + n)
    write(ann(f"{vb}/{n:06d}.xml"),
          voc_xml(vb, f"{n:06d}", 128, 96, [{"trackid": 0, "name": "n02084071",
                                               "box": boxes_b[n]}]))
  rejects.add((ann(f"{vb}/000001.xml"), "bad_box"))
  rejects.add((ann(f"{vb}/000002.xml"), "box_outside_image"))
  rejects.add((ann(f"{vb}/000003.xml"), "missing_image"))
  expected[f"vid/{vb}/0"] = dict(
      frames=[data_b[0], data_b[1], data_b[2]], boxes=[[10, 5, 30, 25], NAN4, NAN4],
      visible=[1, 0, 0], index=[0, 1, 2], label="n02084071", size=(48, 64))

  # --- video C: no objects at all
  vc = f"{group}/ILSVRC2015_train_00000002"
  for n in range(2):
    write_jpeg(img(f"{vc}/{n:06d}.JPEG"), 48, 64, seed=300 + n)
    write(ann(f"{vc}/{n:06d}.xml"), voc_xml(vc, f"{n:06d}", 64, 48, []))
  rejects.add((os.path.join(root, "Annotations/VID/train", vc), "empty_video"))
  return expected, rejects


# ---------------------------------------------------------------------------
# ALOV
# ---------------------------------------------------------------------------


def make_alov_tree(root: str, real_ann_text: str):
  """Video 1 uses a real ALOV .ann file (19 annotated frames over 91) with
  1120x300 frames; two extra lines are appended: a malformed one and one for
  frame 96 whose image is missing. Video 2: frame 6's image is corrupt and one
  line is degenerate. Video 3: an empty .ann file."""
  from pipelines.readers import alov  # pylint: disable=g-import-not-at-top
  img_root = os.path.join(root, alov.IMAGE_DIR)
  ann_root = os.path.join(root, alov.ANN_DIR)
  expected, rejects = {}, set()

  cat, v1 = "01-Light", "01-Light_video00001"
  lines = [l for l in real_ann_text.splitlines() if l.strip()]
  text = "\n".join(lines) + "\n96 1 2 3\n" + "96 10 10 60 10 60 50 10 50\n"
  ann1 = os.path.join(ann_root, cat, v1 + ".ann")
  write(ann1, text)
  n_lines = len(lines)
  rejects.add((f"{ann1}:{n_lines + 1}", "malformed_annotation"))
  rejects.add((os.path.join(img_root, cat, v1, "00000096.jpg"), "missing_image"))
  frames, boxes, index = [], [], []
  for l in lines:
    vals = [float(v) for v in l.split()]
    f = int(vals[0])
    data = write_jpeg(os.path.join(img_root, cat, v1, f"{f:08d}.jpg"), 300, 1120, seed=f)
    xs, ys = vals[1::2], vals[2::2]
    frames.append(data)
    boxes.append([min(xs) - 1, min(ys) - 1, max(xs) - 1, max(ys) - 1])
    index.append(f - 1)
  # an unannotated frame between annotations: present on disk, not in the track
  write_jpeg(os.path.join(img_root, cat, v1, "00000002.jpg"), 300, 1120, seed=9999)
  expected[f"alov/{cat}/{v1}"] = dict(frames=frames, boxes=boxes, visible=[1] * len(frames),
                                      index=index, label=cat, size=(300, 1120))

  cat2, v2 = "02-SurfaceCover", "02-SurfaceCover_video00002"
  ann2 = os.path.join(ann_root, cat2, v2 + ".ann")
  write(ann2, "1 10 10 40 12 38 40 8 38\n6 12 10 42 12 40 40 10 38\n"
              "11 14 10 14 12 14 40 14 38\n16 16 11 46 13 44 41 14 39\n")
  d1 = write_jpeg(os.path.join(img_root, cat2, v2, "00000001.jpg"), 60, 80, seed=501)
  write(os.path.join(img_root, cat2, v2, "00000006.jpg"), CORRUPT_JPEG)
  write_jpeg(os.path.join(img_root, cat2, v2, "00000011.jpg"), 60, 80, seed=511)
  d16 = write_jpeg(os.path.join(img_root, cat2, v2, "00000016.jpg"), 60, 80, seed=516)
  rejects.add((os.path.join(img_root, cat2, v2, "00000006.jpg"), "corrupt_image"))
  rejects.add((f"{ann2}:3", "bad_box"))
  expected[f"alov/{cat2}/{v2}"] = dict(
      frames=[d1, d16], boxes=[[7, 9, 39, 39], [13, 10, 45, 40]], visible=[1, 1],
      index=[0, 15], label=cat2, size=(60, 80))

  cat3, v3 = "03-Specularity", "03-Specularity_video00001"
  ann3 = os.path.join(ann_root, cat3, v3 + ".ann")
  write(ann3, "")
  write_jpeg(os.path.join(img_root, cat3, v3, "00000001.jpg"), 60, 80, seed=601)
  rejects.add((ann3, "empty_video"))
  return expected, rejects


# ---------------------------------------------------------------------------
# DET
# ---------------------------------------------------------------------------


def make_det_tree(root: str):
  """DET train subset with both folder styles (ILSVRC2013_train/<synset>/ and
  ILSVRC2014_train_0000/) and one bad input of each kind."""
  ann = lambda rel: os.path.join(root, "Annotations/DET/train", rel + ".xml")  # noqa: E731
  img = lambda rel: os.path.join(root, "Data/DET/train", rel + ".JPEG")  # noqa: E731
  expected, rejects = {}, set()

  def add(rel, h, w, xml_size, objects, seed, image=True, corrupt=False, xml_text=None):
    data = None
    if image:
      if corrupt:
        write(img(rel), CORRUPT_JPEG)
      else:
        data = write_jpeg(img(rel), h, w, seed)
    folder = rel.rsplit("/", 1)[0]
    write(ann(rel), xml_text if xml_text is not None else
          voc_xml(folder, rel.rsplit("/", 1)[1], xml_size[1], xml_size[0], objects,
                  database="ILSVRC_2014"))
    return data

  r1 = "ILSVRC2013_train/n01440764/n01440764_10026"
  d1 = add(r1, 50, 80, (50, 80), [{"name": "n01440764", "box": [10, 5, 50, 45]},
                                  {"name": "n01440764", "box": [0, 0, 5, 5]}], seed=1)
  expected[f"det/train/{r1}/00"] = dict(frames=[d1], boxes=[[10, 5, 50, 45]], label="n01440764",
                                        size=(50, 80))
  rejects.add((ann(r1), "small_object"))

  r2 = "ILSVRC2014_train_0000/ILSVRC2014_train_00000001"
  d2 = add(r2, 40, 60, (80, 120), [{"name": "n02084071", "box": [20, 10, 100, 70]},
                                   {"name": "n02084071", "box": [100, 10, 140, 70]}], seed=2)
  expected[f"det/train/{r2}/00"] = dict(frames=[d2], boxes=[[10, 5, 50, 35]], label="n02084071",
                                        size=(40, 60))
  # second object: clipped to the image after scaling (50, 5, 70 -> 60, 35)
  expected[f"det/train/{r2}/01"] = dict(frames=[d2], boxes=[[50, 5, 60, 35]], label="n02084071",
                                        size=(40, 60))

  r3 = "ILSVRC2014_train_0000/ILSVRC2014_train_00000002"
  add(r3, 40, 60, (40, 60), [{"name": "n02084071", "box": [30, 10, 20, 30]}], seed=3)
  rejects.add((ann(r3), "bad_box"))

  r4 = "ILSVRC2014_train_0000/ILSVRC2014_train_00000003"
  add(r4, 40, 60, (40, 60), [{"name": "n02084071", "box": [10, 10, 30, 30]}], seed=4,
      corrupt=True)
  rejects.add((img(r4), "corrupt_image"))

  r5 = "ILSVRC2014_train_0000/ILSVRC2014_train_00000004"
  add(r5, 40, 60, (40, 60), [], seed=5,
      xml_text="<annotation><folder>x</folder><size><width>60</width><height>40")
  rejects.add((ann(r5), "malformed_annotation"))

  r6 = "ILSVRC2014_train_0000/ILSVRC2014_train_00000005"
  add(r6, 40, 60, (40, 60), [], seed=6)
  rejects.add((ann(r6), "no_objects"))

  r7 = "ILSVRC2014_train_0000/ILSVRC2014_train_00000006"
  add(r7, 40, 60, (40, 60), [{"name": "n02084071", "box": [10, 10, 30, 30]}], seed=7,
      image=False)
  rejects.add((ann(r7), "missing_image"))

  r8 = "ILSVRC2014_train_0000/ILSVRC2014_train_00000007"
  add(r8, 40, 60, (40, 60), [{"name": "n02084071", "box": [70, 10, 90, 30]}], seed=8)
  rejects.add((ann(r8), "box_outside_image"))
  return expected, rejects


# ---------------------------------------------------------------------------
# Benchmark sequence layouts
# ---------------------------------------------------------------------------


def make_sequence_trees(root: str) -> Dict[str, Tuple[str, dict, set]]:
  """kind -> (input_dir, expected, rejects) for build_sequences.

  OTB: two sequences, tab- and comma-separated; one has a corrupt frame.
  VOT: one sequence with 8-value polygons, one with a malformed row.
  LaSOT: a category folder with one sequence with occlusion/out-of-view flags.
  UAV123: a NaN row. GOT-10k: absence and cover labels.
  """
  out = {}
  # --- OTB
  otb = os.path.join(root, "otb")
  exp, rej = {}, set()
  gt_a = [(11, 6, 20, 10), (12, 7, 20, 10), (13, 8, 21, 11)]
  data = [write_jpeg(os.path.join(otb, "SeqA/img", f"{i + 1:04d}.jpg"), 40, 50, 700 + i)
          for i in range(3)]
  write(os.path.join(otb, "SeqA/groundtruth_rect.txt"),
        "".join("\t".join(map(str, r)) + "\n" for r in gt_a))
  exp["otb/SeqA"] = dict(frames=data, boxes=[[x - 1, y - 1, x - 1 + w, y - 1 + h]
                                             for x, y, w, h in gt_a],
                         visible=[1, 1, 1], index=[0, 1, 2], size=(40, 50))
  gt_b = [(5, 5, 10, 10), (6, 5, 10, 10), (7, 5, 10, 10)]
  data_b0 = write_jpeg(os.path.join(otb, "SeqB/img/0001.jpg"), 40, 50, 710)
  write(os.path.join(otb, "SeqB/img/0002.jpg"), CORRUPT_JPEG)
  data_b2 = write_jpeg(os.path.join(otb, "SeqB/img/0003.jpg"), 40, 50, 712)
  write(os.path.join(otb, "SeqB/groundtruth_rect.txt"),
        "".join(",".join(map(str, r)) + "\n" for r in gt_b))
  rej.add((os.path.join(otb, "SeqB/img/0002.jpg"), "corrupt_image"))
  exp["otb/SeqB"] = dict(frames=[data_b0, data_b2], boxes=[[4, 4, 14, 14], [6, 4, 16, 14]],
                         visible=[1, 1], index=[0, 2], size=(40, 50))
  out["otb"] = (otb, exp, rej)

  # --- VOT
  vot = os.path.join(root, "vot")
  exp, rej = {}, set()
  polys = [(11, 6, 31, 8, 29, 28, 9, 26), (12, 6, 32, 8, 30, 28, 10, 26)]
  data = [write_jpeg(os.path.join(vot, "ball", f"{i + 1:08d}.jpg"), 40, 50, 720 + i)
          for i in range(2)]
  write(os.path.join(vot, "ball/groundtruth.txt"),
        "".join(",".join(map(str, p)) + "\n" for p in polys))
  exp["vot/ball"] = dict(frames=data, boxes=[[8, 5, 30, 27], [9, 5, 31, 27]], visible=[1, 1],
                         index=[0, 1], size=(40, 50))
  write_jpeg(os.path.join(vot, "broken", "00000001.jpg"), 40, 50, 730)
  write(os.path.join(vot, "broken/groundtruth.txt"), "1,2,3,4,5\n")
  rej.add((os.path.join(vot, "broken"), "malformed_annotation"))
  out["vot"] = (vot, exp, rej)

  # --- LaSOT
  lasot = os.path.join(root, "lasot")
  exp, rej = {}, set()
  seq = os.path.join(lasot, "cat", "cat-1")
  data = [write_jpeg(os.path.join(seq, "img", f"{i + 1:08d}.jpg"), 40, 50, 740 + i)
          for i in range(4)]
  write(os.path.join(seq, "groundtruth.txt"), "11,6,20,10\n12,6,20,10\n13,6,20,10\n14,6,20,10\n")
  write(os.path.join(seq, "full_occlusion.txt"), "0,1,0,0")
  write(os.path.join(seq, "out_of_view.txt"), "0,0,1,0")
  exp["lasot/cat-1"] = dict(frames=data, boxes=[[10, 5, 30, 15], [11, 5, 31, 15], NAN4,
                                                [13, 5, 33, 15]],
                            visible=[1, 0, 0, 1], index=[0, 1, 2, 3], size=(40, 50),
                            occlusion=[-1, 1, -1, -1])
  out["lasot"] = (lasot, exp, rej)

  # --- UAV123
  uav = os.path.join(root, "uav123")
  exp, rej = {}, set()
  data = [write_jpeg(os.path.join(uav, "data_seq/boat1", f"{i + 1:06d}.jpg"), 40, 50, 750 + i)
          for i in range(3)]
  write(os.path.join(uav, "anno/boat1.txt"), "11,6,20,10\nNaN,NaN,NaN,NaN\n13,6,20,10\n")
  exp["uav123/boat1"] = dict(frames=data, boxes=[[10, 5, 30, 15], NAN4, [12, 5, 32, 15]],
                             visible=[1, 0, 1], index=[0, 1, 2], size=(40, 50))
  out["uav123"] = (uav, exp, rej)

  # --- GOT-10k
  got = os.path.join(root, "got10k")
  exp, rej = {}, set()
  seq = os.path.join(got, "GOT-10k_Train_000001")
  data = [write_jpeg(os.path.join(seq, f"{i + 1:08d}.jpg"), 40, 50, 760 + i) for i in range(3)]
  write(os.path.join(seq, "groundtruth.txt"), "11,6,20,10\n12,6,20,10\n13,6,20,10\n")
  write(os.path.join(seq, "absence.label"), "0\n1\n0\n")
  write(os.path.join(seq, "cover.label"), "8\n0\n0\n")
  exp["got10k/GOT-10k_Train_000001"] = dict(
      frames=data, boxes=[[10, 5, 30, 15], NAN4, [12, 5, 32, 15]], visible=[1, 0, 0],
      index=[0, 1, 2], size=(40, 50), occlusion=[0, 1, 1])
  out["got10k"] = (got, exp, rej)
  return out


# ---------------------------------------------------------------------------
# Faulty inputs for the reliability tests
# ---------------------------------------------------------------------------


def write_otb_sequence(root: str, name: str, rows: List[str], num_images: int,
                       seed: int, h: int = 40, w: int = 50) -> List[bytes]:
  """An OTB folder ROOT/NAME with `num_images` frames and the ground-truth
  `rows` as written (so a row count that differs from the image count, or a
  row with a negative width, is exactly what is on disk). Returns the JPEGs."""
  data = [write_jpeg(os.path.join(root, name, "img", f"{i + 1:04d}.jpg"), h, w, seed + i)
          for i in range(num_images)]
  write(os.path.join(root, name, "groundtruth_rect.txt"), "".join(r + "\n" for r in rows))
  return data


def write_record_file(path: str, records: List[bytes]) -> None:
  """A TFRecord file holding `records` (serialized), as a job's shard."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # only the record tests need TF here
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with tf.io.TFRecordWriter(path) as w:
    for r in records:
      w.write(r)


def truncate_file(path: str, keep: int) -> None:
  """Cuts a file to its first `keep` bytes (a copy interrupted midway)."""
  with open(path, "rb") as f:
    data = f.read()
  assert 0 < keep < len(data), (keep, len(data))
  with open(path, "wb") as f:
    f.write(data[:keep])
