"""The one deterministic sharded writer of every Beam job here (hash-keyed
shards, sorted inside, temporary names then rename, dataset_info.json, the
rejected output), with the Beam side of rejects and counters.

Output layout of a job (a contract other tools read):

  OUT/{name}-{split}.tfrecord-00000-of-0000N   records sorted by key in each shard
  OUT/dataset_info.json                        per split: tracks, frames, shard lengths, features
  OUT/rejected-{split}.jsonl                   one JSON object per skipped input: path, reason

One dataset name per directory; the rules of the directory itself (lock,
foreign datasets, leftovers of killed runs) are in pipelines.output_dir.

Shard naming and lookup live in the Beam-free pipelines.shards; the reject
vocabulary and the `Reject` record in pipelines.schema.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any, Callable, Dict, Iterable, Optional

import apache_beam as beam

from pipelines import output_dir as output_dirs
from pipelines import schema
from pipelines.options import DatasetJobOptions
from pipelines.schema import Reject
from pipelines.shards import shard_for_key, shard_path

REJECTED_TAG = "rejected"
COUNTER_NAMESPACE = "pipelines"


# ---------------------------------------------------------------------------
# Rejects and counters
# ---------------------------------------------------------------------------


def reject(r: Reject) -> beam.pvalue.TaggedOutput:
  """A rejected input for the `rejected` tagged output; also counted by reason."""
  count(f"rejected_{r.reason}")
  return beam.pvalue.TaggedOutput(REJECTED_TAG, r.to_json_dict())


def count(name: str, n: int = 1) -> None:
  beam.metrics.Metrics.counter(COUNTER_NAMESPACE, name).inc(n)


def _reject_key(r: dict) -> str:
  return json.dumps(r, sort_keys=True)


class DedupRejects(beam.PTransform):
  """Drops exact duplicate reject records (a bad frame shared by two tracks)."""

  def expand(self, pcoll):
    return (pcoll
            | "RejectToJson" >> beam.Map(_reject_key)
            | "DistinctRejects" >> beam.Distinct()
            | "RejectFromJson" >> beam.Map(json.loads))


# ---------------------------------------------------------------------------
# Deterministic sharded writer
# ---------------------------------------------------------------------------


def _record_key(record) -> str:
  return record[0]


class _WriteShard(beam.DoFn):
  """(shard, elements) -> the shard's records, sorted by key, in a temporary
  file, and the shard's metadata for the finalize step.

  Without a build step the elements are the records (key, bytes, num_frames);
  with one, `build(element)` yields the element's records and reject
  TaggedOutputs, one record at a time, while the shard is written.
  """

  def __init__(self, output_dir: str, name: str, split: str, num_shards: int, run_id: str,
               key: Callable[[Any], str], build: Optional[Callable[[Any], Iterable[Any]]]):
    self._output_dir = output_dir
    self._name = name
    self._split = split
    self._num_shards = num_shards
    self._run_id = run_id
    self._key = key
    self._build = build

  def process(self, element):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only once a job runs
    shard, items = element
    items = sorted((it for it in items if it is not None), key=self._key)
    for a, b in zip(items, items[1:]):
      if self._key(a) == self._key(b):
        raise ValueError(f"duplicate record key {self._key(a)!r} in {self._name}-{self._split}")
    final = shard_path(self._output_dir, self._name, self._split, shard, self._num_shards)
    tmp = f"{final}.tmp-{self._run_id}"
    records = frames = 0
    write_errors = (OSError, tf.errors.OpError)   # a full disk, a quota, a lost mount
    try:
      writer = tf.io.TFRecordWriter(tmp)
    except write_errors as e:
      raise _shard_write_error(tmp, e) from e
    try:
      for item in items:
        for out in (self._build(item) if self._build is not None else (item,)):
          if isinstance(out, beam.pvalue.TaggedOutput):
            yield out
            continue
          _, data, num_frames = out
          try:
            writer.write(data)
          except write_errors as e:
            raise _shard_write_error(tmp, e) from e
          records += 1
          frames += int(num_frames)
    finally:
      try:
        writer.close()
      except write_errors as e:
        raise _shard_write_error(tmp, e) from e
    count("records_written", records)
    yield {"shard": shard, "tmp": tmp, "final": final, "num_records": records,
           "num_frames": frames}


def _shard_write_error(tmp: str, error: BaseException) -> OSError:
  """An OSError naming the shard being written and the reason (its last line)."""
  if isinstance(error, OSError) and error.strerror:
    reason = f"[Errno {error.errno}] {error.strerror}"
  else:
    lines = [l.strip() for l in str(error).splitlines() if l.strip()]
    reason = lines[-1] if lines else type(error).__name__
  return OSError(f"{tmp}: cannot write this shard: {reason}")


def finalize_split(_, shards, rejects, output_dir, name, split, num_shards, record_kind, features,
                   extra_info):
  """Last step of a write (one worker): renames the temporary shards to their
  final names, removes stale shards of the split, writes rejected-{split}.jsonl
  and updates dataset_info.json. `shards` are the dicts the shard writers yield
  (shard, tmp, final, num_records, num_frames). Returns the split's info."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only once a job runs
  shards = sorted(shards, key=lambda s: s["shard"])
  if [s["shard"] for s in shards] != list(range(num_shards)):
    raise RuntimeError(f"writer produced shards {[s['shard'] for s in shards]}, "
                       f"expected 0..{num_shards - 1}")
  finals = set()
  for s in shards:
    tf.io.gfile.rename(s["tmp"], s["final"], overwrite=True)
    finals.add(s["final"])
  # Remove shards of this split left by an earlier run with another shard count.
  for old in tf.io.gfile.glob(os.path.join(output_dir, f"{name}-{split}.tfrecord-*")):
    if old not in finals and ".tmp-" not in old:
      tf.io.gfile.remove(old)
  rejects = sorted(rejects, key=_reject_key)
  rejected_path = os.path.join(output_dir, f"rejected-{split}.jsonl")
  with tf.io.gfile.GFile(rejected_path + ".tmp", "w") as f:
    f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in rejects))
  tf.io.gfile.rename(rejected_path + ".tmp", rejected_path, overwrite=True)
  by_reason: Dict[str, int] = {}
  for r in rejects:
    by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + 1
  info_path = os.path.join(output_dir, "dataset_info.json")
  with _info_lock(output_dir):
    return _update_info(tf, info_path, name, record_kind, features, split, num_shards, shards,
                        rejects, by_reason, extra_info)


