"""The flags of every dataset job (build_vid, build_alov, build_det,
build_sequences, build_crop_pairs, build_synthetic, build_moving_mnist) and
the checks of the shared ones.

Why one module: Beam builds one argument parser from every *direct*
subclass of PipelineOptions loaded in the process (DirectRunner calls
`get_all_options()`), so (1) a flag defined twice anywhere crashes every job
with "conflicting option string", and (2) flags of a grandchild class are
"discarded" with a warning and do not reach remote runners. Each flag group is
therefore a direct PipelineOptions subclass defined once, here (never in a
module that also runs as `__main__`, which would register it twice), with
names prefixed by their job where a short name could clash; each job
composes the groups it needs by multiple inheritance without adding flags
itself.
"""

from __future__ import annotations

import dataclasses

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.readers import fs
from pipelines.readers.sequences import KINDS as SEQUENCE_KINDS
from pipelines.synthetic.moving_mnist import VARIANTS, MovingMnistConfig
from pipelines.synthetic.simulator import SimulatorConfig


class JobConfigError(ValueError):
  """Bad job options or inputs, found before the pipeline starts."""


# ---------------------------------------------------------------------------
# Every job
# ---------------------------------------------------------------------------


class DatasetJobOptions(PipelineOptions):
  """Flags every dataset job takes; Beam's own flags (--runner, ...) pass through."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument("--input_dir", default=None, help="Root of the raw dataset.")
    parser.add_argument("--output_dir", default=None, help="Where the shards go (local or gs://).")
    parser.add_argument("--split", default="train", help="Split name written into file names.")
    parser.add_argument("--num_shards", type=int, default=8, help="Number of output shards.")
    parser.add_argument("--name", default=None, help="Dataset name in file names (job default).")
    parser.add_argument(
        "--overwrite", default=False, action="store_true",
        help="Remove the files of another dataset (another --name) found in --output_dir "
             "instead of refusing to write there.")
    parser.add_argument("--verbose", default=False, action="store_true",
                        help="On an error, show the traceback, not only the one-line message.")


def check_common_options(opts: DatasetJobOptions, need_input: bool = True) -> None:
  if need_input:
    if not opts.input_dir:
      raise JobConfigError("--input_dir is required")
    if not fs.exists(opts.input_dir):
      raise JobConfigError(f"--input_dir {opts.input_dir!r} does not exist")
  if not opts.output_dir:
    raise JobConfigError("--output_dir is required")
  if opts.num_shards is None or opts.num_shards < 1:
    raise JobConfigError(f"--num_shards must be >= 1, got {opts.num_shards}")
  if not opts.split or "/" in opts.split or "-" in opts.split:
    raise JobConfigError(f"--split must be a plain name without '-' or '/', got {opts.split!r}")


# ---------------------------------------------------------------------------
# The dataset readers' jobs
# ---------------------------------------------------------------------------

DEFAULT_SEGMENT_LENGTH = 64


class TrackSegmentOptions(PipelineOptions):
  """Track-building jobs (build_vid, build_alov, build_sequences)."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument(
        "--segment_length", type=int, default=DEFAULT_SEGMENT_LENGTH,
        help="Longest track segment (frames) per record; longer tracks are cut into "
             "nearly equal segments no longer than this.")
    parser.add_argument(
        "--max_side", type=int, default=0,
        help="If > 0, frames whose longer side exceeds this are downscaled (and "
             "re-encoded as JPEG) together with their boxes; 0 keeps the original bytes.")


def check_track_options(opts) -> None:
  """The checks of the track-building jobs (common flags + TrackSegmentOptions)."""
  check_common_options(opts)
  if opts.segment_length is None or opts.segment_length < 2:
    raise JobConfigError(f"--segment_length must be >= 2, got {opts.segment_length}")
  if opts.max_side is None or opts.max_side < 0:
    raise JobConfigError(f"--max_side must be >= 0, got {opts.max_side}")


class SequenceKindOptions(PipelineOptions):
  """build_sequences."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument(
        "--sequence_kind", default=None, choices=SEQUENCE_KINDS,
        help="Layout of --input_dir: otb, vot, lasot, uav123 or got10k.")


class AlovOptions(PipelineOptions):
  """build_alov."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument(
        "--alov_exclude_vot", default=False, action="store_true",
        help="Leave out the 7 ALOV videos that overlap VOT2014 (use when testing on VOT).")


