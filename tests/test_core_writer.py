"""The deterministic sharded writer and the track record schema."""

import json
import os

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline

from pipelines import schema, shards, writer


def _track(i, n=3):
  boxes = np.array([[i, i, i + 10, i + 20]] * n, np.float32)
  return schema.Track(track_id=f"t{i:03d}", source="synthetic", height=50, width=60,
                      images=[b"img%d" % j for j in range(n)], boxes_xyxy=boxes,
                      visible=[1] * n, frame_index=list(range(n)), label="cat")


def test_track_round_trip_with_plain_tf():
  t = _track(3)
  t.boxes_xyxy[1] = np.nan
  t.visible[1] = 0
  data = schema.serialize_track(t)
  ctx, seq = tf.io.parse_single_sequence_example(
      data,
      context_features={"track/id": tf.io.FixedLenFeature([], tf.string)},
      sequence_features={"bbox/xmin": tf.io.FixedLenSequenceFeature([], tf.float32),
                         "bbox/visible": tf.io.FixedLenSequenceFeature([], tf.int64)})
  assert ctx["track/id"].numpy() == b"t003"
  assert np.isnan(seq["bbox/xmin"].numpy()[1])
  back = schema.parse_track(data)
  assert back.track_id == "t003" and back.label == "cat" and len(back) == 3
  np.testing.assert_array_equal(back.visible, [1, 0, 1])
  np.testing.assert_allclose(back.boxes_xyxy[0], [3, 3, 13, 23])


def test_shard_for_key_is_stable():
  # sha256-based: the same on every machine and Python process
  assert shards.shard_for_key("vid/abc/0/0000", 8) == shards.shard_for_key("vid/abc/0/0000", 8)
  assert shards.shard_for_key("a", 1000) == 250


def _write(out, num_shards, tracks, rejects):
  with TestPipeline() as p:
    recs = p | "Tracks" >> beam.Create(tracks) | beam.Map(
        lambda t: (t.track_id, schema.serialize_track(t), len(t)))
    rej = p | "Rejects" >> beam.Create(rejects)
    _ = (recs, rej) | writer.WriteShardedRecords(out, "toy", "train", num_shards)


def _read_dir(out):
  files = shards.record_files(out, "toy", "train")
  return {os.path.basename(f): open(f, "rb").read() for f in files}


def test_writer_is_deterministic_and_complete(tmp_path):
  tracks = [_track(i) for i in range(20)]
  rejects = [{"path": "b.jpg", "reason": "corrupt_image"}, {"path": "a.xml", "reason": "bad_xml"}]
  out1, out2 = str(tmp_path / "a"), str(tmp_path / "b")
  _write(out1, 4, tracks, rejects)
  _write(out2, 4, list(reversed(tracks)), list(reversed(rejects)))
  files1, files2 = _read_dir(out1), _read_dir(out2)
  assert sorted(files1) == [f"toy-train.tfrecord-0000{i}-of-00004" for i in range(4)]
  assert files1 == files2
  assert not [f for f in os.listdir(out1) if ".tmp" in f]
  info = json.load(open(os.path.join(out1, "dataset_info.json")))
  split = info["splits"]["train"]
  assert split["num_tracks"] == 20 and split["num_frames"] == 60
  assert sum(split["shard_lengths"]) == 20 and split["num_rejected"] == 2
  lines = [json.loads(l) for l in open(os.path.join(out1, "rejected-train.jsonl"))]
  assert [l["path"] for l in lines] == ["a.xml", "b.jpg"]
  # Records inside each shard are sorted by key, each in the shard its hash picks.
  for name in sorted(files1):
    shard = int(name.split("-")[-3])
    ids = [schema.parse_track(r.numpy()).track_id
           for r in tf.data.TFRecordDataset(os.path.join(out1, name))]
    assert ids == sorted(ids)
    assert all(shards.shard_for_key(i, 4) == shard for i in ids)


