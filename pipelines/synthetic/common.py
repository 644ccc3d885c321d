"""What the two generator jobs (synthetic tracks, moving MNIST) share: checks
of the --seed / --preview flags, the preview step after the pipeline, and
the dataset_info merge for jobs writing two splits."""

from __future__ import annotations

import json
import logging
import os
from typing import Dict, Sequence

from pipelines.core import JobConfigError


def check_generator_options(opts) -> None:
  if opts.seed is None or opts.seed < 0:
    raise JobConfigError(f"--seed must be >= 0, got {opts.seed}")
  if opts.preview is None or opts.preview < 0:
    raise JobConfigError(f"--preview must be >= 0 (tracks to draw), got {opts.preview}")
  if opts.preview_frames is None or opts.preview_frames < 1:
    raise JobConfigError(f"--preview_frames must be >= 1, got {opts.preview_frames}")
  if opts.input_dir:
    raise JobConfigError("--input_dir is not used by generator jobs (see --help for their "
                         "sources)")


def maybe_print_help(argv, options_cls, prog: str, description: str) -> bool:
  """Prints the job's own flags for -h/--help (Beam's parser would show
  none of them) and returns True; False when no help was asked for."""
  import argparse  # pylint: disable=g-import-not-at-top
  # pylint: disable-next=g-import-not-at-top
  from apache_beam.options.pipeline_options import PipelineOptions
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
  # pylint: disable-next=g-import-not-at-top
  from apache_beam.options.pipeline_options import PipelineOptions
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


def write_previews(opts, name: str, splits: Sequence[str]) -> Dict[str, str]:
  """OUT/preview-{split}.png for each split when --preview N > 0."""
  from pipelines import preview  # pylint: disable=g-import-not-at-top
  out = {}
  if not opts.preview:
    return out
  for split in splits:
    path = os.path.join(opts.output_dir, f"preview-{split}.png")
    try:
      preview.write_preview(opts.output_dir, path, opts.preview, name, split,
                            opts.preview_frames)
    except FileNotFoundError as e:  # a split where every track was rejected
      logging.warning("no preview for %s: %s", split, e)
      continue
    print(f"preview: {path}")
    out[split] = path
  return out


def merge_split_infos(_, infos, output_dir: str) -> None:
  """Makes dataset_info.json hold every split written by one job.

  Each WriteShardedRecords finalizer rewrites dataset_info.json for its own
  split; when a job writes two splits and a runner runs both finalizers at
  once, one update can be lost. This step runs after both and writes the
  union (a no-op when nothing was lost).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = os.path.join(output_dir, "dataset_info.json")
  with tf.io.gfile.GFile(path) as f:
    info = json.load(f)
  changed = False
  for split, split_info in infos:
    if info.setdefault("splits", {}).get(split) != split_info:
      info["splits"][split] = split_info
      changed = True
  if changed:
    with tf.io.gfile.GFile(path + ".tmp", "w") as f:
      json.dump(info, f, indent=2, sort_keys=True)
      f.write("\n")
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
