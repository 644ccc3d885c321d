"""Frame sources of the track command: what `--input` can be.

  * a benchmark sequence folder (OTB, VOT, LaSOT, GOT-10k; a given kind or one
    detected from its ground-truth files) or a UAV123 annotation file (kind
    uav123), read by pipelines.readers.sequences: tracking starts at its first
    valid ground-truth row, whose box is `first_box_xywh`;
  * a folder of frames (image files, natural sort order of names);
  * a video file (VIDEO_EXTENSIONS; needs OpenCV, the `opencv` extra);
  * an image-list file: one image path per line, relative to the list's folder
    (blank lines and `#` comments skipped);
  * a camera: its OpenCV index as a number (`0`; when no file of that name
    exists), read until the consumer stops.

Frames are decoded lazily, one at a time, as HxWx3 uint8 RGB. A video keeps
the frame count its header promises (`expected_frames`) and the count decoded
(`frames_read`). A frame in the middle of a video file that does not decode
(OpenCV's read fails before the header's count) or that the container's
timestamps skip is a lost frame: `positions()` yields `(number, None)` at its
place, so what follows keeps its frame number, and `lost_frames` lists the
1-based numbers (iterating the source yields the decoded frames only). Frames
missing at the end (a truncated file) are not lost frames: `truncated` says so
once the video has been read to its end. A container whose decoder drops a
frame without an error or a timestamp gap (e.g. an AVI chunk with a damaged
header) cannot be located: it shows only as `truncated`.
"""

from __future__ import annotations

import os
import re
from typing import Iterator, List, Optional, Tuple

import numpy as np

from model import geometry
from pipelines.images import load_image_rgb
from pipelines.readers import fs
from pipelines.readers import sequences as sequence_readers

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")

# OpenCV is a dependency of the package (opencv-contrib-python-headless: video
# files, the contrib trackers); when cv2 does not import, another OpenCV wheel
# (e.g. opencv-python, pulled by the vot extra) replaced or broke it.
OPENCV_REINSTALL = "pip install --force-reinstall --no-deps opencv-contrib-python-headless"


def natural_key(name: str):
  """Sort key that orders `frame2` before `frame10`."""
  return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def read_image_list(path: str) -> List[str]:
  """Image paths of an image-list file; each must exist."""
  base = os.path.dirname(os.path.abspath(path))
  out = []
  with open(path) as f:
    for i, line in enumerate(f, start=1):
      text = line.strip()
      if not text or text.startswith("#"):
        continue
      p = text if os.path.isabs(text) else os.path.join(base, text)
      if not os.path.isfile(p):
        raise ValueError(f"{path}:{i}: image {text!r} not found")
      out.append(p)
  if not out:
    raise ValueError(f"{path}: image list is empty")
  return out


