"""Where the simulator's objects come from: DET object records, a DET root,
or any folder of photos with VOC XML or a boxes file beside them.

Every source yields `SourceObject`s (an image, by bytes or path, and one box
in it) or rejects with a reason; the job samples tracks from them.

The boxes file (`--images_dir`): a file named `boxes.csv` in any folder
lists objects of the images in that folder, one per line:

    image_name,xmin,ymin,xmax,ymax[,label]

with the image path relative to the folder of the file, and the box in
pixels of that image (xyxy, continuous coordinates: a box covering pixel
columns 10..19 is xmin=10, xmax=20). Empty lines and lines starting with
'#' are skipped; a first line starting with `image` is taken as a header.
An image may appear on several lines (several objects). Images with
neither an XML file of the same stem nor a boxes.csv line are rejected
(reason `no_annotation`), so nothing is dropped silently.

VOC XML boxes (xmin, ymin, xmax, ymax) are used as xyxy as written (ImageNet
convention). Every box is judged by the DET reader's rules
(pipelines.readers.det.judge_box, shared with build_det): scaled when the
decoded image's size differs from the annotated one, clipped to the image,
rejected as bad_box / box_outside_image / small_object (under
--min_object_fraction of the image). Keys of DET objects are build_det's
track ids (det/{subset}/{path}/{k:02d}), so a DET root and the records
build_det made from it name the same objects alike.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from typing import Dict, Iterator, List, Tuple

import numpy as np

from pipelines import images, schema
from pipelines.readers import det, fs
from pipelines.readers.boxes import bad_box_detail
from pipelines.readers.voc_xml import VocXmlError, parse_voc_xml
from pipelines.schema import Reject, RejectError, RejectReason

BOXES_FILE = "boxes.csv"


@dataclasses.dataclass
class SourceObject:
  """One object to track: its image (bytes or path) and box."""
  key: str                       # stable unique id (also decides which tracks use it)
  name: str                      # file or record the object comes from (for messages)
  box_xyxy: Tuple[float, float, float, float]
  label: str = ""
  image_path: str = ""           # set for file sources
  image_bytes: bytes = b""       # set for record sources
  annotated_size: Tuple[int, int] = (0, 0)  # (height, width) the box refers to; 0 = as decoded

  def load_image(self) -> np.ndarray:
    """HxWx3 uint8 and the box scaled to it; ImageError naming the file."""
    if self.image_bytes:
      return images.decode_image_rgb(self.image_bytes, self.name)
    return images.load_image_rgb(self.image_path)

  def box_in(self, image: np.ndarray, min_fraction: float) -> np.ndarray:
    """The box in the decoded image's pixels (scaled if the annotation's size
    differs, clipped); SourceError when it is not usable there."""
    return judge(self.box_xyxy, image.shape[0], image.shape[1], self.annotated_size,
                 min_fraction, self.name)


class SourceError(RejectError):
  """A source entry that gives no object; `reason` tags the reject."""


def judge(box, height: int, width: int, annotated_size, min_fraction: float,
          name: str) -> np.ndarray:
  """The box in (height, width) pixels, scaled from `annotated_size` when that
  differs and clipped, by the DET reader's rules (pipelines.readers.det);
  SourceError tagged bad_box / box_outside_image / small_object otherwise."""
  b = np.asarray(box, np.float64).reshape(-1)
  if b.shape != (4,):
    raise SourceError(RejectReason.BAD_BOX, f"{name}: a box needs 4 numbers, got {b.tolist()}")
  ann = tuple(annotated_size) if annotated_size and all(annotated_size) else None
  try:
    return det.judge_box(b, int(height), int(width), ann, min_fraction)
  except det.BoxRejected as e:
    raise SourceError(e.reason, f"{name}: {e}") from e


def check_finite_box(box, name: str) -> None:
  """What can be judged without the image's size: 4 finite numbers, positive size."""
  b = np.asarray(box, np.float64).reshape(-1)
  if b.shape != (4,):
    raise SourceError(RejectReason.BAD_BOX, f"{name}: a box needs 4 numbers, got {b.tolist()}")
  problem = bad_box_detail(b)
  if problem:
    raise SourceError(RejectReason.BAD_BOX, f"{name}: {problem}")


# ---------------------------------------------------------------------------
# DET object records (pipelines.build_det)
# ---------------------------------------------------------------------------


def object_from_record(data: bytes, name: str, min_fraction: float) -> SourceObject:
  """A track record of length >= 1 -> its first frame with a visible finite box."""
  try:
    track = schema.parse_track(data)
  except Exception as e:  # pylint: disable=broad-except  # tf.errors.InvalidArgumentError, ...
    raise SourceError(RejectReason.BAD_RECORD, f"{name}: not a track record ({type(e).__name__}: "
                                    f"{str(e).splitlines()[0] if str(e) else ''})") from e
  where = f"{name} track {track.track_id!r}"
  for i in range(len(track)):
    box = track.boxes_xyxy[i]
    if track.visible[i] and np.all(np.isfinite(box)):
      judge(box, track.height, track.width, None, min_fraction, where)
      return SourceObject(
          key=track.track_id, name=where, box_xyxy=tuple(float(v) for v in box),
          label=track.label, image_bytes=track.images[i],
          annotated_size=(int(track.height), int(track.width)))
  raise SourceError(RejectReason.NO_BOX, f"{where}: no frame with a visible box")


# ---------------------------------------------------------------------------
# VOC XML (a DET root, or photos with .xml beside them)
# ---------------------------------------------------------------------------


