"""Every `python -m` entry point the README names: `--help` exits 0 without a
traceback and lists the command's own flags (with defaults). The module list is
read from README.md, so a command added there is checked here too."""

import concurrent.futures
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOT_OURS = {"pytest"}


def readme_modules():
  with open(os.path.join(REPO, "README.md")) as f:
    text = f.read()
  found = sorted(set(re.findall(r"python -m ([A-Za-z_][\w.]*\w)", text)) - NOT_OURS)
  return found


MODULES = readme_modules()


def _help(module):
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  env["PYTHONPATH"] = os.pathsep.join([REPO] + [p for p in [env.get("PYTHONPATH")] if p])
  out = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
  return out.returncode, out.stdout, out.stderr


@pytest.fixture(scope="module")
def helps():
  """All --help runs at once (each is a fresh interpreter importing TensorFlow)."""
  with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
    return dict(zip(MODULES, pool.map(_help, MODULES)))


def test_readme_names_the_entry_points():
  assert len(MODULES) >= 20 and "train.track" in MODULES and "pipelines.preview" in MODULES


@pytest.mark.slow
@pytest.mark.parametrize("module", MODULES)
def test_help_exits_0_and_lists_the_flags(helps, module):
  code, out, err = helps[module]
  assert code == 0, f"{module} --help exited {code}:\n{out}\n{err}"
  assert "Traceback" not in out + err, err
  assert re.search(r"^\s*--\w+", out, re.M), f"{module} --help shows no flag:\n{out}"


@pytest.mark.slow
def test_help_shows_flags_of_helper_modules_and_defaults(helps):
  _, out, _ = helps["model.export"]
  for flag in ("--format", "--quantize", "--calibration", "--model_dir", "--export_dir"):
    assert flag in out, out
  _, out, _ = helps["pipelines.build_synthetic"]
  assert "--input_dir" not in out                     # a generator job reads no raw dataset
  assert re.search(r"--num_tracks NUM_TRACKS\s+Tracks to generate. \(default: 1000\)", out), out
  assert re.search(r"--num_shards NUM_SHARDS\s+Number of output shards. \(default: 8\)", out), out
  assert re.search(r"--split SPLIT\s+.*\(default: train\)", out), out
  _, out, _ = helps["pipelines.preview"]
  assert "--records" in out and "(default: '6')" in out, out
