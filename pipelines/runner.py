"""Running a dataset job: options from argv (DirectRunner by default), the
job's own --help, unknown-flag errors, validation before anything starts,
the pipeline run and its counters, and the command-line entry point."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from typing import Any, Callable, Dict, Iterable, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines import output_dir
from pipelines.options import JobConfigError
from pipelines.writer import COUNTER_NAMESPACE


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
  with output_dir.lock(job_opts.output_dir, job_name):  # checked, one job at a time
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
  output_dir.check_written(job_opts.output_dir, counters, job_name)
  return counters


# Exit statuses of the job commands.
EXIT_BAD_OPTIONS = 2   # bad options or inputs found before the pipeline starts
EXIT_FAILED = 1        # the job failed, or ran and wrote nothing


def cli_main(main: Callable[[], Any], job_name: str) -> None:
  """Runs a job's main() from the command line. Every failure ends in one
  line on stderr instead of a traceback (--verbose shows it too): bad options
  or inputs found before the pipeline starts (the output dir included) exit
  with status 2; a run that wrote nothing, or any other error, with 1."""
  verbose = "--verbose" in sys.argv[1:]
  try:
    main()
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


def _fail(job_name: str, message: str, status: int, verbose: bool) -> None:
  if verbose:
    traceback.print_exc()
  print(f"{job_name}: {message}", file=sys.stderr)
  sys.exit(status)
