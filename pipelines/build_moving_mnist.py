"""Moving MNIST in the three settings of the RL tracker paper, as a Beam job.

  python -m pipelines.build_moving_mnist --variant fixed|scalable|noisy \\
      --mnist_dir ../shared/data/mnist --output_dir OUT [--seed 0] [--preview 4]

Writes both splits in one run, as in the paper: `train` = 500 sequences of
20 frames from MNIST training digits, `test` = 100 sequences of 100 frames
from test digits (--num_train --num_test --train_length --test_length).
With --num_val N a third split, `val`, holds N sequences of --val_length
frames made from the last --val_digits MNIST training digits, which the
`train` split then never uses: a validation set of unseen digits that
leaves the test digits alone (choose recipes there, score `test` once).
With --num_val 0 (the default) `train` draws from every training digit.
The dataset is named moving_mnist_{variant}: OUT/moving_mnist_fixed-train.tfrecord-*
etc. Records: track records with source "mnist", PNG grayscale 100x100
frames, xyxy pixel boxes = the drawn digit square, track/label = the digit.

One element per sequence; sequence i of a split depends only on (--seed,
variant, split, i) (numpy Generator seeded from sha256), and MNIST is loaded
once per worker in DoFn.setup(). The generator and what the paper leaves
open are described in pipelines/synthetic/moving_mnist.py.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Optional, Sequence

from configs import quiet

quiet.setup()

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402

from pipelines import images, options, runner, schema, writer  # noqa: E402
from pipelines.options import MovingMnistJobOptions  # noqa: E402
from pipelines.readers import mnist  # noqa: E402
from pipelines.synthetic import common, moving_mnist, rng  # noqa: E402
from pipelines.synthetic.moving_mnist import VARIANTS, MovingMnistConfig  # noqa: E402

SOURCE = "mnist"
SPLITS = ("train", "test")
VAL_SPLIT = "val"


def generator_config(opts: MovingMnistJobOptions) -> MovingMnistConfig:
  values = {f.name: getattr(opts, f"mnist_{f.name}") for f in dataclasses.fields(MovingMnistConfig)
            if f.name != "variant"}
  return MovingMnistConfig(variant=opts.variant, **values)


def validate(opts: MovingMnistJobOptions) -> None:
  """Every flag checked before the pipeline starts (JobConfigError naming it)."""
  options.check_common_options(opts, need_input=False)
  common.check_generator_options(opts)
  if not opts.variant:
    raise options.JobConfigError(f"--variant is required: one of {'|'.join(VARIANTS)}")
  for flag in ("num_train", "num_test", "train_length", "test_length", "val_length"):
    value = getattr(opts, flag)
    if value is None or value < 1:
      raise options.JobConfigError(f"--{flag} must be >= 1, got {value}")
  if opts.num_val is None or opts.num_val < 0:
    raise options.JobConfigError(f"--num_val must be >= 0, got {opts.num_val}")
  try:
    generator_config(opts).validate()
  except ValueError as e:
    raise options.JobConfigError(str(e)) from None
  if not opts.mnist_dir:
    raise options.JobConfigError("--mnist_dir is required (MNIST IDX files or mnist.npz)")
  for split in SPLITS:
    try:
      digits, _ = mnist.load_mnist(opts.mnist_dir, split)
    except mnist.MnistError as e:
      raise options.JobConfigError(str(e)) from None
    if digits.shape[1:] != (28, 28):
      raise options.JobConfigError(f"{opts.mnist_dir}: {split} digits are {digits.shape[1:]}, "
                                f"expected 28x28")
    if split == "train" and opts.num_val:
      if not 2 <= opts.val_digits <= len(digits) - 2:
        raise options.JobConfigError(
            f"--val_digits {opts.val_digits} must be in [2, {len(digits) - 2}]: the "
            f"{len(digits)} MNIST training digits of {opts.mnist_dir} are split between "
            f"the train and val sequences")


def job_splits(opts) -> tuple:
  """The splits a run writes: train, test, and val when --num_val > 0."""
  return SPLITS + ((VAL_SPLIT,) if opts.num_val else ())


def digit_pools(opts) -> dict:
  """split -> (MNIST split, slice of its digits) the split's sequences draw from.

  `val` takes the last --val_digits training digits and `train` the rest, so
  no validation digit is ever a training target or distractor."""
  if not opts.num_val:
    return {"train": ("train", slice(None)), "test": ("test", slice(None))}
  k = opts.val_digits
  return {"train": ("train", slice(None, -k)), "test": ("test", slice(None)),
          VAL_SPLIT: ("train", slice(-k, None))}


def track_id(variant: str, split: str, index: int) -> str:
  return f"mnist_{variant}/{split}/{index:06d}"


class GenerateSequenceFn(beam.DoFn):
  """index -> (key, serialized track record, num_frames)."""

  def __init__(self, cfg: MovingMnistConfig, mnist_dir: str, split: str, length: int, seed: int,
               pool: tuple = None):
    self._cfg = cfg
    self._mnist_dir = mnist_dir
    self._split = split
    self._length = length
    self._seed = seed
    # (MNIST split, slice of its digits): see digit_pools().
    self._pool = pool or (split, slice(None))
    self._digits = None
    self._labels = None

  def setup(self):
    mnist_split, part = self._pool
    digits, labels = mnist.load_mnist(self._mnist_dir, mnist_split)
    self._digits, self._labels = digits[part], labels[part]

  def process(self, index):
    gen = rng.track_rng(self._seed, "moving_mnist", self._cfg.variant, self._split, index)
    frames, boxes, label = moving_mnist.generate_sequence(
        self._cfg, self._digits, self._labels, self._length, gen)
    n = len(frames)
    track = schema.Track(
        track_id=track_id(self._cfg.variant, self._split, index), source=SOURCE,
        height=self._cfg.canvas_size, width=self._cfg.canvas_size,
        images=[images.encode_png(f) for f in frames], boxes_xyxy=boxes,
        visible=np.ones([n], np.int64), frame_index=np.arange(n), label=str(label),
        occlusion=np.zeros([n], np.float32))
    writer.count("sequences_generated")
    writer.count("frames_generated", n)
    yield track.track_id, schema.serialize_track(track), n


def dataset_name(opts) -> str:
  return opts.name or f"moving_mnist_{opts.variant}"


def build(p: beam.Pipeline, opts: MovingMnistJobOptions) -> None:
  cfg = generator_config(opts)
  name = dataset_name(opts)
  plan = {"train": (opts.num_train, opts.train_length), "test": (opts.num_test, opts.test_length),
          VAL_SPLIT: (opts.num_val, opts.val_length)}
  pools = digit_pools(opts)
  results = []
  for split in job_splits(opts):
    count, length = plan[split]
    pool = pools[split]
    records = (p
               | f"{split}/Indices" >> beam.Create(range(count))
               | f"{split}/Spread" >> beam.Reshuffle()
               | f"{split}/Generate" >> beam.ParDo(
                   GenerateSequenceFn(cfg, opts.mnist_dir, split, length, opts.seed, pool)))
    info = {"generator": "pipelines.build_moving_mnist", "seed": opts.seed,
            "sequence_length": length, "config": dataclasses.asdict(cfg),
            "digits": _describe_pool(pool)}
    # (the writer's "rejects may be None" is refused by Beam 2.77's tuple input
    # handling, hence an empty PCollection: nothing here can be rejected.)
    no_rejects = p | f"{split}/NoRejects" >> beam.Create([])
    written = ((records, no_rejects)
               | f"{split}/Write" >> writer.WriteShardedRecords(
                   opts.output_dir, name, split, opts.num_shards, extra_info=info))
    results.append(written | f"{split}/Tag" >> beam.Map(lambda i, s=split: (s, i)))
  infos = results | "AllSplits" >> beam.Flatten()
  _ = (p
       | "MergeTrigger" >> beam.Create([None])
       | "MergeSplitInfo" >> beam.Map(common.merge_split_infos, infos=beam.pvalue.AsList(infos),
                                      output_dir=opts.output_dir))


def _describe_pool(pool) -> str:
  mnist_split, part = pool
  name = "MNIST training split" if mnist_split == "train" else "MNIST test split"
  if part.start is None and part.stop is None:
    return name
  if part.start is None:
    return f"{name}, all but the last {-part.stop} digits"
  return f"{name}, the last {-part.start} digits"


def main(argv: Optional[Sequence[str]] = None) -> dict:
  argv = list(sys.argv[1:] if argv is None else argv)
  if runner.maybe_print_help(argv, MovingMnistJobOptions, "pipelines.build_moving_mnist", __doc__):
    return {}
  opts = runner.make_pipeline_options(argv).view_as(MovingMnistJobOptions)
  counters = runner.run_job(argv, MovingMnistJobOptions, validate, build, "build_moving_mnist",
                            splits=job_splits(opts))
  common.write_previews(opts, dataset_name(opts), job_splits(opts))
  return counters


if __name__ == "__main__":
  # Run the importable module's main so the DoFns pickled for workers belong
  # to `pipelines.build_moving_mnist`, not to `__main__`.
  from pipelines import build_moving_mnist as _job  # pylint: disable=import-self
  runner.cli_main(_job.main, "build_moving_mnist")
