"""ImageNet VID (ILSVRC2015) walker: videos -> per-object tracks.

Layout (SUBSET is train or val):
  ROOT/Data/VID/train/ILSVRC2015_VID_train_000N/ILSVRC2015_train_XXXXXXXX/000000.JPEG
  ROOT/Data/VID/val/ILSVRC2015_val_XXXXXXXX/000000.JPEG
  ROOT/Annotations/VID/<same>/000000.xml       (VOC XML with <trackid>)
File names are 0-based frame numbers, so `frame/index` is the number itself.

A track is one (video, trackid): every frame from the object's first to its
last annotated frame. A frame inside that span where the object has no box
(left the view, annotation missing or malformed) is kept with a NaN box and
visible = 0; an occluded object (<occluded>1) keeps its box with visible = 0.
Boxes are the XML's pixel values as given (xmin, ymin, xmax, ymax), the
convention Re3 and GOTURN trained with.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from pipelines.readers import fs
from pipelines.readers.boxes import bad_box_detail
from pipelines.readers.voc_xml import VocXmlError, parse_voc_xml
from pipelines.schema import Reject, RejectReason



def _is_xml(name: str) -> bool:
  return name.lower().endswith(".xml")


class VidLayoutError(ValueError):
  """The input directory is not a VID tree (raised before a job starts)."""


@dataclasses.dataclass
class VidVideo:
  rel: str                    # e.g. ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000
  ann_dir: Optional[str]
  image_dir: Optional[str]


@dataclasses.dataclass
class VidTrack:
  video: str
  trackid: int
  label: str
  frame_paths: List[str]
  boxes_xyxy: np.ndarray                     # [N, 4], NaN where not annotated
  visible: np.ndarray                        # [N] bool
  frame_index: np.ndarray                    # [N] int64
  ann_refs: List[str]                        # per frame: the XML path (or the image path)
  annotated_size: List[Optional[Tuple[int, int]]]  # per frame: XML <size> (h, w) or None


def subset_dirs(root: str, subset: str) -> Tuple[str, str]:
  return (fs.join(root, "Annotations", "VID", subset), fs.join(root, "Data", "VID", subset))


def _video_dirs(base: str, wanted: Callable[[str], bool]) -> Dict[str, str]:
  """rel -> dir of each video under `base` (one level, or two with group
  folders like ILSVRC2015_VID_train_0000)."""
  out = {}
  if not fs.isdir(base):
    return out
  for name in fs.listdir(base):
    path = fs.join(base, name)
    if name.startswith(".") or not fs.isdir(path):
      continue
    children = fs.listdir(path)
    if any(wanted(c) for c in children):
      out[name] = path
      continue
    sub_dirs = [c for c in children if not c.startswith(".") and fs.isdir(fs.join(path, c))]
    if sub_dirs:
      for c in sub_dirs:
        out[f"{name}/{c}"] = fs.join(path, c)
    else:
      out[name] = path  # an empty video folder: reported as empty_video
  return out


def find_videos(root: str, subset: str) -> List[VidVideo]:
  ann_base, img_base = subset_dirs(root, subset)
  if not fs.isdir(ann_base) and not fs.isdir(img_base):
    raise VidLayoutError(
        f"{root}: neither Annotations/VID/{subset} nor Data/VID/{subset} exists")
  anns = _video_dirs(ann_base, _is_xml)
  imgs = _video_dirs(img_base, fs.is_image_file)
  return [VidVideo(rel, anns.get(rel), imgs.get(rel)) for rel in sorted(set(anns) | set(imgs))]


def _numbered(folder: Optional[str], wanted: Callable[[str], bool]) -> Dict[int, str]:
  out = {}
  if folder is None:
    return out
  for name in fs.listdir(folder):
    stem, dot, _ = name.rpartition(".")
    if dot and wanted(name) and stem.isdigit():
      out[int(stem)] = fs.join(folder, name)
  return out


def read_video(video: VidVideo):
  """-> (tracks, rejects [Reject])."""
  rejects = []
  xmls = _numbered(video.ann_dir, _is_xml)
  images = _numbered(video.image_dir, fs.is_image_file)
  where = video.ann_dir or video.image_dir
  if not xmls:
    rejects.append(Reject(where, RejectReason.EMPTY_VIDEO,
                          "no annotation files" if images else "no images and no annotations"))
    return [], rejects
  # per frame number: {trackid: (box, occluded, name)} and the XML size
  per_frame: Dict[int, Dict[int, Tuple[np.ndarray, bool, str]]] = {}
  sizes: Dict[int, Tuple[int, int]] = {}
  for num in sorted(xmls):
    path = xmls[num]
    if num not in images:
      rejects.append(Reject(path, RejectReason.MISSING_IMAGE,
                            f"no image for frame {num} in "
                            f"{video.image_dir or '(no image folder)'}"))
      continue
    try:
      ann = parse_voc_xml(path)
    except VocXmlError as e:
      rejects.append(Reject(path, RejectReason.MALFORMED_ANNOTATION, str(e)))
      continue
    sizes[num] = (ann.height, ann.width)
    objs = {}
    for k, obj in enumerate(ann.objects):
      if obj.trackid is None:
        rejects.append(Reject(path, RejectReason.MALFORMED_ANNOTATION,
                              f"<object> #{k}: missing <trackid>"))
        continue
      if obj.trackid in objs:
        rejects.append(Reject(path, RejectReason.MALFORMED_ANNOTATION,
                              f"<object> #{k}: trackid {obj.trackid} appears twice in this frame"))
        continue
      box = np.array([obj.xmin, obj.ymin, obj.xmax, obj.ymax], np.float64)
      problem = bad_box_detail(box)
      if problem:
        rejects.append(Reject(path, RejectReason.BAD_BOX, f"trackid {obj.trackid}: {problem}"))
        continue
      objs[obj.trackid] = (box, bool(obj.occluded), obj.name)
    per_frame[num] = objs
  spans: Dict[int, List[int]] = collections.defaultdict(list)
  for num, objs in per_frame.items():
    for tid in objs:
      spans[tid].append(num)
  if not spans:
    if not any(r.path in xmls.values() for r in rejects):
      rejects.append(Reject(where, RejectReason.EMPTY_VIDEO, "no annotated object in any frame"))
    return [], rejects
  tracks = []
  for tid in sorted(spans):
    first, last = min(spans[tid]), max(spans[tid])
    nums = [n for n in sorted(images) if first <= n <= last]
    boxes = np.full([len(nums), 4], np.nan)
    visible = np.zeros([len(nums)], bool)
    names = collections.Counter()
    refs, asize = [], []
    for i, n in enumerate(nums):
      entry = per_frame.get(n, {}).get(tid)
      refs.append(xmls.get(n, images[n]))
      asize.append(sizes.get(n))
      if entry is not None:
        boxes[i] = entry[0]
        visible[i] = not entry[1]
        names[entry[2]] += 1
    label = sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    tracks.append(VidTrack(video=video.rel, trackid=tid, label=label,
                           frame_paths=[images[n] for n in nums], boxes_xyxy=boxes,
                           visible=visible, frame_index=np.asarray(nums, np.int64),
                           ann_refs=refs, annotated_size=asize))
  return tracks, rejects