class _info_lock:
  """Serialises the read-modify-write of dataset_info.json between the splits
  of one job, whose finalize steps may run at once on different workers (two
  splits of moving MNIST on a Dask cluster): an exclusive-create lock file on a
  local folder; on remote storage (no atomic create) writers are not serialised."""

  def __init__(self, output_dir: str, timeout_s: float = 120.0):
    self.path = os.path.join(output_dir, output_dirs.INFO_LOCK_NAME)
    self.timeout_s = timeout_s
    self.held = False

  def __enter__(self):
    if "://" in self.path:
      return self
    deadline = time.monotonic() + self.timeout_s
    while True:
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
      except FileExistsError:
        if time.monotonic() > deadline:
          raise RuntimeError(f"{self.path}: held for over {self.timeout_s:.0f} s by another "
                             "writer of this job; remove it if no job is running") from None
        time.sleep(0.05)
        continue
      os.write(fd, f"{os.getpid()}\n".encode())
      os.close(fd)
      self.held = True
      return self

  def __exit__(self, *exc):
    if self.held:
      os.remove(self.path)
    return False


def _update_info(tf, info_path, name, record_kind, features, split, num_shards, shards, rejects,
                 by_reason, extra_info):
  """Adds one split's entry to dataset_info.json (under _info_lock)."""
  info = {}
  if tf.io.gfile.exists(info_path):
    try:
      with tf.io.gfile.GFile(info_path) as f:
        info = json.load(f)
    except ValueError:
      info = {}
    if info.get("name") not in (None, name):
      info = {}
  info.update({"name": name, "record_kind": record_kind, "features": features})
  info.setdefault("splits", {})
  split_info = {
      "num_tracks": sum(s["num_records"] for s in shards),
      "num_frames": sum(s["num_frames"] for s in shards),
      "num_shards": num_shards,
      "shard_lengths": [s["num_records"] for s in shards],
      "files": [os.path.basename(s["final"]) for s in shards],
      "num_rejected": len(rejects),
      "rejected_by_reason": dict(sorted(by_reason.items())),
  }
  split_info.update(extra_info or {})
  info["splits"][split] = split_info
  tmp = f"{info_path}.tmp-{uuid.uuid4().hex[:8]}"
  with tf.io.gfile.GFile(tmp, "w") as f:
    json.dump(info, f, indent=2, sort_keys=True)
    f.write("\n")
  tf.io.gfile.rename(tmp, info_path, overwrite=True)
  return split_info


