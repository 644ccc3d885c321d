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
                          help="Simulator constant (default %(default)s); see "
                               "pipelines/synthetic/simulator.py.")


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
                          help="Generator constant (default %(default)s); see "
                               "pipelines/synthetic/moving_mnist.py.")


class SyntheticJobOptions(DatasetJobOptions, GeneratorFlags, SyntheticFlags, DetSubsetOptions):
  """The flags build_synthetic reads (composed; defines none itself).
  --det_subset (build_det's flag) picks the folder of a DET root."""


class MovingMnistJobOptions(DatasetJobOptions, GeneratorFlags, MovingMnistFlags):
  """The flags build_moving_mnist reads (composed; defines none itself)."""
