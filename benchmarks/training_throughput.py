"""Re3 training throughput on this machine, and what the record input costs.

  python -m benchmarks.training_throughput
  python -m benchmarks.training_throughput --configs=configs/re3_small.yaml --steps=10

For each config it builds the real trainer (train/trainer.py: the distributed
train step with loss, gradients, all-reduce and Adam update) for one
curriculum stage and times training steps fed two ways, in the same run:

  records:   the real input pipeline (train/data.py) reading JPEG track
             records: sampling windows, decoding, mirroring, jitter and the
             in-graph crop_and_resize, in parallel map calls with prefetch;
  in-memory: one batch taken from that pipeline, repeated from memory.

It prints training examples (sequences) and crop pairs per second with
record input, and the ratio of the median step time with record input to
the median with in-memory input (the input's cost; the goal is < 1.05), and the rate of the input pipeline
alone (what it could feed an accelerator while the CPU does nothing else).
Steps of the two kinds alternate in rounds so machine load hits both alike.
The records are toy tracks (train/toy_data.py, 240x320 JPEG frames) written
to a temporary directory; the model sizes are the configs' own.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from configs import cli as cli_errors  # noqa: E402
import tensorflow as tf  # noqa: E402

from configs import experiment  # noqa: E402
from train import re3_task, toy_data, trainer as trainer_lib  # noqa: E402


def define_flags(flag_values=flags.FLAGS):
  """Defined on demand (by __main__), not at import, like the other commands."""
  flags.DEFINE_list("configs", ["configs/re3_small.yaml", "configs/re3_paper.yaml"], "Re3 YAMLs.",
                    flag_values=flag_values)
  flags.DEFINE_list("batches", ["8", "2"], "Global batch per config (small for re3_paper on CPU).",
                    flag_values=flag_values)
  flags.DEFINE_integer("unroll", 2, "Unrolls of the timed stage (the paper's first stage: 2).",
                       flag_values=flag_values)
  flags.DEFINE_float("self_train_prob", 0.0, "Self-training probability of the timed stage.",
                     flag_values=flag_values)
  flags.DEFINE_integer("steps", 6, "Timed steps per input kind (median reported).",
                       flag_values=flag_values)
  flags.DEFINE_integer("warmup", 2, "Untimed steps per input kind.", flag_values=flag_values)


def _median_step(fn, iterator, carry, n):
  times = []
  for _ in range(n):
    t = time.perf_counter()
    metrics, _, carry = fn(iterator, carry, tf.constant(0, tf.int64))
    float(metrics["loss"].numpy())  # wait for the step
    times.append(time.perf_counter() - t)
  return times, carry


def measure(opts, config: str, batch: int, records: str, work: str):
  sets = [f"data.train_dir={records}", "data.canvas_size=[240, 320]",
          f"trainer.stages=[{{unroll: {opts.unroll}, batch_size: {batch}, "
          f"self_train_prob: {opts.self_train_prob}}}]", "runtime.distribution=one_device"]
  cfg = experiment.load_experiment(config, sets)
  task = re3_task.Re3Task(cfg)
  tr = trainer_lib.Trainer(cfg, work, task)
  stage = task.stage(0)
  strategy = tr.strategy
  fn = tr._make_train_fn(stage)  # pylint: disable=protected-access
  real = iter(strategy.distribute_datasets_from_function(lambda ctx: task.dataset(stage, ctx, 0)))
  one = next(iter(task.dataset(stage, None, 1)))
  mem = iter(strategy.distribute_datasets_from_function(
      lambda ctx: tf.data.Dataset.from_tensors(one).repeat().prefetch(2)))
  carry = None
  _, carry = _median_step(fn, mem, carry, opts.warmup)
  _, carry = _median_step(fn, real, carry, opts.warmup)
  t_mem, t_real = [], []
  rounds = max(1, opts.steps // 2)
  per_round = max(1, opts.steps // rounds)
  for _ in range(rounds):
    t, carry = _median_step(fn, mem, carry, per_round)
    t_mem += t
    t, carry = _median_step(fn, real, carry, per_round)
    t_real += t
  m_mem, m_real = statistics.median(t_mem), statistics.median(t_real)
  # the input pipeline alone: how fast it could feed an accelerator
  local = iter(task.dataset(stage, None, 2))
  for _ in range(2):
    next(local)
  n_in = 4 * opts.steps
  t = time.perf_counter()
  for _ in range(n_in):
    next(local)
  input_alone = (time.perf_counter() - t) / n_in
  params = sum(int(tf.size(v)) for v in tr.model.trainable_variables)
  return {"config": os.path.basename(config), "params": params, "batch": batch,
          "unroll": opts.unroll, "step_records_s": m_real, "step_memory_s": m_mem,
          "examples_per_s": batch / m_real, "pairs_per_s": batch * opts.unroll / m_real,
          "examples_per_s_memory": batch / m_mem, "input_ratio": m_real / m_mem,
          "input_alone_examples_per_s": batch / input_alone}


def main(argv, flag_values=None):
  del argv
  FLAGS = flag_values or flags.FLAGS  # pylint: disable=invalid-name
  if len(FLAGS.batches) != len(FLAGS.configs):
    raise app.UsageError("--batches needs one value per --configs entry")
  print(f"TensorFlow {tf.__version__}, devices: "
        f"{[d.name for d in tf.config.list_logical_devices()]}, CPUs: {os.cpu_count()}")
  with tempfile.TemporaryDirectory() as tmp:
    records = os.path.join(tmp, "records")
    toy_data.write_toy_records(records, num_tracks=24, frames=24, height=240, width=320,
                               num_shards=4)
    rows = []
    for i, (config, batch) in enumerate(zip(FLAGS.configs, FLAGS.batches)):
      row = measure(FLAGS, config, int(batch), records, os.path.join(tmp, f"run{i}"))
      rows.append(row)
      print(f"{row['config']}: {row['params']:,} params, batch {row['batch']} x {row['unroll']} "
            f"unrolls (self-training p={FLAGS.self_train_prob}): "
            f"{row['examples_per_s']:.2f} examples/s = {row['pairs_per_s']:.2f} crop pairs/s "
            f"with record input ({row['step_records_s'] * 1000:.0f} ms/step); in-memory input "
            f"{row['step_memory_s'] * 1000:.0f} ms/step; record/in-memory step time "
            f"{row['input_ratio']:.3f}; input pipeline alone "
            f"{row['input_alone_examples_per_s']:.1f} examples/s", flush=True)
  print("summary (record input / in-memory input step time; goal < 1.05):")
  for row in rows:
    print(f"  {row['config']:<16} {row['examples_per_s']:8.2f} ex/s   ratio {row['input_ratio']:.3f}")


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli_errors.flags_parser(__doc__))
