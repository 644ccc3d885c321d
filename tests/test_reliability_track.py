"""Tracking, export and evaluation faults (issue 12): frames that change size,
truncated videos, a refused init on a running tracker, and the command lines'
one-line errors (exit 2, the culprit named, no traceback unless --verbose,
nothing valid lost)."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from absl import flags
from PIL import Image

from configs import cli as cli_errors
from model import export
from model.tracker import Re3MultiTracker, Re3Tracker
from train import evaluate, track
from train.eval import cli as eval_cli, datasets, frames, trackers as tracker_lib
from tests import tracking_utils as tu
from tests.train_helpers import REPO, env


@pytest.fixture(scope="module")
def net():
  n = tu.tiny_re3(seed=3)
  tu.set_head(n, (3.5, 2.5, 8.5, 7.5))    # 0.2 w to the right per frame
  return n


@pytest.fixture(scope="module")
def re3_dir(net, tmp_path_factory):
  return tu.make_model_dir(tmp_path_factory.mktemp("re3"), net, "re3")


def _frames_dir(path, sizes, name="f"):
  os.makedirs(path, exist_ok=True)
  rng = np.random.default_rng(0)
  for i, (h, w) in enumerate(sizes):
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
        os.path.join(path, f"{name}{i + 1:03d}.png"))
  return str(path)


def _call(module, argv, capsys, expected=eval_cli.EXPECTED_ERRORS):
  """A command's main in-process through the same guard as its entry point
  -> (exit code, last stderr line, stderr)."""
  fv = flags.FlagValues()
  module.define_flags(fv)
  fv([module.__name__] + argv)
  code = cli_errors.call(PROGS[module], module.main, [], fv, expected)
  err = capsys.readouterr().err
  lines = [l for l in err.splitlines() if l.strip()]
  return code, (lines[-1] if lines else ""), err


PROGS = {track: "train.track", evaluate: "train.evaluate", export: "model.export"}


# ---------------------------------------------------------------------------
# 6. Frames of another size within one tracking session
# ---------------------------------------------------------------------------


def test_tracker_refuses_a_frame_of_another_size_and_keeps_its_state(net):
  frame = np.full((100, 160, 3), 50, np.uint8)
  tracker = Re3Tracker.from_net(net)
  reference = Re3Tracker.from_net(net)
  for t in (tracker, reference):
    t.init(frame, (40, 30, 20, 20))
    t.update(frame)
  with pytest.raises(ValueError, match=r"frame is 200x120 but this tracking session's frames "
                                       r"are 160x100"):
    tracker.update(np.full((120, 200, 3), 50, np.uint8))
  # the refused frame changed nothing: the next frames track as if it never came
  for _ in range(2):
    ok, box = tracker.update(frame)
    ok_ref, box_ref = reference.update(frame)
    assert ok == ok_ref
    np.testing.assert_allclose(box, box_ref, atol=1e-4)
  # init starts a new session on the new size
  tracker.init(np.full((120, 200, 3), 50, np.uint8), (40, 30, 20, 20))
  ok, _ = tracker.update(np.full((120, 200, 3), 50, np.uint8))
  assert ok


def test_multi_tracker_session_size(net):
  multi = Re3MultiTracker.from_net(net)
  multi.add("a", np.zeros((100, 160, 3), np.uint8), (10, 10, 20, 20))
  with pytest.raises(ValueError, match="frame is 150x90 .* are 160x100"):
    multi.add("b", np.zeros((90, 150, 3), np.uint8), (10, 10, 20, 20))
  assert multi.target_ids == ["a"]
  multi.remove("a")                                         # an empty tracker takes any size
  multi.add("b", np.zeros((90, 150, 3), np.uint8), (10, 10, 20, 20))
  assert set(multi.update(np.zeros((90, 150, 3), np.uint8))) == {"b"}


def test_track_command_refuses_mixed_frame_sizes(re3_dir, tmp_path, capsys):
  frames_dir = _frames_dir(tmp_path / "mixed", [(48, 64), (48, 64), (40, 60), (48, 64)])
  out = tmp_path / "boxes.txt"
  out.write_text("an earlier result\n")
  code, last, err = _call(track, ["--model", re3_dir, "--input", frames_dir, "--box", "5,5,20,20",
                                  "--output", str(out)], capsys)
  assert code == 2 and "Traceback" not in err
  assert last == (f"train.track: {frames_dir}: frame 3 is 60x40 but the first frame is 64x48 "
                  "(width x height): a tracking session keeps one frame size; resize the frames "
                  "to one size")
  assert out.read_text() == "an earlier result\n"           # not replaced by a partial file
  assert sorted(os.listdir(tmp_path)) == ["boxes.txt", "mixed"]


# ---------------------------------------------------------------------------
# 14. A refused init leaves a running tracker as it was
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad_box", [(10, 10, 0, 5), (np.nan, 1, 2, 2), (900, 10, 5, 5)])
def test_refused_init_keeps_the_running_target(net, bad_box):
  frame = np.full((100, 160, 3), 50, np.uint8)
  tracker, reference = Re3Tracker.from_net(net), Re3Tracker.from_net(net)
  for t in (tracker, reference):
    t.init(frame, (40, 30, 20, 20))
    t.update(frame)
  with pytest.raises(ValueError):
    tracker.init(frame, bad_box)
  with pytest.raises(ValueError, match="uint8"):
    tracker.init(frame.astype(np.float32), (40, 30, 20, 20))
  ok, box = tracker.update(frame)                           # no "called before init"
  _, box_ref = reference.update(frame)
  assert ok
  np.testing.assert_allclose(box, box_ref, atol=1e-4)


# ---------------------------------------------------------------------------
# 7. A truncated video
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def truncated_video(tmp_path_factory):
  d = tmp_path_factory.mktemp("video")
  full = str(d / "full.avi")
  writer = cv2.VideoWriter(full, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
  rng = np.random.default_rng(0)
  for _ in range(20):
    writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
  writer.release()
  with open(full, "rb") as f:
    blob = f.read()
  cut = str(d / "cut.avi")
  with open(cut, "wb") as f:
    f.write(blob[:len(blob) // 2])
  return cut


def test_truncated_video_warns_with_both_counts_and_strict_exits_2(re3_dir, truncated_video,
                                                                   tmp_path, capsys):
  out = tmp_path / "boxes.txt"
  code, last, err = _call(track, ["--model", re3_dir, "--input", truncated_video,
                                  "--box", "5,5,20,20", "--output", str(out)], capsys)
  assert code == 0
  decoded = len(out.read_text().splitlines())
  assert 0 < decoded < 20
  assert last == (f"train.track: warning: --input {truncated_video}: the video header says 20 "
                  f"frames but {decoded} could be decoded (truncated file or a corrupt frame); "
                  f"the boxes cover the {decoded} decoded frames")
  out.unlink()
  code, last, err = _call(track, ["--model", re3_dir, "--input", truncated_video, "--strict",
                                  "--box", "5,5,20,20", "--output", str(out)], capsys)
  assert code == 2 and "Traceback" not in err
  assert last.startswith(f"train.track: --input {truncated_video}: the video header says 20 ")
  assert last.endswith("(--strict)")
  assert len(out.read_text().splitlines()) == decoded         # the decoded frames' boxes kept


# ---------------------------------------------------------------------------
# 11. train.track: bad inputs end in one line
# ---------------------------------------------------------------------------


def test_track_command_bad_inputs(re3_dir, tmp_path, capsys):
  ok_dir = _frames_dir(tmp_path / "ok", [(48, 64)] * 3)
  junk = tmp_path / "junk.mp4"
  junk.write_text("not a video\n" * 50)
  cases = [
      (["--input", str(tmp_path / "missing.mp4"), "--box", "5,5,20,20"],
       f"train.track: --input {str(tmp_path / 'missing.mp4')!r} does not exist"),
      (["--input", str(junk), "--box", "5,5,20,20"],
       f"train.track: --input {junk}: cannot open the video (unreadable, or not a video OpenCV "
       "can decode)"),
      (["--input", ok_dir, "--box", "5,5,twenty,20"],
       "train.track: --box must be x,y,w,h numbers, got '5,5,twenty,20'"),
      (["--input", ok_dir, "--box", "5,5,20"],
       "train.track: --box must have 4 values x,y,w,h, got 3: '5,5,20'"),
      (["--input", ok_dir, "--box", "5,5,20,20", "--render", str(tmp_path / "out.png")],
       f"train.track: --render must end in .gif, .mp4, .avi, got {str(tmp_path / 'out.png')!r}"),
      (["--input", ok_dir, "--box", "5,5,0,20"],
       "train.track: box [5.0, 5.0, 0.0, 20.0] has zero or negative size (w=0.0, h=20.0)"),
  ]
  for argv, want in cases:
    code, last, err = _call(track, ["--model", re3_dir] + argv, capsys)
    assert (code, last) == (2, want), err
    assert "Traceback" not in err
  assert not os.path.exists(tmp_path / "out.png")


def test_track_command_corrupt_frame_leaves_no_partial_output(re3_dir, tmp_path, capsys):
  frames_dir = _frames_dir(tmp_path / "frames", [(48, 64)] * 4)
  bad = os.path.join(frames_dir, "f003.png")
  with open(bad, "r+b") as f:
    f.truncate(40)
  out, gif = tmp_path / "boxes.txt", tmp_path / "out.gif"
  code, last, err = _call(track, ["--model", re3_dir, "--input", frames_dir, "--box", "5,5,20,20",
                                  "--output", str(out), "--render", str(gif)], capsys)
  assert code == 2 and "Traceback" not in err
  assert last.startswith(f"train.track: {bad}: cannot decode image")
  assert sorted(os.listdir(tmp_path)) == ["frames"]           # no boxes.txt, no gif, no temp
  # --verbose adds the traceback before the same line
  code, last2, err = _call(track, ["--model", re3_dir, "--input", frames_dir, "--box",
                                   "5,5,20,20", "--verbose"], capsys)
  assert code == 2 and "Traceback" in err and last2 == last


def test_track_entry_point_one_line(tmp_path):
  """The installed command (run()) through absl: exit 2, one line, no traceback."""
  missing = str(tmp_path / "none.mp4")
  got = subprocess.run([sys.executable, "-m", "train.track", "--model", str(tmp_path),
                        "--input", missing, "--box", "1,2,3,4"], cwd=str(REPO), env=env(),
                       capture_output=True, text=True, timeout=300)
  assert got.returncode == 2, got.stderr[-2000:]
  assert got.stderr.strip().splitlines()[-1] == f"train.track: --input {missing!r} does not exist"
  assert "Traceback" not in got.stderr


# ---------------------------------------------------------------------------
# 11. model.export: bad model_dir / export_dir
# ---------------------------------------------------------------------------


def test_export_command_bad_dirs(re3_dir, tmp_path, capsys):
  empty = tmp_path / "empty"
  empty.mkdir()
  no_ckpt = tmp_path / "no_ckpt"
  no_ckpt.mkdir()
  (no_ckpt / "config.yaml").write_text(open(os.path.join(re3_dir, "config.yaml")).read())
  a_file = tmp_path / "export.txt"
  a_file.write_text("keep\n")
  full = tmp_path / "full"
  full.mkdir()
  (full / "other.txt").write_text("keep\n")
  missing = str(tmp_path / "missing")
  new_dir = str(tmp_path / "new")
  cases = [
      ([missing, new_dir], f"model.export: {missing}: not a SavedModel, model_dir or "
                           "checkpoint prefix"),
      ([str(empty), new_dir], f"model.export: {empty}: neither a SavedModel (no saved_model.pb) "
                              "nor a training model_dir (no config.yaml)"),
      ([str(no_ckpt), new_dir], f"model.export: {no_ckpt}: no checkpoint found (looked in '.', "
                                "'checkpoints', 'ckpt', 'train')"),
      ([re3_dir, str(a_file)], f"model.export: --export_dir {a_file}: is a file, not a directory"),
      ([re3_dir, str(full)], f"model.export: {full}: export directory exists and is not empty"),
  ]
  for (model_dir, export_dir), want in cases:
    code, last, err = _call(export, ["--model_dir", model_dir, "--export_dir", export_dir],
                            capsys, export.EXPECTED_ERRORS)
    assert (code, last) == (2, want), err
    assert "Traceback" not in err
  assert a_file.read_text() == "keep\n" and os.listdir(full) == ["other.txt"]
  assert not os.path.exists(new_dir)


def test_export_entry_point_one_line(tmp_path):
  missing = str(tmp_path / "missing")
  got = subprocess.run([sys.executable, "-m", "model.export", "--model_dir", missing,
                        "--export_dir", str(tmp_path / "out")], cwd=str(REPO), env=env(),
                       capture_output=True, text=True, timeout=300)
  assert got.returncode == 2, got.stderr[-2000:]
  assert got.stderr.strip().splitlines()[-1] == (f"model.export: {missing}: not a SavedModel, "
                                                 "model_dir or checkpoint prefix")
  assert "Traceback" not in got.stderr


# ---------------------------------------------------------------------------
# 11. train.evaluate: bad layout, kind, tracker; a sequence without a score
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def otb_tree(tmp_path_factory):
  root = tmp_path_factory.mktemp("otb")
  for name, row in (("Good", "10,10,20,20"), ("Blank", "NaN,NaN,NaN,NaN")):
    _frames_dir(root / name / "img", [(40, 60)] * 4, name="")
    (root / name / "groundtruth_rect.txt").write_text("\n".join([row] * 4) + "\n")
  return str(root)


def test_evaluate_command_bad_inputs(otb_tree, tmp_path, capsys):
  out = str(tmp_path / "eval")
  cases = [
      (["--dataset", f"vot:{otb_tree}", "--trackers", "stay"],
       f"train.evaluate: {otb_tree}: no vot sequences found"),
      (["--dataset", f"otc:{otb_tree}", "--trackers", "stay"],
       f"train.evaluate: --dataset kind 'otc' unknown; expected one of {datasets.KINDS}"),
      (["--dataset", f"otb:{otb_tree}", "--trackers", "stay,kfc"],
       f"train.evaluate: unknown tracker 'kfc'; expected some of {tracker_lib.TRACKERS}"),
      (["--dataset", f"otb:{otb_tree}", "--trackers", "re3"],
       "train.evaluate: tracker 're3' needs --model (a model_dir or SavedModel)"),
  ]
  for argv, want in cases:
    code, last, err = _call(evaluate, argv + ["--output_dir", out], capsys)
    assert (code, last) == (2, want), err
    assert "Traceback" not in err


def test_evaluate_says_why_a_sequence_has_no_score(otb_tree, tmp_path, capsys):
  out = str(tmp_path / "eval")
  fv = flags.FlagValues()
  evaluate.define_flags(fv)
  fv(["x", "--dataset", f"otb:{otb_tree}", "--trackers", "stay", "--output_dir", out])
  evaluate.main([], fv)
  printed = capsys.readouterr().out
  assert ("stay       no score for sequence 'Blank': none of its 4 frames has a valid "
          "ground-truth box (all NaN or zero size)") in printed
  with open(os.path.join(out, "performance.json")) as f:
    per_seq = json.load(f)["trackers"]["stay"]["per_sequence"]
  assert per_seq["Blank"]["no_score"] == ("none of its 4 frames has a valid ground-truth box "
                                          "(all NaN or zero size)")
  assert "no_score" not in per_seq["Good"] and per_seq["Good"]["frames"] == 4


# ---------------------------------------------------------------------------
# Issue 22: a frame lost in the middle of a video, a full disk, Ctrl-C, a
# killed run's partial files, step exports as --model
# ---------------------------------------------------------------------------


def _video_with_a_corrupt_frame(path, n=8, bad=5):
  """An MP4 (mp4v) of n gray frames whose frame `bad` (1-based) has its coded
  bytes overwritten: OpenCV's read fails on it and goes on with the next one."""
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
  for i in range(n):
    writer.write(np.full((48, 64, 3), 30 * i, np.uint8))
  writer.release()
  blob = bytearray(open(path, "rb").read())
  starts, k = [], blob.find(b"mdat")
  while True:
    k = blob.find(b"\x00\x00\x01\xb6", k + 1)    # MPEG-4 part 2 VOP start codes
    if k < 0:
      break
    starts.append(k)
  assert len(starts) == n
  s, e = starts[bad - 1], starts[bad]
  blob[s:e] = bytes(np.random.default_rng(1).integers(0, 255, e - s, dtype=np.uint8))
  with open(path, "wb") as f:
    f.write(bytes(blob))
  return str(path)


