"""ALOV300++: `.ann` parsing and the dataset walker.

Layout:
  ROOT/imagedata++/<category>/<video>/00000001.jpg
  ROOT/alov300++_rectangleAnnotation_full/<category>/<video>.ann
A line of an .ann file is `frame Ax Ay Bx By Cx Cy Dx Dy`: the 1-based frame
number and the four corners of a possibly rotated rectangle; about every 5th
frame is annotated.

Conventions (GOTURN's rule, which Re3 trained with): the axis-aligned box is
the corners' bounds minus one, x1 = min(x) - 1, x2 = max(x) - 1 (same for y),
and the image of frame f is file number f (index f - 1).

Decision: a track holds only the annotated frames (no interpolation). Boxes
stay exactly what annotators drew; the ~5-frame gaps are visible in
`frame/index`, and the larger motion between stored frames acts like
GOTURN's/Re3's use of these frames. Interpolated boxes on rotated, deforming
targets would train the network on guesses.
"""

from __future__ import annotations

import dataclasses
import re
from typing import List, Optional, Tuple

import numpy as np

from pipelines.readers import fs
from pipelines.readers.boxes import bad_box_detail
from pipelines.readers.sequences import SequenceAnnotation, list_frames
from pipelines.schema import Reject, RejectReason

IMAGE_DIR = "imagedata++"
ANN_DIR = "alov300++_rectangleAnnotation_full"

# Videos that also appear in VOT2014 (excluded when testing on VOT).
VOT_OVERLAP = frozenset({
    "01-Light_video00016", "01-Light_video00022", "01-Light_video00023",
    "02-SurfaceCover_video00012", "03-Specularity_video00003", "03-Specularity_video00012",
    "10-LowContrast_video00013",
})


class AlovFormatError(ValueError):
  """Unreadable .ann content; names the file and line."""


@dataclasses.dataclass
class AnnRow:
  line: int          # 1-based line number in the .ann file
  frame: int         # 1-based frame number
  corners: np.ndarray  # [8] Ax Ay Bx By Cx Cy Dx Dy


@dataclasses.dataclass
class AlovVideo:
  category: str
  name: str
  ann_path: Optional[str]     # None when the video has no annotation file
  image_dir: Optional[str]    # None when the video has no image folder

  @property
  def key(self) -> str:
    return f"{self.category}/{self.name}"


def parse_ann(text: str, path: str = "<ann>") -> Tuple[List[AnnRow], List[Tuple[int, str]]]:
  """Parses .ann text leniently: returns (good rows sorted by frame,
  [(line, message)] for each malformed line) so one bad line does not cost the
  whole video. Blank lines are ignored."""
  rows, errors = [], []
  seen = {}
  for i, raw in enumerate(text.splitlines(), start=1):
    line = raw.strip()
    if not line:
      continue
    parts = re.split(r"[\s,]+", line)
    if len(parts) != 9:
      errors.append((i, f"{path}:{i}: expected 9 values (frame and 4 corners), got {len(parts)}"))
      continue
    try:
      frame_f = float(parts[0])
      corners = np.asarray([float(p) for p in parts[1:]], np.float64)
    except ValueError:
      errors.append((i, f"{path}:{i}: non-numeric value in {line[:60]!r}"))
      continue
    if frame_f != int(frame_f) or frame_f < 1:
      errors.append((i, f"{path}:{i}: frame number must be a positive integer, got {parts[0]!r}"))
      continue
    if not np.all(np.isfinite(corners)):
      errors.append((i, f"{path}:{i}: corner values must be finite"))
      continue
    frame = int(frame_f)
    if frame in seen:
      errors.append((i, f"{path}:{i}: frame {frame} already annotated on line {seen[frame]}"))
      continue
    seen[frame] = i
    rows.append(AnnRow(line=i, frame=frame, corners=corners))
  rows.sort(key=lambda r: r.frame)
  return rows, errors


def corners_to_xyxy(corners) -> np.ndarray:
  """GOTURN's rule: bounds of the 4 corners, minus one (1-based -> 0-based)."""
  c = np.asarray(corners, np.float64).reshape(-1, 8)
  xs, ys = c[:, 0::2], c[:, 1::2]
  return np.stack([xs.min(1) - 1, ys.min(1) - 1, xs.max(1) - 1, ys.max(1) - 1], axis=-1)


