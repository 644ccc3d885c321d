"""ImageNet DET walker and the object rules of the Re3/GOTURN data.

Layout (SUBSET is train or val):
  ROOT/Data/DET/train/ILSVRC2013_train/<synset>/<synset>_N.JPEG
  ROOT/Data/DET/train/ILSVRC2014_train_000N/ILSVRC2014_train_XXXXXXXX.JPEG
  ROOT/Data/DET/val/ILSVRC2012_val_XXXXXXXX.JPEG
  ROOT/Annotations/DET/<same path>.xml   (VOC XML, no trackid)

Objects are judged in the decoded image's pixels: if the decoded size differs
from the XML's <size>, boxes are scaled to it first; boxes are clipped to the
image; a box of zero or negative size (or one entirely outside the image) is
dropped as `bad_box` / `box_outside_image`, and one covering less than
`min_area_fraction` of the image (Re3: 1%) as `small_object`.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from pipelines.readers import fs
from pipelines.readers.boxes import bad_box_detail
from pipelines.schema import RejectError, RejectReason



class DetLayoutError(ValueError):
  """The input directory is not a DET tree (raised before a job starts)."""


class BoxRejected(RejectError):
  """An object box the DET rules drop (bad_box, box_outside_image, small_object)."""


def subset_dirs(root: str, subset: str) -> Tuple[str, str]:
  return (fs.join(root, "Annotations", "DET", subset), fs.join(root, "Data", "DET", subset))


def annotation_dirs(root: str, subset: str) -> List[str]:
  """Every folder under Annotations/DET/<subset> that directly holds XML files
  (sorted). Listing the files themselves is left to the workers."""
  ann_base, _ = subset_dirs(root, subset)
  if not fs.isdir(ann_base):
    raise DetLayoutError(f"{root}: Annotations/DET/{subset} does not exist")
  out = []

  def visit(path):
    names = fs.listdir(path)
    if any(n.endswith(".xml") for n in names):
      out.append(path)
    for n in names:
      sub = fs.join(path, n)
      if not n.startswith(".") and not n.endswith(".xml") and fs.isdir(sub):
        visit(sub)

  visit(ann_base)
  return sorted(out)


def list_xmls(folder: str) -> List[str]:
  return [fs.join(folder, n) for n in fs.listdir(folder) if n.endswith(".xml")]


def image_path_for(root: str, subset: str, xml_path: str) -> Optional[str]:
  """The image of an annotation (same relative path, image extension), or
  None when no such file exists."""
  ann_base, img_base = subset_dirs(root, subset)
  rel = xml_path[len(ann_base):].lstrip("/")
  stem = rel[:-len(".xml")]
  for ext in fs.IMAGE_EXTENSIONS:
    for cased in (ext.upper(), ext):  # DET ships .JPEG; probe both cases
      cand = fs.join(img_base, stem + cased)
      if fs.isfile(cand):
        return cand
  return None


def judge_box(box, height: int, width: int, annotated_size: Optional[Tuple[int, int]],
              min_area_fraction: float):
  """-> the box clipped to the decoded image, in its pixels; BoxRejected
  (reason bad_box / box_outside_image / small_object) otherwise.

  Scales from the annotated size to the decoded one when they differ (the
  message then starts with "scaled from ...").
  """
  b = np.asarray(box, np.float64).copy()
  detail = ""
  if annotated_size is not None and tuple(annotated_size) != (height, width):
    ah, aw = annotated_size
    b *= np.array([width / aw, height / ah, width / aw, height / ah])
    detail = f"scaled from {ah}x{aw} to {height}x{width}; "
  problem = bad_box_detail(b)
  if problem:
    raise BoxRejected(RejectReason.BAD_BOX, detail + problem)
  if b[2] <= 0 or b[3] <= 0 or b[0] >= width or b[1] >= height:
    raise BoxRejected(RejectReason.BOX_OUTSIDE_IMAGE, detail + (
        f"box {np.round(b, 2).tolist()} outside the {height}x{width} image"))
  b = np.array([max(b[0], 0), max(b[1], 0), min(b[2], width), min(b[3], height)])
  area = (b[2] - b[0]) * (b[3] - b[1])
  if area < min_area_fraction * height * width:
    raise BoxRejected(RejectReason.SMALL_OBJECT, detail + (
        f"box covers {area / float(height * width):.4f} of the image "
        f"(< {min_area_fraction})"))
  return b
