"""Readers of the benchmark sequence layouts: OTB, VOT, LaSOT, UAV123, GOT-10k.

One module for the five layouts (over 400 lines): they share the conventions below and the
row, frame and assembly helpers, so each reader is a short function.

One place for both uses: the `build_sequences` Beam job turns them into track
records, and evaluation reads them directly. Every reader returns
`SequenceAnnotation`s with the same conventions:

* `boxes_xyxy` are continuous 0-based pixel corners (see model/geometry.py).
  All these ground truths are written in the Matlab-era 1-based convention
  (pixel (1, 1) is the top-left pixel; GOT-10k's authors state it, OTB/LaSOT/
  UAV123/VOT come from Matlab toolkits), so a row `x, y, w, h` becomes
  `(x - 1, y - 1, x - 1 + w, y - 1 + h)`, and a VOT polygon's corners are
  shifted by -1 before taking their axis-aligned bounds (`_rows_to_xyxy`,
  the one place the shift is applied).
* NaN box rows where there is no box: the "no box" marker of a row (all NaN,
  as UAV123 writes absent frames, or all zeros) or a frame the dataset marks
  as absent (GOT-10k `absence.label`, LaSOT `out_of_view.txt`), and where
  the row holds a bad box (zero or negative width or height, a non-finite
  value: the readers.boxes rule of every reader); each bad row is also a
  `bad_box` reject in `SequenceAnnotation.rejects` (path `file:line`).
* Ground truth and images are paired row by row from the start frame. A row
  without its image (more rows than frames) rejects the whole sequence
  (`missing_image`, SequenceFormatError). Images after the last row (fewer
  rows than frames) are left out, with one `unannotated_frames` reject in
  `rejects` saying how many; only GOT-10k keeps them, unannotated, since its
  test split gives just the first box.
* `visible` is False on those rows and also where the target is present but
  hidden (LaSOT `full_occlusion.txt`, GOT-10k `cover.label` == 0); such frames
  keep their box.
* `frame_index` is the 0-based index of the frame in its image folder's
  numbering (file `00000001.jpg` is index 0), so split UAV123 sequences and
  OTB sequences that start late keep their position in the source video.
* `occlusion` (extra, optional): occluded fraction where the dataset says
  (GOT-10k cover bins: 1 - cover / 8; LaSOT full occlusion: 1), else -1.

Malformed input raises `SequenceFormatError` (a ValueError) naming the file
and, where it applies, the line.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Dict, List, Optional, Tuple

import numpy as np

from model.geometry import box_is_valid_xyxy, polygon_to_xyxy
from pipelines.readers import fs
from pipelines.readers.boxes import bad_box_detail
from pipelines.schema import Reject, RejectError, RejectReason

KINDS = ("otb", "vot", "lasot", "uav123", "got10k")


class SequenceFormatError(RejectError):
  """A sequence whose files do not follow its layout; names the file.

  `reason` is the reject reason the Beam jobs record: malformed_annotation
  (the default), missing_annotation, missing_image (a ground-truth row
  without its image) or empty_video.
  """

  def __init__(self, message: str, reason: str = RejectReason.MALFORMED_ANNOTATION):
    super().__init__(reason, message)


@dataclasses.dataclass
class SequenceAnnotation:
  name: str
  source: str
  frame_paths: List[str]
  boxes_xyxy: np.ndarray            # [N, 4] float64, NaN where absent / unannotated
  visible: np.ndarray               # [N] bool
  frame_index: np.ndarray           # [N] int64
  occlusion: Optional[np.ndarray] = None  # [N] float32 in [0, 1], -1 unknown
  label: str = ""
  # What was read but left out or blanked: bad_box rows (stored as NaN) and
  # unannotated_frames (images after the last row); the jobs record them.
  rejects: List[Reject] = dataclasses.field(default_factory=list)

  def __post_init__(self):
    n = len(self.frame_paths)
    self.boxes_xyxy = np.asarray(self.boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    self.visible = np.asarray(self.visible, dtype=bool).reshape(-1)
    self.frame_index = np.asarray(self.frame_index, dtype=np.int64).reshape(-1)
    if self.occlusion is None:
      self.occlusion = np.full([n], -1.0, np.float32)
    self.occlusion = np.asarray(self.occlusion, dtype=np.float32).reshape(-1)
    for field in ("boxes_xyxy", "visible", "frame_index", "occlusion"):
      if len(getattr(self, field)) != n:
        raise SequenceFormatError(
            f"sequence {self.name!r}: {field} has {len(getattr(self, field))} rows "
            f"for {n} frames")

  def __len__(self):
    return len(self.frame_paths)


# ---------------------------------------------------------------------------
# Text parsing
# ---------------------------------------------------------------------------

_SPLIT = re.compile(r"[,;\s]+")


def _read_rows(path: str, allowed_widths: Tuple[int, ...]) -> np.ndarray:
  """Numeric rows of a ground-truth file (comma, tab or space separated).

  Blank lines are skipped only at the end of the file (a blank line inside
  would shift every later frame). 'nan' (any case) parses as NaN.
  """
  if not fs.isfile(path):
    raise SequenceFormatError(f"{path}: ground-truth file not found",
                              RejectReason.MISSING_ANNOTATION)
  lines = fs.read_text(path).splitlines()
  while lines and not lines[-1].strip():
    lines.pop()
  rows = []
  width = None
  for i, line in enumerate(lines, start=1):
    text = line.strip()
    if not text:
      raise SequenceFormatError(f"{path}:{i}: blank line inside the ground truth")
    if text[0].isalpha() and text[0] not in "nN":
      raise SequenceFormatError(
          f"{path}:{i}: not a numeric box row ({text[:40]!r}); masks and other region "
          "encodings are not supported")
    parts = [p for p in _SPLIT.split(text) if p]
    try:
      values = [float(p) for p in parts]
    except ValueError:
      raise SequenceFormatError(f"{path}:{i}: non-numeric value in {text[:60]!r}") from None
    if len(values) not in allowed_widths:
      raise SequenceFormatError(
          f"{path}:{i}: expected {' or '.join(map(str, allowed_widths))} values, "
          f"got {len(values)}")
    if width is not None and len(values) != width:
      raise SequenceFormatError(
          f"{path}:{i}: {len(values)} values where earlier rows have {width}")
    width = len(values)
    rows.append(values)
  if not rows:
    raise SequenceFormatError(f"{path}: empty ground-truth file", RejectReason.EMPTY_VIDEO)
  return np.asarray(rows, dtype=np.float64)


def read_box_rows(path: str, allowed_widths: Tuple[int, ...] = (4,)) -> np.ndarray:
  """The numeric rows of a ground-truth file as written (1-based, not
  shifted), for adapters that hand them on as they are (the GOT-10k toolkit
  adapter); malformed rows raise SequenceFormatError naming `file:line`."""
  return _read_rows(path, allowed_widths)


def _read_flags(path: str, n: int) -> np.ndarray:
  """Integer flags, one per frame, comma/newline separated (LaSOT, GOT-10k)."""
  text = fs.read_text(path).strip()
  parts = [p for p in _SPLIT.split(text) if p] if text else []
  try:
    values = np.asarray([int(float(p)) for p in parts], dtype=np.int64)
  except ValueError:
    raise SequenceFormatError(f"{path}: non-integer flag value") from None
  if len(values) != n:
    raise SequenceFormatError(f"{path}: {len(values)} flags for {n} ground-truth rows")
  return values


def _rows_to_xyxy(rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """1-based x,y,w,h rows or 8-value polygons -> (boxes, bad, raw): continuous
  0-based xyxy with NaN where there is no usable box, the rows holding a bad
  box (not the "no box" marker: a row of NaN or of zeros), and the xyxy boxes
  before blanking (for messages). Every layout here is 1-based (Matlab
  convention)."""
  shift = 1.0
  if rows.shape[1] == 4:
    x, y, w, h = rows.T
    raw = np.stack([x - shift, y - shift, x - shift + w, y - shift + h], axis=-1)
  else:
    with np.errstate(invalid="ignore"):
      raw = polygon_to_xyxy(rows - shift)
  raw = np.asarray(raw, np.float64)
  usable = box_is_valid_xyxy(raw)
  marker = np.all(np.isnan(rows), axis=1) | np.all(rows == 0, axis=1)
  boxes = raw.copy()
  boxes[~usable] = np.nan
  return boxes, ~usable & ~marker, raw


def _bad_row_rejects(gt_path: str, rows: np.ndarray, bad: np.ndarray, raw: np.ndarray,
                     start: int) -> List[Reject]:
  """A bad_box reject per bad ground-truth row (`file:line`; the frame keeps
  a NaN box)."""
  out = []
  for i in np.flatnonzero(bad):
    values = ",".join(f"{v:g}" for v in rows[i])
    out.append(Reject(f"{gt_path}:{i + 1}", RejectReason.BAD_BOX,
                      f"frame {start + i}: the row {values} gives {bad_box_detail(raw[i])}; "
                      "stored as a frame without a box"))
  return out


# ---------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------


def _frame_number(name: str) -> Optional[int]:
  stem = name.rsplit(".", 1)[0]
  digits = re.search(r"(\d+)$", stem)
  return int(digits.group(1)) if digits else None


def list_frames(folder: str) -> Dict[int, str]:
  """Frame number (from the file name, 1-based in all these layouts) -> path."""
  if not fs.isdir(folder):
    raise SequenceFormatError(f"{folder}: image folder not found", RejectReason.MISSING_IMAGE)
  frames = {}
  for name in fs.listdir(folder):
    if not fs.is_image_file(name):
      continue
    num = _frame_number(name)
    if num is None:
      raise SequenceFormatError(f"{fs.join(folder, name)}: image name without a frame number")
    if num in frames:
      raise SequenceFormatError(
          f"{folder}: two images for frame {num}: {fs.join(folder, name)}, {frames[num]}")
    frames[num] = fs.join(folder, name)
  if not frames:
    raise SequenceFormatError(f"{folder}: no images", RejectReason.EMPTY_VIDEO)
  return frames


def _assemble(name: str, source: str, frames: Dict[int, str], boxes: np.ndarray,
              start: int, gt_path: str, keep_unannotated: bool = False,
              visible_extra: Optional[np.ndarray] = None,
              occlusion: Optional[np.ndarray] = None, label: str = "",
              rejects: Optional[List[Reject]] = None) -> SequenceAnnotation:
  """Pairs ground-truth rows with frames start, start+1, ...

  Every row needs its image (a missing one is an error naming it). Frames
  after the last row are left out with an unannotated_frames reject, or,
  with `keep_unannotated`, kept with NaN boxes (GOT-10k test gives only the
  first box).
  """
  n = len(boxes)
  rejects = list(rejects or [])
  numbers = list(range(start, start + n))
  missing = [k for k in numbers if k not in frames]
  if missing:
    raise SequenceFormatError(
        f"{gt_path}: {len(missing)} ground-truth rows have no image (first missing: frame "
        f"{missing[0]}); the image folder has {len(frames)} images", RejectReason.MISSING_IMAGE)
  after = [k for k in sorted(frames) if k >= start + n]
  if after and not keep_unannotated:
    rejects.append(Reject(
        gt_path, RejectReason.UNANNOTATED_FRAMES,
        f"{n} ground-truth rows for frames {start}..{start + n - 1}, but the image folder goes "
        f"on to frame {after[-1]}: {len(after)} images without a row, from {frames[after[0]]}, "
        "left out", {"frames": len(after)}))
  if keep_unannotated:
    extra = after
    numbers += extra
    boxes = np.concatenate([boxes, np.full([len(extra), 4], np.nan)], axis=0)
    if visible_extra is not None:
      visible_extra = np.concatenate([visible_extra, np.zeros([len(extra)], bool)])
    if occlusion is not None:
      occlusion = np.concatenate([occlusion, np.full([len(extra)], -1.0, np.float32)])
  visible = np.all(np.isfinite(boxes), axis=1)
  if visible_extra is not None:
    visible &= visible_extra
  return SequenceAnnotation(
      name=name, source=source, frame_paths=[frames[k] for k in numbers], boxes_xyxy=boxes,
      visible=visible, frame_index=np.asarray(numbers, np.int64) - 1, occlusion=occlusion,
      label=label, rejects=rejects)


def _basename(path: str) -> str:
  return path.rstrip("/").rsplit("/", 1)[-1]


# ---------------------------------------------------------------------------
# OTB
# ---------------------------------------------------------------------------

# OTB-2015 sequences whose ground truth starts after frame 1 (configSeqs facts);
# a cfg.json beside the images (startFrame) takes precedence.
OTB_START_FRAMES = {"David": 300, "BlurCar1": 247, "BlurCar3": 3, "BlurCar4": 18}

_OTB_GT = re.compile(r"^groundtruth_rect(\.(\d+))?\.txt$")


def _otb_gt_files(folder: str) -> List[str]:
  names = [n for n in fs.listdir(folder) if _OTB_GT.match(n)]
  return sorted(names, key=lambda n: int(_OTB_GT.match(n).group(2) or 0))


def _otb_start(folder: str, name: str) -> int:
  cfg = fs.join(folder, "cfg.json")
  if fs.isfile(cfg):
    try:
      start = json.loads(fs.read_text(cfg)).get("startFrame", 1)
      return int(start)
    except (ValueError, TypeError, AttributeError) as e:
      raise SequenceFormatError(f"{cfg}: unreadable startFrame ({e})") from None
  return OTB_START_FRAMES.get(name, 1)


def _read_otb(folder: str, gt_name: str) -> SequenceAnnotation:
  name = _basename(folder)
  m = _OTB_GT.match(gt_name)
  seq_name = name if not m.group(2) else f"{name}.{m.group(2)}"
  gt_path = fs.join(folder, gt_name)
  rows = _read_rows(gt_path, (4,))
  img_dir = fs.join(folder, "img")
  frames = list_frames(img_dir if fs.isdir(img_dir) else folder)
  start = _otb_start(folder, name)
  boxes, bad, raw = _rows_to_xyxy(rows)
  return _assemble(seq_name, "otb", frames, boxes, start, gt_path,
                   rejects=_bad_row_rejects(gt_path, rows, bad, raw, start))


def _otb_folder_sequences(folder: str) -> List[SequenceAnnotation]:
  gts = _otb_gt_files(folder)
  if not gts:
    raise SequenceFormatError(f"{folder}: no groundtruth_rect.txt")
  return [_read_otb(folder, g) for g in gts]


# ---------------------------------------------------------------------------
# VOT
# ---------------------------------------------------------------------------


def _read_vot(folder: str) -> SequenceAnnotation:
  gt_path = fs.join(folder, "groundtruth.txt")
  rows = _read_rows(gt_path, (4, 8))
  color = fs.join(folder, "color")
  frames = list_frames(color if fs.isdir(color) else folder)
  boxes, bad, raw = _rows_to_xyxy(rows)  # 4 values or an 8-value polygon
  start = min(frames)
  return _assemble(_basename(folder), "vot", frames, boxes, start, gt_path,
                   rejects=_bad_row_rejects(gt_path, rows, bad, raw, start))


# ---------------------------------------------------------------------------
# LaSOT
# ---------------------------------------------------------------------------


def _read_lasot(folder: str) -> SequenceAnnotation:
  gt_path = fs.join(folder, "groundtruth.txt")
  rows = _read_rows(gt_path, (4,))
  n = len(rows)
  boxes, bad, raw = _rows_to_xyxy(rows)
  full_occ = np.zeros([n], bool)
  out_view = np.zeros([n], bool)
  occ_path = fs.join(folder, "full_occlusion.txt")
  oov_path = fs.join(folder, "out_of_view.txt")
  if fs.isfile(occ_path):
    full_occ = _read_flags(occ_path, n) != 0
  if fs.isfile(oov_path):
    out_view = _read_flags(oov_path, n) != 0
  boxes[out_view] = np.nan
  occlusion = np.where(full_occ, 1.0, -1.0).astype(np.float32)
  img_dir = fs.join(folder, "img")
  frames = list_frames(img_dir if fs.isdir(img_dir) else folder)
  name = _basename(folder)
  return _assemble(name, "lasot", frames, boxes, 1, gt_path, visible_extra=~full_occ,
                   occlusion=occlusion, label=name.rsplit("-", 1)[0],
                   rejects=_bad_row_rejects(gt_path, rows, bad & ~out_view, raw, 1))


# ---------------------------------------------------------------------------
# GOT-10k
# ---------------------------------------------------------------------------


def _read_got10k(folder: str) -> SequenceAnnotation:
  gt_path = fs.join(folder, "groundtruth.txt")
  rows = _read_rows(gt_path, (4,))
  n = len(rows)
  boxes, bad, raw = _rows_to_xyxy(rows)
  present = np.ones([n], bool)
  occlusion = np.full([n], -1.0, np.float32)
  absence_path = fs.join(folder, "absence.label")
  cover_path = fs.join(folder, "cover.label")
  if fs.isfile(absence_path):
    absent = _read_flags(absence_path, n) != 0
    boxes[absent] = np.nan
    bad &= ~absent
  if fs.isfile(cover_path):
    cover = _read_flags(cover_path, n)
    if np.any((cover < 0) | (cover > 8)):
      raise SequenceFormatError(f"{cover_path}: cover values must be in 0..8")
    occlusion = (1.0 - cover / 8.0).astype(np.float32)
    present = cover > 0
  frames = list_frames(folder)
  # GOT-10k test gives only the first box: keep the later frames, unannotated.
  return _assemble(_basename(folder), "got10k", frames, boxes, 1, gt_path,
                   keep_unannotated=True, visible_extra=present, occlusion=occlusion,
                   rejects=_bad_row_rejects(gt_path, rows, bad, raw, 1))


# ---------------------------------------------------------------------------
# UAV123
# ---------------------------------------------------------------------------

# Frame ranges (start, end; 1-based, inclusive) of the sequences UAV123 splits
# into `<seq>_1`, `<seq>_2`, ... over one image folder (facts from the
# benchmark's configSeqs), for the 30 fps release and the 10 fps subset.
# A split sequence's range is picked from the table whose length matches its
# annotation file.
_UAV123_SPLITS_30FPS = {
    "bird1": [(1, 253), (775, 1477), (1573, 2437)],
    "car1": [(1, 751), (751, 1627), (1627, 2629)],
    "car6": [(1, 487), (487, 1807), (1807, 2953), (2953, 3925), (3925, 4861)],
    "car8": [(1, 1357), (1357, 2575)],
    "car16": [(1, 415), (415, 1993)],
    "group1": [(1, 1333), (1333, 2515), (2515, 3925), (3925, 4873)],
    "group2": [(1, 907), (907, 1771), (1771, 2683)],
    "group3": [(1, 1567), (1567, 2827), (2827, 4369), (4369, 5527)],
    "person2": [(1, 1189), (1189, 2623)],
    "person4": [(1, 1501), (1501, 2743)],
    "person5": [(1, 877), (877, 2101)],
    "person7": [(1, 1249), (1249, 2065)],
    "person8": [(1, 1075), (1075, 1525)],
    "person12": [(1, 601), (601, 1621)],
    "person14": [(1, 847), (847, 1813), (1813, 2923)],
    "person17": [(1, 1501), (1501, 2347)],
    "person19": [(1, 1243), (1243, 2791), (2791, 4357)],
    "truck4": [(1, 577), (577, 1261)],
    "uav1": [(1, 1555), (1555, 2377), (2473, 3469)],
}
_UAV123_SPLITS_10FPS = {
    "bird1": [(1, 85), (259, 493), (525, 813)],
    "car1": [(1, 251), (251, 543), (543, 877)],
    "car6": [(1, 163), (163, 603), (603, 985), (985, 1309), (1309, 1621)],
    "car8": [(1, 453), (453, 859)],
    "car16": [(1, 139), (139, 665)],
    "group1": [(1, 445), (445, 839), (839, 1309), (1309, 1625)],
    "group2": [(1, 303), (303, 591), (591, 895)],
    "group3": [(1, 523), (523, 943), (943, 1457), (1457, 1843)],
    "person2": [(1, 397), (397, 875)],
    "person4": [(1, 501), (501, 915)],
    "person5": [(1, 293), (293, 701)],
    "person7": [(1, 417), (417, 689)],
    "person8": [(1, 359), (359, 509)],
    "person12": [(1, 201), (201, 541)],
    "person14": [(1, 283), (283, 605), (605, 975)],
    "person17": [(1, 501), (501, 783)],
    "person19": [(1, 415), (415, 931), (931, 1453)],
    "truck4": [(1, 193), (193, 421)],
    "uav1": [(1, 519), (519, 793), (825, 1157)],
}

_UAV_SPLIT = re.compile(r"^(.+)_(\d+)$")


def uav123_start_frame(seq: str, num_rows: int, anno_path: str = "") -> Tuple[str, int]:
  """(image folder name, first 1-based frame) of a UAV123 annotation.

  Whole sequences start at frame 1 of their own folder; a split sequence
  `<base>_<k>` starts where the benchmark's frame-range table says, the table
  (30 fps or 10 fps) being the one whose range length equals the annotation's
  number of rows.
  """
  m = _UAV_SPLIT.match(seq)
  if not m:
    return seq, 1
  base, k = m.group(1), int(m.group(2))
  candidates = []
  for table in (_UAV123_SPLITS_30FPS, _UAV123_SPLITS_10FPS):
    ranges = table.get(base)
    if ranges and 1 <= k <= len(ranges):
      start, end = ranges[k - 1]
      if end - start + 1 == num_rows:
        candidates.append(start)
  if not candidates:
    raise SequenceFormatError(
        f"{anno_path or seq}: split sequence {seq!r} with {num_rows} rows matches no known "
        "UAV123 frame range (30 fps or 10 fps release)")
  return base, candidates[0]


def _uav_dirs(root: str) -> Tuple[str, str]:
  """(annotation dir, image root) of a UAV123 tree. Accepts the layout here
  (anno/<seq>.txt, data_seq/<seq>/) and the official one with one more level
  (anno/UAV123/<seq>.txt, data_seq/UAV123/<seq>/; also UAV123_10fps)."""
  anno, data = fs.join(root, "anno"), fs.join(root, "data_seq")
  if not fs.isdir(anno) or not fs.isdir(data):
    raise SequenceFormatError(f"{root}: a UAV123 root needs anno/ and data_seq/")
  if not any(n.endswith(".txt") for n in fs.listdir(anno)):
    subs = [n for n in fs.listdir(anno) if n.upper().startswith("UAV123") and
            fs.isdir(fs.join(anno, n))]
    if len(subs) != 1:
      raise SequenceFormatError(
          f"{anno}: no annotation .txt files (and not exactly one UAV123* subfolder: {subs})")
    anno = fs.join(anno, subs[0])
  return anno, data


def _uav_image_dir(data: str, folder: str, anno_path: str) -> str:
  direct = fs.join(data, folder)
  if fs.isdir(direct):
    return direct
  for sub in fs.listdir(data):
    cand = fs.join(data, sub, folder)
    if sub.upper().startswith("UAV123") and fs.isdir(cand):
      return cand
  raise SequenceFormatError(f"{anno_path}: image folder {folder!r} not found under {data}",
                            RejectReason.MISSING_IMAGE)


def _read_uav123(root: str, anno_path: str) -> SequenceAnnotation:
  seq = _basename(anno_path)[:-len(".txt")]
  rows = _read_rows(anno_path, (4,))
  _, data = _uav_dirs(root)
  folder, start = seq, 1
  if not fs.isdir(fs.join(data, seq)) and _UAV_SPLIT.match(seq):
    folder, start = uav123_start_frame(seq, len(rows), anno_path)
  frames = list_frames(_uav_image_dir(data, folder, anno_path))
  boxes, bad, raw = _rows_to_xyxy(rows)
  return _assemble(seq, "uav123", frames, boxes, start, anno_path,
                   rejects=_bad_row_rejects(anno_path, rows, bad, raw, start))


def _uav_root_of(anno_path: str) -> str:
  parts = anno_path.rstrip("/").split("/")
  for i in range(len(parts) - 1, 0, -1):
    if parts[i] == "anno":
      return "/".join(parts[:i]) or "/"
  raise SequenceFormatError(f"{anno_path}: a UAV123 annotation must lie under an anno/ folder")


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def _is_sequence_dir(kind: str, path: str) -> bool:
  if kind == "otb":
    return bool(_otb_gt_files(path))
  return fs.isfile(fs.join(path, "groundtruth.txt"))


def _check_kind(kind: str) -> str:
  kind = str(kind).lower().replace("-", "").replace("_", "")
  if kind not in KINDS:
    raise ValueError(f"unknown sequence kind {kind!r}; expected one of {KINDS}")
  return kind


def detect_kind(folder: str) -> Optional[str]:
  """Benchmark layout of one sequence folder from its ground-truth file names, else None.

  OTB: groundtruth_rect.txt (or groundtruth_rect.N.txt); LaSOT: groundtruth.txt with
  full_occlusion.txt or out_of_view.txt; GOT-10k: groundtruth.txt with absence.label or
  cover.label; VOT: groundtruth.txt alone. UAV123 keeps its annotations apart from the
  frames (anno/), so a folder of frames is never detected as UAV123.
  """
  names = set(fs.listdir(folder))
  if any(_OTB_GT.match(n) for n in names):
    return "otb"
  if "groundtruth.txt" in names:
    if "full_occlusion.txt" in names or "out_of_view.txt" in names:
      return "lasot"
    if "absence.label" in names or "cover.label" in names:
      return "got10k"
    return "vot"
  return None


def read_sequence(kind: str, path: str) -> SequenceAnnotation:
  """One sequence.

  path: the sequence folder (OTB, VOT, LaSOT, GOT-10k); for OTB folders with
  several targets (groundtruth_rect.1.txt, .2.txt) pass the ground-truth file
  itself. UAV123: the annotation file `.../anno/<seq>.txt`, or a UAV123 root
  holding exactly one annotation.
  """
  kind = _check_kind(kind)
  path = str(path).rstrip("/") or "/"
  if not fs.exists(path):
    raise SequenceFormatError(f"{path}: does not exist")
  if kind == "uav123":
    if fs.isfile(path):
      return _read_uav123(_uav_root_of(path), path)
    seqs = read_sequences(kind, path)
    if len(seqs) != 1:
      raise SequenceFormatError(
          f"{path}: holds {len(seqs)} UAV123 sequences; pass one annotation file")
    return seqs[0]
  if kind == "otb" and fs.isfile(path):
    folder, name = path.rsplit("/", 1) if "/" in path else (".", path)
    if not _OTB_GT.match(name):
      raise SequenceFormatError(f"{path}: not an OTB groundtruth_rect*.txt file")
    return _read_otb(folder, name)
  if not fs.isdir(path):
    raise SequenceFormatError(f"{path}: not a sequence folder")
  if kind == "otb":
    seqs = _otb_folder_sequences(path)
    if len(seqs) != 1:
      raise SequenceFormatError(
          f"{path}: has {len(seqs)} targets ({', '.join(_otb_gt_files(path))}); pass one "
          "ground-truth file or use read_sequences")
    return seqs[0]
  return {"vot": _read_vot, "lasot": _read_lasot, "got10k": _read_got10k}[kind](path)


def find_sequence_paths(kind: str, root: str, max_depth: int = 3) -> List[str]:
  """Paths read_sequence accepts, for every sequence under `root` (sorted).

  UAV123: annotation files. Others: sequence folders (for OTB folders with
  several targets, each ground-truth file), found up to `max_depth` levels
  down (LaSOT nests them in category folders).
  """
  kind = _check_kind(kind)
  root = str(root).rstrip("/") or "/"
  if not fs.exists(root):
    raise SequenceFormatError(f"{root}: does not exist")
  if kind == "uav123":
    if fs.isfile(root):
      return [root]
    anno, _ = _uav_dirs(root)
    return [fs.join(anno, n) for n in fs.listdir(anno) if n.endswith(".txt")]
  if fs.isfile(root):
    return [root]
  found = []

  def visit(path, depth):
    if _is_sequence_dir(kind, path):
      if kind == "otb" and len(_otb_gt_files(path)) > 1:
        found.extend(fs.join(path, g) for g in _otb_gt_files(path))
      else:
        found.append(path)
      return
    if depth >= max_depth:
      return
    for name in fs.listdir(path):
      sub = fs.join(path, name)
      if not name.startswith(".") and fs.isdir(sub):
        visit(sub, depth + 1)

  visit(root, 0)
  return sorted(found)


def read_sequences(kind: str, root: str) -> List[SequenceAnnotation]:
  """Every sequence under `root` (a sequence folder or a folder of them;
  UAV123: the dataset root with data_seq/ and anno/), sorted by path."""
  paths = find_sequence_paths(kind, root)
  if not paths:
    raise SequenceFormatError(f"{root}: no {kind} sequences found")
  kind = _check_kind(kind)
  if kind == "uav123":
    return [_read_uav123(_uav_root_of(p), p) for p in paths]
  return [read_sequence(kind, p) for p in paths]