class DetOptions(PipelineOptions):
  """build_det."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument(
        "--det_min_area_fraction", type=float, default=0.01,
        help="Objects whose box covers less than this fraction of the image are dropped "
             "(Re3: 1%%).")
    parser.add_argument(
        "--det_max_side", type=int, default=0,
        help="If > 0, images whose longer side exceeds this are downscaled with their boxes.")


class CropPairOptions(PipelineOptions):
  """build_crop_pairs."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument(
        "--crop_pairs_jitter", default=False, action="store_true",
        help="Jitter the crop window (Re3/GOTURN style: Laplace center shift, clipped "
             "Laplace scale) instead of centering it on the previous box.")
    parser.add_argument(
        "--crop_pairs_seed", type=int, default=0,
        help="Seed of the jitter; with the same input and seed the output is identical.")
    parser.add_argument(
        "--crop_pairs_max_per_track", type=int, default=0,
        help="If > 0, at most this many pairs per track segment (evenly spaced).")
    parser.add_argument(
        "--crop_pairs_quality", type=int, default=90,
        help="JPEG quality of the stored 227x227 crops.")


class VidOptions(PipelineOptions):
  """build_vid."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument(
        "--vid_subset", default=None,
        help="Folder under Annotations/VID and Data/VID to read (train or val); "
             "default: the value of --split.")


class DetSubsetOptions(PipelineOptions):
  """build_det: which folder of the DET tree to read."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument(
        "--det_subset", default=None,
        help="Folder under Annotations/DET and Data/DET to read (train or val); "
             "default: the value of --split.")


# ---------------------------------------------------------------------------
# The generator jobs (build_synthetic, build_moving_mnist)
# ---------------------------------------------------------------------------

_SIM = SimulatorConfig()
_MNIST = MovingMnistConfig()
# Simulator fields whose flags carry their own help text.
SIM_JOB_FIELDS = ("canvas_size", "track_length")

SIM_HELP = {
    "speed_noise": "Scale of the Laplace noise added to each patch's speed per step (Re3: 0.01).",
    "max_speed": "Speed clip (Re3: 1.5); a unit of speed moves a patch velocity_scale x its "
                 "size per step.",
    "initial_speed_scale": "First speed = |Laplace(0, this)|, clipped (Re3: 1/15).",
    "heading_noise": "N(0, 1) x this (radians) added to the heading per step (Re3: pi/32).",
    "size_velocity_noise": "Std of the N(0, s) noise added to the width/height velocities "
                           "(Re3: 0.01).",
    "max_size_velocity": "Width/height velocity clip (Re3: 0.1).",
    "size_velocity_scale": "Size change per step per unit of size velocity, as a fraction of "
                           "the canvas (Re3: 40 px on 400 = 0.1).",
    "velocity_scale": "Displacement per step per unit of speed, in patch sizes (Re3: 0.5 with "
                      "a 4x context patch; 1.0 with our 2x keeps the motion relative to the "
                      "object).",
    "aspect_range": "Aspect ratio kept within [ar0 / this, ar0 * this] (Re3: 2).",
    "bounce_speed_factor": "Speed multiplier when a patch bounces off the border (Re3: 0.5).",
    "context_scale": "Target patch = object box x this, around its center, clipped to the "
                     "image.",
    "mirror_prob": "Probability of mirroring the source image left-right (Re3: 0.5).",
    "target_min_size": "Smallest object box longer side, as a fraction of the canvas.",
    "target_max_size": "Largest object box longer side, as a fraction of the canvas.",
    "distractors_behind": "Distractor patches drawn behind the target (Re3: 10).",
    "occluders_front": "Distractor patches drawn in front of the target, the occluders "
                       "(Re3: 10).",
    "distractor_min_scale": "Smallest distractor longer side, x the target patch's.",
    "distractor_max_scale": "Largest distractor longer side, x the target patch's.",
    "distractor_max_overlap": "Largest fraction of the object box a distractor crop may cut "
                              "from the image.",
    "occlusion_threshold": "bbox/visible = 0 where the occluded fraction exceeds this.",
    "max_warmup_steps": "Random number of steps (0..this) simulated before a track may start.",
    "max_start_search": "Steps searched for an unoccluded start before occluders are moved "
                        "away.",
    "min_box_size": "Source boxes under this many pixels a side are rejected.",
}

MNIST_HELP = {
    "canvas_size": "Frame side in pixels (paper: 100).",
    "digit_size": "Side of the digit square in the fixed variant (MNIST: 28).",
    "min_side": "Scalable variants: smallest side (paper: 14).",
    "max_side": "Scalable variants: largest side (paper: 56).",
    "scale_k_low": "Scalable: k ~ U(low, high), side x (1 + k/100) per frame (paper: -0.5).",
    "scale_k_high": "Scalable: upper end of k (paper: 2).",
    "momentum": "Velocity AR(1) coefficient of the random walk with momentum.",
    "velocity_noise": "Std (px/frame) of the per-frame velocity kick.",
    "max_speed": "Speed cap in px/frame.",
    "noise_dots": "Noisy variant: white dots per frame (paper: 500).",
    "distractors": "Noisy variant: extra digits in the background (paper: 1).",
    "distractor_motion": "Noisy variant: 'static' distractors stay put (part of the background; "
                         "the paper's agent sees no first box, so a distractor moving like the "
                         "target could not be told apart) or 'moving' like the target.",
}


