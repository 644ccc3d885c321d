"""Quiet command lines: a command prints its own progress and results only.

Every command-line entry point calls this once, at the top of its module,
before TensorFlow or Apache Beam is imported:

    from configs import quiet
    quiet.setup()                        # or quiet.setup(("tensorflow", "apache_beam"))

Unless the command line has --verbose, this hides (TF_CPP_MIN_LOG_LEVEL=0 set
by the user shows TensorFlow's C++ log in full; another value the user set is
kept as it is):

  * TensorFlow's start-up lines (oneDNN notice, CPU-instruction notice, "Could
    not find cuda drivers", cuInit / cuDNN / cuBLAS factory lines, the
    "All log messages before absl::InitializeLog()" banner): these are written
    by C++ straight to file descriptor 2 while TensorFlow is imported and
    probes its devices, so the import and the device probe run with that
    descriptor pointed at a temporary file, which is printed only if the
    import fails;
  * TensorFlow's C++ INFO and WARNING lines afterwards (TF_CPP_MIN_LOG_LEVEL=2);
  * INFO logs of Beam, TensorFlow's Python side and absl, and Beam's optional
    GCP client warnings ("apitools not found ..."), via the logging levels of
    their loggers.

Warnings and errors of the project's own code, and every exception, still show.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from typing import Optional, Sequence

# Third-party loggers whose INFO (and, for the optional GCP clients, WARNING)
# lines are not the command's own output.
_NOISY_LOGGERS = {
    "apache_beam": logging.WARNING,
    "apache_beam.io.gcp": logging.ERROR,
    "apache_beam.internal.gcp": logging.ERROR,
    "tensorflow": logging.ERROR,
    "absl": logging.WARNING,
    "h5py": logging.WARNING,
    "matplotlib": logging.WARNING,
    "numba": logging.WARNING,
    "PIL": logging.WARNING,
}
# Root-logger messages that Beam logs at import when its optional GCP clients are absent.
_ROOT_NOISE = ("apitools not found", "bigquery client libraries")
_VERBOSE_ARGS = ("--verbose", "--verbose=true", "--verbose=True", "--verbose=1", "-verbose")


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


def _import_silenced(modules: Sequence[str]) -> None:
  """Imports `modules` (and lets TensorFlow probe its devices) with fd 2 sent to
  a temporary file; on failure the captured text is written back to stderr."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode="w+b") as captured:
    os.dup2(captured.fileno(), 2)
    try:
      for name in modules:
        module = __import__(name)
        if name == "tensorflow":
          module.config.list_physical_devices()   # the device probe logs cuInit lines
    except BaseException:
      os.dup2(saved, 2)
      captured.seek(0)
      sys.stderr.write(captured.read().decode("utf-8", "replace"))
      raise
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)


def setup(imports: Sequence[str] = ("tensorflow",), argv: Optional[Sequence[str]] = None) -> bool:
  """Silences third-party start-up and INFO logs unless --verbose; returns
  True when it did. `imports`: the heavy modules the command uses, imported
  here under the silenced descriptor (a module already imported is untouched)."""
  if is_verbose(argv):
    return False
  cpp_log_wanted = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() == "0"
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  for name, level in _NOISY_LOGGERS.items():
    logging.getLogger(name).setLevel(level)
  logging.getLogger().addFilter(_DropRootNoise())
  warnings.filterwarnings("ignore", message=r".*apitools.*")
  pending = [m for m in imports if m not in sys.modules]
  if pending and not cpp_log_wanted:
    _import_silenced(pending)
  elif pending:
    for name in pending:
      __import__(name)
  return True