def test_a_frame_lost_mid_video_keeps_every_line_with_its_frame(re3_dir, tmp_path, capsys):
  video = _video_with_a_corrupt_frame(tmp_path / "clip.mp4")
  out = tmp_path / "boxes.txt"
  code, last, err = _call(track, ["--model", re3_dir, "--input", video, "--box", "5,5,20,20",
                                  "--output", str(out)], capsys)
  assert code == 0, err
  lines = out.read_text().splitlines()
  assert len(lines) == 8                                     # a line per frame of the video
  assert lines[4] == track.LOST_LINE                         # frame 5 is the lost one
  assert all("nan" not in l for i, l in enumerate(lines) if i != 4)
  assert last == (f"train.track: warning: --input {video}: 1 frame(s) in the middle of the "
                  "video could not be decoded (frame 5); their lines are nan,nan,nan,nan, so "
                  "line N is still frame N")
  out.unlink()
  code, last, err = _call(track, ["--model", re3_dir, "--input", video, "--box", "5,5,20,20",
                                  "--output", str(out), "--strict"], capsys)
  assert code == 2 and "Traceback" not in err and last.endswith("(frame 5); their lines are "
                                                                "nan,nan,nan,nan, so line N is "
                                                                "still frame N (--strict)")
  assert len(out.read_text().splitlines()) == 8              # the boxes written are kept


