"""Quiet command lines: a command prints its own progress and results only.

Every command-line entry point calls this once, at the top of its module,
before TensorFlow or Apache Beam is imported:

    from configs import quiet
    quiet.setup()

Unless the command line has --verbose, this hides (TF_CPP_MIN_LOG_LEVEL=0 set
by the user shows TensorFlow's C++ log in full; another value the user set is
kept as it is):

  * TensorFlow's start-up lines (oneDNN notice, CPU-instruction notice, "Could
    not find cuda drivers", cuInit / cuDNN / cuBLAS factory lines, the
    "All log messages before absl::InitializeLog()" banner): C++ writes them
    straight to file descriptor 2 while TensorFlow is imported and probes its
    devices, which TF_CPP_MIN_LOG_LEVEL does not stop, so the first import of
    TensorFlow (and of Beam), whenever the command makes it, runs with that
    descriptor pointed at a temporary file that is printed only if the import
    fails (an import hook; nothing is imported early);
  * TensorFlow's C++ INFO and WARNING lines afterwards (TF_CPP_MIN_LOG_LEVEL=2);
  * INFO logs of TensorFlow's Python side (SavedModel writer, signatures,
    checkpoints; TensorFlow logs those through absl's logger, so records from
    files of the TensorFlow, Keras and Beam packages below WARNING are dropped
    there) and of Beam's state cache, and Beam's optional GCP client warnings ("apitools
    not found ...", "No module named google.cloud.bigquery_storage_v1"), via
    the levels of those loggers and a filter on the root logger; the project's
    own absl and `train` logs, and every warning of Beam's runners, stay.

Warnings and errors of the project's own code, and every exception, still show.
RE3_VERBOSE=1 in the environment is --verbose for every command.

The Python API (importing `model`, e.g. `from model.tracker import Re3Tracker`)
calls `setup_library` instead: the same captured first import of TensorFlow and
TF_CPP_MIN_LOG_LEVEL=2 by default, nothing else of the program's logging
touched; RE3_VERBOSE=1 (or TF_CPP_MIN_LOG_LEVEL set to another value) shows
everything.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
import warnings
from typing import Optional, Sequence, Tuple

from absl import logging as absl_logging

# Third-party loggers whose INFO (and, for the optional GCP clients, WARNING)
# lines are not the command's own output. Only these: the logs of Beam's
# runners (and every warning elsewhere) stay.
_NOISY_LOGGERS = {
    "apache_beam.io.gcp": logging.ERROR,            # optional GCP clients absent
    "apache_beam.internal.gcp": logging.ERROR,
    "apache_beam.runners.worker.statecache": logging.WARNING,
    "tensorflow": logging.WARNING,                  # SavedModel writer, signatures
    "h5py": logging.WARNING,
    "matplotlib": logging.WARNING,
    "numba": logging.WARNING,
    "PIL": logging.WARNING,
}
# Root-logger messages that Beam logs at import when its optional GCP clients are absent.
_ROOT_NOISE = ("apitools not found", "bigquery client libraries",
               "google.cloud.bigquery_storage")
# Modules whose import writes start-up lines straight to file descriptor 2.
SILENCED_IMPORTS = ("tensorflow", "apache_beam")
_VERBOSE_ARGS = ("--verbose", "--verbose=true", "--verbose=True", "--verbose=1", "-verbose")


# Packages that log their INFO through absl's logger (TensorFlow's SavedModel
# writer and checkpointing do): those records are dropped, the project's own
# absl logs are not.
_ABSL_QUIET_PACKAGES = ("tensorflow", "tf_keras", "keras", "apache_beam")


def _package_dirs(names: Sequence[str]) -> Tuple[str, ...]:
  """Folders of installed packages, found without importing them."""
  out = []
  for name in names:
    try:
      spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
      continue
    for d in (spec.submodule_search_locations or []) if spec else []:
      out.append(os.path.join(os.path.realpath(d), ""))
  return tuple(out)


class _DropForeignInfo(logging.Filter):
  """Drops records below WARNING whose source file is in one of `dirs`."""

  def __init__(self, dirs: Sequence[str]):
    super().__init__()
    self.dirs = tuple(dirs)

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.WARNING or not self.dirs:
      return True
    return not os.path.realpath(record.pathname or "").startswith(self.dirs)


class _DropRootNoise(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    msg = str(record.msg)
    return not any(n in msg for n in _ROOT_NOISE)


def is_verbose(argv: Optional[Sequence[str]] = None) -> bool:
  """--verbose on the command line (absl or argparse spelling)."""
  args = sys.argv[1:] if argv is None else list(argv)
  if "--" in args:
    args = args[:args.index("--")]
  return any(a in _VERBOSE_ARGS for a in args)


class _Fd2Captured:
  """File descriptor 2 sent to a temporary file for the duration; on an
  exception the captured text is written back to stderr."""

  def __enter__(self):
    sys.stderr.flush()
    self._saved = os.dup(2)
    self._file = tempfile.TemporaryFile(mode="w+b")
    os.dup2(self._file.fileno(), 2)
    return self

  def __exit__(self, exc_type, exc, tb):
    sys.stderr.flush()
    os.dup2(self._saved, 2)
    os.close(self._saved)
    self._file.seek(0)
    self.text = self._file.read().decode("utf-8", "replace")
    self._file.close()
    if exc_type is not None:
      _replay(self.text)
    return False


# What a runtime prints natively, on fd 2, that is a notice and not a problem.
NATIVE_NOTICES = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)


@contextlib.contextmanager
def native_notices():
  """Hides the known notices a native runtime writes straight to fd 2 (e.g.
  LiteRT's 'Created TensorFlow Lite XNNPACK delegate' when an interpreter is
  made); any other line it wrote, and everything with RE3_VERBOSE=1, is shown."""
  if env_verbose():
    yield
    return
  cap = _Fd2Captured()
  with cap:
    yield
  other = [l for l in cap.text.splitlines() if l.strip() and l.strip() not in NATIVE_NOTICES]
  if other:
    _replay("\n".join(other) + "\n")


def _replay(text: str) -> None:
  sys.stderr.write(text)
  sys.stderr.flush()


# Device nodes of an NVIDIA driver: on such a machine a failed CUDA start-up is
# a real error, not the CPU machine's usual notice.
_NVIDIA_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/version")


def _gpu_expected() -> bool:
  return any(os.path.exists(p) for p in _NVIDIA_NODES)


class _QuietLoader(importlib.abc.Loader):
  """Runs the wrapped loader's exec_module with fd 2 captured (and, for
  TensorFlow, its device probe); everything else is the wrapped loader's."""

  def __init__(self, loader):
    self._loader = loader

  def __getattr__(self, name):
    return getattr(self._loader, name)

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    try:
      with _Fd2Captured() as captured:
        self._loader.exec_module(module)
        gpus = None
        if module.__name__ == "tensorflow":
          # the device probe logs the cuInit lines
          gpus = module.config.list_physical_devices("GPU")
      if gpus == [] and _gpu_expected() and re.search(r"cuInit|cuda", captured.text, re.I):
        _replay(captured.text)     # an NVIDIA driver is there but TensorFlow found no GPU
    finally:
      if getattr(module, "__spec__", None) is not None:
        module.__spec__.loader = self._loader
      module.__loader__ = self._loader