class WriteShardedRecords(beam.PTransform):
  """Writes records and rejects: the output contract above.

  Use as `(elements, rejects) | WriteShardedRecords(...)`, or `elements | ...`
  when the job has no rejected output (Beam refuses a tuple holding None).
  A stable hash of the key picks the shard, records are sorted by key inside
  a shard, every shard file exists (possibly empty), and files appear under
  their final names only after all shards are written.

  By default the elements are the records, `(key, serialized_record,
  num_frames)`. With `build`, they are small work items (`key(item)` is the
  record key) and each shard's writer calls `build(item)` for them in key
  order, which yields the item's records and reject TaggedOutputs: only the
  items are shuffled, never the records' bytes, and a worker holds one record
  in memory, not a whole shard. `dedup_rejects` drops exact duplicate rejects
  (a bad frame seen by several items).
  """

  def __init__(self, output_dir: str, name: str, split: str, num_shards: int,
               record_kind: str = "track", features: Optional[dict] = None,
               extra_info: Optional[dict] = None,
               build: Optional[Callable[[Any], Iterable[Any]]] = None,
               key: Optional[Callable[[Any], str]] = None, dedup_rejects: bool = False):
    super().__init__()
    self._output_dir = output_dir
    self._name = name
    self._split = split
    self._num_shards = int(num_shards)
    self._record_kind = record_kind
    self._features = features or (schema.TRACK_FEATURES if record_kind == "track"
                                  else schema.CROP_PAIR_FEATURES)
    self._extra_info = extra_info or {}
    self._build = build
    self._key = key or _record_key
    self._dedup_rejects = dedup_rejects

  def expand(self, pcolls):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only once a job runs
    if isinstance(pcolls, beam.pvalue.PCollection):
      elements, rejects = pcolls, None
    else:
      elements, rejects = pcolls
    pipeline = elements.pipeline
    n = self._num_shards
    key = self._key
    tf.io.gfile.makedirs(self._output_dir)
    # While the pipeline is built, before anything runs: refuse (or, with
    # --overwrite, clear) another dataset's files; remove this split's leftovers.
    output_dirs.prepare_split(self._output_dir, self._name, self._split,
                              bool(pipeline.options.view_as(DatasetJobOptions).overwrite))
    run_id = uuid.uuid4().hex[:12]
    if self._build is None:
      keyed = elements | "KeyByShard" >> beam.Map(lambda r: (shard_for_key(r[0], n), tuple(r)))
    else:
      keyed = elements | "KeyByShard" >> beam.Map(lambda e: (shard_for_key(key(e), n), e))
    empty = pipeline | "AllShards" >> beam.Create([(i, None) for i in range(n)])
    written = ((keyed, empty) | "FlattenShards" >> beam.Flatten()
               | "GroupByShard" >> beam.GroupByKey()
               | "WriteShard" >> beam.ParDo(_WriteShard(
                   self._output_dir, self._name, self._split, n, run_id, key,
                   self._build)).with_outputs(REJECTED_TAG, main="shards"))
    if rejects is None:
      rejects = pipeline | "NoRejects" >> beam.Create([])
    if self._build is not None:
      rejects = (rejects, written[REJECTED_TAG]) | "AllRejects" >> beam.Flatten()
    if self._dedup_rejects:
      rejects = rejects | "Dedup" >> DedupRejects()
    return (pipeline
            | "FinalizeTrigger" >> beam.Create([None])
            | "Finalize" >> beam.Map(
                finalize_split, shards=beam.pvalue.AsList(written.shards),
                rejects=beam.pvalue.AsList(rejects), output_dir=self._output_dir,
                name=self._name, split=self._split, num_shards=n,
                record_kind=self._record_kind, features=self._features,
                extra_info=self._extra_info))