class _ScriptedCapture:
  """cv2.VideoCapture's read()/get(PTS) from a script of (ok, pts) reads."""

  def __init__(self, script):
    self._script, self._pts = list(script), -1.0

  def read(self):
    if not self._script:
      return False, None
    ok, pts = self._script.pop(0)
    if not ok:
      return False, None
    self._pts = pts
    return True, np.full((4, 4, 3), int(pts) % 255, np.uint8)

  def get(self, _):
    return self._pts


@pytest.mark.parametrize("script,expected,lost,truncated", [
    # the decoder drops frame 5 without an error: the timestamps say where
    ([(True, p) for p in (0, 1, 2, 3, 5, 6, 7)], 8, [5], False),
    # a failed read in the middle (the next read goes on)
    ([(True, 0), (True, 1), (False, None), (True, 3)], 4, [3], False),
    # timestamps that do not start at 0 are relative to the first frame's
    ([(True, p) for p in (10, 11, 13)], 4, [3], False),
    # a truncated file: the missing frames are at the end, none is lost
    ([(True, 0), (True, 1)], 5, [], True),
    # timestamps past the header's count (a variable frame rate): counted reads from there
    ([(True, p) for p in (0, 1, 2, 7)], 4, [], False),
    # timestamps that are not whole frames: counted reads
    ([(True, p) for p in (0, 1.5, 2.9)], 3, [], False),
])
def test_video_positions_locate_lost_frames(script, expected, lost, truncated, tmp_path):
  src = frames.FrameSource(_frames_dir(tmp_path, [(4, 4)]))   # the video part is scripted
  src.expected_frames = expected
  got = list(src.video_positions(_ScriptedCapture(script), 0))
  src.read_to_end = True
  assert [n for n, f in got] == list(range(1, len(got) + 1))
  assert [n for n, f in got if f is None] == lost == src.lost_frames
  assert src.truncated == truncated


