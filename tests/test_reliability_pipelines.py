"""Faults and bad inputs of the dataset jobs (issue 12's pipeline cases),
each built in a temporary tree: the exit status, the one line naming the
culprit, the rejects, and that the records of the valid inputs are the same
bytes as a run without the bad input.

The jobs run in this process through runner.cli_main (the command-line entry
point, so the exit status is the real one); one case runs the real command
in a subprocess to show the one-line ending without a traceback.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from model.geometry import box_is_valid_xyxy
from pipelines import (build_crop_pairs, build_sequences, build_synthetic, images, output_dir,
                       runner, schema, shards)
from pipelines.readers import boxes, det, sequences, vid
from pipelines.synthetic import procedural

from tests import dataset_trees as trees

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD_ROWS = ["11,6,20,10", "12,7,20,10", "13,8,21,11"]


def run_cli(job, argv, monkeypatch, capsys):
  """(exit status, stdout, stderr) of the job's command-line entry point."""
  name = job.__name__.rsplit(".", 1)[-1]
  monkeypatch.setattr(sys, "argv", [name] + list(argv))
  capsys.readouterr()
  try:
    runner.cli_main(lambda: job.main(list(argv)), name)
    status = 0
  except SystemExit as e:
    status = e.code
  out, err = capsys.readouterr()
  return status, out, err


def last_line(err: str) -> str:
  lines = [l for l in err.splitlines() if l.strip()]
  return lines[-1] if lines else ""


def record_bytes(out, name=None, split="train"):
  """record key (track/id) -> serialized bytes, over every shard."""
  got = {}
  for path in shards.record_files(str(out), name, split):
    for raw in tf.data.TFRecordDataset(path):
      data = raw.numpy()
      ex = tf.train.SequenceExample.FromString(data)
      key = ex.context.feature["track/id"].bytes_list.value
      if not key:  # a crop-pair Example
        key = tf.train.Example.FromString(data).features.feature["track/id"].bytes_list.value
      got[key[0].decode()] = data
  return got


def rejects_of(out, split="train"):
  with open(os.path.join(str(out), f"rejected-{split}.jsonl")) as f:
    return [json.loads(line) for line in f]


def dir_bytes(d):
  return {n: open(os.path.join(str(d), n), "rb").read() for n in sorted(os.listdir(str(d)))}


def seq_argv(input_dir, out, *extra):
  return [f"--input_dir={input_dir}", f"--output_dir={out}", "--sequence_kind=otb",
          "--num_shards=2", *extra]


@pytest.fixture(scope="module")
def clean_otb(tmp_path_factory):
  """The valid sequence alone, built once: the bytes every faulty run must keep."""
  root = tmp_path_factory.mktemp("clean")
  trees.write_otb_sequence(str(root / "otb"), "Good", GOOD_ROWS, 3, seed=10)
  out = root / "out"
  build_sequences.main(seq_argv(root / "otb", out))
  recs = record_bytes(out, "otb")
  assert sorted(recs) == ["otb/Good/0000"]
  return recs


# ---------------------------------------------------------------------------
# 3: ground truth with fewer (or more) rows than frames
# ---------------------------------------------------------------------------


def test_fewer_rows_than_frames_is_a_counted_reject(tmp_path, clean_otb, monkeypatch, capsys):
  otb = str(tmp_path / "otb")
  trees.write_otb_sequence(otb, "Good", GOOD_ROWS, 3, seed=10)
  short = trees.write_otb_sequence(otb, "Short", GOOD_ROWS[:2], 4, seed=20)
  out = tmp_path / "out"
  status, stdout, _ = run_cli(build_sequences, seq_argv(otb, out), monkeypatch, capsys)
  assert status == 0
  gt = os.path.join(otb, "Short", "groundtruth_rect.txt")
  (r,) = rejects_of(out)
  assert (r["path"], r["reason"], r["frames"]) == (gt, "unannotated_frames", 2)
  assert "2 images without a row" in r["detail"] and "0003.jpg" in r["detail"]
  assert "frames_without_ground_truth=2" in stdout and "rejected_unannotated_frames=1" in stdout
  recs = record_bytes(out, "otb")
  assert recs["otb/Good/0000"] == clean_otb["otb/Good/0000"]
  short_rec = schema.parse_track(recs["otb/Short/0000"])
  assert short_rec.images == short[:2] and short_rec.frame_index.tolist() == [0, 1]
  # The reader says the same to evaluation, which uses it directly.
  ann = sequences.read_sequence("otb", os.path.join(otb, "Short"))
  assert len(ann) == 2 and [x.reason for x in ann.rejects] == ["unannotated_frames"]


