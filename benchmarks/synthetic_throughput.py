"""Frames per second of `pipelines.build_synthetic` with 1 and 2 DirectRunner workers.

  python -m benchmarks.synthetic_throughput                      # 48 tracks x 32 frames, 400x400
  python -m benchmarks.synthetic_throughput --num_tracks=96 --rounds=2

Each configuration runs the real job end to end on the embedded procedural
source (Beam start-up and worker spawn, procedural image, simulation,
rendering, JPEG encoding, serialization, the deterministic sharded write)
with `--direct_running_mode=multi_processing --direct_num_workers=N`,
N = 1 and 2, alternating per round so machine load affects both alike.
Printed: frames, wall seconds and frames/s per configuration and the ratio
to the first (1 worker), plus, measured in the same run, the bare simulator
in this process without Beam (simulate + JPEG encode), the ceiling of one
worker. The job's fixed start-up cost is part of each figure: use more
tracks to see the steady rate.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from configs import cli as cli_errors  # noqa: E402

from pipelines import build_synthetic, images  # noqa: E402
from pipelines.synthetic import procedural, rng, simulator  # noqa: E402

def define_flags(flag_values=flags.FLAGS):
  """Defined on demand (by __main__), not at import, like the other commands."""
  flags.DEFINE_integer("num_tracks", 48, "Tracks per job.", flag_values=flag_values)
  flags.DEFINE_integer("track_length", 32, "Frames per track.", flag_values=flag_values)
  flags.DEFINE_integer("canvas_size", 400, "Frame size.", flag_values=flag_values)
  flags.DEFINE_list("workers", ["1", "2"], "DirectRunner worker counts; the first is the baseline.",
                    flag_values=flag_values)
  flags.DEFINE_integer("rounds", 1, "Rounds; each round runs every worker count once.",
                       flag_values=flag_values)
  flags.DEFINE_integer("bare_tracks", 8, "Tracks for the in-process (no Beam) reference.",
                       flag_values=flag_values)


def run_job(opts, workers: int, out: str):
  shutil.rmtree(out, ignore_errors=True)
  argv = [f"--output_dir={out}", f"--num_tracks={opts.num_tracks}",
          f"--track_length={opts.track_length}", f"--canvas_size={opts.canvas_size}",
          "--num_shards=4", "--seed=0", "--direct_running_mode=multi_processing",
          f"--direct_num_workers={workers}"]
  start = time.perf_counter()
  counters = build_synthetic.main(argv)
  return int(counters.get("frames_generated", 0)), time.perf_counter() - start


def bare_rate(opts) -> float:
  cfg = simulator.SimulatorConfig(canvas_size=opts.canvas_size, track_length=opts.track_length)
  frames = 0
  start = time.perf_counter()
  for i in range(opts.bare_tracks):
    gen = rng.track_rng("bench", i)
    image, objects = procedural.make_image(gen)
    sim = simulator.simulate_track(image, objects[0][0], gen, cfg)
    for f in sim.frames:
      images.encode_jpeg(f, 90)
    frames += len(sim.frames)
  return frames / (time.perf_counter() - start)


def main(argv, flag_values=None):
  del argv
  FLAGS = flag_values or flags.FLAGS  # pylint: disable=invalid-name
  # absl.app turns Python logging up to INFO; the Beam workers' chatter
  # would bury the figures.
  logging.getLogger().setLevel(logging.WARNING)
  workers = [int(w) for w in FLAGS.workers]
  totals = {w: [0, 0.0] for w in workers}
  root = tempfile.mkdtemp(prefix="synthetic_bench_")
  try:
    for r in range(FLAGS.rounds):
      order = workers if r % 2 == 0 else list(reversed(workers))
      for w in order:
        frames, seconds = run_job(FLAGS, w, os.path.join(root, f"w{w}"))
        totals[w][0] += frames
        totals[w][1] += seconds
    bare = bare_rate(FLAGS)
  finally:
    shutil.rmtree(root, ignore_errors=True)
  print(f"\nsynthetic throughput: {FLAGS.num_tracks} tracks x {FLAGS.track_length} frames, "
        f"{FLAGS.canvas_size}x{FLAGS.canvas_size}, {FLAGS.rounds} round(s), "
        f"{os.cpu_count()} CPUs")
  base = None
  for w in workers:
    frames, seconds = totals[w]
    fps = frames / seconds if seconds else 0.0
    base = fps if base is None else base
    print(f"  {w} worker(s): {frames} frames in {seconds:.1f} s = {fps:.1f} frames/s "
          f"(x{fps / base:.2f} vs {workers[0]} worker)")
  print(f"  bare simulator + JPEG in-process, no Beam: {bare:.1f} frames/s "
        f"(x{bare / base:.2f} vs {workers[0]} worker)")


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli_errors.flags_parser(__doc__))
