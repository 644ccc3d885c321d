"""Tracks one object through a video from the command line.

  python -m train.track --model runs/re3_small --input ../shared/data/tracking/otb/Deer
  python -m train.track --model exports/re3 --input clip.mp4 --box 120,80,40,60 \\
      --output boxes.txt --render tracked.gif

--input is one of
  * a benchmark sequence folder (OTB, VOT, LaSOT, GOT-10k; --kind or detected
    from its ground-truth files) or a UAV123 annotation file (--kind uav123):
    the initial box is its first valid ground-truth row unless --box is given;
  * a folder of frames (image files, natural sort order of names);
  * a video file (.mp4, .avi, .mov, .mkv, .webm, .m4v; needs OpenCV);
  * an image-list file: one image path per line, relative to the list's folder.
--box x,y,w,h is the initial box in 0-based pixels (OpenCV convention).

Output: one `x,y,w,h` line per frame (the first is the initial box) on stdout
or in --output; --render writes the frames with the box drawn as a GIF (PIL)
or MP4 (OpenCV); the frame rate is printed at the end on stderr, both for the
tracker alone and end to end (decoding included).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Iterator, List, Optional  # noqa: E402

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SEQUENCE_KINDS = ("otb", "vot", "lasot", "uav123", "got10k")


def _natural_key(name: str):
  return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def detect_kind(folder: str) -> Optional[str]:
  """Benchmark layout of a sequence folder from its ground-truth files, else None."""
  names = set(os.listdir(folder))
  if any(re.match(r"^groundtruth_rect(\.\d+)?\.txt$", n) for n in names):
    return "otb"
  if "groundtruth.txt" in names:
    if "full_occlusion.txt" in names or "out_of_view.txt" in names:
      return "lasot"
    if "absence.label" in names or "cover.label" in names:
      return "got10k"
    return "vot"
  return None


class FrameSource:
  """Frames of the input, decoded lazily, plus the ground-truth box if any."""

  def __init__(self, path: str, kind: Optional[str] = None):
    self.path = path
    self.first_box_xywh: Optional[np.ndarray] = None
    self._paths: Optional[List[str]] = None
    self._video = None
    if kind is not None and kind not in SEQUENCE_KINDS:
      raise ValueError(f"--kind must be one of {SEQUENCE_KINDS}, got {kind!r}")
    if not os.path.exists(path):
      raise ValueError(f"--input {path!r} does not exist")
    if os.path.isdir(path) or kind == "uav123":
      kind = kind or (detect_kind(path) if os.path.isdir(path) else None)
      if kind:
        self._from_sequence(kind, path)
      else:
        names = sorted((n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS)
                        and not n.startswith(".")), key=_natural_key)
        if not names:
          raise ValueError(f"--input {path}: no image files and no ground truth found")
        self._paths = [os.path.join(path, n) for n in names]
    elif path.lower().endswith(VIDEO_EXTENSIONS):
      self._video = path
    else:
      self._paths = self._read_list(path)

  def _from_sequence(self, kind: str, path: str) -> None:
    from model import geometry  # pylint: disable=g-import-not-at-top
    from pipelines.readers.sequences import read_sequence  # pylint: disable=g-import-not-at-top
    seq = read_sequence(kind, path)
    self._paths = list(seq.frame_paths)
    valid = np.flatnonzero(np.all(np.isfinite(seq.boxes_xyxy), axis=1))
    if valid.size:
      first = int(valid[0])
      self._paths = self._paths[first:]     # tracking starts where the target is first given
      self.first_box_xywh = geometry.xyxy_to_xywh(seq.boxes_xyxy[first])

  @staticmethod
  def _read_list(path: str) -> List[str]:
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

  def __iter__(self) -> Iterator[np.ndarray]:
    if self._paths is not None:
      from pipelines.images import load_image_rgb  # pylint: disable=g-import-not-at-top
      for p in self._paths:
        yield load_image_rgb(p)
      return
    try:
      import cv2  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError("reading video files needs opencv-contrib-python-headless") from e
    cap = cv2.VideoCapture(self._video)
    if not cap.isOpened():
      raise ValueError(f"{self._video}: cannot open video")
    try:
      n = 0
      while True:
        ok, frame = cap.read()
        if not ok:
          break
        n += 1
        yield np.ascontiguousarray(frame[..., ::-1])
      if n == 0:
        raise ValueError(f"{self._video}: no frames could be decoded")
    finally:
      cap.release()


def parse_box(text: str) -> np.ndarray:
  try:
    values = [float(v) for v in re.split(r"[,\s]+", text.strip()) if v]
  except ValueError:
    raise ValueError(f"--box must be x,y,w,h numbers, got {text!r}") from None
  if len(values) != 4:
    raise ValueError(f"--box must have 4 values x,y,w,h, got {len(values)}: {text!r}")
  return np.asarray(values, np.float64)


def draw_box(image: np.ndarray, box_xywh, ok: bool = True, width: int = 3) -> np.ndarray:
  """A copy of the frame with the box drawn (green when ok, red when lost)."""
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top
  img = Image.fromarray(image)
  x, y, w, h = [float(v) for v in box_xywh]
  if np.all(np.isfinite([x, y, w, h])):
    ImageDraw.Draw(img).rectangle([x, y, x + max(w, 1) - 1, y + max(h, 1) - 1],
                                  outline=(0, 255, 0) if ok else (255, 0, 0), width=width)
  return np.asarray(img)


class Renderer:
  """GIF (PIL) or MP4/AVI (OpenCV) writer of annotated frames."""

  def __init__(self, path: str, fps: float = 20.0, max_side: int = 640):
    self.path, self.fps, self.max_side = path, fps, max_side
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".gif", ".mp4", ".avi"):
      raise ValueError(f"--render must end in .gif, .mp4 or .avi, got {path!r}")
    self.ext = ext
    self._gif: List = []
    self._writer = None

  def _small(self, frame):
    h, w = frame.shape[:2]
    s = min(1.0, self.max_side / float(max(h, w)))
    if s >= 1.0:
      return frame
    from PIL import Image  # pylint: disable=g-import-not-at-top
    return np.asarray(Image.fromarray(frame).resize((int(round(w * s)), int(round(h * s))),
                                                    Image.BILINEAR))

  def add(self, frame: np.ndarray) -> None:
    frame = self._small(frame)
    if self.ext == ".gif":
      from PIL import Image  # pylint: disable=g-import-not-at-top
      self._gif.append(Image.fromarray(frame))
      return
    import cv2  # pylint: disable=g-import-not-at-top
    if self._writer is None:
      self._size = (frame.shape[1], frame.shape[0])
      fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.ext == ".mp4" else "MJPG"))
      self._writer = cv2.VideoWriter(self.path, fourcc, self.fps, self._size)
      if not self._writer.isOpened():
        raise ValueError(f"{self.path}: OpenCV cannot write this video")
    if (frame.shape[1], frame.shape[0]) != self._size:   # frames must keep the first size
      from PIL import Image  # pylint: disable=g-import-not-at-top
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


def load_tracker(model: str, reset_period: int):
  """Re3Tracker or RLAgentTracker from a SavedModel export or a training model_dir."""
  from model import tracker as tracking  # pylint: disable=g-import-not-at-top
  task, graph = tracking.load_graph(model)
  if task == "rl_agent":
    return tracking.RLAgentTracker(graph)
  return tracking.Re3Tracker(graph, reset_period)


def track(tracker, source: FrameSource, box_xywh, out, render: Optional[Renderer] = None,
          max_frames: int = 0) -> dict:
  """Runs the tracker, writing a line per frame to `out`.

  Returns frames, seconds in the tracker per frame, and the end-to-end time.
  """
  t_start = time.perf_counter()
  times = []
  for frame in source:
    if max_frames and len(times) >= max_frames:
      break
    t0 = time.perf_counter()
    if not times:
      tracker.init(frame, box_xywh)
      box, ok = np.asarray(box_xywh, np.float64), True
    else:
      ok, box = tracker.update(frame)
    times.append(time.perf_counter() - t0)
    out.write(",".join(f"{v:.2f}" for v in box) + "\n")
    if render is not None:
      render.add(draw_box(frame, box, ok))
  if not times:
    raise ValueError(f"{source.path}: no frames")
  return {"frames": len(times), "tracker_s": np.asarray(times),
          "total_s": time.perf_counter() - t_start}


def fps_report(result: dict, rendered: bool = False) -> str:
  """Frame rates: tracker only (after the first update, whose graph tracing is a
  one-off cost), tracker only over all frames, and end to end."""
  n, t = result["frames"], result["tracker_s"]
  parts = [f"tracked {n} frames"]
  if n > 2:
    parts.append(f"{(n - 2) / max(np.sum(t[2:]), 1e-9):.1f} FPS tracker only "
                 "(frames 3.., after graph tracing)")
  parts.append(f"{n / max(np.sum(t), 1e-9):.1f} FPS tracker only (all frames)")
  parts.append(f"{n / result['total_s']:.1f} FPS end to end (decoding"
               f"{' and rendering' if rendered else ''} included)")
  return ", ".join(parts)


def define_flags(flag_values=flags.FLAGS):
  """Defined on demand (by __main__), not at import: other entry points share
  absl's global flags, and importing several of them must not clash. Tests
  pass their own `flags.FlagValues()`."""
  flags.DEFINE_string("model", None, "Training model_dir or SavedModel export.",
                      flag_values=flag_values)
  flags.DEFINE_string("input", None, "Sequence folder, frames folder, video file or image list.",
                      flag_values=flag_values)
  flags.DEFINE_string("box", None, "Initial box x,y,w,h (0-based pixels); default: first "
                      "ground-truth row of a benchmark sequence.", flag_values=flag_values)
  flags.DEFINE_enum("kind", None, list(SEQUENCE_KINDS), "Benchmark layout of --input "
                    "(default: detected).", flag_values=flag_values)
  flags.DEFINE_string("output", None, "File for the x,y,w,h lines (default: stdout).",
                      flag_values=flag_values)
  flags.DEFINE_string("render", None, "Write an annotated .gif, .mp4 or .avi.",
                      flag_values=flag_values)
  flags.DEFINE_float("render_fps", 20.0, "Frame rate of the rendered video.",
                     flag_values=flag_values)
  flags.DEFINE_integer("max_frames", 0, "Stop after this many frames (0 = all).",
                       flag_values=flag_values)
  flags.DEFINE_integer("reset_period", 32, "Re3 LSTM reset period (0 = never).",
                       flag_values=flag_values)


def main(argv, flag_values=None):
  del argv
  FLAGS = flag_values or flags.FLAGS  # pylint: disable=redefined-outer-name,invalid-name
  if not FLAGS.model or not FLAGS.input:
    raise app.UsageError("--model and --input are required")
  source = FrameSource(FLAGS.input, FLAGS.kind)
  if FLAGS.box:
    box = parse_box(FLAGS.box)
  elif source.first_box_xywh is not None:
    box = source.first_box_xywh
  else:
    raise app.UsageError("--box is required (the input has no ground truth)")
  tracker = load_tracker(FLAGS.model, FLAGS.reset_period)
  render = Renderer(FLAGS.render, FLAGS.render_fps) if FLAGS.render else None
  out = open(FLAGS.output, "w") if FLAGS.output else sys.stdout
  try:
    result = track(tracker, source, box, out, render, FLAGS.max_frames)
  finally:
    if FLAGS.output:
      out.close()
    if render is not None:
      render.close()
  print(fps_report(result, render is not None), file=sys.stderr)


if __name__ == "__main__":
  define_flags()
  app.run(main)