def test_rerun_with_fewer_shards_removes_stale_files(tmp_path):
  out = str(tmp_path)
  _write(out, 4, [_track(i) for i in range(5)], [])
  _write(out, 2, [_track(i) for i in range(5)], [])
  assert len(shards.record_files(out, "toy", "train")) == 2


def test_writer_without_rejects(tmp_path):
  out = str(tmp_path)
  with TestPipeline() as p:
    _ = (p | beam.Create([_track(1)])
         | beam.Map(lambda t: (t.track_id, schema.serialize_track(t), len(t)))
         | writer.WriteShardedRecords(out, "toy", "train", 2))
  assert len(shards.record_files(out, "toy", "train")) == 2
  assert open(os.path.join(out, "rejected-train.jsonl")).read() == ""


def _build_even(i):
  """Build step of the writer test: a record for even items, the same reject
  for every odd one (so de-duplication has something to drop)."""
  if i % 2:
    yield writer.reject(schema.Reject("odd", schema.RejectReason.BAD_BOX, "odd item"))
    return
  t = _track(i)
  yield t.track_id, schema.serialize_track(t), len(t)


def _item_key(i):
  return f"t{i:03d}"


def test_writer_build_step_builds_records_in_the_shard_writer(tmp_path):
  """The same writer with a per-shard build step: records built from items,
  the same files as writing the built records directly, rejects from the
  build step merged with the input's and de-duplicated."""
  built, direct = str(tmp_path / "built"), str(tmp_path / "direct")
  with TestPipeline() as p:
    items = p | "Items" >> beam.Create(list(range(10)))
    rej = p | "Rejects" >> beam.Create([{"path": "a.xml", "reason": "malformed_annotation"}])
    _ = (items, rej) | writer.WriteShardedRecords(built, "toy", "train", 3, build=_build_even,
                                                  key=_item_key, dedup_rejects=True)
  _write(direct, 3, [_track(i) for i in range(0, 10, 2)], [])
  assert _read_dir(built) == _read_dir(direct)
  lines = [json.loads(l) for l in open(os.path.join(built, "rejected-train.jsonl"))]
  assert lines == [{"path": "odd", "reason": "bad_box", "detail": "odd item"},  # sorted as JSON
                   {"path": "a.xml", "reason": "malformed_annotation"}]
  info = json.load(open(os.path.join(built, "dataset_info.json")))["splits"]["train"]
  assert info["num_tracks"] == 5 and info["rejected_by_reason"] == {
      "bad_box": 1, "malformed_annotation": 1}


def test_splits_finalized_at_once_all_land_in_dataset_info(tmp_path):
  """Two splits' finalize steps at the same moment (as on two Dask workers):
  dataset_info.json ends with both, byte-identical to writing them in turn."""
  import json
  import threading

  from pipelines import writer

  def shards_of(out, split):
    path = out / f"d-{split}.tfrecord-00000-of-00001.tmp-x"
    path.write_bytes(b"")
    return [{"shard": 0, "tmp": str(path), "final": str(out / f"d-{split}.tfrecord-00000-of-00001"),
             "num_records": 1, "num_frames": 2}]

  def finalize(out, split):
    writer.finalize_split(None, shards_of(out, split), [], str(out), "d", split, 1, "track",
                          {}, None)

  ref = tmp_path / "ref"
  ref.mkdir()
  for split in ("test", "train"):
    finalize(ref, split)
  expected = (ref / "dataset_info.json").read_bytes()
  assert set(json.loads(expected)["splits"]) == {"test", "train"}
  for k in range(10):
    out = tmp_path / f"run{k}"
    out.mkdir()
    threads = [threading.Thread(target=finalize, args=(out, s)) for s in ("train", "test")]
    for t in threads:
      t.start()
    for t in threads:
      t.join()
    assert (out / "dataset_info.json").read_bytes() == expected
    assert not [p.name for p in out.iterdir() if "lock" in p.name or ".tmp" in p.name]
