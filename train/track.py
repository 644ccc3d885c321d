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

Interactive demo (train/eval/live.py): --select opens the first frame in a
window to draw the object(s) with the mouse (Enter keeps a box, Esc ends the
selection; several boxes track several objects), then shows the tracked video
live with the boxes, a legend, the frame number and the frame rate; `q` stops,
`s` saves the shown frame as a PNG in --save_dir. --input may be a camera
index (`--input 0`). The window needs OpenCV with a GUI (opencv-contrib-python)
and a display; without them --select fails with a message saying which is
missing (runs without --select never open a window).

  python -m train.track --input clip.mp4 --select
  python -m train.track --input 0 --select --output boxes.txt

The frame sources are train/eval/frames.py, the trackers train/eval/trackers.py
and the renderer train/eval/render.py; installed, the command is also `re3-track`.

Output: one `x,y,w,h` line per frame (the first is the initial box) on stdout
or in --output, line N for frame N; --render writes the frames with the box
drawn as a GIF (PIL) or MP4 (OpenCV); the frame rate is printed at the end on
stderr, both for the tracker alone and end to end (decoding included).
--output and --render are written under a temporary name
(`NAME.partial-PID.EXT`) and renamed when tracking ends, so a failed or
interrupted run leaves no partial file (and an earlier file of that name as it
was); such files left by a killed run (PID no longer running) are removed by
the next run with the same --output / --render, with a line each.
--model is a training model_dir, a SavedModel export, a `.tflite` / `.onnx`
step export (model.export --format) or 'default'.