class FrameSource:
  """Frames of the input, decoded lazily, plus the ground-truth box if any."""

  def __init__(self, path: str, kind: Optional[str] = None):
    self.path = path
    self.first_box_xywh: Optional[np.ndarray] = None
    self._paths: Optional[List[str]] = None
    self._video = None
    self.expected_frames: Optional[int] = None   # a video header's frame count
    self.frames_read = 0                         # frames decoded by the last pass
    self.positions_read = 0                      # frame positions covered (decoded + lost)
    self.lost_frames: List[int] = []             # 1-based numbers of lost video frames
    self.read_to_end = False
    self.camera: Optional[int] = None
    if path.strip().isdigit() and not os.path.exists(path):
      self.camera = int(path)
      return
    if kind is not None and kind not in sequence_readers.KINDS:
      raise ValueError(f"--kind must be one of {sequence_readers.KINDS}, got {kind!r}")
    if not os.path.exists(path):
      raise ValueError(f"--input {path!r} does not exist")
    if os.path.isdir(path) or kind == "uav123":
      kind = kind or (sequence_readers.detect_kind(path) if os.path.isdir(path) else None)
      if kind:
        self._from_sequence(kind, path)
      else:
        names = sorted((n for n in os.listdir(path) if fs.is_image_file(n)), key=natural_key)
        if not names:
          raise ValueError(f"--input {path}: no image files and no ground truth found")
        self._paths = [os.path.join(path, n) for n in names]
    elif path.lower().endswith(VIDEO_EXTENSIONS):
      self._video = path
    else:
      self._paths = read_image_list(path)

  def _from_sequence(self, kind: str, path: str) -> None:
    seq = sequence_readers.read_sequence(kind, path)
    self._paths = list(seq.frame_paths)
    valid = np.flatnonzero(np.all(np.isfinite(seq.boxes_xyxy), axis=1))
    if valid.size:
      first = int(valid[0])
      self._paths = self._paths[first:]     # tracking starts where the target is first given
      self.first_box_xywh = geometry.xyxy_to_xywh(seq.boxes_xyxy[first])

  def frame_rate(self) -> Optional[float]:
    """The video file's frame rate from its header; None for frames, image
    lists, cameras, and a header without one."""
    if self._video is None:
      return None
    try:
      import cv2  # pylint: disable=g-import-not-at-top
    except ImportError:
      return None                    # reading the frames says what is missing
    cap = cv2.VideoCapture(self._video)
    try:
      fps = float(cap.get(cv2.CAP_PROP_FPS) or 0) if cap.isOpened() else 0.0
    finally:
      cap.release()
    return fps if np.isfinite(fps) and 0 < fps < 1000 else None

  @property
  def truncated(self) -> bool:
    """True when a video read to its end gave fewer frames than its header says."""
    return bool(self.read_to_end and self.expected_frames
                and self.positions_read < self.expected_frames)

  def __iter__(self) -> Iterator[np.ndarray]:
    for _, frame in self.positions():
      if frame is not None:
        yield frame

  def positions(self) -> Iterator[Tuple[int, Optional[np.ndarray]]]:
    """(1-based frame number, frame) in order; the frame is None where a video
    frame was lost (see the module docstring)."""
    self.frames_read, self.positions_read, self.read_to_end = 0, 0, False
    self.lost_frames = []
    if self._paths is not None:
      for p in self._paths:
        frame = load_image_rgb(p)
        self.frames_read += 1
        self.positions_read += 1
        yield self.positions_read, frame
      self.read_to_end = True
      return
    if self.camera is not None:
      for frame in self._camera_frames():
        self.positions_read += 1
        yield self.positions_read, frame
      return
    yield from self._video_frames()

  def _camera_frames(self) -> Iterator[np.ndarray]:
    try:
      import cv2  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(f"reading a camera needs OpenCV, which did not import ({e}): "
                        f"{OPENCV_REINSTALL}") from e
    cap = cv2.VideoCapture(self.camera)
    if not cap.isOpened():
      raise ValueError(f"--input {self.path}: camera {self.camera} cannot be opened (no such "
                       "camera, no permission, or in use)")
    try:
      yield from self._decoded(cap)
      if self.frames_read == 0:
        raise ValueError(f"--input {self.path}: camera {self.camera} gave no frame")
    finally:
      cap.release()

  def _decoded(self, cap) -> Iterator[np.ndarray]:
    """RGB frames of an opened cv2.VideoCapture until it ends, counted in frames_read."""
    while True:
      ok, frame = cap.read()
      if not ok:
        return
      self.frames_read += 1
      yield np.ascontiguousarray(frame[..., ::-1])

  def _video_frames(self) -> Iterator[np.ndarray]:
    try:
      import cv2  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(f"reading video files needs OpenCV, which did not import ({e}): "
                        f"{OPENCV_REINSTALL}") from e
    path = self._video
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
      raise ValueError(f"--input {path}: cannot open the video (unreadable, or not a video "
                       "OpenCV can decode)")
    try:
      count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
      self.expected_frames = count if count > 0 else None
      yield from self.video_positions(cap, cv2.CAP_PROP_PTS)
      if self.frames_read == 0:
        raise ValueError(f"--input {path}: no frame of the video could be decoded")
      self.read_to_end = True
    finally:
      cap.release()

  def video_positions(self, cap, pts_prop) -> Iterator[Tuple[int, Optional[np.ndarray]]]:
    """(1-based frame number, RGB frame or None) of an opened video file
    (`cap.read()`, `cap.get(pts_prop)`: OpenCV's presentation timestamp in
    frames), counted in frames_read / positions_read / lost_frames.

    A failed read before the header's frame count is a frame that does not
    decode: reading goes on, and that position is lost. A decoded frame whose
    timestamp (relative to the first frame's, whole frames) is past the next
    position marks the skipped positions lost. Timestamps are trusted only
    while they are whole numbers that increase and stay within the header's
    count (a variable-frame-rate file falls back to counting reads; one whose
    whole-frame timestamps jump early, before they pass the count, would have
    the skipped positions marked lost).
    """
    expected = self.expected_frames
    failures = 0          # failed reads since the last decoded frame
    pts_offset = None     # first frame's timestamp minus its position
    use_pts = True
    while True:
      ok, frame = cap.read()
      if not ok:
        if expected and self.positions_read + failures + 1 < expected:
          failures += 1
          continue
        break
      position = self.positions_read + failures          # 0-based, by counting reads
      if use_pts:
        pts = cap.get(pts_prop)
        if pts_offset is None and pts is not None and pts >= 0:
          pts_offset = pts - position
        by_pts = None if pts_offset is None else pts - pts_offset
        if (by_pts is None or abs(by_pts - round(by_pts)) > 1e-3
            or round(by_pts) < self.positions_read
            or (expected and round(by_pts) >= expected)):
          use_pts = False
        else:
          position = int(round(by_pts))
      while self.positions_read < position:
        self.positions_read += 1
        self.lost_frames.append(self.positions_read)
        yield self.positions_read, None
      failures = 0
      self.frames_read += 1
      self.positions_read += 1
      yield self.positions_read, np.ascontiguousarray(frame[..., ::-1])
