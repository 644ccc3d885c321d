"""The Beam jobs on tiny trees in the real layouts (DirectRunner): every box,
visibility flag and frame checked against the input with plain
tf.io.parse_single_sequence_example, rejects exactly the bad inputs, re-runs
byte-identical; and build_sequences on the real sequences in ../shared."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from pipelines import (build_alov, build_crop_pairs, build_det, build_sequences, build_vid,
                       options, shards)
from pipelines.readers import sequences

from tests import dataset_trees as trees

CONTEXT = {
    "track/id": tf.io.FixedLenFeature([], tf.string),
    "track/source": tf.io.FixedLenFeature([], tf.string),
    "track/label": tf.io.FixedLenFeature([], tf.string),
    "image/height": tf.io.FixedLenFeature([], tf.int64),
    "image/width": tf.io.FixedLenFeature([], tf.int64),
}
SEQUENCE = {
    "image/encoded": tf.io.FixedLenSequenceFeature([], tf.string),
    "bbox/xmin": tf.io.FixedLenSequenceFeature([], tf.float32),
    "bbox/ymin": tf.io.FixedLenSequenceFeature([], tf.float32),
    "bbox/xmax": tf.io.FixedLenSequenceFeature([], tf.float32),
    "bbox/ymax": tf.io.FixedLenSequenceFeature([], tf.float32),
    "bbox/visible": tf.io.FixedLenSequenceFeature([], tf.int64),
    "bbox/occlusion": tf.io.FixedLenSequenceFeature([], tf.float32),
    "frame/index": tf.io.FixedLenSequenceFeature([], tf.int64),
}


def read_records(out_dir, name, split="train"):
  """track id -> plain parsed record (numpy)."""
  recs = {}
  for path in shards.record_files(out_dir, name, split):
    for raw in tf.data.TFRecordDataset(path):
      ctx, seq = tf.io.parse_single_sequence_example(
          raw, context_features=CONTEXT, sequence_features=SEQUENCE)
      r = {k: v.numpy() for k, v in list(ctx.items()) + list(seq.items())}
      r["boxes"] = np.stack([r["bbox/xmin"], r["bbox/ymin"], r["bbox/xmax"], r["bbox/ymax"]], 1)
      recs[r["track/id"].decode()] = r
  return recs


def read_rejects(out_dir, split="train"):
  with open(os.path.join(out_dir, f"rejected-{split}.jsonl")) as f:
    return [json.loads(line) for line in f]


def dir_bytes(out_dir):
  return {n: open(os.path.join(out_dir, n), "rb").read() for n in sorted(os.listdir(out_dir))}


def check_records(recs, expected, source):
  """Each expected track (a single segment here) matches field by field."""
  assert sorted(k.rsplit("/", 1)[0] for k in recs) == sorted(expected)
  for key, r in recs.items():
    exp = expected[key.rsplit("/", 1)[0]]
    assert key.endswith("/0000")
    assert r["track/source"].decode() == source
    if "label" in exp:
      assert r["track/label"].decode() == exp["label"]
    assert (r["image/height"], r["image/width"]) == exp["size"]
    assert list(r["image/encoded"]) == exp["frames"], key  # original bytes, right order
    np.testing.assert_allclose(r["boxes"], np.asarray(exp["boxes"], np.float32), rtol=0,
                               atol=1e-4, err_msg=key)  # NaN == NaN here
    assert r["bbox/visible"].tolist() == exp.get("visible", [1] * len(exp["frames"])), key
    assert r["frame/index"].tolist() == exp.get("index", [0] * len(exp["frames"])), key
    if "occlusion" in exp:
      np.testing.assert_allclose(r["bbox/occlusion"], exp["occlusion"])


@pytest.fixture(scope="module")
def built(tmp_path_factory, shared_dir):
  """Every job run twice on its tiny tree (one DirectRunner start-up each)."""
  root = str(tmp_path_factory.mktemp("trees"))
  ann_text = (shared_dir / "data/format-samples/alov/01-Light_video00001.ann").read_text()
  cases = {
      "vid": (build_vid, trees.make_vid_tree(os.path.join(root, "vid")), "vid", []),
      "alov": (build_alov, trees.make_alov_tree(os.path.join(root, "alov"), ann_text), "alov",
               []),
      "det": (build_det, trees.make_det_tree(os.path.join(root, "det")), "det", []),
  }
  out = {}
  for job, (module, (expected, rejects), name, extra) in cases.items():
    runs = []
    for run in range(2):
      d = os.path.join(root, f"out_{job}_{run}")
      counters = module.main([f"--input_dir={os.path.join(root, job)}", f"--output_dir={d}",
                              "--num_shards=3", "--split=train"] + extra)
      runs.append((d, counters))
    out[job] = dict(expected=expected, rejects=rejects, runs=runs, name=name)
  for kind, (input_dir, expected, rejects) in trees.make_sequence_trees(
      os.path.join(root, "seq")).items():
    runs = []
    for run in range(2):
      d = os.path.join(root, f"out_{kind}_{run}")
      counters = build_sequences.main([f"--input_dir={input_dir}", f"--output_dir={d}",
                                       "--num_shards=2", "--split=train",
                                       f"--sequence_kind={kind}"])
      runs.append((d, counters))
    out[kind] = dict(expected=expected, rejects=rejects, runs=runs, name=kind)
  return out


JOBS = ["vid", "alov", "det", "otb", "vot", "lasot", "uav123", "got10k"]


@pytest.mark.parametrize("job", JOBS)
def test_records_match_input(built, job):
  case = built[job]
  out_dir = case["runs"][0][0]
  recs = read_records(out_dir, case["name"])
  source = {"otb": "otb", "vot": "vot", "lasot": "lasot", "uav123": "uav123",
            "got10k": "got10k"}.get(job, job)
  if job == "det":
    # object records: one frame, the key is per object (no segment suffix)
    assert sorted(recs) == sorted(case["expected"])
    for key, r in recs.items():
      exp = case["expected"][key]
      assert list(r["image/encoded"]) == exp["frames"]
      np.testing.assert_allclose(r["boxes"], np.asarray(exp["boxes"], np.float32), atol=1e-4)
      assert r["bbox/visible"].tolist() == [1] and r["frame/index"].tolist() == [0]
      assert r["track/label"].decode() == exp["label"] and r["track/source"] == b"det"
      assert (r["image/height"], r["image/width"]) == exp["size"]
  else:
    check_records(recs, case["expected"], source)


@pytest.mark.parametrize("job", JOBS)
def test_rejects_are_exactly_the_bad_inputs(built, job):
  case = built[job]
  out_dir, counters = case["runs"][0]
  got = read_rejects(out_dir)
  assert {(r["path"], r["reason"]) for r in got} == case["rejects"]
  assert len(got) == len(case["rejects"])  # no duplicates
  assert all(r.get("detail") for r in got)
  info = json.load(open(os.path.join(out_dir, "dataset_info.json")))["splits"]["train"]
  assert info["num_rejected"] == len(case["rejects"])
  by_reason = {}
  for _, reason in case["rejects"]:
    by_reason[reason] = by_reason.get(reason, 0) + 1
  assert info["rejected_by_reason"] == by_reason
  for reason, n in by_reason.items():
    assert counters.get(f"rejected_{reason}") == n
  recs = read_records(out_dir, case["name"])
  assert info["num_tracks"] == len(recs)
  assert info["num_frames"] == sum(len(r["image/encoded"]) for r in recs.values())
  if job != "det":
    assert counters["frames"] == info["num_frames"]


@pytest.mark.parametrize("job", JOBS)
def test_rerun_is_byte_identical(built, job):
  (d1, _), (d2, _) = built[job]["runs"]
  b1, b2 = dir_bytes(d1), dir_bytes(d2)
  assert sorted(b1) == sorted(b2)
  for name in b1:
    assert b1[name] == b2[name], name


def test_long_tracks_are_cut_into_segments(tmp_path):
  d = tmp_path / "otb"
  data = [trees.write_jpeg(str(d / "Long/img" / f"{i + 1:04d}.jpg"), 20, 30, i)
          for i in range(10)]
  trees.write(str(d / "Long/groundtruth_rect.txt"), "".join(f"{i + 1},2,5,6\n" for i in range(10)))
  out = str(tmp_path / "out")
  build_sequences.main([f"--input_dir={d}", f"--output_dir={out}", "--num_shards=1",
                        "--sequence_kind=otb", "--segment_length=4"])
  recs = read_records(out, "otb")
  assert sorted(recs) == ["otb/Long/0000", "otb/Long/0001", "otb/Long/0002"]
  assert [len(recs[k]["image/encoded"]) for k in sorted(recs)] == [3, 4, 3]
  assert sum((list(recs[k]["image/encoded"]) for k in sorted(recs)), []) == data
  assert np.concatenate([recs[k]["frame/index"] for k in sorted(recs)]).tolist() == list(range(10))


def test_bad_inputs_fail_before_the_pipeline(tmp_path):
  missing = str(tmp_path / "nope")
  out = str(tmp_path / "out")
  with pytest.raises(options.JobConfigError, match="does not exist"):
    build_vid.main([f"--input_dir={missing}", f"--output_dir={out}"])
  (tmp_path / "empty").mkdir()
  empty = str(tmp_path / "empty")
  with pytest.raises(options.JobConfigError, match="Annotations/VID/train"):
    build_vid.main([f"--input_dir={empty}", f"--output_dir={out}"])
  with pytest.raises(options.JobConfigError, match="alov300"):
    build_alov.main([f"--input_dir={empty}", f"--output_dir={out}"])
  with pytest.raises(options.JobConfigError, match="Annotations/DET/val"):
    build_det.main([f"--input_dir={empty}", f"--output_dir={out}", "--split=val"])
  with pytest.raises(options.JobConfigError, match="no otb sequences"):
    build_sequences.main([f"--input_dir={empty}", f"--output_dir={out}",
                          "--sequence_kind=otb"])
  with pytest.raises(options.JobConfigError, match="--sequence_kind is required"):
    build_sequences.main([f"--input_dir={empty}", f"--output_dir={out}"])
  with pytest.raises(options.JobConfigError, match="--segment_length"):
    build_sequences.main([f"--input_dir={empty}", f"--output_dir={out}",
                          "--sequence_kind=otb", "--segment_length=1"])
  assert not os.path.exists(out)


@pytest.mark.parametrize("job,own_flag", [
    (build_vid, "--vid_subset"), (build_alov, "--alov_exclude_vot"), (build_det, "--input_dir"),
    (build_sequences, "--sequence_kind"), (build_crop_pairs, "--output_dir")])
def test_help_lists_the_jobs_flags_and_typos_are_errors(job, own_flag, tmp_path, capsys):
  assert job.main(["--help"]) == {}
  text = capsys.readouterr().out
  assert own_flag in text and f"python -m pipelines.{job.__name__.split('.')[-1]}" in text
  # Beam would only warn about a misspelt flag and run with the default.
  with pytest.raises(options.JobConfigError, match=r"unknown flag.*--num_shard$"):
    job.main([f"--input_dir={tmp_path}", f"--output_dir={tmp_path / 'out'}", "--num_shard=3"])
  assert not os.path.exists(tmp_path / "out")


@pytest.mark.slow
def test_build_sequences_on_real_data(shared_dir, tmp_path):
  """Tracks and frames of the records equal the ground-truth files."""
  base = shared_dir / "data/tracking"
  for kind, root in [("otb", base / "otb"), ("vot", base / "vot"),
                     ("lasot", base / "train/lasot"), ("uav123", base / "train/uav123")]:
    out = str(tmp_path / kind)
    counters = build_sequences.main([f"--input_dir={root}", f"--output_dir={out}",
                                     f"--sequence_kind={kind}", "--num_shards=2",
                                     "--segment_length=256", "--split=test"])
    recs = read_records(out, kind, "test")
    anns = {f"{kind}/{a.name}": a for a in sequences.read_sequences(kind, str(root))}
    gt_files = {"otb": lambda n: root / n / "groundtruth_rect.txt",
                "vot": lambda n: root / n / "groundtruth.txt",
                "lasot": lambda n: root / n / "groundtruth.txt",
                "uav123": lambda n: root / "anno" / f"{n}.txt"}[kind]
    tracks = sorted({k.rsplit("/", 1)[0] for k in recs})
    assert tracks == sorted(anns) and counters["tracks"] == len(anns)
    assert read_rejects(out, "test") == []
    for t in tracks:
      name = t.split("/", 1)[1]
      lines = [l for l in gt_files(name).read_text().splitlines() if l.strip()]
      segs = [recs[k] for k in sorted(recs) if k.rsplit("/", 1)[0] == t]
      n = sum(len(s["image/encoded"]) for s in segs)
      assert n == len(lines) == len(anns[t]), t
      boxes = np.concatenate([s["boxes"] for s in segs])
      np.testing.assert_allclose(boxes, anns[t].boxes_xyxy, atol=1e-3)
      index = np.concatenate([s["frame/index"] for s in segs])
      assert index.tolist() == list(range(len(lines)))
    info = json.load(open(os.path.join(out, "dataset_info.json")))["splits"]["test"]
    assert info["num_frames"] == sum(len(a) for a in anns.values()) == counters["frames"]


def test_max_side_downscales_frames_and_boxes(tmp_path):
  d = tmp_path / "otb"
  for i in range(2):
    trees.write_jpeg(str(d / "Big/img" / f"{i + 1:04d}.jpg"), 40, 60, i)
  trees.write(str(d / "Big/groundtruth_rect.txt"), "11,5,20,10\n13,7,20,10\n")
  out = str(tmp_path / "out")
  build_sequences.main([f"--input_dir={d}", f"--output_dir={out}", "--num_shards=1",
                        "--sequence_kind=otb", "--max_side=30"])
  (r,) = read_records(out, "otb").values()
  assert (r["image/height"], r["image/width"]) == (20, 30)
  np.testing.assert_allclose(r["boxes"], [[5, 2, 15, 7], [6, 3, 16, 8]], atol=1e-5)
  for enc in r["image/encoded"]:
    assert tf.io.decode_jpeg(enc).shape == (20, 30, 3)


def test_jobs_say_where_they_wrote_and_which_shards_are_empty(tmp_path):
  from pipelines import runner  # pylint: disable=g-import-not-at-top
  (tmp_path / "dataset_info.json").write_text(json.dumps({"splits": {
      "train": {"shard_lengths": [2, 0, 3, 0, 0, 1, 1, 1]},
      "val": {"shard_lengths": [4, 4]}}}))
  train, val = runner.written_lines(str(tmp_path), ["train", "val"])
  assert train.startswith(f"wrote 8 records in 8 shard(s) of split 'train' to {tmp_path}")
  assert "3 of the 8 shards are empty" in train and "--num_shards (e.g. 2)" in train
  assert val.startswith("wrote 8 records in 2 shard(s) of split 'val'") and "empty" not in val
