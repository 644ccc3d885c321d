"""Frames per second of `pipelines.build_sequences` with 1 and 2 DirectRunner workers.

  python -m benchmarks.build_sequences_throughput                 # all real sequences, 1 round
  python -m benchmarks.build_sequences_throughput --rounds=2 --kinds=otb,lasot

Input: the real sequences in ../shared/data/tracking (OTB 7 sequences, VOT bag,
LaSOT airplane-1, UAV123 wakeboard5: 4,555 frames, one job per layout). Each
configuration runs the real job end to end (Beam start-up, annotation
parsing, reading and decoding every frame once, serializing, the
deterministic sharded write) with
`--direct_running_mode=multi_processing --direct_num_workers=N`, N = 1 and 2,
alternating the two per round so machine load affects both alike. Printed:
frames, wall seconds and frames/s per configuration (and per layout), the
2-vs-1 ratio, and, measured in the same run, the bare per-frame work without
Beam (read the file + decode it once, in this process) as the ceiling of one
worker. Small jobs are dominated by each job's fixed start-up (spawning the
workers, each importing Beam and TensorFlow), so a second figure times one
LaSOT job over --lasot_copies symlinked copies of airplane-1, where the
start-up is amortized and the worker count shows in the throughput.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from configs import cli as cli_errors  # noqa: E402

from pipelines import build_sequences, images  # noqa: E402
from pipelines.readers import sequences  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(os.path.dirname(REPO), "shared", "data", "tracking")
KIND_DIRS = {"otb": "otb", "vot": "vot", "lasot": "train/lasot", "uav123": "train/uav123"}

def define_flags(flag_values=flags.FLAGS):
  """Defined on demand (by __main__), not at import, like the other commands."""
  flags.DEFINE_string("data_dir", DEFAULT_DATA, "The shared tracking data folder.",
                      flag_values=flag_values)
  flags.DEFINE_list("kinds", list(KIND_DIRS), "Layouts to build (each its own job).",
                    flag_values=flag_values)
  flags.DEFINE_list("workers", ["1", "2"], "DirectRunner worker counts; the first is the baseline.",
                    flag_values=flag_values)
  flags.DEFINE_integer("rounds", 1, "Rounds; each round runs every worker count once.",
                       flag_values=flag_values)
  flags.DEFINE_integer("num_shards", 4, "Output shards per job.", flag_values=flag_values)
  flags.DEFINE_integer("segment_length", 64, "--segment_length of the jobs.",
                       flag_values=flag_values)
  flags.DEFINE_integer("lasot_copies", 4,
                       "Also time one LaSOT job over this many symlinked copies of airplane-1 "
                       "(start-up amortized over copies x 2,788 frames); 0 skips it.",
                       flag_values=flag_values)


def run_jobs(opts, workers: int, out_root: str, per_kind: dict):
  """All kinds with `workers` workers -> (frames, seconds); adds to per_kind."""
  frames, seconds = 0, 0.0
  for kind in opts.kinds:
    out = os.path.join(out_root, f"{kind}_{workers}")
    shutil.rmtree(out, ignore_errors=True)
    argv = [f"--input_dir={os.path.join(opts.data_dir, KIND_DIRS[kind])}",
            f"--output_dir={out}", f"--sequence_kind={kind}", "--split=test",
            f"--num_shards={opts.num_shards}", f"--segment_length={opts.segment_length}",
            "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    start = time.perf_counter()
    counters = build_sequences.main(argv)
    took = time.perf_counter() - start
    got = int(counters.get("frames", 0))
    seconds += took
    frames += got
    entry = per_kind.setdefault((kind, workers), [0, 0.0])
    entry[0] += got
    entry[1] += took
  return frames, seconds


def lasot_copies_dir(opts, root: str, copies: int) -> str:
  """A LaSOT-layout folder of `copies` sequences that all point (symlinks) at
  airplane-1's images and ground truth: a bigger job without new data."""
  src = os.path.join(opts.data_dir, KIND_DIRS["lasot"], "airplane-1")
  base = os.path.join(root, "lasot_copies", "airplane")
  for k in range(copies):
    seq = os.path.join(base, f"airplane-{k + 1}")
    os.makedirs(seq)
    for name in os.listdir(src):
      os.symlink(os.path.join(src, name), os.path.join(seq, name))
  return os.path.join(root, "lasot_copies")


