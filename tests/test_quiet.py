"""Quiet command lines (configs/quiet.py): a fresh user's commands print their
own lines only; --verbose (or TF_CPP_MIN_LOG_LEVEL=0) brings the rest back."""

import importlib.util
import logging
import os
import re
import subprocess
import sys

import pytest
from absl import logging as absl_logging

from configs import quiet
from tests import tracking_utils as tu

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Lines that are not the project's: absl/glog-style prefixes (I1201 12:00:00.1 ...,
# I0000 00:00:17...), TensorFlow's start-up notices, Beam's optional-client warnings.
FOREIGN = re.compile(r"^[IWEF]\d{4} |All log messages before absl|oneDNN|cuda|cuInit|"
                     r"cpu_feature_guard|apitools|bigquery|statecache|rebuild TensorFlow",
                     re.IGNORECASE)


def _fresh_env():
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  env["PYTHONPATH"] = os.pathsep.join([REPO] + [p for p in [env.get("PYTHONPATH")] if p])
  return env


def _run(args, env, cwd):
  out = subprocess.run([sys.executable] + args, env=env, cwd=cwd, capture_output=True,
                       text=True, timeout=600)
  return out.returncode, out.stdout, out.stderr


def test_is_verbose_reads_the_command_line():
  assert quiet.is_verbose(["--input", "x", "--verbose"])
  assert quiet.is_verbose(["--verbose=true"])
  assert not quiet.is_verbose(["--noverbose", "--input", "x"])
  assert not quiet.is_verbose(["--", "--verbose"])          # after `--`: not a flag
  assert not quiet.setup(argv=["--verbose"])                 # verbose: nothing changed


def test_setup_quiets_third_party_loggers_only():
  assert quiet.setup(silence=(), argv=[])
  assert logging.getLogger("apache_beam.io.gcp").level == logging.ERROR
  assert logging.getLogger("tensorflow").level == logging.WARNING
  assert logging.getLogger("train").level == logging.NOTSET       # the project's own
  root = logging.getLogger()
  noisy = logging.LogRecord("root", logging.WARNING, "", 0, "apitools not found, and bigquery "
                            "client libraries are not available", (), None)
  own = logging.LogRecord("root", logging.WARNING, "", 0, "a real warning", (), None)
  assert not root.filter(noisy) and root.filter(own)
  assert sum(isinstance(f, quiet._DropRootNoise) for f in root.filters) == 1   # idempotent
  quiet.setup(silence=(), argv=[])
  assert sum(isinstance(f, quiet._DropRootNoise) for f in root.filters) == 1


def test_absl_info_of_tensorflow_is_dropped_the_projects_is_kept():
  quiet.setup(silence=(), argv=[])
  absl_logger = absl_logging.get_absl_logger()
  tf_dir = os.path.dirname(importlib.util.find_spec("tensorflow").origin)

  def record(path, level=logging.INFO):
    return logging.LogRecord("absl", level, path, 1, "message", (), None)

  assert not absl_logger.filter(record(os.path.join(tf_dir, "python", "saved_model", "x.py")))
  assert absl_logger.filter(record(os.path.join(tf_dir, "x.py"), logging.WARNING))
  assert absl_logger.filter(record(os.path.join(REPO, "model", "export.py")))


_PROBE = ("from configs import quiet; quiet.setup(); import apache_beam; import tensorflow as tf; "
          "print('sum', int(tf.constant(1) + 1))")


@pytest.mark.slow
def test_tensorflow_and_beam_imports_are_silent_unless_verbose(tmp_path):
  code, out, err = _run(["-c", _PROBE], _fresh_env(), str(tmp_path))
  assert code == 0 and out.strip() == "sum 2", err
  assert err.strip() == "", err                              # no start-up lines at all
  tf_only = _PROBE.replace("import apache_beam; ", "")
  code, out, err = _run(["-c", tf_only, "--verbose"], _fresh_env(), str(tmp_path))
  assert code == 0 and FOREIGN.search(err), err              # --verbose: they are back
  env = dict(_fresh_env(), TF_CPP_MIN_LOG_LEVEL="0")
  code, out, err = _run(["-c", tf_only], env, str(tmp_path))
  assert code == 0 and re.search(r"oneDNN|cuda", err), err   # the user asked for the C++ log


def test_failed_import_shows_what_was_captured(tmp_path):
  pkg = tmp_path / "tensorflow"
  pkg.mkdir()
  (pkg / "__init__.py").write_text("import os\nos.write(2, b'native start-up line\\n')\n"
                                   "raise ImportError('broken build')\n")
  env = dict(_fresh_env(), PYTHONPATH=os.pathsep.join([str(tmp_path), REPO]))
  code, _, err = _run(["-c", "from configs import quiet; quiet.setup(); import tensorflow"],
                      env, str(tmp_path))
  assert code != 0 and "native start-up line" in err and "broken build" in err


