"""Annotated videos: frames with the tracked box drawn, written as GIF (PIL) or
MP4 / AVI (OpenCV, the `opencv` extra)."""

from __future__ import annotations

import os
from typing import List

import numpy as np
from PIL import Image, ImageDraw

RENDER_EXTENSIONS = (".gif", ".mp4", ".avi")
OK_COLOR = (0, 255, 0)
LOST_COLOR = (255, 0, 0)


def draw_box(image: np.ndarray, box_xywh, ok: bool = True, width: int = 3) -> np.ndarray:
  """A copy of the frame with the box drawn (green when ok, red when lost); a box
  with a NaN is not drawn."""
  img = Image.fromarray(image)
  x, y, w, h = [float(v) for v in box_xywh]
  if np.all(np.isfinite([x, y, w, h])):
    ImageDraw.Draw(img).rectangle([x, y, x + max(w, 1) - 1, y + max(h, 1) - 1],
                                  outline=OK_COLOR if ok else LOST_COLOR, width=width)
  return np.asarray(img)


class Renderer:
  """GIF (PIL) or MP4/AVI (OpenCV) writer of annotated frames."""

  def __init__(self, path: str, fps: float = 20.0, max_side: int = 640):
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
      import cv2  # optional dependency (the opencv extra)  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(f"{self.path}: writing {self.ext} needs opencv-contrib-python-headless "
                        "(or render a .gif)") from e
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
