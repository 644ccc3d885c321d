"""What every Beam job here shares: options, the deterministic sharded
writer (hash-keyed shards, sorted inside, temporary names then rename,
dataset_info.json), the rejected output, and the job runner.

Output layout of a job (a contract other tools read):

  OUT/{name}-{split}.tfrecord-00000-of-0000N   records sorted by key in each shard
  OUT/dataset_info.json                        per split: tracks, frames, shard lengths, features
  OUT/rejected-{split}.jsonl                   one JSON object per skipped input: path, reason
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from typing import Any, Callable, Dict, Iterable, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

# Re-exported: the shard naming and lookup live in a Beam-free module so that
# training and evaluation can find records without importing Beam.
from pipelines.shards import record_files, shard_for_key, shard_path  # noqa: F401  pylint: disable=unused-import

REJECTED_TAG = "rejected"
COUNTER_NAMESPACE = "pipelines"


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------


class DatasetJobOptions(PipelineOptions):
  """Flags every dataset job takes; Beam's own flags (--runner, ...) pass through."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument("--input_dir", default=None, help="Root of the raw dataset.")
    parser.add_argument("--output_dir", default=None, help="Where the shards go (local or gs://).")
    parser.add_argument("--split", default="train", help="Split name written into file names.")
    parser.add_argument("--num_shards", type=int, default=8, help="Number of output shards.")
    parser.add_argument("--name", default=None, help="Dataset name in file names (job default).")


class JobConfigError(ValueError):
  """Bad job options or inputs, found before the pipeline starts."""


def check_common_options(opts: DatasetJobOptions, need_input: bool = True) -> None:
  if need_input:
    if not opts.input_dir:
      raise JobConfigError("--input_dir is required")
    if not _exists(opts.input_dir):
      raise JobConfigError(f"--input_dir {opts.input_dir!r} does not exist")
  if not opts.output_dir:
    raise JobConfigError("--output_dir is required")
  if opts.num_shards is None or opts.num_shards < 1:
    raise JobConfigError(f"--num_shards must be >= 1, got {opts.num_shards}")
  if not opts.split or "/" in opts.split or "-" in opts.split:
    raise JobConfigError(f"--split must be a plain name without '-' or '/', got {opts.split!r}")


def _exists(path):
  import tensorflow as tf
  return tf.io.gfile.exists(path)


# ---------------------------------------------------------------------------
# Rejects and counters
# ---------------------------------------------------------------------------


def reject(path: str, reason: str, detail: str = "", **extra) -> beam.pvalue.TaggedOutput:
  """A rejected input for the `rejected` tagged output; also counted by reason."""
  beam.metrics.Metrics.counter(COUNTER_NAMESPACE, f"rejected_{reason}").inc()
  record = {"path": str(path), "reason": reason}
  if detail:
    record["detail"] = str(detail)
  record.update(extra)
  return beam.pvalue.TaggedOutput(REJECTED_TAG, record)


def count(name: str, n: int = 1) -> None:
  beam.metrics.Metrics.counter(COUNTER_NAMESPACE, name).inc(n)


# ---------------------------------------------------------------------------
# Deterministic sharded writer
# ---------------------------------------------------------------------------


class _WriteShard(beam.DoFn):
  """Writes one shard's records, sorted by key, to a temporary file."""

  def __init__(self, output_dir, name, split, num_shards, run_id):
    self._output_dir = output_dir
    self._name = name
    self._split = split
    self._num_shards = num_shards
    self._run_id = run_id

  def process(self, element):
    import tensorflow as tf
    shard, items = element
    records = sorted((it for it in items if it is not None), key=lambda r: r[0])
    for a, b in zip(records, records[1:]):
      if a[0] == b[0]:
        raise ValueError(f"duplicate record key {a[0]!r} in {self._name}-{self._split}")
    final = shard_path(self._output_dir, self._name, self._split, shard, self._num_shards)
    tmp = f"{final}.tmp-{self._run_id}"
    frames = 0
    with tf.io.TFRecordWriter(tmp) as writer:
      for _, data, num_frames in records:
        writer.write(data)
        frames += int(num_frames)
    count("records_written", len(records))
    yield {"shard": shard, "tmp": tmp, "final": final, "num_records": len(records),
           "num_frames": frames}


def finalize_split(_, shards, rejects, output_dir, name, split, num_shards, record_kind, features,
                   extra_info):
  """Last step of a write (one worker): renames the temporary shards to their
  final names, removes stale shards of the split, writes rejected-{split}.jsonl
  and updates dataset_info.json. `shards` are the dicts the shard writers yield
  (shard, tmp, final, num_records, num_frames). Returns the split's info."""
  import tensorflow as tf
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
  rejects = sorted(rejects, key=lambda r: json.dumps(r, sort_keys=True))
  rejected_path = os.path.join(output_dir, f"rejected-{split}.jsonl")
  with tf.io.gfile.GFile(rejected_path + ".tmp", "w") as f:
    f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in rejects))
  tf.io.gfile.rename(rejected_path + ".tmp", rejected_path, overwrite=True)
  by_reason: Dict[str, int] = {}
  for r in rejects:
    by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + 1
  info_path = os.path.join(output_dir, "dataset_info.json")
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
  with tf.io.gfile.GFile(info_path + ".tmp", "w") as f:
    json.dump(info, f, indent=2, sort_keys=True)
    f.write("\n")
  tf.io.gfile.rename(info_path + ".tmp", info_path, overwrite=True)
  return split_info