A video frame in the middle that does not decode (the decoder fails on it, or
the container's timestamps skip it) keeps its line: `nan,nan,nan,nan`, and a
warning names the frame numbers; the tracker goes on with the next decoded
frame. A frame of an image folder or list that does not decode is an error.

Errors: a missing or unreadable input, a malformed --box, a bad --render
extension, a frame of a folder that does not decode or whose size differs from
the first frame's, a file that cannot be written (full disk: the flag and the
file named) end the command with one line `train.track: message` and exit 2
(the traceback with --verbose); Ctrl-C ends it with one line and exit 130. A
video that ends before the frame count of its header (truncated, or frames
lost where nothing locates them) gives a warning with both counts; with
--strict it, and lost frames, exit 2 (the boxes written are kept).
"""

from __future__ import annotations

import os

from configs import quiet

quiet.setup()

import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Optional  # noqa: E402

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

from configs import cli as cli_errors  # noqa: E402
from model.tracker import RESET_EVERY, Re3MultiTracker  # noqa: E402
from pipelines.readers import sequences as sequence_readers  # noqa: E402
from train.eval import cli, frames, live, render as render_lib, trackers  # noqa: E402


PROG = "train.track"


def parse_box(text: str) -> np.ndarray:
  try:
    values = [float(v) for v in re.split(r"[,\s]+", text.strip()) if v]
  except ValueError:
    raise ValueError(f"--box must be x,y,w,h numbers, got {text!r}") from None
  if len(values) != 4:
    raise ValueError(f"--box must have 4 values x,y,w,h, got {len(values)}: {text!r}")
  return np.asarray(values, np.float64)


LOST_LINE = "nan,nan,nan,nan"   # the line of a video frame that did not decode


def track(tracker, source: frames.FrameSource, box_xywh, out,
          render: Optional[render_lib.Renderer] = None,
          max_frames: int = 0) -> dict:
  """Runs the tracker, writing a line per frame position to `out`: line N is
  frame N; a video frame that did not decode gets LOST_LINE and the tracker
  goes on with the next decoded frame.

  Returns frames, seconds in the tracker per frame, and the end-to-end time.
  """
  t_start = time.perf_counter()
  times = []
  first_hw = None
  for number, frame in source.positions():
    if max_frames and number > max_frames:
      break
    if frame is None:
      if not times:
        raise ValueError(f"{source.path}: frame {number} does not decode, and tracking starts "
                         "on it (the initial box is its box)")
      out.write(LOST_LINE + "\n")
      continue
    if first_hw is None:
      first_hw = frame.shape[:2]
    elif frame.shape[:2] != first_hw:
      raise ValueError(
          f"{source.path}: frame {number} is {frame.shape[1]}x{frame.shape[0]} but the "
          f"first frame is {first_hw[1]}x{first_hw[0]} (width x height): a tracking session "
          "keeps one frame size; resize the frames to one size")
    t0 = time.perf_counter()
    if not times:
      tracker.init(frame, box_xywh)
      box, ok = np.asarray(box_xywh, np.float64), True
    else:
      ok, box = tracker.update(frame)
    times.append(time.perf_counter() - t0)
    out.write(",".join(f"{v:.2f}" for v in box) + "\n")
    if render is not None:
      render.add(render_lib.annotate(
          frame, [render_lib.Layer(getattr(tracker, "name", "tracker"), box,
                                   render_lib.tracker_color(0), ok)],
          frame_number=number - 1))   # 0-based, as --box and the output lines
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
  """Defined on demand (by run()), not at import: other entry points share
  absl's global flags, and importing several of them must not clash. Tests
  pass their own `flags.FlagValues()`."""
  flags.DEFINE_string("model", "default", "Training model_dir, SavedModel export, or 'default' "
                      "(the pretrained tracker the package ships).", flag_values=flag_values)
  flags.DEFINE_string("input", None, "Sequence folder, frames folder, video file or image list.",
                      flag_values=flag_values)
  flags.DEFINE_string("box", None, "Initial box x,y,w,h (0-based pixels); default: first "
                      "ground-truth row of a benchmark sequence.", flag_values=flag_values)
  flags.DEFINE_enum("kind", None, list(sequence_readers.KINDS), "Benchmark layout of --input "
                    "(default: detected).", flag_values=flag_values)
  flags.DEFINE_string("output", None, "File for the x,y,w,h lines (default: stdout).",
                      flag_values=flag_values)
  flags.DEFINE_string("render", None, "Write an annotated .gif, .mp4 or .avi.",
                      flag_values=flag_values)
  flags.DEFINE_float("render_fps", None, "Frame rate of the rendered video (default: the "
                     "input video's; 20 for frames).",
                     flag_values=flag_values)
  flags.DEFINE_integer("max_frames", 0, "Stop after this many frames (0 = all).",
                       flag_values=flag_values)
  flags.DEFINE_integer("reset_period", RESET_EVERY,
                       "Re3 LSTM reset period (0 = never).", flag_values=flag_values)
  flags.DEFINE_bool("strict", False, "Exit 2 when a video ends before the frame count of its "
                    "header (default: a warning).", flag_values=flag_values)
  flags.DEFINE_bool("select", False, "Draw the object(s) on the first frame in a window and "
                    "show the tracking live (needs a display and OpenCV with a GUI).",
                    flag_values=flag_values)
  flags.DEFINE_string("save_dir", ".", "Where `s` in the --select window saves frames.",
                      flag_values=flag_values)
  cli_errors.define_verbose_flag(flag_values)


def _make_tracker(model: str, reset_period: int):
  """n -> a tracker for n objects: the model's tracker for one, Re3MultiTracker
  (one batched step per frame) for several."""
  def make(n: int):
    if n == 1:
      return trackers.load_tracker(model, reset_period)
    return Re3MultiTracker.load(model, reset_period)
  return make


def select_main(FLAGS, source, display=None) -> dict:  # pylint: disable=invalid-name
  """--select: the live demo (train/eval/live.py); `display` defaults to the
  OpenCV window, whose absence is a one-line error before the model loads."""
  if display is None:
    problem = live.display_problem()
    if problem:
      raise ValueError(problem)
  render = render_lib.Renderer(FLAGS.render, FLAGS.render_fps or source.frame_rate()
                               or render_lib.DEFAULT_FPS) if FLAGS.render else None
  display = display or live.OpenCVWindow()
  out = open(FLAGS.output, "w") if FLAGS.output else sys.stdout
  try:
    result = live.run_live(_make_tracker(FLAGS.model, FLAGS.reset_period), source, display, out,
                           boxes=[parse_box(FLAGS.box)] if FLAGS.box else None,
                           save_dir=FLAGS.save_dir, render=render, max_frames=FLAGS.max_frames)
  finally:
    display.close()
    if FLAGS.output:
      out.close()
    if render is not None:
      render.close()
  print(fps_report(result, render is not None) + f", {result['objects']} object(s)"
        + (", stopped with q" if result["stopped"] else ""), file=sys.stderr)
  return result


def _partial_name(path: str) -> str:
  """A temporary name beside `path` with its extension (writers pick the format by it)."""
  root, ext = os.path.splitext(path)
  return f"{root}.partial-{os.getpid()}{ext}"


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:    # another user's live process
    return True
  return True


def remove_stale_partials(path: str) -> list:
  """Removes `NAME.partial-PID.EXT` files beside `path` (NAME.EXT) that a run
  killed before its end left, those whose PID is no live process on this
  machine (a warning line each); -> the removed paths. A live run's file stays."""
  root, ext = os.path.splitext(path)
  folder = os.path.dirname(os.path.abspath(path))
  pattern = re.compile(re.escape(os.path.basename(root)) + r"\.partial-(\d+)" + re.escape(ext) + "$")
  removed = []
  try:
    names = os.listdir(folder)
  except OSError:
    return removed
  for name in sorted(names):
    m = pattern.match(name)
    if not m or int(m.group(1)) == os.getpid() or _pid_alive(int(m.group(1))):
      continue
    stale = os.path.join(folder, name)
    try:
      os.remove(stale)
    except OSError:
      continue
    removed.append(stale)
    print(f"{PROG}: removed {stale}, left by a run (pid {m.group(1)}) that did not finish",
          file=sys.stderr)
  return removed


