"""The interactive demo (`train.track --select`, train/eval/live.py) and the
annotated frames (train/eval/render.py): legend, frame number, frame rate.

Everything but the window runs with a scripted display (selection, keys `s`
and `q`, several objects). The window itself (OpenCV's imshow / waitKey, a
real window on a virtual X display) runs under Xvfb with the selection
scripted, where `xvfb-run` and an OpenCV with a GUI are available (.ci/run
installs both where it can: xvfb needs root, the GUI OpenCV goes to
$RE3_GUI_OPENCV, default ~/.cache/re3-tf/gui-opencv). Where they are not, that
test checks instead that --select fails with the one-line message naming what
is missing, which is the behaviour such a machine gets.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from PIL import Image

from configs import cli as cli_errors
from model.tracker import Re3MultiTracker, Re3Tracker
from train import track
from train.eval import frames, live, render
from tests import tracking_utils as tu

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUI_OPENCV = os.environ.get("RE3_GUI_OPENCV",
                            os.path.expanduser("~/.cache/re3-tf/gui-opencv"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  net = tu.tiny_re3(seed=4)
  net.head.kernel.assign(net.head.kernel * 0.1)
  net.head.bias.assign(np.array([2.5, 2.5, 7.5, 7.5], np.float32))
  return tu.make_model_dir(str(tmp_path_factory.mktemp("m") / "re3"), net, "re3", sub="")


def _deer(shared_dir):
  return str(shared_dir / "data" / "tracking" / "otb" / "Deer")


class ScriptedDisplay:
  """select() returns the given boxes; show() records frames and returns the
  scripted key per frame (-1: none)."""

  def __init__(self, boxes, keys=()):
    self.boxes, self.keys, self.shown, self.closed = boxes, list(keys), [], False

  def select(self, frame):
    self.selected_on = frame
    return self.boxes

  def show(self, frame):
    self.shown.append(frame)
    return self.keys[len(self.shown) - 1] if len(self.shown) <= len(self.keys) else -1

  def close(self):
    self.closed = True


def _flags(argv):
  fv = flags.FlagValues()
  track.define_flags(fv)
  fv(["track"] + argv)
  return fv


def test_select_tracks_saves_and_stops_on_keys(shared_dir, model_dir, tmp_path):
  box = (306.0, 5.0, 95.0, 65.0)
  fv = _flags([f"--model={model_dir}", f"--input={_deer(shared_dir)}", "--select",
               f"--output={tmp_path / 'boxes.txt'}", f"--save_dir={tmp_path / 'saved'}"])
  display = ScriptedDisplay([box], keys=[-1, -1, ord("s"), -1, ord("q")])
  result = track.select_main(fv, frames.FrameSource(_deer(shared_dir)), display)
  assert result["stopped"] and result["frames"] == 5 and result["objects"] == 1
  assert display.closed and len(display.shown) == 5
  lines = (tmp_path / "boxes.txt").read_text().splitlines()
  assert len(lines) == 5 and lines[0] == "306.00,5.00,95.00,65.00"
  # the same boxes as the non-interactive command's tracker on the same frames
  ref = Re3Tracker.load(model_dir)
  src = list(frames.FrameSource(_deer(shared_dir)))[:5]
  ref.init(src[0], box)
  for line, img in zip(lines[1:], src[1:]):
    np.testing.assert_allclose([float(v) for v in line.split(",")], ref.update(img)[1], atol=6e-3)  # 2 decimals
  (saved,) = result["saved"]
  assert saved.endswith("re3_frame_000002.png")   # 0-based, as the frame labels
  np.testing.assert_array_equal(np.asarray(Image.open(saved)), display.shown[2])


def test_select_several_objects(shared_dir, model_dir, tmp_path):
  boxes = [(306.0, 5.0, 95.0, 65.0), (100.0, 150.0, 60.0, 50.0)]
  fv = _flags([f"--model={model_dir}", f"--input={_deer(shared_dir)}", "--select",
               "--max_frames=4", f"--output={tmp_path / 'boxes.txt'}",
               f"--render={tmp_path / 'live.gif'}"])
  display = ScriptedDisplay(boxes)
  result = track.select_main(fv, frames.FrameSource(_deer(shared_dir)), display)
  assert result["objects"] == 2 and result["frames"] == 4 and not result["stopped"]
  rows = [[list(map(float, b.split(","))) for b in line.split(";")]
          for line in (tmp_path / "boxes.txt").read_text().splitlines()]
  assert np.asarray(rows).shape == (4, 2, 4)
  np.testing.assert_allclose(rows[0], boxes)
  multi = Re3MultiTracker.load(model_dir)
  src = list(frames.FrameSource(_deer(shared_dir)))[:4]
  multi.add_many(src[0], dict(enumerate(boxes)))
  for row, img in zip(rows[1:], src[1:]):
    got = multi.update(img)
    np.testing.assert_allclose(row, [got[0][1], got[1][1]], atol=6e-3)   # 2 decimals
  gif = Image.open(tmp_path / "live.gif")
  assert gif.n_frames == 4
  # legend rows in the two objects' colours
  first = np.asarray(display.shown[0])
  assert _has_color(first[:60, :40], render.tracker_color(0))
  assert _has_color(first[:60, :40], render.tracker_color(1))


def test_select_without_objects_and_headless_errors(shared_dir, model_dir, monkeypatch, capsys):
  fv = _flags([f"--model={model_dir}", f"--input={_deer(shared_dir)}", "--select"])
  with pytest.raises(ValueError, match="no object selected"):
    track.select_main(fv, frames.FrameSource(_deer(shared_dir)), ScriptedDisplay([]))
  # no display: one line, exit 2, nothing loaded or opened
  monkeypatch.delenv("DISPLAY", raising=False)
  monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
  monkeypatch.setattr(live, "_cv2", lambda: _FakeCV2("QT5"))
  assert cli_errors.call("train.track", track.main, ["track"], fv) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "no display (DISPLAY is not set)" in err[0] and "xvfb-run" in err[0]


class _FakeCV2:
  def __init__(self, gui):
    self.gui = gui

  def getBuildInformation(self):  # pylint: disable=invalid-name
    return f"General configuration\n  GUI:                           {self.gui}\n"


def test_display_problem_names_what_is_missing(monkeypatch):
  monkeypatch.setattr(live, "_cv2", lambda: None)
  assert "pip install opencv-contrib-python" in live.display_problem({}, "linux")
  monkeypatch.setattr(live, "_cv2", lambda: _FakeCV2("NONE"))
  assert "-headless" in live.display_problem({"DISPLAY": ":0"}, "linux")
  monkeypatch.setattr(live, "_cv2", lambda: _FakeCV2("QT5"))
  assert "DISPLAY is not set" in live.display_problem({}, "linux")
  assert live.display_problem({"DISPLAY": ":0"}, "linux") is None
  assert live.display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
  assert live.display_problem({}, "darwin") is None


def test_camera_index_input():
  src = frames.FrameSource("7")                       # no file named 7 here
  assert src.camera == 7
  with pytest.raises(ValueError, match="camera 7 cannot be opened"):
    next(iter(src))


def _has_color(region, color, tol=10):
  return bool(np.any(np.all(np.abs(region.astype(int) - color) <= tol, axis=-1)))


def test_annotated_frame_has_legend_and_frame_number():
  img = np.full([240, 320, 3], 128, np.uint8)
  layers = [render.Layer(render.GT_LABEL, (100, 100, 40, 40), render.GT_COLOR),
            render.Layer("re3", (110, 105, 40, 40), render.tracker_color(0)),
            render.Layer("kcf", (90, 95, 40, 40), render.tracker_color(1), ok=False)]
  out = render.annotate(img, layers, frame_number=17, extra_text="30.0 FPS")
  assert out.shape == img.shape and np.array_equal(img, np.full_like(img, 128))   # a copy
  legend = out[:60, :30]
  for color in (render.GT_COLOR, render.tracker_color(0), render.LOST_COLOR):
    assert _has_color(legend, color), color
  assert not _has_color(legend, render.tracker_color(1))   # lost: drawn red, said "(lost)"
  # the frame-number panel (top right): dark background with white text
  corner = out[4:24, -80:-4]
  assert (corner == 0).all(axis=-1).mean() > 0.4 and (corner > 200).all(axis=-1).any()
  no_number = render.annotate(img, layers, legend=True)
  assert (no_number[4:24, -80:-4] == 128).all()
  bare = render.annotate(img, layers[:1], legend=False)
  assert (bare[:60, :30] == 128).all()                # no legend, no panel


def test_track_command_render_has_legend_and_frame_number(shared_dir, model_dir, tmp_path):
  fv = _flags([f"--model={model_dir}", f"--input={_deer(shared_dir)}", "--max_frames=3",
               f"--output={tmp_path / 'b.txt'}", f"--render={tmp_path / 'r.gif'}"])
  track.main([], fv)
  gif = Image.open(tmp_path / "r.gif")
  frames_ = []
  for i in range(gif.n_frames):
    gif.seek(i)
    frames_.append(np.asarray(gif.convert("RGB")))
  assert len(frames_) == 3
  assert _has_color(frames_[0][:40, :30], render.tracker_color(0), tol=70)  # GIF palette
  assert not np.array_equal(frames_[0][:24, -90:], frames_[1][:24, -90:])   # frame 1, frame 2


def test_render_keeps_the_input_frame_rate_and_labels_frames_from_0(shared_dir, model_dir,
                                                                   tmp_path, monkeypatch, capsys):
  import cv2  # pylint: disable=g-import-not-at-top  # a core dependency
  imgs = list(frames.FrameSource(_deer(shared_dir)))[:4]
  video = str(tmp_path / "in.mp4")
  writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 25.0,
                           (imgs[0].shape[1], imgs[0].shape[0]))
  for img in imgs:
    writer.write(img[..., ::-1])
  writer.release()
  numbers = []
  annotate = render.annotate
  monkeypatch.setattr(render, "annotate",
                      lambda *a, **k: numbers.append(k.get("frame_number")) or annotate(*a, **k))
  out = tmp_path / "r.mp4"
  track.main([], _flags([f"--model={model_dir}", f"--input={video}", "--box=306,5,95,65",
                         f"--output={tmp_path / 'b.txt'}", f"--render={out}"]))
  assert f"; wrote {tmp_path / 'b.txt'} and {out}" in capsys.readouterr().err   # says where
  cap = cv2.VideoCapture(str(out))
  assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)       # not the old fixed 20
  assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
  assert numbers == [0, 1, 2, 3]      # as line i + 1 of --output and 0-based --box pixels
  # frames without a rate of their own keep the default; --render_fps still wins
  assert frames.FrameSource(_deer(shared_dir)).frame_rate() is None
  track.main([], _flags([f"--model={model_dir}", f"--input={video}", "--box=306,5,95,65",
                         "--render_fps=10", f"--output={tmp_path / 'b.txt'}", f"--render={out}"]))
  assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)


def _gui_opencv_env():
  """Environment whose Python imports an OpenCV with a GUI, or None."""
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [p for p in (GUI_OPENCV if os.path.isdir(GUI_OPENCV) else "", REPO,
                   os.environ.get("PYTHONPATH", "")) if p]))
  probe = subprocess.run([sys.executable, "-c", "import cv2, sys; from train.eval import live; "
                          "sys.exit(0 if live.opencv_has_gui(cv2) else 3)"],
                         env=env, capture_output=True, timeout=120)
  return env if probe.returncode == 0 else None


_WINDOW_SCRIPT = r"""
import sys
import numpy as np
from absl import flags
from train import track
from train.eval import frames, live