class WriteShardedRecords(beam.PTransform):
  """Writes `(key, serialized_record, num_frames)` elements and rejects.

  Use as `(records, rejects) | WriteShardedRecords(...)`, or `records | ...`
  when the job has no rejected output (Beam refuses a tuple holding None).
  A stable hash of the key picks the shard, records are sorted by key inside
  a shard, every shard file exists (possibly empty), and files appear under
  their final names only after all shards are written.
  """

  def __init__(self, output_dir: str, name: str, split: str, num_shards: int,
               record_kind: str = "track", features: Optional[dict] = None,
               extra_info: Optional[dict] = None):
    super().__init__()
    from pipelines import schema
    self._output_dir = output_dir
    self._name = name
    self._split = split
    self._num_shards = int(num_shards)
    self._record_kind = record_kind
    self._features = features or (schema.TRACK_FEATURES if record_kind == "track"
                                  else schema.CROP_PAIR_FEATURES)
    self._extra_info = extra_info or {}

  def expand(self, pcolls):
    if isinstance(pcolls, beam.pvalue.PCollection):
      records, rejects = pcolls, None
    else:
      records, rejects = pcolls
    pipeline = records.pipeline
    n = self._num_shards
    import tensorflow as tf
    tf.io.gfile.makedirs(self._output_dir)
    run_id = uuid.uuid4().hex[:12]
    keyed = records | "KeyByShard" >> beam.Map(lambda r: (shard_for_key(r[0], n), tuple(r)))
    empty = pipeline | "AllShards" >> beam.Create([(i, None) for i in range(n)])
    shards = ((keyed, empty) | "FlattenShards" >> beam.Flatten()
              | "GroupByShard" >> beam.GroupByKey()
              | "WriteShard" >> beam.ParDo(_WriteShard(self._output_dir, self._name, self._split,
                                                      n, run_id)))
    if rejects is None:
      rejects = pipeline | "NoRejects" >> beam.Create([])
    return (pipeline
            | "FinalizeTrigger" >> beam.Create([None])
            | "Finalize" >> beam.Map(
                finalize_split, shards=beam.pvalue.AsList(shards),
                rejects=beam.pvalue.AsList(rejects), output_dir=self._output_dir,
                name=self._name, split=self._split, num_shards=n,
                record_kind=self._record_kind, features=self._features,
                extra_info=self._extra_info))


# ---------------------------------------------------------------------------
# Running a job
# ---------------------------------------------------------------------------


def make_pipeline_options(argv: Optional[Sequence[str]], defaults: Iterable[str] = ()) -> PipelineOptions:
  """PipelineOptions from argv with DirectRunner as the local default."""
  argv = list(argv or [])
  opts = PipelineOptions(list(defaults) + argv)
  std = opts.view_as(StandardOptions)
  if not std.runner:
    std.runner = "DirectRunner"
  return opts


def maybe_print_help(argv, options_cls, prog: str, description: str) -> bool:
  """Prints the job's own flags for -h/--help (Beam's parser would show
  none of them) and returns True; False when no help was asked for."""
  import argparse  # pylint: disable=g-import-not-at-top
  if not any(a in ("-h", "--help") for a in argv):
    return False
  parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog="Beam's own flags (--runner, --direct_num_workers, "
                                          "...) are accepted too.")
  for cls in options_cls.mro():
    if cls is not PipelineOptions and "_add_argparse_args" in cls.__dict__:
      cls._add_argparse_args(parser)  # pylint: disable=protected-access
  parser.print_help()
  return True


def check_unknown_flags(argv) -> None:
  """JobConfigError for flags no options class knows (Beam would only warn
  and drop them, so a typo like --momentum for --mnist_momentum would run
  the job with the default silently)."""
  logger = logging.getLogger("apache_beam.options.pipeline_options")
  level = logger.level
  logger.setLevel(logging.ERROR)  # the warning is replaced by the error below
  try:
    opts = PipelineOptions(list(argv))
    known = opts.get_all_options(retain_unknown_options=False)
    unknown = sorted(set(opts.get_all_options(retain_unknown_options=True)) - set(known))
  finally:
    logger.setLevel(level)
  if unknown:
    raise JobConfigError("unknown flag(s): " + ", ".join(f"--{u}" for u in unknown))


def run_job(argv: Optional[Sequence[str]], options_cls, validate: Callable[[Any], None],
            build: Callable[[beam.Pipeline, Any], None], job_name: str,
            description: str = "") -> Dict[str, int]:
  """Parses options, validates them before anything starts, runs the pipeline,
  waits, logs and returns the counters (name -> committed value).

  -h/--help prints the job's flags and returns {} without running anything;
  a flag no options class knows is a JobConfigError."""
  argv = list(argv or [])
  if maybe_print_help(argv, options_cls, f"pipelines.{job_name}", description):
    return {}
  check_unknown_flags(argv)
  opts = make_pipeline_options(argv)
  job_opts = opts.view_as(options_cls)
  validate(job_opts)
  start = time.time()
  with beam.Pipeline(options=opts) as p:
    build(p, job_opts)
  result = p.result
  counters = {}
  try:
    query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(COUNTER_NAMESPACE))
    for c in query["counters"]:
      counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + (c.committed or c.attempted or 0)
  except Exception:  # some runners do not report metrics  # pylint: disable=broad-except
    logging.warning("%s: this runner reported no counters", job_name)
  elapsed = time.time() - start
  summary = ", ".join(f"{k}={v}" for k, v in sorted(counters.items()))
  print(f"{job_name}: done in {elapsed:.1f}s; {summary}")
  return counters


def cli_main(main: Callable[[], Any], job_name: str) -> None:
  """Runs a job's main() from the command line: bad options or inputs found
  before the pipeline starts print one clear line and exit with status 1
  instead of a traceback."""
  import sys
  try:
    main()
  except JobConfigError as e:
    sys.exit(f"{job_name}: {e}")