def _discard(path: Optional[str]) -> None:
  if path and os.path.exists(path):
    os.remove(path)


def _write_error(flag: str, path: str, error: OSError) -> cli_errors.CommandError:
  reason = f"[Errno {error.errno}] {error.strerror}" if error.strerror else str(error)
  return cli_errors.CommandError(f"{flag} {path}: cannot write it: {reason} (no partial "
                                 "file left)")


class _NamedOutput:
  """The --output (or --render) writer, whose OSError (a full disk, a quota,
  a lost mount) becomes a one-line error naming the flag and its file."""

  def __init__(self, target, flag: str, path: str):
    self._target, self._flag, self._path = target, flag, path

  def _call(self, name, *args):
    try:
      return getattr(self._target, name)(*args)
    except OSError as e:
      raise _write_error(self._flag, self._path, e) from e

  def write(self, text):
    return self._call("write", text)

  def add(self, frame):
    return self._call("add", frame)

  def close(self):
    return self._call("close")


def main(argv, flag_values=None):
  del argv
  FLAGS = flag_values or flags.FLAGS  # pylint: disable=redefined-outer-name,invalid-name
  if not FLAGS.input:
    raise app.UsageError("--input is required")
  if not FLAGS.model:
    raise app.UsageError("--model must name a model_dir, an export or 'default'")
  source = frames.FrameSource(FLAGS.input, FLAGS.kind)
  if FLAGS.select:
    select_main(FLAGS, source)
    return
  if FLAGS.box:
    box = parse_box(FLAGS.box)
  elif source.first_box_xywh is not None:
    box = source.first_box_xywh
  else:
    raise app.UsageError("--box is required (the input has no ground truth)")
  for path in (FLAGS.output, FLAGS.render):
    if path:
      remove_stale_partials(path)
  render_tmp = render = None
  if FLAGS.render:   # checked before the model is loaded
    if os.path.splitext(FLAGS.render)[1].lower() not in render_lib.RENDER_EXTENSIONS:
      raise ValueError(f"--render must end in {', '.join(render_lib.RENDER_EXTENSIONS)}, "
                       f"got {FLAGS.render!r}")
    render_tmp = _partial_name(FLAGS.render)
    render = _NamedOutput(render_lib.Renderer(render_tmp, FLAGS.render_fps or source.frame_rate()
                                              or render_lib.DEFAULT_FPS), "--render", FLAGS.render)
  tracker = trackers.load_tracker(FLAGS.model, FLAGS.reset_period)
  output_tmp = _partial_name(FLAGS.output) if FLAGS.output else None
  done = False
  try:
    if output_tmp:
      try:
        out = _NamedOutput(open(output_tmp, "w"), "--output", FLAGS.output)
      except OSError as e:
        raise _write_error("--output", FLAGS.output, e) from e
    else:
      out = sys.stdout
    try:
      result = track(tracker, source, box, out, render, FLAGS.max_frames)
    finally:
      try:
        if output_tmp:
          out.close()
      finally:
        if render is not None:
          render.close()
    for tmp, final in ((output_tmp, FLAGS.output), (render_tmp, FLAGS.render)):
      if tmp and os.path.exists(tmp):
        os.replace(tmp, final)
    done = True
  finally:
    if not done:
      _discard(output_tmp)
      _discard(render_tmp)
  written = [final for final in (FLAGS.output, FLAGS.render) if final]
  runtime = (f" ({tracker.runtime}, {tracker.precision})"
             if hasattr(tracker, "runtime") and hasattr(tracker, "precision") else "")
  print(fps_report(result, render is not None).replace("tracked", f"{FLAGS.model}{runtime}: tracked", 1)
        + (f"; wrote {' and '.join(written)}" if written else ""), file=sys.stderr)
  problems = []
  if source.lost_frames:
    shown = ", ".join(map(str, source.lost_frames[:10])) + (
        ", ..." if len(source.lost_frames) > 10 else "")
    problems.append(
        f"--input {FLAGS.input}: {len(source.lost_frames)} frame(s) in the middle of the video "
        f"could not be decoded (frame {shown}); their lines are {LOST_LINE}, so line N is "
        "still frame N")
  if source.truncated:
    problems.append(
        f"--input {FLAGS.input}: the video header says {source.expected_frames} frames "
        f"but {source.frames_read} could be decoded (truncated file or a corrupt frame); "
        f"the boxes cover the {source.frames_read} decoded frames")
  for message in problems:
    if FLAGS.strict:
      raise ValueError(message + " (--strict)")
    print(f"train.track: warning: {message}", file=sys.stderr)


def run(argv=None):
  """Console-script entry point (`re3-track`); --help exits 0."""
  cli.run(main, define_flags, __doc__, "input", argv, prog=PROG)


if __name__ == "__main__":
  run()
