"""Annotated videos: frames with the tracked boxes drawn, a legend (which colour
is the ground truth, which is each tracker) and the frame number, written as
GIF (PIL) or MP4 / AVI (OpenCV, the `opencv` extra).

    frame = annotate(image, [Layer("ground truth", gt_box, GT_COLOR),
                             Layer("re3", box, tracker_color(0), ok)], frame_number=i)

A tracker's box is drawn in its colour while it reports ok and in LOST_COLOR
(its legend entry then says "lost") when it does not.
"""

from __future__ import annotations

import dataclasses
import os
from typing import List, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from train.eval.frames import OPENCV_REINSTALL

RENDER_EXTENSIONS = (".gif", ".mp4", ".avi")
OK_COLOR = (0, 255, 0)
LOST_COLOR = (255, 0, 0)
GT_COLOR = (255, 220, 0)
# Tracker colours in order (the first is OK_COLOR); none is GT_COLOR or LOST_COLOR.
TRACKER_COLORS = (OK_COLOR, (0, 170, 255), (255, 0, 255), (255, 140, 0), (0, 255, 255),
                  (170, 120, 255))
GT_LABEL = "ground truth"


def tracker_color(index: int):
  """The colour of the index-th tracker of a rendering."""
  return TRACKER_COLORS[index % len(TRACKER_COLORS)]


@dataclasses.dataclass
class Layer:
  """One box of a frame: its legend label, (x, y, w, h), colour and ok flag."""
  label: str
  box_xywh: Sequence[float]
  color: tuple = OK_COLOR
  ok: bool = True


def _rect(draw, box_xywh, color, width):
  x, y, w, h = [float(v) for v in box_xywh]
  if np.all(np.isfinite([x, y, w, h])):
    draw.rectangle([x, y, x + max(w, 1) - 1, y + max(h, 1) - 1], outline=color, width=width)


def draw_box(image: np.ndarray, box_xywh, ok: bool = True, width: int = 3) -> np.ndarray:
  """A copy of the frame with the box drawn (green when ok, red when lost); a box
  with a NaN is not drawn."""
  img = Image.fromarray(image)
  _rect(ImageDraw.Draw(img), box_xywh, OK_COLOR if ok else LOST_COLOR, width)
  return np.asarray(img)


def _font(height: int):
  return ImageFont.load_default(size=max(10, min(28, height // 28)))


def _label_panel(draw, lines, xy, font, align_right_at=None):
  """Text lines [(text, colour)] with a colour swatch each, on a dark panel."""
  pad, gap = 4, 2
  heights, widths = [], []
  for text, _ in lines:
    l, t, r, b = draw.textbbox((0, 0), text, font=font)
    widths.append(r - l)
    heights.append(b - min(t, 0))
  line_h = max(heights) + gap
  swatch = line_h - gap
  w = pad * 3 + swatch + max(widths) if lines[0][1] is not None else pad * 2 + max(widths)
  h = pad * 2 + line_h * len(lines) - gap
  x, y = xy
  if align_right_at is not None:
    x = align_right_at - w
  draw.rectangle([x, y, x + w, y + h], fill=(0, 0, 0))
  for i, (text, color) in enumerate(lines):
    ty = y + pad + i * line_h
    tx = x + pad
    if color is not None:
      draw.rectangle([tx, ty + 1, tx + swatch - 2, ty + swatch - 1], fill=color)
      tx += swatch + pad
    draw.text((tx, ty), text, fill=(255, 255, 255), font=font)


def annotate(image: np.ndarray, layers: Sequence[Layer], frame_number: Optional[int] = None,
             legend: bool = True, extra_text: str = "", width: int = 3) -> np.ndarray:
  """A copy of the frame with every layer's box, a legend (top left: a swatch
  and label per layer) and the frame number (top right, with `extra_text`,
  e.g. the frame rate). Frame numbers are 0-based, as boxes and --box are:
  frame 0 is the first frame (line 1 of a box file). A box with a NaN is not drawn but keeps its legend row."""
  img = Image.fromarray(np.ascontiguousarray(image))
  draw = ImageDraw.Draw(img)
  for layer in layers:
    _rect(draw, layer.box_xywh, layer.color if layer.ok else LOST_COLOR, width)
  font = _font(img.height)
  if legend and layers:
    rows = [(layer.label if layer.ok else f"{layer.label} (lost)",
             layer.color if layer.ok else LOST_COLOR) for layer in layers]
    _label_panel(draw, rows, (4, 4), font)
  corner = " ".join(t for t in (f"frame {frame_number}" if frame_number is not None else "",
                                extra_text) if t)
  if corner:
    _label_panel(draw, [(corner, None)], (0, 4), font, align_right_at=img.width - 4)
  return np.asarray(img)


DEFAULT_FPS = 20.0     # frames without a rate of their own (image folders, lists)


class Renderer:
  """GIF (PIL) or MP4/AVI (OpenCV) writer of annotated frames."""

  def __init__(self, path: str, fps: float = DEFAULT_FPS, max_side: int = 640):
    self.path, self.fps, self.max_side = path, fps, max_side
    ext = os.path.splitext(path)[1].lower()
    if ext not in RENDER_EXTENSIONS:
      raise ValueError(f"--render must end in .gif, .mp4 or .avi, got {path!r}")
    self.ext = ext
    self._gif: List = []
    self._writer = None
    self._size = None

  def _small(self, frame):
    h, w = frame.shape[:2]
    s = min(1.0, self.max_side / float(max(h, w)))
    if s >= 1.0:
      return frame
    return np.asarray(Image.fromarray(frame).resize((int(round(w * s)), int(round(h * s))),
                                                    Image.BILINEAR))

  def add(self, frame: np.ndarray) -> None:
    frame = self._small(frame)
    if self.ext == ".gif":
      self._gif.append(Image.fromarray(frame))
      return
    try:
      import cv2  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(f"{self.path}: writing {self.ext} needs OpenCV, which did not import "
                        f"({e}): {OPENCV_REINSTALL} (or render a .gif)") from e
    if self._writer is None:
      self._size = (frame.shape[1], frame.shape[0])
      fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.ext == ".mp4" else "MJPG"))
      self._writer = cv2.VideoWriter(self.path, fourcc, self.fps, self._size)
      if not self._writer.isOpened():
        raise ValueError(f"{self.path}: OpenCV cannot write this video")
    if (frame.shape[1], frame.shape[0]) != self._size:   # frames must keep the first size
      frame = np.asarray(Image.fromarray(frame).resize(self._size, Image.BILINEAR))
    self._writer.write(np.ascontiguousarray(frame[..., ::-1]))

  def close(self) -> None:
    d = os.path.dirname(os.path.abspath(self.path))
    os.makedirs(d, exist_ok=True)
    if self.ext == ".gif":
      if self._gif:
        self._gif[0].save(self.path, save_all=True, append_images=self._gif[1:],
                          duration=int(1000 / self.fps), loop=0)
    elif self._writer is not None:
      self._writer.release()