class _QuietFinder(importlib.abc.MetaPathFinder):
  """Finds `names` with the other finders and wraps their loader in _QuietLoader."""

  def __init__(self, names: Sequence[str]):
    self.names = frozenset(names)

  def find_spec(self, fullname, path, target=None):
    if fullname not in self.names:
      return None
    for finder in sys.meta_path:
      if finder is self or not hasattr(finder, "find_spec"):
        continue
      spec = finder.find_spec(fullname, path, target)
      if spec is not None:
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
          spec.loader = _QuietLoader(spec.loader)
        return spec
    return None


# Set to 1 (or true) to see everything: TensorFlow's start-up lines and logs,
# for the Python API and every command line (as --verbose does).
VERBOSE_ENV = "RE3_VERBOSE"
_LIBRARY_ENV_SET = []     # TF_CPP_MIN_LOG_LEVEL set by setup_library (undone by a verbose setup)


def env_verbose() -> bool:
  return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _undo_library_setup() -> None:
  """A verbose command line shows what importing `model` would have hidden."""
  sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietFinder)]
  if _LIBRARY_ENV_SET and "tensorflow" not in sys.modules:
    os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
  _LIBRARY_ENV_SET.clear()


def setup_library() -> bool:
  """Quiet start-up for the package's Python API (`model/__init__.py` calls it,
  so `from model.tracker import Re3Tracker` is quiet): TensorFlow's first
  import, where it has not happened yet, runs with fd 2 captured (as for the
  command lines; shown if the import fails, or if an NVIDIA driver is present
  but TensorFlow found no GPU), and TF_CPP_MIN_LOG_LEVEL defaults to 2 (C++
  INFO and WARNING lines hidden; errors still show). Python loggers are left as
  the program set them. Nothing happens with RE3_VERBOSE=1, with
  TF_CPP_MIN_LOG_LEVEL set to another value before, or once TensorFlow is
  imported (its log level is fixed then)."""
  if env_verbose() or "tensorflow" in sys.modules:
    return False
  level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
  if level is not None and level.strip() != "2":
    return False
  if level is None:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    _LIBRARY_ENV_SET.append(True)
  if not any(isinstance(f, _QuietFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _QuietFinder(("tensorflow",)))
  return True


def setup(silence: Sequence[str] = SILENCED_IMPORTS, argv: Optional[Sequence[str]] = None) -> bool:
  """Silences third-party start-up and INFO logs unless --verbose (or
  RE3_VERBOSE=1); returns True when it did. `silence`: the heavy modules whose
  first import (wherever it happens, now or later) runs with fd 2 captured; a
  module already imported is left as it is. Nothing is imported here."""
  if is_verbose(argv) or env_verbose():
    _undo_library_setup()
    return False
  cpp_log_wanted = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() == "0"
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  for name, level in _NOISY_LOGGERS.items():
    logging.getLogger(name).setLevel(level)
  root = logging.getLogger()
  if not any(isinstance(f, _DropRootNoise) for f in root.filters):
    root.addFilter(_DropRootNoise())
  absl_logger = absl_logging.get_absl_logger()   # absl's own logger class (finds callers)
  if not any(isinstance(f, _DropForeignInfo) for f in absl_logger.filters):
    absl_logger.addFilter(_DropForeignInfo(_package_dirs(_ABSL_QUIET_PACKAGES)))
  warnings.filterwarnings("ignore", message=r".*apitools.*")
  pending = [m for m in silence if m not in sys.modules]
  if pending and not cpp_log_wanted:
    finders = [f for f in sys.meta_path if isinstance(f, _QuietFinder)]
    if not finders:
      sys.meta_path.insert(0, _QuietFinder(pending))
    else:                                   # setup_library's finder: widen it
      finders[0].names = finders[0].names | frozenset(pending)
  _LIBRARY_ENV_SET.clear()
  return True