@pytest.mark.slow
def test_commands_print_only_their_own_lines(shared_dir, tmp_path):
  """A Beam job and the track command, as a new user runs them (no
  TF_CPP_MIN_LOG_LEVEL): every line printed is the command's own."""
  env = _fresh_env()
  code, out, err = _run(["-m", "pipelines.build_synthetic", f"--output_dir={tmp_path / 'syn'}",
                         "--num_tracks=2", "--track_length=4", "--canvas_size=64",
                         "--num_shards=1", "--preview=0"], env, REPO)
  assert code == 0, err
  lines = [l for l in (out + err).splitlines() if l.strip()]
  assert lines and not [l for l in lines if FOREIGN.search(l)], lines
  deer = str(shared_dir / "data" / "tracking" / "otb" / "Deer")
  model = tu.make_model_dir(str(tmp_path / "m"), tu.tiny_re3(), "re3", sub="")
  code, out, err = _run(["-m", "train.track", f"--model={model}", f"--input={deer}",
                         "--max_frames=3"], env, REPO)
  assert code == 0, err
  assert len(out.splitlines()) == 3                          # the boxes
  assert "tracked 3 frames" in err and len(err.strip().splitlines()) == 1, err
  assert f"{model} (tensorflow, float32): tracked" in err, err     # says what ran


_API = ("import numpy as np\n"
        "from model.tracker import Re3Tracker\n"
        "tracker = Re3Tracker.load('default')\n"
        "frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)\n"
        "tracker.init(frame, (40, 30, 30, 30))\n"
        "print('ok', tracker.update(frame)[0])\n")


@pytest.mark.slow
def test_tracker_api_is_silent_unless_re3_verbose(tmp_path):
  """README's API lines as a new user runs them (no TF_CPP_MIN_LOG_LEVEL): no
  start-up line (cuInit, cuda drivers, oneDNN, cpu_feature_guard, the absl
  banner) and no PredictCost warning of a first TensorFlow update; RE3_VERBOSE=1
  shows the start-up lines (the default's LiteRT runtime makes no TensorFlow
  call per frame, so no PredictCost warning is left to show)."""
  code, out, err = _run(["-c", _API], _fresh_env(), str(tmp_path))
  assert code == 0 and out.strip() == "ok True", err
  assert err.strip() == "", err
  code, out, err = _run(["-c", _API], dict(_fresh_env(), RE3_VERBOSE="1"), str(tmp_path))
  assert code == 0 and FOREIGN.search(err), err


def _fake_tensorflow(tmp_path, gpus="[]"):
  """A `tensorflow` package whose import writes a CUDA start-up line to fd 2."""
  pkg = tmp_path / "tensorflow"
  pkg.mkdir()
  (pkg / "__init__.py").write_text(
      "import os, types\nos.write(2, b'failed call to cuInit: native start-up line\\n')\n"
      f"config = types.SimpleNamespace(list_physical_devices=lambda kind=None: {gpus})\n")
  return dict(_fresh_env(), PYTHONPATH=os.pathsep.join([str(tmp_path), REPO]))


def test_api_import_hides_start_up_lines_a_verbose_command_shows_them(tmp_path):
  env = _fake_tensorflow(tmp_path)
  code, out, err = _run(["-c", "import model, tensorflow, os; "
                               "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"], env, str(tmp_path))
  assert code == 0 and "native start-up line" not in err and out.strip() == "2", err
  # a command line with --verbose (which imports `model` first) gets everything back
  code, out, err = _run(["-c", "import model; from configs import quiet; "
                               "quiet.setup(argv=['--verbose']); import tensorflow, os; "
                               "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"], env, str(tmp_path))
  assert code == 0 and "native start-up line" in err and out.strip() == "None", err
  # the user's own TF_CPP_MIN_LOG_LEVEL=0 is respected
  code, _, err = _run(["-c", "import model, tensorflow"], dict(env, TF_CPP_MIN_LOG_LEVEL="0"),
                      str(tmp_path))
  assert code == 0 and "native start-up line" in err, err


def test_cuda_start_up_error_shows_where_an_nvidia_driver_is(tmp_path, monkeypatch):
  """On a machine with an NVIDIA driver a failed CUDA start-up is a real error."""
  env = _fake_tensorflow(tmp_path)
  probe = ("from configs import quiet; quiet._gpu_expected = lambda: {}; import model, tensorflow")
  code, _, err = _run(["-c", probe.format(True)], env, str(tmp_path))
  assert code == 0 and "failed call to cuInit" in err, err
  code, _, err = _run(["-c", probe.format(False)], env, str(tmp_path))
  assert code == 0 and err.strip() == "", err