def test_full_disk_names_the_file_and_leaves_no_partial(re3_dir, tmp_path, capsys):
  """Writes that hit a full device (/dev/full behind the temporary name) end in
  one line naming the flag and the file; nothing is left."""
  frames_dir = _frames_dir(tmp_path / "frames", [(48, 64)] * 3)
  for flag, name in (("--output", "boxes.txt"), ("--render", "out.gif")):
    final = tmp_path / name
    os.symlink("/dev/full", track._partial_name(str(final)))
    argv = ["--model", re3_dir, "--input", frames_dir, "--box", "5,5,20,20", flag, str(final)]
    code, last, err = _call(track, argv, capsys)
    assert code == 2 and "Traceback" not in err, err
    assert last == (f"train.track: {flag} {final}: cannot write it: [Errno 28] No space left on "
                    "device (no partial file left)")
    assert sorted(os.listdir(tmp_path)) == ["frames"]


def test_ctrl_c_is_one_line_and_removes_partial_files(re3_dir, tmp_path, capsys, monkeypatch):
  frames_dir = _frames_dir(tmp_path / "frames", [(48, 64)] * 4)
  real = tracker_lib.load_tracker

  def interrupted_on_frame_3(model, reset_period):
    tracker = real(model, reset_period)
    calls = []

    def update(frame):
      calls.append(1)
      if len(calls) == 2:
        raise KeyboardInterrupt
      return type(tracker).update(tracker, frame)
    tracker.update = update
    return tracker
  monkeypatch.setattr(tracker_lib, "load_tracker", interrupted_on_frame_3)
  argv = ["--model", re3_dir, "--input", frames_dir, "--box", "5,5,20,20",
          "--output", str(tmp_path / "boxes.txt"), "--render", str(tmp_path / "out.gif")]
  code, last, err = _call(track, argv, capsys)
  assert (code, last) == (130, "train.track: interrupted (Ctrl-C)")
  assert "Traceback" not in err and len(err.strip().splitlines()) == 1
  assert sorted(os.listdir(tmp_path)) == ["frames"]


