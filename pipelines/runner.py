"""Running a dataset job: options from argv (the local runner by default,
DaskRunner on request), the job's own --help, unknown-flag errors, validation
before anything starts, the pipeline run and its counters (or, on a runner
without metrics, what it wrote), and the command-line entry point.

Runners (--runner):
  DirectRunner (default)  this machine: Beam's FnApiRunner, chosen directly (Beam's
                          DirectRunner first tries to download the Prism runner binary
                          and, offline, logs the failure and falls back); add
                          --direct_running_mode=multi_processing --direct_num_workers=N
                          for N processes
  DaskRunner              a Dask cluster (the `dask` extra): a local one of --dask_workers
                          processes, or an existing one by --dask_client_address /
                          --dask_scheduler_file (pipelines/dask_runner.py)
  PrismRunner             Beam's Prism runner; offline it needs --prism_location PATH to a
                          local binary
  DataflowRunner, ...     any other Beam runner, by name, with its own flags
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.runners.portability.portable_runner import JobServiceHandle
from apache_beam.runners.runner import PipelineRunner

from pipelines import output_dir
from pipelines.options import DaskClusterOptions, JobConfigError
from pipelines.writer import COUNTER_NAMESPACE

LOCAL_RUNNER = "pipelines.runner.LocalRunner"
DASK_RUNNER = "pipelines.dask_runner.DaskRunner"
# --runner values resolved here; any other value goes to Beam as given.
RUNNER_ALIASES = {"DirectRunner": LOCAL_RUNNER, "LocalRunner": LOCAL_RUNNER,
                  "DaskRunner": DASK_RUNNER}
DASK_EXTRA_HINT = ("pip install 're3-tf[dask]' (or pip install 'apache-beam[dask]'), "
                   "which brings dask and distributed")


class LocalRunner(PipelineRunner):
  """The local default: what Beam's DirectRunner runs batch jobs on (the
  FnApiRunner, --direct_running_mode / --direct_num_workers included), without
  its attempt to download and start the Prism runner first."""

  def is_fnapi_compatible(self):
    return False  # as Beam's DirectRunner: the pipeline goes to the FnApiRunner as built

  def run_pipeline(self, pipeline, options):
    provision_info = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(
        pipeline_options=JobServiceHandle.encode_pipeline_options(options.get_all_options())))
    return fn_runner.FnApiRunner(provision_info=provision_info).run_pipeline(pipeline, options)


def load_dask_runner():
  """pipelines.dask_runner, or a JobConfigError naming the extra to install."""
  try:
    from pipelines import dask_runner  # pylint: disable=g-import-not-at-top  # dask is an optional extra
  except ImportError as e:
    raise JobConfigError(f"--runner=DaskRunner needs the 'dask' extra ({e}): "
                         f"{DASK_EXTRA_HINT}") from None
  return dask_runner


def resolve_runner(argv: Sequence[str]) -> str:
  """The runner argv asks for, as Beam will load it (the local runner when
  none is given). DaskRunner loads its module here so that its flags
  (--dask_client_address, ...) parse."""
  logger = logging.getLogger("apache_beam.options.pipeline_options")
  level = logger.level
  logger.setLevel(logging.ERROR)  # unknown flags are reported by check_unknown_flags
  try:
    name = PipelineOptions(list(argv)).view_as(StandardOptions).runner
  finally:
    logger.setLevel(level)
  resolved = RUNNER_ALIASES.get(name or "DirectRunner", name)
  if resolved == DASK_RUNNER:
    load_dask_runner()
  return resolved


def make_pipeline_options(argv: Optional[Sequence[str]], defaults: Iterable[str] = ()) -> PipelineOptions:
  """PipelineOptions from argv with the runner resolved (resolve_runner)."""
  argv = list(defaults) + list(argv or [])
  runner_name = resolve_runner(argv)
  opts = PipelineOptions(argv)
  opts.view_as(StandardOptions).runner = runner_name
  return opts


def maybe_print_help(argv, options_cls, prog: str, description: str) -> bool:
  """Prints the job's own flags for -h/--help (Beam's parser would show
  none of them) and returns True; False when no help was asked for."""
  if not any(a in ("-h", "--help") for a in argv):
    return False
  parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description,
                                   formatter_class=_HelpFormatter,
                                   epilog="Beam's own flags (--direct_num_workers, "
                                          "--temp_location, ...) are accepted too.")
  for cls in options_cls.mro():
    if cls is not PipelineOptions and "_add_argparse_args" in cls.__dict__:
      cls._add_argparse_args(parser)  # pylint: disable=protected-access
  unused = set(getattr(options_cls, "UNUSED_FLAGS", ()))
  for action in parser._actions:  # pylint: disable=protected-access
    if action.dest in unused:
      action.help = argparse.SUPPRESS        # a flag the job refuses is not offered
  _add_runner_help(parser.add_argument_group("runner"))
  parser.print_help()
  return True


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
  """The description as written; each flag's default where it has one (and its
  help does not already say it)."""

  def _get_help_string(self, action):
    text = action.help or ""
    if (action.default not in (None, False, argparse.SUPPRESS) and action.option_strings
        and "default" not in text.lower()):
      text += " (default: %(default)s)"
    return text


def _add_runner_help(group) -> None:
  """The runner flags, for --help (Beam defines --runner and the Dask
  scheduler flags; DaskClusterOptions --dask_workers)."""
  group.add_argument(
      "--runner", default="DirectRunner",
      help="DirectRunner (this machine; add --direct_running_mode=multi_processing "
           "--direct_num_workers=N for N processes), DaskRunner (a Dask cluster; needs the "
           "'dask' extra), PrismRunner (with --prism_location PATH offline), DataflowRunner, ...")
  group.add_argument("--dask_client_address", default=None,
                     help="With --runner=DaskRunner: the scheduler of an existing Dask cluster "
                          "(tcp://host:8786).")
  group.add_argument("--dask_scheduler_file", default=None,
                     help="With --runner=DaskRunner: the scheduler file of an existing cluster "
                          "(dask-scheduler --scheduler-file).")
  DaskClusterOptions._add_argparse_args(group)  # pylint: disable=protected-access


def check_unknown_flags(argv) -> None:
  """JobConfigError for flags no options class knows (Beam would only warn
  and drop them, so a typo like --momentum for --mnist_momentum would run
  the job with the default silently)."""
  resolve_runner(argv)  # the runner's own flags parse once its module is loaded
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
            description: str = "", splits: Optional[Sequence[str]] = None) -> Dict[str, int]:
  """Parses options, validates them before anything starts, runs the pipeline,
  waits, logs and returns the counters (name -> committed value). On a runner
  without metrics (DaskRunner) they are the written_counts of the job's
  `splits` (default: --split).

  -h/--help prints the job's flags and returns {} without running anything;
  a flag no options class knows is a JobConfigError."""
  argv = list(argv or [])
  if maybe_print_help(argv, options_cls, f"pipelines.{job_name}", description):
    return {}
  check_unknown_flags(argv)
  opts = make_pipeline_options(argv)
  job_opts = opts.view_as(options_cls)
  validate(job_opts)
  with output_dir.lock(job_opts.output_dir, job_name):  # checked, one job at a time
    start = time.time()
    with beam.Pipeline(options=opts) as p:
      build(p, job_opts)
  result = p.result
  counters = {}
  source = ""
  try:
    query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(COUNTER_NAMESPACE))
    for c in query["counters"]:
      counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + (c.committed or c.attempted or 0)
  except Exception:  # some runners (DaskRunner) report no metrics  # pylint: disable=broad-except
    counters = written_counts(job_opts.output_dir, splits or [job_opts.split])
    source = " (from dataset_info.json: this runner reports no counters)"
  elapsed = time.time() - start
  summary = ", ".join(f"{k}={v}" for k, v in sorted(counters.items()))
  print(f"{job_name}: done in {elapsed:.1f}s; {summary}{source}")
  output_dir.check_written(job_opts.output_dir, counters, job_name)
  for line in written_lines(job_opts.output_dir, splits or [job_opts.split]):
    print(f"{job_name}: {line}")
  return counters


def written_lines(out_dir: str, splits: Sequence[str]) -> List[str]:
  """Where the job wrote, per split, and how many of its shards are empty (a
  hash of the track id picks the shard, so fewer records than shards, or not
  many more, leave some empty: that is said, with a --num_shards that fits)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only once a job ran (gs:// paths)
  path = os.path.join(out_dir, output_dir.INFO_NAME)
  with tf.io.gfile.GFile(path) as f:
    info = json.load(f)
  lines = []
  for split in splits:
    s = info.get("splits", {}).get(split, {})
    lengths = [int(n) for n in s.get("shard_lengths", [])]
    line = (f"wrote {sum(lengths)} records in {len(lengths)} shard(s) of split {split!r} to "
            f"{out_dir} (and {output_dir.INFO_NAME})")
    empty = sum(1 for n in lengths if n == 0)
    if empty:
      line += (f"; {empty} of the {len(lengths)} shards are empty (a hash of the track id picks "
               f"the shard): a lower --num_shards (e.g. {max(1, sum(lengths) // 4)}) leaves "
               "fewer empty")
    lines.append(line)
  return lines


def written_counts(out_dir: str, splits: Sequence[str]) -> Dict[str, int]:
  """What a run wrote, from OUT/dataset_info.json, for a runner without
  metrics: records_written and frames_written (over `splits`), and
  rejected_{reason} as in rejected-{split}.jsonl (duplicates dropped, where
  the counters count every sighting)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only once a job ran (gs:// paths)
  path = os.path.join(out_dir, output_dir.INFO_NAME)
  with tf.io.gfile.GFile(path) as f:
    info = json.load(f)
  counts = {"records_written": 0, "frames_written": 0}
  for split in splits:
    s = info.get("splits", {}).get(split)
    if s is None:
      raise RuntimeError(f"{path}: no split {split!r} after the run")
    counts["records_written"] += int(s["num_tracks"])
    counts["frames_written"] += int(s["num_frames"])
    for reason, n in s.get("rejected_by_reason", {}).items():
      counts[f"rejected_{reason}"] = counts.get(f"rejected_{reason}", 0) + int(n)
  return counts


# Exit statuses of the job commands.
EXIT_BAD_OPTIONS = 2   # bad options or inputs found before the pipeline starts
EXIT_FAILED = 1        # the job failed, or ran and wrote nothing
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


def cli_main(main: Callable[[], Any], job_name: str) -> None:
  """Runs a job's main() from the command line. Every failure ends in one
  line on stderr instead of a traceback (--verbose shows it too): bad options
  or inputs found before the pipeline starts (the output dir included) exit
  with status 2; a run that wrote nothing, or any other error, with 1; Ctrl-C
  with 130. Beam's own log of a failing step's traceback is silenced (shown
  with --verbose)."""
  verbose = "--verbose" in sys.argv[1:]
  # Beam logs a failing DoFn's traceback (ERROR:apache_beam.runners.common)
  # before re-raising it: the one line below says it (--verbose shows both).
  beam_logger = logging.getLogger("apache_beam.runners.common")
  level = beam_logger.level
  if not verbose:
    beam_logger.setLevel(logging.CRITICAL)
  try:
    main()
  except KeyboardInterrupt:
    _fail(job_name, "interrupted (Ctrl-C); the next run of this job removes its temporary "
          "files", EXIT_INTERRUPTED, verbose)
  except JobConfigError as e:
    _fail(job_name, str(e), EXIT_BAD_OPTIONS, verbose)
  except output_dir.NothingWrittenError as e:
    _fail(job_name, str(e), EXIT_FAILED, verbose)
  except Exception as e:  # pylint: disable=broad-except
    lines = [l for l in str(e).splitlines() if l.strip()]
    message = f"{type(e).__name__}: {lines[0] if lines else ''}"
    if not verbose:
      message += " (--verbose shows the traceback)"
    _fail(job_name, message, EXIT_FAILED, verbose)
  finally:
    beam_logger.setLevel(level)


def _fail(job_name: str, message: str, status: int, verbose: bool) -> None:
  if verbose:
    traceback.print_exc()
  print(f"{job_name}: {message}", file=sys.stderr)
  sys.exit(status)
