"""Flags of the generator jobs (build_synthetic, build_moving_mnist).

Why here and why split in groups: Beam builds one argument parser from every
*direct* subclass of PipelineOptions loaded in the process (the DirectRunner
calls `get_all_options()`), so a flag defined twice anywhere crashes every
job, and flags of a grandchild class are dropped with a warning. Each group
below is therefore a direct PipelineOptions subclass, defined once in a
module that never runs as `__main__`; the job classes only compose them (the
same scheme as pipelines/job_flags.py).
"""

from __future__ import annotations

import dataclasses

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.core import DatasetJobOptions
from pipelines.job_flags import DetSubsetOptions
from pipelines.synthetic.moving_mnist import VARIANTS, MovingMnistConfig
from pipelines.synthetic.simulator import SimulatorConfig

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


class GeneratorFlags(PipelineOptions):
  """Both generator jobs."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument("--seed", type=int, default=0,
                        help="Seed: the same seed (and flags) writes the same bytes.")
    parser.add_argument("--preview", type=int, default=0,
                        help="After the job, draw this many tracks per split into "
                             "OUT/preview-{split}.png (0 = no preview).")
    parser.add_argument("--preview_frames", type=int, default=8,
                        help="Frames per track on the preview sheet.")


class SyntheticFlags(PipelineOptions):
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


class MovingMnistFlags(PipelineOptions):
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
    for field in dataclasses.fields(MovingMnistConfig):
      if field.name == "variant":
        continue
      parser.add_argument(f"--mnist_{field.name}", type=type(getattr(_MNIST, field.name)),
                          default=getattr(_MNIST, field.name),
                          help=MNIST_HELP[field.name] + " Default %(default)s.")


class SyntheticJobOptions(DatasetJobOptions, GeneratorFlags, SyntheticFlags, DetSubsetOptions):
  """The flags build_synthetic reads (composed; defines none itself).
  --det_subset (build_det's flag) picks the folder of a DET root."""


class MovingMnistJobOptions(DatasetJobOptions, GeneratorFlags, MovingMnistFlags):
  """The flags build_moving_mnist reads (composed; defines none itself)."""
