"""One writer at a time: a lock file held while a job writes a directory (or a
file), with stale-lock detection. The dataset jobs (pipelines/output_dir.py:
OUT/.pipelines.lock), training (MODEL_DIR/.train.lock) and exports
(EXPORT_DIR/.export.lock, or EXPORT.lock beside a one-file export) take it.

* The lock file holds JSON: pid, host, job, started, and a token of its own.
  It is created in one step (a hard link of a complete temporary file), so a
  second writer never sees a half-written lock and two cannot both create it.
* A second writer is refused (`busy_error`, a ValueError) naming the holder
  (job, pid, host, start time) and the lock file.
* A lock whose process is gone (same host, pid not alive) is stale: it is
  removed with a warning and the writer goes on (`stale_holder` says whose it
  was, so the writer can clear what that run left). A lock from another host
  is never judged stale (its pid cannot be checked here): the message says
  which file to remove.
* On remote file systems (URLs: gs://, ...) the lock is best effort: they have
  no atomic create-if-absent.

Lowest layer (configs), so that model/, pipelines/ and train/ share the one
implementation; TensorFlow is imported only for remote paths.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from typing import Dict, Mapping, Optional


class LockBusy(ValueError):
  """Another live job holds the lock."""


def is_remote(path: str) -> bool:
  return "://" in str(path)


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only for remote paths
  return tf.io.gfile


def _read_text(path: str) -> Optional[str]:
  """The file's text, or None where it cannot be read (gone meanwhile, ...)."""
  try:
    if is_remote(path):
      with _gfile().GFile(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")
    with open(path, "rb") as f:
      return f.read().decode("utf-8", errors="replace")
  except Exception:  # OSError, gfile's NotFoundError  # pylint: disable=broad-except
    return None


def _remove(path: str) -> None:
  if is_remote(path):
    _gfile().remove(path)
  else:
    os.remove(path)


def pid_alive(pid: int) -> bool:
  """Whether process `pid` exists on this host."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # alive, another user's
    return True
  except OSError:
    return False
  return True


def holder_of(path: str) -> Dict:
  """The JSON content of the lock file at `path` ({} if absent or unreadable)."""
  try:
    holder = json.loads(_read_text(path) or "")
  except ValueError:
    return {}
  return holder if isinstance(holder, dict) else {}


class DirLock:
  """The lock file `path` while `job` writes `subject` (the words messages
  use for it, e.g. "--output_dir 'OUT'"); a context manager, or acquire() /
  release()."""

  def __init__(self, path: str, job: str, subject: str, busy_error=LockBusy,
               unwritable_error=ValueError):
    self.path = path
    self.job = job
    self.subject = subject
    self.busy_error = busy_error
    self.unwritable_error = unwritable_error
    self._content = json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "job": job,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "token": uuid.uuid4().hex}, sort_keys=True) + "\n"
    self._held = False
    # The holder of a stale lock acquire() removed (None when there was none).
    self.stale_holder: Optional[Dict] = None

  def __enter__(self) -> "DirLock":
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()

  @property
  def held(self) -> bool:
    return self._held

  def _create(self) -> bool:
    """Creates the lock file with its content in one step; False if it exists."""
    if is_remote(self.path):  # no atomic create-if-absent there: best effort
      g = _gfile()
      if g.exists(self.path):
        return False
      with g.GFile(self.path, "w") as f:
        f.write(self._content)
      return True
    tmp = f"{self.path}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
      with open(tmp, "w", encoding="utf-8") as f:
        f.write(self._content)
    except OSError as e:
      raise self.unwritable_error(
          f"{self.subject} is not writable ({e.strerror or e})") from None
    try:
      os.link(tmp, self.path)  # atomic: fails if the lock exists, never half-written
      return True
    except FileExistsError:
      return False
    finally:
      os.remove(tmp)

  @staticmethod
  def _holder(text: Optional[str]) -> Dict:
    try:
      holder = json.loads(text or "")
      return holder if isinstance(holder, dict) else {}
    except ValueError:
      return {}

  @staticmethod
  def is_stale(holder: Mapping) -> bool:
    """A lock of this host whose process is gone."""
    try:
      pid = int(holder.get("pid"))
    except (TypeError, ValueError):
      return False
    return holder.get("host") == socket.gethostname() and not pid_alive(pid)

  def _take_stale(self, text: str) -> bool:
    """Removes the stale lock whose content is `text`; False if another job
    replaced it meanwhile (then that job's lock is put back)."""
    if is_remote(self.path):
      _remove(self.path)
      return True
    aside = f"{self.path}.stale-{uuid.uuid4().hex[:8]}"
    try:
      os.rename(self.path, aside)
    except FileNotFoundError:
      return True  # another job removed it first; try to create ours
    moved = _read_text(aside)
    if moved == text:
      os.remove(aside)
      return True
    try:  # a live job's lock was moved: put it back
      os.link(aside, self.path)
    except FileExistsError:
      pass
    os.remove(aside)
    return False

  def acquire(self) -> "DirLock":
    if self._held:
      return self
    for _ in range(3):
      if self._create():
        self._held = True
        return self
      text = _read_text(self.path)
      if text is None:
        continue  # removed meanwhile
      holder = self._holder(text)
      if not self.is_stale(holder):
        raise self.busy_error(self._busy_message(holder))
      logging.warning("%s: removing the stale lock %s of %s (pid %s on %s, started %s), "
                      "whose process is gone", self.job, self.path,
                      holder.get("job", "?"), holder.get("pid"), holder.get("host"),
                      holder.get("started", "?"))
      if self._take_stale(text):
        self.stale_holder = holder
    raise self.busy_error(self._busy_message(self._holder(_read_text(self.path))))

  def _busy_message(self, holder: Mapping) -> str:
    if not holder:
      return (f"{self.subject} is locked by {self.path} (unreadable); "
              "remove it if no job is writing there")
    where = (f"pid {holder.get('pid')} on this host" if holder.get("host") == socket.gethostname()
             else f"pid {holder.get('pid')} on host {holder.get('host')}")
    return (f"{self.subject} is in use by {holder.get('job', 'another job')} "
            f"({where}, since {holder.get('started', '?')}); wait for it to finish, or remove "
            f"{self.path} if that job is gone")

  def release(self) -> None:
    if not self._held:
      return
    self._held = False
    if _read_text(self.path) == self._content:
      try:
        _remove(self.path)
      except Exception:  # already gone  # pylint: disable=broad-except
        pass