def find_videos(root: str) -> List[AlovVideo]:
  """Every video that has an annotation file or an image folder (sorted)."""
  ann_root, img_root = fs.join(root, ANN_DIR), fs.join(root, IMAGE_DIR)
  if not fs.isdir(ann_root) and not fs.isdir(img_root):
    raise AlovFormatError(f"{root}: neither {ANN_DIR}/ nor {IMAGE_DIR}/ found")
  videos = {}
  if fs.isdir(ann_root):
    for cat in fs.listdir(ann_root):
      cat_dir = fs.join(ann_root, cat)
      if cat.startswith(".") or not fs.isdir(cat_dir):
        continue
      for name in fs.listdir(cat_dir):
        if name.endswith(".ann"):
          vid = name[:-len(".ann")]
          videos[(cat, vid)] = AlovVideo(cat, vid, fs.join(cat_dir, name), None)
  if fs.isdir(img_root):
    for cat in fs.listdir(img_root):
      cat_dir = fs.join(img_root, cat)
      if cat.startswith(".") or not fs.isdir(cat_dir):
        continue
      for vid in fs.listdir(cat_dir):
        vdir = fs.join(cat_dir, vid)
        if vid.startswith(".") or not fs.isdir(vdir):
          continue
        v = videos.setdefault((cat, vid), AlovVideo(cat, vid, None, None))
        v.image_dir = vdir
  return [videos[k] for k in sorted(videos)]


def expected_image_path(video: AlovVideo, root: str, frame: int) -> str:
  base = video.image_dir or fs.join(root, IMAGE_DIR, video.category, video.name)
  return fs.join(base, f"{frame:08d}.jpg")


def read_video(video: AlovVideo, root: str):
  """-> (SequenceAnnotation or None, per-frame annotation refs "file:line",
  rejects [Reject]).

  Keeps annotated frames that have their image and a box of positive size;
  each other annotation line becomes a reject.
  """
  rejects = []
  if video.ann_path is None:
    rejects.append(Reject(video.image_dir, RejectReason.EMPTY_VIDEO,
                          "no annotation file for this video"))
    return None, [], rejects
  try:
    text = fs.read_text(video.ann_path)
  except OSError as e:
    rejects.append(Reject(video.ann_path, RejectReason.MALFORMED_ANNOTATION, f"unreadable: {e}"))
    return None, [], rejects
  rows, errors = parse_ann(text, video.ann_path)
  for line, message in errors:
    rejects.append(Reject(f"{video.ann_path}:{line}", RejectReason.MALFORMED_ANNOTATION, message))
  if not rows:
    if not errors:
      rejects.append(Reject(video.ann_path, RejectReason.EMPTY_VIDEO, "no annotated frames"))
    return None, [], rejects
  frames = {}
  if video.image_dir is not None:
    try:
      frames = list_frames(video.image_dir)
    except ValueError:
      frames = {}
  boxes = corners_to_xyxy(np.stack([r.corners for r in rows]))
  keep_paths, keep_boxes, keep_index, refs = [], [], [], []
  for row, box in zip(rows, boxes):
    ref = f"{video.ann_path}:{row.line}"
    problem = bad_box_detail(box)
    if problem:
      rejects.append(Reject(ref, RejectReason.BAD_BOX, f"frame {row.frame}: corners give {problem}"))
      continue
    path = frames.get(row.frame)
    if path is None:
      rejects.append(Reject(expected_image_path(video, root, row.frame),
                            RejectReason.MISSING_IMAGE, f"annotated on {ref}"))
      continue
    keep_paths.append(path)
    keep_boxes.append(box)
    keep_index.append(row.frame - 1)
    refs.append(ref)
  if not keep_paths:
    return None, [], rejects
  ann = SequenceAnnotation(
      name=video.key, source="alov", frame_paths=keep_paths, boxes_xyxy=np.asarray(keep_boxes),
      visible=np.ones([len(keep_paths)], bool), frame_index=np.asarray(keep_index),
      label=video.category)
  return ann, refs, rejects