def run_copies(opts, workers: int, input_dir: str, out_root: str):
  out = os.path.join(out_root, f"copies_{workers}")
  shutil.rmtree(out, ignore_errors=True)
  start = time.perf_counter()
  counters = build_sequences.main([
      f"--input_dir={input_dir}", f"--output_dir={out}", "--sequence_kind=lasot",
      "--split=test", f"--num_shards={opts.num_shards}",
      f"--segment_length={opts.segment_length}", "--direct_running_mode=multi_processing",
      f"--direct_num_workers={workers}"])
  took = time.perf_counter() - start
  shutil.rmtree(out, ignore_errors=True)
  return int(counters.get("frames", 0)), took


def bare_decode(opts):
  """Read + decode every frame once in this process -> (frames, seconds)."""
  paths = []
  for kind in opts.kinds:
    for ann in sequences.read_sequences(kind, os.path.join(opts.data_dir, KIND_DIRS[kind])):
      paths.extend(ann.frame_paths)
  start = time.perf_counter()
  for p in paths:
    images.frame_bytes_for_record(images.read_bytes(p), p)
  return len(paths), time.perf_counter() - start


def main(argv, flag_values=None):
  del argv
  FLAGS = flag_values or flags.FLAGS  # pylint: disable=invalid-name
  # absl's app.run turns on INFO logging; Beam's per-bundle logs would drown the table.
  logging.set_verbosity(logging.WARNING)
  expected = sum(len(a) for k in FLAGS.kinds for a in sequences.read_sequences(
      k, os.path.join(FLAGS.data_dir, KIND_DIRS[k])))
  workers = [int(w) for w in FLAGS.workers]
  totals = {w: [0, 0.0] for w in workers}
  per_kind = {}
  out_root = tempfile.mkdtemp(prefix="build_seq_bench_")
  try:
    for r in range(FLAGS.rounds):
      order = workers if r % 2 == 0 else list(reversed(workers))
      for w in order:
        frames, secs = run_jobs(FLAGS, w, out_root, per_kind)
        if frames != expected:
          raise SystemExit(f"{w} workers wrote {frames} frames, expected {expected}")
        totals[w][0] += frames
        totals[w][1] += secs
    copies = {}
    if FLAGS.lasot_copies > 0:
      copies_dir = lasot_copies_dir(FLAGS, out_root, FLAGS.lasot_copies)
      for r in range(FLAGS.rounds):
        for w in (workers if r % 2 == 0 else list(reversed(workers))):
          f, sec = run_copies(FLAGS, w, copies_dir, out_root)
          c = copies.setdefault(w, [0, 0.0])
          c[0] += f
          c[1] += sec
    bare_frames, bare_secs = bare_decode(FLAGS)
  finally:
    shutil.rmtree(out_root, ignore_errors=True)
  print()
  print(f"build_sequences on {', '.join(FLAGS.kinds)} ({expected} frames per run, "
        f"{FLAGS.rounds} round(s), {os.cpu_count()} CPUs)")
  print(f"{'configuration':<42}{'frames':>9}{'seconds':>10}{'frames/s':>10}")
  fps = {}
  for w in workers:
    frames, secs = totals[w]
    fps[w] = frames / secs
    print(f"{f'DirectRunner multi_processing, {w} worker(s)':<42}{frames:>9}{secs:>10.1f}"
          f"{fps[w]:>10.1f}")
  for kind in FLAGS.kinds:
    cells = []
    for w in workers:
      f, sec = per_kind[(kind, w)]
      cells.append(f"{w}w {f / sec:6.1f} f/s ({sec:5.1f} s)")
    print(f"  {kind:<8} " + "   ".join(cells))
  bare_fps = bare_frames / bare_secs
  print(f"{'bare read+decode, no Beam (1 process)':<42}{bare_frames:>9}{bare_secs:>10.1f}"
        f"{bare_fps:>10.1f}")
  base = workers[0]
  for w in workers[1:]:
    print(f"ratio {w} vs {base} workers: {fps[w] / fps[base]:.2f}x")
  print(f"ratio {base} worker(s) vs bare decode: {fps[base] / bare_fps:.2f}x")
  if copies:
    print(f"one LaSOT job over {FLAGS.lasot_copies} copies of airplane-1 "
          f"({FLAGS.lasot_copies * 2788} frames; start-up amortized):")
    cfps = {w: f / sec for w, (f, sec) in copies.items()}
    for w in workers:
      print(f"  {w} worker(s): {cfps[w]:.1f} frames/s ({copies[w][1]:.1f} s)")
    for w in workers[1:]:
      print(f"  ratio {w} vs {base} workers: {cfps[w] / cfps[base]:.2f}x")


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli_errors.flags_parser(__doc__))
