"""What the two generator jobs (synthetic tracks, moving MNIST) share: checks
of the --seed / --preview flags, the preview step after the pipeline, and
the dataset_info merge for jobs writing two splits."""

from __future__ import annotations

import json
import logging
import os
from typing import Dict, Sequence

from pipelines import preview
from pipelines.options import JobConfigError


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


def write_previews(opts, name: str, splits: Sequence[str]) -> Dict[str, str]:
  """OUT/preview-{split}.png for each split when --preview N > 0."""
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
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only once a job ran
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