class Scripted(live.OpenCVWindow):
  def select(self, frame):          # the person's drag, scripted; the window is real
    self.cv2.imshow(self.title, self._bgr(frame))
    self.cv2.waitKey(1)
    return [np.array([306.0, 5.0, 95.0, 65.0])]

  def show(self, frame):
    key = super().show(frame)
    visible.append(self.cv2.getWindowProperty(self.title, self.cv2.WND_PROP_VISIBLE))
    return key

visible = []

fv = flags.FlagValues()
track.define_flags(fv)
fv(["track", "--model", sys.argv[1], "--input", sys.argv[2], "--select", "--max_frames", "4",
    "--output", sys.argv[3]])
win = Scripted()
result = track.select_main(fv, frames.FrameSource(sys.argv[2]), win)
print("window-ok", result["frames"], len(visible), min(visible) > 0)
"""


@pytest.mark.slow
def test_window_under_xvfb(shared_dir, model_dir, tmp_path):
  xvfb = shutil.which("xvfb-run")
  env = _gui_opencv_env() if xvfb else None
  if env is None:
    # No virtual display or no GUI OpenCV on this machine: --select must say so.
    problem = live.display_problem()
    assert problem is not None and "--select" in problem
    return
  env.pop("DISPLAY", None)
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  script = tmp_path / "window.py"
  script.write_text(_WINDOW_SCRIPT)
  out = subprocess.run([xvfb, "-a", sys.executable, str(script), model_dir, _deer(shared_dir),
                        str(tmp_path / "boxes.txt")], env=env, capture_output=True, text=True,
                       timeout=300, cwd=REPO)
  assert out.returncode == 0, out.stdout + out.stderr
  assert "window-ok 4 4 True" in out.stdout, out.stdout + out.stderr
  assert len((tmp_path / "boxes.txt").read_text().splitlines()) == 4