def test_more_rows_than_frames_rejects_the_sequence(tmp_path, clean_otb, monkeypatch, capsys):
  otb = str(tmp_path / "otb")
  trees.write_otb_sequence(otb, "Good", GOOD_ROWS, 3, seed=10)
  trees.write_otb_sequence(otb, "Long", GOOD_ROWS, 2, seed=30)
  out = tmp_path / "out"
  status, _, _ = run_cli(build_sequences, seq_argv(otb, out), monkeypatch, capsys)
  assert status == 0
  (r,) = rejects_of(out)
  assert (r["path"], r["reason"]) == (os.path.join(otb, "Long"), "missing_image")
  assert "1 ground-truth rows have no image" in r["detail"] and "groundtruth_rect.txt" in r["detail"]
  assert record_bytes(out, "otb") == clean_otb


# ---------------------------------------------------------------------------
# 4: a negative width or height is a bad_box, the rule of every reader
# ---------------------------------------------------------------------------


def test_negative_size_row_is_a_bad_box_reject(tmp_path, clean_otb, monkeypatch, capsys):
  otb = str(tmp_path / "otb")
  trees.write_otb_sequence(otb, "Good", GOOD_ROWS, 3, seed=10)
  # row 2: negative width; row 3: the "no box" marker (zeros), row 4: NaN (absent)
  neg = trees.write_otb_sequence(otb, "Neg", ["5,5,10,10", "6,5,-10,10", "0,0,0,0",
                                              "nan,nan,nan,nan"], 4, seed=40)
  out = tmp_path / "out"
  status, stdout, _ = run_cli(build_sequences, seq_argv(otb, out), monkeypatch, capsys)
  assert status == 0
  gt = os.path.join(otb, "Neg", "groundtruth_rect.txt")
  (r,) = rejects_of(out)
  assert (r["path"], r["reason"]) == (f"{gt}:2", "bad_box")
  assert "frame 2" in r["detail"] and "6,5,-10,10" in r["detail"]
  assert "zero or negative size" in r["detail"]
  assert "rejected_bad_box=1" in stdout
  recs = record_bytes(out, "otb")
  assert recs["otb/Good/0000"] == clean_otb["otb/Good/0000"]
  rec = schema.parse_track(recs["otb/Neg/0000"])  # every frame kept, the bad one without a box
  assert rec.images == neg and rec.visible.tolist() == [1, 0, 0, 0]
  assert np.isnan(rec.boxes_xyxy[1:]).all()
  np.testing.assert_allclose(rec.boxes_xyxy[0], [4, 4, 14, 14])


def test_one_bad_box_rule_for_every_reader(tmp_path):
  """The same box [10, 5, 4, 20] (negative width) is a bad_box with the same
  words in VID, DET, ALOV's rule and the benchmark sequences."""
  box = [10, 5, 4, 20]
  words = boxes.bad_box_detail(box)
  assert words == "a box of zero or negative size [10.0, 5.0, 4.0, 20.0]"
  assert not box_is_valid_xyxy(np.asarray(box, float))
  assert boxes.bad_box_detail([1, 2, 3, 4]) is None
  assert boxes.bad_box_detail([1, np.inf, 3, 4]).startswith("a non-finite box")
  # VID
  root = str(tmp_path / "vid")
  v = "ILSVRC2015_VID_train_0000/v0"
  trees.write_jpeg(os.path.join(root, "Data/VID/train", v, "000000.JPEG"), 48, 64, 1)
  trees.write(os.path.join(root, "Annotations/VID/train", v, "000000.xml"),
              trees.voc_xml(v, "000000", 64, 48, [{"trackid": 0, "name": "n1", "box": box}]))
  (video,) = vid.find_videos(root, "train")
  _, rejects = vid.read_video(video)
  assert [(r.reason, r.detail) for r in rejects] == [("bad_box", f"trackid 0: {words}")]
  # DET
  with pytest.raises(det.BoxRejected) as e:
    det.judge_box(box, 48, 64, None, 0.01)
  assert (e.value.reason, str(e.value)) == ("bad_box", words)
  # the benchmark sequences: x, y, w, h = 11, 6, -6, 15 is that same box
  trees.write_otb_sequence(str(tmp_path / "otb"), "S", ["11,6,-6,15"], 1, seed=3)
  ann = sequences.read_sequence("otb", str(tmp_path / "otb" / "S"))
  assert [r.reason for r in ann.rejects] == ["bad_box"] and words in ann.rejects[0].detail