def test_partial_files_of_a_killed_run_are_removed(re3_dir, tmp_path, capsys):
  frames_dir = _frames_dir(tmp_path / "frames", [(48, 64)] * 2)
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()                                        # a pid that no longer runs
  stale = [tmp_path / f"boxes.partial-{dead.pid}.txt", tmp_path / f"out.partial-{dead.pid}.gif"]
  live = [tmp_path / f"boxes.partial-{os.getppid()}.txt",      # a running process's: kept
          tmp_path / f"other.partial-{dead.pid}.txt"]          # another output's: kept
  for p in stale + live:
    p.write_text("partial")
  code, _, err = _call(track, ["--model", re3_dir, "--input", frames_dir, "--box", "5,5,20,20",
                               "--output", str(tmp_path / "boxes.txt"),
                               "--render", str(tmp_path / "out.gif")], capsys)
  assert code == 0, err
  for p in stale:
    assert not p.exists()
    assert (f"train.track: removed {p}, left by a run (pid {dead.pid}) that did not finish"
            in err)
  assert all(p.exists() for p in live)
  assert (tmp_path / "boxes.txt").exists() and (tmp_path / "out.gif").exists()


def test_track_and_evaluate_take_step_exports(net, otb_tree, tmp_path, capsys):
  from model import export_tflite  # pylint: disable=g-import-not-at-top  # the litert extra
  step = export_tflite.write_tflite(net, str(tmp_path / "step.tflite"))
  frames_dir = _frames_dir(tmp_path / "frames", [(48, 64)] * 3)
  out = tmp_path / "boxes.txt"
  code, _, err = _call(track, ["--model", step, "--input", frames_dir, "--box", "5,5,20,20",
                               "--output", str(out)], capsys)
  assert code == 0, err
  want = Re3Tracker.load(step)
  imgs = list(frames.FrameSource(frames_dir))
  want.init(imgs[0], (5, 5, 20, 20))
  expected = [(5, 5, 20, 20)] + [want.update(im)[1] for im in imgs[1:]]
  got = np.loadtxt(str(out), delimiter=",")
  np.testing.assert_allclose(got, np.asarray(expected), atol=0.01)
  code, _, err = _call(evaluate, ["--model", step, "--dataset", f"otb:{otb_tree}",
                                  "--output_dir", str(tmp_path / "eval")], capsys)
  assert code == 0, err
  assert os.path.exists(tmp_path / "eval" / "performance.json")


