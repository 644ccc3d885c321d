"""The output directory of a dataset job: checked, locked, kept to one dataset,
cleared of the job's own leftovers, and judged after the run.

What a job promises about --output_dir (pipelines.runner.run_job and the
sharded writer call these):

* it is a directory this process can write, or can be created: a file, a path
  below a file or an unwritable place is a JobConfigError naming it, before
  anything runs;
* one job at a time: a job holds OUT/.pipelines.lock (JSON: pid, host, job,
  started) while it runs. A second job is refused with the holder named. A
  lock whose process is gone (same host, pid not alive) is stale: it is
  removed with a warning and the job goes on. A lock from another host is
  never judged stale (its pid cannot be checked here): the message says which
  file to remove. On remote file systems (gs://) the lock is best effort: they
  have no atomic create-if-absent;
* one dataset per directory: shards of another dataset name (or a
  dataset_info.json of another name) refuse the job, unless --overwrite is
  given, which removes that dataset's shards, its rejected-{split}.jsonl,
  preview-{split}.png and dataset_info.json and says so. Another split of the same dataset is not
  foreign (train and val live side by side);
* a killed run leaves `.tmp-*` shards and `*.tmp` info files; the next run of
  the same dataset and split removes them (only those: temporary shards of
  other datasets or splits are left alone);
* a run that wrote no record at all fails (NothingWrittenError) with the
  reject summary, so scripts notice.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Dict, List, Mapping, Optional

from configs import dir_lock
from pipelines.options import JobConfigError
from pipelines.readers import fs

LOCK_NAME = ".pipelines.lock"
INFO_NAME = "dataset_info.json"
# Held while a split adds itself to dataset_info.json (pipelines/writer.py).
INFO_LOCK_NAME = ".dataset_info.lock"

# NAME-SPLIT.tfrecord-00000-of-00008, optionally with the writer's .tmp-RUNID suffix.
_SHARD = re.compile(r"^(?P<name>.+)-(?P<split>[^-]+)\.tfrecord-\d{5}-of-\d{5}(?P<tmp>\.tmp-.*)?$")


class OutputDirBusy(JobConfigError, dir_lock.LockBusy):
  """Another job holds the output directory's lock."""


class NothingWrittenError(RuntimeError):
  """The job ran but wrote no record (every input was rejected, or none came)."""


def _read_text(path: str) -> Optional[str]:
  """The file's text, or None where it cannot be read (gone meanwhile, ...)."""
  try:
    return fs.read_text(path)
  except Exception:  # OSError, gfile's NotFoundError  # pylint: disable=broad-except
    return None


def _listdir(path: str) -> List[str]:
  return fs.listdir(path) if fs.isdir(path) else []


# ---------------------------------------------------------------------------
# A writable directory
# ---------------------------------------------------------------------------


def ensure_writable_dir(output_dir: str) -> None:
  """Creates --output_dir if needed; JobConfigError naming it when it is a
  file, cannot be created, or cannot be written."""
  if fs.exists(output_dir) and not fs.isdir(output_dir):
    raise JobConfigError(f"--output_dir {output_dir!r} is a file, not a directory")
  try:
    fs.makedirs(output_dir)
  except Exception as e:  # OSError, or gfile's errors for URLs  # pylint: disable=broad-except
    raise JobConfigError(f"--output_dir {output_dir!r}: cannot create it "
                         f"({getattr(e, 'strerror', None) or e})") from None
  if not fs.is_remote(output_dir) and not os.access(output_dir, os.W_OK | os.X_OK):
    raise JobConfigError(f"--output_dir {output_dir!r} is not writable")


# ---------------------------------------------------------------------------
# The lock
# ---------------------------------------------------------------------------


class OutputDirLock(dir_lock.DirLock):
  """OUT/.pipelines.lock while a job runs (configs/dir_lock.py, the one lock
  implementation); use as a context manager, or acquire() / release()."""

  def __init__(self, output_dir: str, job_name: str):
    super().__init__(os.path.join(output_dir, LOCK_NAME), job_name,
                     f"--output_dir {output_dir!r}", busy_error=OutputDirBusy,
                     unwritable_error=JobConfigError)
    self.output_dir = output_dir
    self.job_name = job_name


def lock(output_dir: str, job_name: str) -> OutputDirLock:
  """Checks --output_dir (ensure_writable_dir) and takes its lock: the
  output-dir guard of pipelines.runner.run_job (`with lock(...):` releases it)."""
  ensure_writable_dir(output_dir)
  held = OutputDirLock(output_dir, job_name)
  held.acquire()
  return held


# ---------------------------------------------------------------------------
# One dataset per directory, and the job's own leftovers
# ---------------------------------------------------------------------------