def test_flagged_absent_rows_are_not_bad_boxes(tmp_path):
  """LaSOT out_of_view frames carry whatever box: the flag decides, no reject."""
  seq = tmp_path / "lasot" / "cat" / "cat-1"
  for i in range(2):
    trees.write_jpeg(str(seq / "img" / f"{i + 1:08d}.jpg"), 40, 50, 50 + i)
  trees.write(str(seq / "groundtruth.txt"), "11,6,20,10\n0,0,-1,-1\n")
  trees.write(str(seq / "out_of_view.txt"), "0,1")
  ann = sequences.read_sequence("lasot", str(seq))
  assert ann.rejects == [] and ann.visible.tolist() == [True, False]


# ---------------------------------------------------------------------------
# 5: an output directory holding another dataset
# ---------------------------------------------------------------------------


def test_foreign_dataset_refused_unless_overwrite(tmp_path, clean_otb, monkeypatch, capsys):
  otb = str(tmp_path / "otb")
  trees.write_otb_sequence(otb, "Good", GOOD_ROWS, 3, seed=10)
  out = tmp_path / "out"
  assert run_cli(build_sequences, seq_argv(otb, out, "--name=first"), monkeypatch,
                 capsys)[0] == 0
  before = dir_bytes(out)
  status, _, err = run_cli(build_sequences, seq_argv(otb, out, "--name=second"), monkeypatch,
                           capsys)
  assert status == 2
  line = last_line(err)
  assert line.startswith("build_sequences: --output_dir") and "'first'" in line
  assert "first-train.tfrecord-0000" in line and "--overwrite" in line
  assert "Traceback" not in err
  assert dir_bytes(out) == before  # nothing written, nothing removed
  # Another split of the same dataset is not foreign.
  assert run_cli(build_sequences, seq_argv(otb, out, "--name=first", "--split=val"),
                 monkeypatch, capsys)[0] == 0
  status, stdout, _ = run_cli(build_sequences, seq_argv(otb, out, "--name=second",
                                                        "--overwrite"), monkeypatch, capsys)
  assert status == 0
  assert "--overwrite: removed" in stdout and "'first'" in stdout
  left = sorted(os.listdir(out))
  assert not [n for n in left if n.startswith("first-")]
  assert [n for n in left if n.startswith("second-")] == [
      "second-train.tfrecord-00000-of-00002", "second-train.tfrecord-00001-of-00002"]
  info = json.load(open(out / "dataset_info.json"))
  assert info["name"] == "second" and sorted(info["splits"]) == ["train"]
  assert "rejected-val.jsonl" not in left  # the old dataset's, gone with it
  assert record_bytes(out, "second")["otb/Good/0000"] == clean_otb["otb/Good/0000"]


# ---------------------------------------------------------------------------
# 8: every input rejected
# ---------------------------------------------------------------------------


def test_all_inputs_rejected_exits_nonzero_with_the_summary(tmp_path, monkeypatch, capsys):
  otb = str(tmp_path / "otb")
  trees.write_otb_sequence(otb, "Broken", ["1,2,3"], 1, seed=1)
  trees.write_otb_sequence(otb, "Long", GOOD_ROWS, 1, seed=2)
  out = tmp_path / "out"
  status, _, err = run_cli(build_sequences, seq_argv(otb, out), monkeypatch, capsys)
  assert status == 1
  line = last_line(err)
  assert line.startswith(f"build_sequences: nothing written to '{out}'")
  assert "malformed_annotation=1" in line and "missing_image=1" in line
  assert "rejected-*.jsonl" in line and "Traceback" not in err
  assert {r["reason"] for r in rejects_of(out)} == {"malformed_annotation", "missing_image"}


