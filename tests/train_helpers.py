"""Shared bits of the training tests: tiny configs, toy records, log reading."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
from typing import Dict, List

REPO = pathlib.Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "re3_smoke.yaml")


def tiny_overrides(train_dir: str, steps: int = 10, **extra) -> List[str]:
  """Overrides that make re3_smoke a one-stage, very small, fast run."""
  sets = {
      "data.train_dir": train_dir,
      "trainer.train_steps": steps,
      "trainer.checkpoint_every": 1000,
      "trainer.log_every": 1,
      "trainer.summary_every": 1000,
      "trainer.image_summary_every": 1000,
      "trainer.stages": "[{unroll: 2, batch_size: 4}]",
  }
  sets.update(extra)
  return [f"{k}={v}" for k, v in sets.items()]


def read_log(model_dir) -> List[Dict]:
  path = os.path.join(str(model_dir), "train_log.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def train_cmd(*args: str) -> List[str]:
  return [sys.executable, "-m", "train.train", *args]


def env(**extra) -> Dict[str, str]:
  e = dict(os.environ)
  e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
  e.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  e.update(extra)
  return e


def run_train(*args: str, timeout: float = 240, **env_extra) -> subprocess.CompletedProcess:
  return subprocess.run(train_cmd(*args), cwd=str(REPO), env=env(**env_extra),
                        capture_output=True, text=True, timeout=timeout)


def train_in_process(argv, capsys):
  """train.train's main in-process -> (exit code, last stderr line, stderr)."""
  from absl import flags
  from train import train as train_entry
  fv = flags.FlagValues()
  train_entry.define_flags(fv)
  fv(["train.train"] + argv)
  code = train_entry.main([], fv)
  err = capsys.readouterr().err
  lines = [l for l in err.splitlines() if l.strip()]
  return code, (lines[-1] if lines else ""), err


def set_flags(train_dir, steps=2, **extra) -> List[str]:
  """tiny_overrides as repeated --set flags."""
  out = []
  for s in tiny_overrides(train_dir, steps=steps, **extra):
    out += ["--set", s]
  return out


def tree_digest(path) -> Dict[str, str]:
  """{relative path: sha1} of every file under path."""
  import hashlib
  out = {}
  for root, _, files in os.walk(path):
    for f in files:
      p = os.path.join(root, f)
      with open(p, "rb") as fh:
        out[os.path.relpath(p, path)] = hashlib.sha1(fh.read()).hexdigest()
  return out
