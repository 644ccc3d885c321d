"""tf.distribute and fault tolerance: MirroredStrategy on 2 logical CPUs equals
one device on the same global batch; a real 2-process MultiWorkerMirrored run
on localhost that survives a worker restart; kill -9 then restart from
--model_dir alone."""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from tests.train_helpers import (REPO, SMOKE, env, free_port, read_log, run_train, tiny_overrides,
                                 train_cmd)
from train import toy_data
from train.runtime import PREEMPTED_EXIT_CODE

# Runs in a fresh process: logical devices must be configured before TF starts.
MIRRORED_CHECK = r"""
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from configs import experiment
from train import data, re3_task, trainer as trainer_lib

toy_dir, work = sys.argv[1], sys.argv[2]
GLOBAL = 4

class FixedBatchTask(re3_task.Re3Task):
  # Feeds the same global batch whatever the number of replicas.
  def __init__(self, cfg, batch):
    super().__init__(cfg)
    self.batch = batch
  def dataset(self, stage, ctx, seed):
    per = ctx.get_per_replica_batch_size(stage.batch_size)
    return tf.data.Dataset.from_tensor_slices(self.batch).batch(per).repeat()

def run(dist, prob, batch, w0, name):
  sets = [f"data.train_dir={toy_dir}", "trainer.train_steps=1", "trainer.checkpoint_every=100",
          f"trainer.stages=[{{unroll: 2, batch_size: {GLOBAL}, self_train_prob: {prob}}}]",
          "trainer.lr_schedule=constant", "trainer.learning_rate=0.01",
          "trainer.adam_epsilon=1.0", f"runtime.distribution={dist}", "runtime.num_devices=2"]
  cfg = experiment.load_experiment(sys.argv[3], sets)
  tr = trainer_lib.Trainer(cfg, f"{work}/{name}", FixedBatchTask(cfg, batch))
  if w0 is not None:
    tr.model.set_weights(w0)
  w_init = tr.model.get_weights()
  tr.train()
  return tr, w_init

out = {}
for prob in (0.0, 1.0):
  cfg = experiment.load_experiment(sys.argv[3], [f"data.train_dir={toy_dir}"])
  mode = "frames" if prob > 0 else "crops"
  ds = data.re3_dataset(cfg.data, 2, GLOBAL, prob, seed=0, mode=mode, crop_size=cfg.model.crop_size)
  batch = {k: v.numpy() for k, v in next(iter(ds)).items()}
  one, w0 = run("one_device", prob, batch, None, f"one{prob}")
  two, _ = run("mirrored", prob, batch, w0, f"two{prob}")
  assert two.num_replicas == 2 and one.num_replicas == 1
  w1, w2 = one.model.get_weights(), two.model.get_weights()
  moved = max(float(np.abs(a - b).max()) for a, b in zip(w1, w0))
  diff = max(float(np.abs(a - b).max()) for a, b in zip(w1, w2))
  out[mode] = {"loss1": one.last_metrics["loss"], "loss2": two.last_metrics["loss"],
               "gnorm1": one.last_metrics["grad_norm"], "gnorm2": two.last_metrics["grad_norm"],
               "moved": moved, "weight_diff": diff}
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("toy")
  toy_data.write_toy_records(str(out), num_tracks=8, frames=12, height=96, width=128)
  return str(out)


def test_mirrored_two_cpus_equals_one_device(toy_dir, tmp_path):
  proc = subprocess.run(
      ["python", "-c", MIRRORED_CHECK, toy_dir, str(tmp_path), SMOKE], cwd=str(REPO), env=env(),
      capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
  res = json.loads(line[len("RESULT "):])
  for mode in ("crops", "frames"):
    r = res[mode]
    assert r["moved"] > 1e-4, r                      # the step really changed the weights
    assert abs(r["loss1"] - r["loss2"]) <= 1e-5 * abs(r["loss1"]), r
    assert abs(r["gnorm1"] - r["gnorm2"]) <= 1e-4 * r["gnorm1"], r
    assert r["weight_diff"] < 1e-3 * r["moved"], r


def _launch_workers(args, n=2):
  ports = [free_port() for _ in range(n)]
  cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  procs = []
  for i in range(n):
    tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
    procs.append(subprocess.Popen(train_cmd(*args), cwd=str(REPO), env=env(TF_CONFIG=tf_config),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  return procs


def _wait_all(procs, timeout=300):
  outs = []
  try:
    for p in procs:
      outs.append(p.communicate(timeout=timeout)[0])
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  return outs


@pytest.mark.slow
def test_two_process_multi_worker_run_survives_a_worker_restart(toy_dir, tmp_path):
  """2 workers on localhost train; SIGTERM to worker 1 makes both save at the
  same step and exit (PreemptionCheckpointHandler); restarted with
  --model_dir alone they resume there and complete the run."""
  model_dir = str(tmp_path / "mw")
  sets = tiny_overrides(toy_dir, steps=30, **{"runtime.distribution": "multi_worker_mirrored",
                                               "runtime.collective_timeout_s": 120})
  args = ["--config", SMOKE, "--model_dir", model_dir] + [a for s in sets for a in ("--set", s)]
  procs = _launch_workers(args)
  deadline = time.time() + 240
  while not [e for e in read_log(model_dir) if e["event"] == "step" and e["step"] >= 3]:
    assert all(p.poll() is None for p in procs), _wait_all(procs)
    assert time.time() < deadline, "multi-worker run made no progress"
    time.sleep(0.05)
  procs[1].send_signal(signal.SIGTERM)
  outs = _wait_all(procs)
  for p, o in zip(procs, outs):
    assert p.returncode == PREEMPTED_EXIT_CODE, o[-4000:]
  events = read_log(model_dir)
  assert [e for e in events if e["event"] == "start"][0]["replicas"] == 2
  saved = [e for e in events if e["event"] == "preempted"][0]["step"]
  assert 3 <= saved < 30 and _latest_step(model_dir) == saved
  n_before = len(events)
  outs = _wait_all(_launch_workers(["--model_dir", model_dir]))
  events = read_log(model_dir)[n_before:]
  assert [e for e in events if e["event"] == "restored"][0]["step"] == saved, outs[0][-3000:]
  steps = [e for e in events if e["event"] == "step"]
  assert steps and steps[0]["step"] == saved + 1
  done = [e for e in events if e["event"] == "done"]
  assert done and done[0]["step"] == 30, outs[0][-3000:]
  assert _latest_step(model_dir) == 30
  assert not os.path.exists(os.path.join(model_dir, ".worker_tmp", "worker_1"))


def _latest_step(model_dir):
  path = os.path.join(model_dir, "checkpoint")
  if not os.path.exists(path):
    return -1
  with open(path) as f:
    m = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', f.read(), re.M)
  return int(m.group(1)) if m else -1


@pytest.mark.slow
def test_kill_9_then_restart_resumes_at_saved_step_and_stage(toy_dir, tmp_path):
  model_dir = str(tmp_path / "run")
  sets = tiny_overrides(toy_dir, steps=60, **{
      "trainer.checkpoint_every": 2,
      "trainer.stages": "[{unroll: 2, batch_size: 4, steps: 6}, {unroll: 3, batch_size: 2}]"})
  args = ["--config", SMOKE, "--model_dir", model_dir] + [a for s in sets for a in ("--set", s)]
  proc = subprocess.Popen(train_cmd(*args), cwd=str(REPO), env=env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + 240
    while _latest_step(model_dir) < 8:
      assert proc.poll() is None, proc.stderr.read()[-4000:]
      assert time.time() < deadline, "no checkpoint in stage 1 in time"
      time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == -signal.SIGKILL
  saved = _latest_step(model_dir)
  assert 8 <= saved < 60
  n_before = len(read_log(model_dir))
  # restart with --model_dir alone: config, step and stage come from the directory
  again = run_train("--model_dir", model_dir, timeout=240)
  assert again.returncode == 0, again.stderr[-4000:]
  events = read_log(model_dir)[n_before:]
  restored = [e for e in events if e["event"] == "restored"][0]
  assert restored["step"] == saved and restored["stage"] == 1
  steps = [e for e in events if e["event"] == "step"]
  assert steps[0]["step"] == saved + 1 and steps[0]["stage"] == 1
  assert [e for e in events if e["event"] == "stage"][0]["stage"] == 1
  done = [e for e in events if e["event"] == "done"][0]
  assert done["step"] == 60 and done["stage"] == 1