# ---------------------------------------------------------------------------
# 10: a damaged or non-TFRecord file among the input shards
# ---------------------------------------------------------------------------


def _tracks(prefix, n):
  h, w = 40, 50
  out = []
  for k in range(n):
    frames = [images.encode_png(trees.frame(h, w, 100 * k + i)) for i in range(3)]
    out.append(schema.Track(
        track_id=f"{prefix}/{k}/0000", source="otb", height=h, width=w, images=frames,
        boxes_xyxy=[[10, 10, 30, 30], [11, 10, 31, 30], [12, 11, 32, 31]], visible=[1, 1, 1],
        frame_index=[0, 1, 2]))
  return [schema.serialize_track(t) for t in out]


def test_crop_pairs_reject_damaged_shards_and_keep_the_rest(tmp_path, monkeypatch, capsys):
  good, kept = _tracks("a", 2), _tracks("b", 2)
  clean_in, bad_in = tmp_path / "clean", tmp_path / "bad"
  trees.write_record_file(str(clean_in / "t-train.tfrecord-00000-of-00003"), good)
  trees.write_record_file(str(clean_in / "t-train.tfrecord-00001-of-00003"), kept[:1])
  trees.write_record_file(str(bad_in / "t-train.tfrecord-00000-of-00003"), good)
  truncated = str(bad_in / "t-train.tfrecord-00001-of-00003")
  trees.write_record_file(truncated, kept)
  trees.truncate_file(truncated, os.path.getsize(truncated) - len(kept[1]) // 2)
  not_records = str(bad_in / "t-train.tfrecord-00002-of-00003")
  trees.write(not_records, "this is not a TFRecord file\n")
  runs = {}
  for tag, src in (("clean", clean_in), ("bad", bad_in)):
    out = tmp_path / f"out_{tag}"
    status, stdout, err = run_cli(build_crop_pairs, [f"--input_dir={src}", f"--output_dir={out}",
                                                     "--num_shards=2"], monkeypatch, capsys)
    assert status == 0, err
    runs[tag] = (out, stdout)
  out, stdout = runs["bad"]
  got = {(r["path"], r["reason"]): r["detail"] for r in rejects_of(out)}
  assert sorted(got) == [(truncated, "corrupt_record_file"), (not_records, "corrupt_record_file")]
  assert got[(truncated, "corrupt_record_file")].startswith(f"{truncated}: unreadable after 1 ")
  assert got[(not_records, "corrupt_record_file")].startswith(f"{not_records}: unreadable after 0")
  assert "rejected_corrupt_record_file=2" in stdout
  # Every pair of the readable records, byte for byte as from clean input.
  clean = record_bytes(runs["clean"][0], "crop_pairs")
  assert len(clean) == 6 and record_bytes(out, "crop_pairs") == clean


def test_synthetic_det_dir_rejects_a_non_record_file(tmp_path, monkeypatch, capsys):
  gen = np.random.default_rng(0)
  img, objs = procedural.make_image(gen, 120, 160)
  obj = schema.Track(track_id="det/x/0", source="det", height=img.shape[0], width=img.shape[1],
                     images=[images.encode_jpeg(img)], boxes_xyxy=objs[0][0][None], visible=[1],
                     frame_index=[0], label="n0001")
  det_dir = tmp_path / "det"
  trees.write_record_file(str(det_dir / "det-train.tfrecord-00000-of-00002"),
                          [schema.serialize_track(obj)])
  junk = str(det_dir / "det-train.tfrecord-00001-of-00002")
  trees.write(junk, b"\x00\x01 not records")
  out = tmp_path / "out"
  status, stdout, err = run_cli(build_synthetic, [
      "--output_dir", str(out), "--det_dir", str(det_dir), "--num_tracks", "2",
      "--track_length", "2", "--canvas_size", "64", "--num_shards", "1"], monkeypatch, capsys)
  assert status == 0, err
  (r,) = rejects_of(out)
  assert (r["path"], r["reason"]) == (junk, "corrupt_record_file") and junk in r["detail"]
  assert len(record_bytes(out, "synthetic")) == 2


# ---------------------------------------------------------------------------
# 11: an output dir that is a file, or unwritable
# ---------------------------------------------------------------------------


def test_output_dir_that_is_a_file_is_one_line_exit_2(tmp_path):
  """The real command: one line on stderr naming the path, status 2, no traceback."""
  otb = str(tmp_path / "otb")
  trees.write_otb_sequence(otb, "Good", GOOD_ROWS, 3, seed=10)
  target = tmp_path / "taken"
  target.write_text("a file\n")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([sys.executable, "-m", "pipelines.build_sequences",
                         *seq_argv(otb, target)], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert last_line(proc.stderr) == (f"build_sequences: --output_dir '{target}' is a file, "
                                    "not a directory")
  assert "Traceback" not in proc.stderr
  assert target.read_text() == "a file\n"


def test_unwritable_output_dir_and_verbose(tmp_path, monkeypatch, capsys):
  otb = str(tmp_path / "otb")
  trees.write_otb_sequence(otb, "Good", GOOD_ROWS, 3, seed=10)
  below_file = tmp_path / "taken"
  below_file.write_text("x")
  status, _, err = run_cli(build_sequences, seq_argv(otb, below_file / "sub"), monkeypatch,
                           capsys)
  assert status == 2 and "Traceback" not in err
  assert last_line(err).startswith(f"build_sequences: --output_dir '{below_file / 'sub'}': "
                                   "cannot create it")
  # /sys is read-only even for root
  status, _, err = run_cli(build_sequences, seq_argv(otb, "/sys/kernel"), monkeypatch, capsys)
  assert status == 2
  assert last_line(err).startswith("build_sequences: --output_dir '/sys/kernel' is not writable")
  status, _, err = run_cli(build_sequences, seq_argv(otb, "/sys/kernel", "--verbose"),
                           monkeypatch, capsys)
  assert status == 2 and "Traceback" in err and "is not writable" in last_line(err)


def test_any_other_failure_is_one_line_exit_1(monkeypatch, capsys):
  def boom():
    raise RuntimeError("worker lost\n  File ...\n")
  monkeypatch.setattr(sys, "argv", ["build_vid"])
  with pytest.raises(SystemExit) as e:
    runner.cli_main(boom, "build_vid")
  err = capsys.readouterr().err
  assert e.value.code == 1 and "Traceback" not in err
  assert last_line(err) == ("build_vid: RuntimeError: worker lost "
                            "(--verbose shows the traceback)")
  monkeypatch.setattr(sys, "argv", ["build_vid", "--verbose"])
  with pytest.raises(SystemExit) as e:
    runner.cli_main(boom, "build_vid")
  err = capsys.readouterr().err
  assert e.value.code == 1 and "Traceback" in err and last_line(err) == (
      "build_vid: RuntimeError: worker lost")


# ---------------------------------------------------------------------------
# 12: leftovers of a killed run
# ---------------------------------------------------------------------------


def test_killed_runs_leftovers_are_removed_only_its_own(tmp_path, clean_otb, monkeypatch,
                                                        capsys, caplog):
  otb = str(tmp_path / "otb")
  trees.write_otb_sequence(otb, "Good", GOOD_ROWS, 3, seed=10)
  out = tmp_path / "out"
  out.mkdir()
  own = ["otb-train.tfrecord-00000-of-00002.tmp-0123456789ab",
         "otb-train.tfrecord-00001-of-00005.tmp-ba9876543210", "rejected-train.jsonl.tmp",
         "dataset_info.json.tmp"]
  others = ["otb-val.tfrecord-00000-of-00002.tmp-0123456789ab", "notes.txt"]
  for n in own + others:
    (out / n).write_bytes(b"x" * 1000)
  status, _, _ = run_cli(build_sequences, seq_argv(otb, out), monkeypatch, capsys)
  assert status == 0
  left = sorted(os.listdir(out))
  assert not set(own) & set(left)
  assert set(others) <= set(left)
  assert "removed 4 temporary files an interrupted run left" in caplog.text
  assert record_bytes(out, "otb") == clean_otb


# ---------------------------------------------------------------------------
# 13: two jobs on one output directory
# ---------------------------------------------------------------------------


def test_second_job_on_a_locked_dir_is_refused(tmp_path, monkeypatch, capsys):
  otb = str(tmp_path / "otb")
  trees.write_otb_sequence(otb, "Good", GOOD_ROWS, 3, seed=10)
  out = tmp_path / "out"
  with output_dir.lock(str(out), "build_vid"):  # a running job: this live process
    status, _, err = run_cli(build_sequences, seq_argv(otb, out), monkeypatch, capsys)
  assert status == 2
  line = last_line(err)
  assert line.startswith(f"build_sequences: --output_dir '{out}' is in use by build_vid")
  assert f"pid {os.getpid()} on this host" in line
  assert os.path.join(str(out), output_dir.LOCK_NAME) in line
  assert os.listdir(out) == []  # refused before writing; the lock went with its job


def test_stale_and_foreign_host_locks(tmp_path, clean_otb, monkeypatch, capsys, caplog):
  otb = str(tmp_path / "otb")
  trees.write_otb_sequence(otb, "Good", GOOD_ROWS, 3, seed=10)
  out = tmp_path / "out"
  out.mkdir()
  lock_path = out / output_dir.LOCK_NAME
  gone = subprocess.Popen([sys.executable, "-c", "pass"])
  gone.wait()
  lock_path.write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(),
                                   "job": "build_sequences", "started": "earlier"}))
  status, _, _ = run_cli(build_sequences, seq_argv(otb, out), monkeypatch, capsys)
  assert status == 0
  assert f"removing the stale lock {lock_path}" in caplog.text
  assert f"pid {gone.pid} on {socket.gethostname()}" in caplog.text
  assert not lock_path.exists()
  assert record_bytes(out, "otb") == clean_otb
  before = dir_bytes(out)
  lock_path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "job": "build_det",
                                   "started": "2026-01-01T00:00:00Z"}))
  status, _, err = run_cli(build_sequences, seq_argv(otb, out), monkeypatch, capsys)
  assert status == 2
  assert "in use by build_det (pid 1 on host elsewhere" in last_line(err)
  assert f"remove {lock_path} if that job is gone" in last_line(err)
  lock_path.unlink()
  assert dir_bytes(out) == before