def objects_from_xml(image_path: str, xml_path: str, key_prefix: str,
                     min_fraction: float) -> Iterator[object]:
  """SourceObjects of one annotated image (keys `{key_prefix}/{k:02d}`, the
  track ids build_det gives the same objects); SourceErrors for the bad boxes
  are yielded, not raised, so one bad box does not hide the good ones. An
  unreadable file raises SourceError(malformed_annotation), an image that is
  not there SourceError(missing_image)."""
  try:
    ann = parse_voc_xml(xml_path)
  except VocXmlError as e:
    raise SourceError(RejectReason.MALFORMED_ANNOTATION, str(e)) from e
  if not image_path or not fs.exists(image_path):
    raise SourceError(RejectReason.MISSING_IMAGE,
                      f"{xml_path}: no image {image_path or 'of this name'}")
  if not ann.objects:
    raise SourceError(RejectReason.NO_OBJECTS, f"{xml_path}: the annotation lists no object")
  for k, obj in enumerate(ann.objects):
    where = f"{xml_path} <object> #{k} ({obj.name})"
    box = (obj.xmin, obj.ymin, obj.xmax, obj.ymax)
    try:
      judge(box, ann.height, ann.width, None, min_fraction, where)
    except SourceError as e:
      yield e
      continue
    yield SourceObject(key=f"{key_prefix}/{k:02d}", name=where, box_xyxy=tuple(map(float, box)),
                       label=obj.name, image_path=image_path,
                       annotated_size=(ann.height, ann.width))


def is_det_root(path: str) -> bool:
  return fs.isdir(os.path.join(path, "Annotations", "DET"))


def det_key_prefix(root: str, subset: str, xml_path: str) -> str:
  """`det/{subset}/{relative path without .xml}`: build_det's track id stem."""
  ann_base, _ = det.subset_dirs(root, subset)
  return f"det/{subset}/{xml_path[len(ann_base):].lstrip('/')[:-len('.xml')]}"


def _walk_files(root: str, extensions) -> List[Tuple[str, str]]:
  """Sorted (relative dir, file name) of files with the extensions under root."""
  out = []
  if "://" in root:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only for remote roots
    walker = ((d, files) for d, _, files in tf.io.gfile.walk(root))
  else:
    walker = ((d, files) for d, _, files in os.walk(root))
  for d, files in walker:
    rel_dir = os.path.relpath(d, root)
    rel_dir = "" if rel_dir == "." else rel_dir
    for f in files:
      if f.lower().endswith(extensions):
        out.append((rel_dir, f))
  return sorted(out)


# ---------------------------------------------------------------------------
# A folder of photos
# ---------------------------------------------------------------------------


def parse_boxes_file(text: str, path: str) -> Tuple[List[Tuple[str, tuple, str]], List[dict]]:
  """boxes.csv text -> ([(image_name, box, label)], [Reject])."""
  rows, rejects = [], []
  for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
    if not row or not "".join(row).strip() or row[0].strip().startswith("#"):
      continue
    if lineno == 1 and row[0].strip().lower().startswith("image"):
      continue
    where = f"{path}:{lineno}"
    if len(row) not in (5, 6):
      rejects.append(Reject(where, RejectReason.BAD_BOXES_LINE,
                            f"expected image,xmin,ymin,xmax,ymax[,label], got {len(row)} "
                            f"fields"))
      continue
    try:
      box = tuple(float(v) for v in row[1:5])
    except ValueError:
      rejects.append(Reject(where, RejectReason.BAD_BOXES_LINE,
                            f"box values {row[1:5]} are not numbers"))
      continue
    rows.append((row[0].strip(), box, row[5].strip() if len(row) == 6 else ""))
  return rows, rejects


def scan_images_dir(root: str):
  """Lists a photo folder in the driver.

  Returns (xml_entries [(key_prefix, image_path, xml_path)], objects
  [SourceObject from boxes files], rejects [Reject]). XML files are parsed
  later, by the workers; boxes files are small and parsed here.
  """
  files = _walk_files(root, fs.IMAGE_EXTENSIONS + (".xml", ".csv"))
  present = {os.path.join(d, f) for d, f in files}
  xml_entries, objects, rejects = [], [], []
  in_boxes: Dict[str, int] = {}
  for d, f in files:
    if f != BOXES_FILE:
      continue
    path = os.path.join(root, d, f)
    rows, bad = parse_boxes_file(fs.read_text(path), path)
    rejects.extend(bad)
    for name, box, label in rows:
      rel = os.path.normpath(os.path.join(d, name))
      where = f"{path} ({name})"
      if rel not in present:
        rejects.append(Reject(where, RejectReason.MISSING_IMAGE,
                              f"{os.path.join(root, rel)} does not exist"))
        continue
      k = in_boxes.get(rel, 0)
      in_boxes[rel] = k + 1
      try:
        check_finite_box(box, where)
      except SourceError as e:
        rejects.append(e.to_reject(where))
        continue
      objects.append(SourceObject(key=f"img/{rel}/b{k:02d}", name=where, box_xyxy=box, label=label,
                                  image_path=os.path.join(root, rel)))
  for d, f in files:
    if not fs.is_image_file(f):
      continue
    rel = os.path.join(d, f)
    xml_rel = os.path.splitext(rel)[0] + ".xml"
    if xml_rel in present:
      xml_entries.append((f"img/{rel}", os.path.join(root, rel), os.path.join(root, xml_rel)))
    elif rel not in in_boxes:
      rejects.append(Reject(os.path.join(root, rel), RejectReason.NO_ANNOTATION,
                            f"no {os.path.splitext(f)[0]}.xml beside it and no line in a "
                            f"{BOXES_FILE}"))
  return xml_entries, objects, rejects