class GeneratorOptions(PipelineOptions):
  """Both generator jobs. They read no raw dataset: --input_dir is refused
  (pipelines/synthetic/common.py) and left out of their --help."""

  UNUSED_FLAGS = ("input_dir",)

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument("--seed", type=int, default=0,
                        help="Seed: the same seed (and flags) writes the same bytes.")
    parser.add_argument("--preview", type=int, default=0,
                        help="After the job, draw this many tracks per split into "
                             "OUT/preview-{split}.png (0 = no preview).")
    parser.add_argument("--preview_frames", type=int, default=8,
                        help="Frames per track on the preview sheet.")


class SyntheticOptions(PipelineOptions):
  """build_synthetic: sources, sizes and every simulator constant."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument("--det_dir", default=None,
                        help="Object records from pipelines.build_det, or an ImageNet DET root.")
    parser.add_argument("--images_dir", default=None,
                        help="Photos with a VOC XML (same stem) or a boxes.csv beside them.")
    parser.add_argument("--num_tracks", type=int, default=1000, help="Tracks to generate.")
    parser.add_argument("--track_length", type=int, default=_SIM.track_length,
                        help="Frames per track (Re3 unrolls up to 32).")
    parser.add_argument("--canvas_size", type=int, default=_SIM.canvas_size,
                        help="Side of the square frames in pixels (Re3: 400).")
    parser.add_argument("--jpeg_quality", type=int, default=90, help="JPEG quality of frames.")
    parser.add_argument("--min_object_fraction", type=float, default=0.01,
                        help="Source boxes under this fraction of their image's area are "
                             "rejected (Re3's code: 1%%).")
    for field in dataclasses.fields(SimulatorConfig):
      if field.name in SIM_JOB_FIELDS:
        continue
      parser.add_argument(f"--{field.name}", type=type(getattr(_SIM, field.name)),
                          default=getattr(_SIM, field.name),
                          help=SIM_HELP[field.name] + " Default %(default)s.")


class MovingMnistOptions(PipelineOptions):
  """build_moving_mnist."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument("--variant", default=None, help=f"One of {'|'.join(VARIANTS)}.")
    parser.add_argument("--mnist_dir", default=None,
                        help="Folder with MNIST IDX files (t10k-*, train*-*) or mnist.npz.")
    parser.add_argument("--num_train", type=int, default=500, help="Training sequences.")
    parser.add_argument("--num_test", type=int, default=100, help="Test sequences.")
    parser.add_argument("--train_length", type=int, default=20,
                        help="Frames per training sequence.")
    parser.add_argument("--test_length", type=int, default=100, help="Frames per test sequence.")
    parser.add_argument("--num_val", type=int, default=0,
                        help="Validation sequences (split `val`, from held-out training digits; "
                             "0: no val split).")
    parser.add_argument("--val_length", type=int, default=100,
                        help="Frames per validation sequence.")
    parser.add_argument("--val_digits", type=int, default=500,
                        help="With --num_val: the last this many MNIST training digits make the "
                             "val sequences and are never used by train.")
    for field in dataclasses.fields(MovingMnistConfig):
      if field.name == "variant":
        continue
      parser.add_argument(f"--mnist_{field.name}", type=type(getattr(_MNIST, field.name)),
                          default=getattr(_MNIST, field.name),
                          help=MNIST_HELP[field.name] + " Default %(default)s.")


class SyntheticJobOptions(DatasetJobOptions, GeneratorOptions, SyntheticOptions,
                          DetSubsetOptions):
  """The flags build_synthetic reads (composed; defines none itself).
  --det_subset (build_det's flag) picks the folder of a DET root."""


class MovingMnistJobOptions(DatasetJobOptions, GeneratorOptions, MovingMnistOptions):
  """The flags build_moving_mnist reads (composed; defines none itself)."""


# ---------------------------------------------------------------------------
# Runners
# ---------------------------------------------------------------------------


class DaskClusterOptions(PipelineOptions):
  """--runner=DaskRunner without a scheduler address: the local cluster's size."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument(
        "--dask_workers", type=int, default=None,
        help="With --runner=DaskRunner and neither --dask_client_address nor "
             "--dask_scheduler_file: start a local Dask cluster of this many worker "
             "processes, one thread each (default: the number of CPU cores).")
