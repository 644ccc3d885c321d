"""PASCAL-VOC style XML as used by ImageNet VID and DET.

One file per image:

  <annotation>
    <folder>ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000</folder>
    <filename>000000</filename>
    <size><width>1280</width><height>720</height></size>
    <object>
      <trackid>0</trackid>            (VID only)
      <name>n01674464</name>
      <bndbox><xmax>..</xmax><xmin>..</xmin><ymax>..</ymax><ymin>..</ymin></bndbox>
      <occluded>0</occluded>          (VID only)
      <generated>0</generated>        (VID only)
    </object>
  </annotation>

The parser only parses: it raises VocXmlError (naming the file and the
field) when the XML is malformed, truncated, or a required field is missing
or not a number, and leaves judging the boxes (degenerate, outside the image)
to the jobs, which route them to the rejected output with their own reason.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from typing import List, Optional, Union

from pipelines.readers import fs


class VocXmlError(ValueError):
  """Malformed or truncated VOC XML; the message names the file and field."""


@dataclasses.dataclass
class VocObject:
  name: str
  xmin: float
  ymin: float
  xmax: float
  ymax: float
  trackid: Optional[int] = None
  occluded: bool = False
  generated: bool = False


@dataclasses.dataclass
class VocAnnotation:
  filename: str
  folder: str
  width: int
  height: int
  objects: List[VocObject] = dataclasses.field(default_factory=list)


def _text(elem, tag: str, where: str, required: bool = True) -> Optional[str]:
  child = elem.find(tag)
  if child is None or child.text is None or not child.text.strip():
    if required:
      raise VocXmlError(f"{where}: missing <{tag}>")
    return None
  return child.text.strip()


def _number(elem, tag: str, where: str) -> float:
  raw = _text(elem, tag, where)
  try:
    value = float(raw)
  except ValueError:
    raise VocXmlError(f"{where}: <{tag}> is not a number: {raw!r}") from None
  if value != value or value in (float("inf"), float("-inf")):
    raise VocXmlError(f"{where}: <{tag}> is not finite: {raw!r}")
  return value


def _flag(elem, tag: str, where: str) -> bool:
  raw = _text(elem, tag, where, required=False)
  if raw is None:
    return False
  if raw not in ("0", "1"):
    raise VocXmlError(f"{where}: <{tag}> must be 0 or 1, got {raw!r}")
  return raw == "1"


def parse_voc_xml(path_or_bytes: Union[str, bytes], name: Optional[str] = None) -> VocAnnotation:
  """Parses one annotation file (a path, or its bytes with `name` for messages)."""
  if isinstance(path_or_bytes, (bytes, bytearray)):
    data = bytes(path_or_bytes)
    where = name or "<bytes>"
  else:
    where = name or str(path_or_bytes)
    try:
      data = fs.read_bytes(path_or_bytes)
    except OSError as e:
      raise VocXmlError(f"{where}: cannot read file ({e})") from e
  if not data.strip():
    raise VocXmlError(f"{where}: empty file")
  try:
    root = ET.fromstring(data)
  except ET.ParseError as e:
    raise VocXmlError(f"{where}: malformed or truncated XML ({e})") from None
  if root.tag != "annotation":
    raise VocXmlError(f"{where}: root element is <{root.tag}>, expected <annotation>")
  size = root.find("size")
  if size is None:
    raise VocXmlError(f"{where}: missing <size>")
  width = _number(size, "width", f"{where} <size>")
  height = _number(size, "height", f"{where} <size>")
  if width != int(width) or height != int(height):
    raise VocXmlError(f"{where}: <size> must be whole pixels, got {width}x{height}")
  objects = []
  for i, obj in enumerate(root.findall("object")):
    owhere = f"{where} <object> #{i}"
    bnd = obj.find("bndbox")
    if bnd is None:
      raise VocXmlError(f"{owhere}: missing <bndbox>")
    trackid_raw = _text(obj, "trackid", owhere, required=False)
    trackid = None
    if trackid_raw is not None:
      try:
        trackid = int(trackid_raw)
      except ValueError:
        raise VocXmlError(f"{owhere}: <trackid> is not an integer: {trackid_raw!r}") from None
    objects.append(VocObject(
        name=_text(obj, "name", owhere),
        xmin=_number(bnd, "xmin", f"{owhere} <bndbox>"),
        ymin=_number(bnd, "ymin", f"{owhere} <bndbox>"),
        xmax=_number(bnd, "xmax", f"{owhere} <bndbox>"),
        ymax=_number(bnd, "ymax", f"{owhere} <bndbox>"),
        trackid=trackid,
        occluded=_flag(obj, "occluded", owhere),
        generated=_flag(obj, "generated", owhere)))
  return VocAnnotation(
      filename=_text(root, "filename", where, required=False) or "",
      folder=_text(root, "folder", where, required=False) or "",
      width=int(width), height=int(height), objects=objects)