def _info_name(output_dir: str) -> Optional[str]:
  text = _read_text(os.path.join(output_dir, INFO_NAME))
  try:
    info = json.loads(text) if text else None
  except ValueError:
    return None
  return info.get("name") if isinstance(info, dict) else None


def _info_splits(output_dir: str) -> List[str]:
  text = _read_text(os.path.join(output_dir, INFO_NAME))
  try:
    info = json.loads(text) if text else {}
  except ValueError:
    return []
  splits = info.get("splits", {}) if isinstance(info, dict) else {}
  return sorted(splits) if isinstance(splits, dict) else []


def foreign_files(output_dir: str, name: str) -> Dict[str, List[str]]:
  """Other dataset name -> its files in output_dir (shards, temporary shards;
  its dataset_info.json, rejected and preview files when the info is of that
  name)."""
  found: Dict[str, List[str]] = {}
  for entry in _listdir(output_dir):
    m = _SHARD.match(entry)
    if m and m.group("name") != name:
      found.setdefault(m.group("name"), []).append(entry)
  info_name = _info_name(output_dir)
  if info_name is not None and info_name != name:
    names = set(_listdir(output_dir))
    extra = [INFO_NAME] + [f for s in _info_splits(output_dir)
                           for f in (f"rejected-{s}.jsonl", f"preview-{s}.png") if f in names]
    found.setdefault(info_name, []).extend(extra)
  return {k: sorted(v) for k, v in sorted(found.items())}


def check_foreign(output_dir: str, name: str, overwrite: bool) -> None:
  """JobConfigError when output_dir holds another dataset; with `overwrite`
  its files are removed instead (logged)."""
  found = foreign_files(output_dir, name)
  if not found:
    return
  total = sum(len(v) for v in found.values())
  names = ", ".join(f"{k!r} ({len(v)} files)" for k, v in found.items())
  if not overwrite:
    listed = [f for files in found.values() for f in files]
    first = next((f for f in listed if _SHARD.match(f)), listed[0])
    raise JobConfigError(
        f"--output_dir {output_dir!r} holds another dataset: {names}, e.g. {first}; writing "
        f"{name!r} there would mix them. Use another --output_dir, or --overwrite to remove them")
  for files in found.values():
    for entry in files:
      fs.remove(os.path.join(output_dir, entry))
  logging.warning("--overwrite: removed %d files of %s from %s", total, names, output_dir)
  print(f"--overwrite: removed {total} files of {names} from {output_dir}")


def own_leftovers(output_dir: str, name: str, split: str) -> List[str]:
  """Temporary files an interrupted run of this dataset and split left."""
  out = []
  for entry in _listdir(output_dir):
    m = _SHARD.match(entry)
    if m and m.group("tmp") and m.group("name") == name and m.group("split") == split:
      out.append(entry)
    elif (entry in (f"rejected-{split}.jsonl.tmp", f"{INFO_NAME}.tmp", INFO_LOCK_NAME)
          or entry.startswith(f"{INFO_NAME}.tmp-")):
      # The info lock of a killed run: this job holds the output-dir lock, and
      # no finalize step has started while the pipeline is being built.
      out.append(entry)
  return out


def clean_own_leftovers(output_dir: str, name: str, split: str) -> List[str]:
  """Removes own_leftovers (logged); returns their names."""
  left = own_leftovers(output_dir, name, split)
  for entry in left:
    fs.remove(os.path.join(output_dir, entry))
  if left:
    logging.warning("removed %d temporary files an interrupted run left in %s: %s",
                    len(left), output_dir, ", ".join(left))
  return left


def prepare_split(output_dir: str, name: str, split: str, overwrite: bool) -> None:
  """Before a split is written (the sharded writer, while the pipeline is
  built): refuse or clear a foreign dataset, remove this split's leftovers."""
  check_foreign(output_dir, name, overwrite)
  clean_own_leftovers(output_dir, name, split)


# ---------------------------------------------------------------------------
# After the run
# ---------------------------------------------------------------------------


def reject_summary(counters: Mapping[str, int]) -> str:
  parts = [f"{k[len('rejected_'):]}={v}" for k, v in sorted(counters.items())
           if k.startswith("rejected_") and v]
  return ", ".join(parts)


def check_written(output_dir: str, counters: Mapping[str, int], job_name: str) -> None:
  """NothingWrittenError, with the reject summary, when the run wrote no
  record (`records_written` of the counters run_job reports: the runner's,
  or on a runner without metrics those read back from dataset_info.json)."""
  if int(counters.get("records_written", 0)) > 0:
    return
  summary = reject_summary(counters)
  why = (f"every input was rejected ({summary}; what {job_name} rejected is in "
         f"{output_dir}/rejected-*.jsonl)" if summary
         else f"no input gave {job_name} a record, and none was rejected")
  raise NothingWrittenError(f"nothing written to {output_dir!r}: {why}")