@pytest.mark.parametrize("module,argv,want", [
    ("train.evaluate", ["--protocol", "xyz"],
     "train.evaluate: flag --protocol=xyz: value should be one of <ope|vot|vid>"),
    ("train.track", ["--kind", "foo"],
     "train.track: flag --kind=foo: value should be one of <otb|vot|lasot|uav123|got10k>"),
    ("train.track", ["--boxx", "1,2,3,4"],
     "train.track: Unknown command line flag 'boxx'. Did you mean: box ?"),
    ("train.track", ["--max_frames", "abc"],
     "train.track: flag --max_frames=abc: invalid literal for int() with base 10: 'abc'"),
    ("train.toolkits.got10k_toolkit", ["--max_frames", "abc"],
     "train.toolkits.got10k_toolkit: flag --max_frames=abc: invalid literal for int() with "
     "base 10: 'abc'"),
])
def test_bad_flag_values_are_one_line_exit_2(module, argv, want):
  """The real commands: a bad flag value or an unknown flag is one line on
  stderr, exit 2, no traceback."""
  got = subprocess.run([sys.executable, "-m", module] + argv, cwd=str(REPO), env=env(),
                       capture_output=True, text=True, timeout=300)
  assert got.returncode == 2, got.stderr[-2000:]
  assert got.stderr.strip().splitlines() == [want]