# ---------------------------------------------------------------------------
# Issue 22: a full disk and Ctrl-C during a job end in one line
# ---------------------------------------------------------------------------


class _FullDiskWriter:
  """tf.io.TFRecordWriter on a full disk: the file is created, writes fail."""

  def __init__(self, path):
    self.path = path
    open(path, "wb").close()

  def write(self, _):
    raise OSError(28, "No space left on device")

  def close(self):
    pass


def test_full_disk_during_a_job_is_one_line_naming_the_shard(tmp_path, monkeypatch, capsys,
                                                             caplog):
  otb = str(tmp_path / "otb")
  trees.write_otb_sequence(otb, "Good", GOOD_ROWS, 3, seed=10)
  monkeypatch.setattr(tf.io, "TFRecordWriter", _FullDiskWriter)
  status, _, err = run_cli(build_sequences, seq_argv(otb, tmp_path / "out"), monkeypatch, capsys)
  assert status == 1 and "Traceback" not in err, err[-3000:]
  assert "apache_beam.runners.common" not in err
  assert not [r for r in caplog.records if r.name == "apache_beam.runners.common"]
  assert len([l for l in err.splitlines() if l.startswith(("ERROR", "build_sequences"))]) == 1
  line = last_line(err)
  assert line.startswith(f"build_sequences: OSError: {tmp_path / 'out'}/otb-train.tfrecord-0000")
  assert ": cannot write this shard: [Errno 28] No space left on device" in line
  assert line.endswith("(--verbose shows the traceback)")


def test_ctrl_c_during_a_job_is_one_line(monkeypatch, capsys):
  def interrupted():
    raise KeyboardInterrupt
  monkeypatch.setattr(sys, "argv", ["build_vid"])
  with pytest.raises(SystemExit) as e:
    runner.cli_main(interrupted, "build_vid")
  err = capsys.readouterr().err
  assert e.value.code == 130 and "Traceback" not in err
  assert err.strip().splitlines() == ["build_vid: interrupted (Ctrl-C); the next run of this job "
                                      "removes its temporary files"]
