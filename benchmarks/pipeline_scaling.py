"""Cost of `pipelines.build_vid` as the input doubles, on the DirectRunner and on Dask.

  python -m benchmarks.pipeline_scaling                       # 200 / 400 / 800 frames
  python -m benchmarks.pipeline_scaling --sizes=400,800,1600 --frame_size=720x1280 --max_side=640

Input: a VID-layout tree (Data/VID/train/<group>/<video>/NNNNNN.JPEG with a VOC
XML per frame, one track per video) generated in a temporary folder, with
JPEG frames of a realistic size (default 540x960) that the job downscales to
--max_side (default 480) and re-encodes, as a VID build with --max_side does.
The three sizes are nested: each doubles the number of videos of the last.
Every size runs on four configurations, in one run:

  DirectRunner 1 / 2 workers  --direct_running_mode=multi_processing
                              --direct_num_workers=N; each run spawns its workers
                              (their Beam + TensorFlow start-up is in its time)
  Dask 1 / 2 workers          one LocalCluster of N worker processes (one thread each)
                              per worker count, started and warmed up by an untimed run
                              on the smallest input, then the timed jobs, which connect
                              by --dask_client_address: the cost on a running cluster
                              (the start-up + warm-up seconds are printed beside)

Printed per configuration and size: wall seconds of the job, frames per
second, the peak resident memory of the largest worker process (sampled
every 50 ms over this process's children: the Beam SDK workers, or the Dask
workers, whose peak can only grow over the runs of one cluster), and the
time ratio to the previous size (2.0 = cost grows linearly); then, on the
largest size, Dask 2 vs 1 workers and Dask 2 workers vs the DirectRunner
with 2 (also with the cluster's start-up counted). Every run's dataset_info
is checked against the expected frame count.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from typing import Dict, List, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from configs import cli as cli_errors  # noqa: E402

from pipelines import build_vid, images  # noqa: E402

from tests import dataset_trees  # noqa: E402

GROUP = "ILSVRC2015_VID_train_0000"
CONFIGS = [("Dask", 1), ("Dask", 2), ("DirectRunner", 1), ("DirectRunner", 2)]


def define_flags(flag_values=flags.FLAGS):
  """Defined on demand (by __main__), not at import, like the other commands."""
  flags.DEFINE_list("sizes", ["200", "400", "800"],
                    "Frames per input; each must double the last.", flag_values=flag_values)
  flags.DEFINE_integer("frames_per_video", 40, "Frames per generated video.",
                       flag_values=flag_values)
  flags.DEFINE_string("frame_size", "540x960", "HxW of the generated JPEG frames.",
                      flag_values=flag_values)
  flags.DEFINE_integer("max_side", 480, "--max_side of the job (0 keeps the original bytes).",
                       flag_values=flag_values)
  flags.DEFINE_integer("num_shards", 8, "Output shards per job.", flag_values=flag_values)
  flags.DEFINE_list("configs", [f"{r}:{w}" for r, w in CONFIGS],
                    "Configurations to run (RUNNER:WORKERS, RUNNER DirectRunner or Dask); the "
                    "ratios need all four.", flag_values=flag_values)


# ---------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------


def _frame(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
  """A smooth gradient with noise and a block: compresses like a photo, not like noise."""
  yy, xx = np.mgrid[0:h, 0:w]
  base = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (h + w))], -1)
  img = (base + rng.integers(0, 24, size=(h, w, 3))).clip(0, 255).astype(np.uint8)
  y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
  img[y:y + h // 4, x:x + w // 4] = rng.integers(0, 255, size=3)
  return img


def write_videos(root: str, videos: int, frames: int, h: int, w: int) -> None:
  """`videos` VID videos of `frames` frames under root (one track each, so
  frames written = frames read). Frame n has the same JPEG bytes in every
  video (the job decodes, resizes and re-encodes each frame all the same;
  encoding each once keeps the set-up short)."""
  rng = np.random.default_rng(0)
  jpegs = [images.encode_jpeg(_frame(h, w, rng), quality=90) for _ in range(frames)]
  for v in range(videos):
    rel = f"{GROUP}/ILSVRC2015_train_{v:08d}"
    for n in range(frames):
      dataset_trees.write(os.path.join(root, "Data/VID/train", rel, f"{n:06d}.JPEG"), jpegs[n])
      objs = [{"trackid": 0, "name": "n02691156",
               "box": [40 + n + v, 30, 40 + n + v + w // 4, 30 + h // 4]}]
      dataset_trees.write(os.path.join(root, "Annotations/VID/train", rel, f"{n:06d}.xml"),
                          dataset_trees.voc_xml(rel, f"{n:06d}", w, h, objs))


def nested_inputs(base: str, all_root: str, sizes_videos: List[int]) -> List[str]:
  """One tree per size linking to the first k videos of the full tree."""
  roots = []
  for k in sizes_videos:
    root = os.path.join(base, f"vid_{k}")
    for part in ("Data", "Annotations"):
      os.makedirs(os.path.join(root, part, "VID/train", GROUP))
      for v in range(k):
        name = f"ILSVRC2015_train_{v:08d}"
        os.symlink(os.path.join(all_root, part, "VID/train", GROUP, name),
                   os.path.join(root, part, "VID/train", GROUP, name))
    roots.append(root)
  return roots


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------


class PeakWorkerRss:
  """Largest resident memory of any process below this one, sampled in a thread."""

  def __init__(self, interval: float = 0.05):
    self._interval = interval
    self._stop = threading.Event()
    self._peaks: Dict[int, int] = {}
    self._thread = threading.Thread(target=self._run, daemon=True)

  def _run(self):
    me = psutil.Process()
    while not self._stop.is_set():
      for child in me.children(recursive=True):
        try:
          rss = child.memory_info().rss
        except psutil.Error:  # exited between listing and reading
          continue
        self._peaks[child.pid] = max(self._peaks.get(child.pid, 0), rss)
      self._stop.wait(self._interval)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()

  @property
  def peak_mb(self) -> float:
    return max(self._peaks.values(), default=0) / 2**20


def run_one(input_dir: str, out: str, config: Tuple[str, int], flags_values,
            address: str = "") -> Tuple[float, int]:
  """One timed job -> (seconds, frames written)."""
  runner, workers = config
  argv = [f"--input_dir={input_dir}", f"--output_dir={out}", "--split=train",
          f"--num_shards={flags_values.num_shards}", f"--max_side={flags_values.max_side}"]
  if runner == "DirectRunner":
    argv += ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
  else:
    argv += ["--runner=DaskRunner", f"--dask_client_address={address}"]
  start = time.perf_counter()
  build_vid.main(argv)
  took = time.perf_counter() - start
  with open(os.path.join(out, "dataset_info.json")) as f:
    info = json.load(f)
  return took, int(info["splits"]["train"]["num_frames"])


def main(argv, flag_values=None):
  del argv
  FLAGS = flag_values or flags.FLAGS  # pylint: disable=invalid-name
  logging.set_verbosity(logging.WARNING)  # Beam's per-bundle logs would drown the table
  from pipelines import dask_runner  # pylint: disable=g-import-not-at-top  # needs the dask extra
  sizes = [int(s) for s in FLAGS.sizes]
  if any(b != 2 * a for a, b in zip(sizes, sizes[1:])):
    raise SystemExit(f"--sizes must each double the last, got {sizes}")
  if any(s % FLAGS.frames_per_video for s in sizes):
    raise SystemExit(f"--sizes must be multiples of --frames_per_video={FLAGS.frames_per_video}")
  h, w = (int(v) for v in FLAGS.frame_size.split("x"))
  videos = [s // FLAGS.frames_per_video for s in sizes]
  base = tempfile.mkdtemp(prefix="pipeline_scaling_")
  configs = [(c.split(":")[0], int(c.split(":")[1])) for c in FLAGS.configs]
  results: Dict[Tuple[Tuple[str, int], int], Tuple[float, float, float]] = {}
  try:
    t0 = time.perf_counter()
    all_root = os.path.join(base, "all")
    write_videos(all_root, videos[-1], FLAGS.frames_per_video, h, w)
    roots = nested_inputs(base, all_root, videos)
    print(f"generated {sizes[-1]} frames of {h}x{w} in {time.perf_counter() - t0:.1f}s",
          flush=True)

    def record(config, size, took, frames, peak_mb, startup):
      if frames != size:
        raise SystemExit(f"{config} on {size} frames wrote {frames} frames")
      results[(config, size)] = (took, peak_mb, startup)
      shutil.rmtree(os.path.join(base, "out"), ignore_errors=True)
      print(f"  {config[0]} {config[1]}w, {size} frames: {took:.1f}s, peak worker RSS "
            f"{peak_mb:.0f} MB" + (f" (cluster start-up {startup:.1f}s)" if startup else ""),
            flush=True)

    for config in configs:
      if config[0] == "DirectRunner":
        for size, root in zip(sizes, roots):
          with PeakWorkerRss() as rss:
            took, frames = run_one(root, os.path.join(base, "out"), config, FLAGS)
          record(config, size, took, frames, rss.peak_mb, 0.0)
        continue
      # One cluster per worker count, started and warmed up by an untimed run on
      # the smallest input, then the sizes in increasing order: a worker's peak
      # RSS can only grow over the runs, so a flat peak means no growth.
      t = time.perf_counter()
      with dask_runner.start_local_cluster(config[1]) as cluster:
        run_one(roots[0], os.path.join(base, "out"), config, FLAGS, cluster.scheduler_address)
        startup = time.perf_counter() - t
        for size, root in zip(sizes, roots):
          with PeakWorkerRss() as rss:
            took, frames = run_one(root, os.path.join(base, "out"), config, FLAGS,
                                   cluster.scheduler_address)
          record(config, size, took, frames, rss.peak_mb, startup)
  finally:
    shutil.rmtree(base, ignore_errors=True)

  print()
  print(f"build_vid, {h}x{w} JPEG frames, --max_side={FLAGS.max_side}, "
        f"--num_shards={FLAGS.num_shards}, {os.cpu_count()} CPUs")
  print("| configuration | frames | seconds | frames/s | peak worker RSS (MB) | time vs previous "
        "size | cluster start-up (s, not in seconds) |")
  print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
  for config in configs:
    prev = None
    for size in sizes:
      took, peak, startup = results[(config, size)]
      ratio = f"{took / prev:.2f}x" if prev else "-"
      name = f"{config[0]}, {config[1]} worker{'s' if config[1] > 1 else ''}"
      start = f"{startup:.1f}" if config[0] == "Dask" else "(in seconds)"
      print(f"| {name} | {size} | {took:.1f} | {size / took:.1f} | {peak:.0f} | {ratio} | "
            f"{start} |")
      prev = took
  big = sizes[-1]
  fps = {c: big / results[(c, big)][0] for c in configs}
  cold = {c: big / (results[(c, big)][0] + results[(c, big)][2]) for c in configs}
  if set(CONFIGS) <= set(configs):
    print(f"largest size: Dask 2 vs 1 workers {fps[('Dask', 2)] / fps[('Dask', 1)]:.2f}x; "
          f"Dask 2 workers vs DirectRunner 2 workers {fps[('Dask', 2)] / fps[('DirectRunner', 2)]:.2f}x "
          f"(with the cluster's start-up counted: "
          f"{cold[('Dask', 2)] / cold[('DirectRunner', 2)]:.2f}x); DirectRunner 2 vs 1 workers "
          f"{fps[('DirectRunner', 2)] / fps[('DirectRunner', 1)]:.2f}x")
  for config in configs:
    peaks = [results[(config, s)][1] for s in sizes]
    print(f"peak worker RSS {config[0]} {config[1]}w: {' -> '.join(f'{p:.0f}' for p in peaks)} MB "
          f"(largest / smallest {peaks[-1] / peaks[0]:.2f}x)")


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli_errors.flags_parser(__doc__))