def test_got10k_adapter_names_the_file_and_line_of_a_bad_row(tmp_path):
  """A non-numeric ground-truth row: the project's reader's message (file,
  1-based line), not numpy's (no file, a 0-based row)."""
  from train.toolkits import got10k_toolkit  # pylint: disable=g-import-not-at-top  # got10k extra
  seq = tmp_path / "otb" / "Deer"
  _frames_dir(seq / "img", [(40, 60)] * 3, name="")
  for p in (seq / "img").iterdir():                 # got10k lists img/*.jpg
    Image.open(p).save(str(p.with_suffix(".jpg")))
    p.unlink()
  gt = seq / "groundtruth_rect.txt"
  gt.write_text("10,10,20,20\n11,abc,20,20\n12,10,20,20\n")
  experiment = got10k_toolkit.LocalExperimentOTB(str(tmp_path / "otb"), ["Deer"])
  with pytest.raises(ValueError) as e:
    experiment.dataset[0]
  assert str(e.value) == f"{gt}:2: non-numeric value in '11,abc,20,20'"
  gt.write_text("10,10,20,20\n11,10,20,20\n12,10,20,20\n")
  files, anno = experiment.dataset[0]
  assert len(files) == 3 and anno.tolist()[1] == [11, 10, 20, 20]
