"""Flags of the dataset jobs build_vid, build_alov, build_det, build_sequences
and build_crop_pairs.

Why a module of its own: Beam builds one argument parser from every *direct*
subclass of PipelineOptions loaded in the process (DirectRunner calls
`get_all_options()`), so (1) a flag defined twice anywhere crashes every job
with "conflicting option string", and (2) flags of a grandchild class are
"discarded" with a warning and do not reach remote runners. Each flag group is
therefore a direct PipelineOptions subclass defined once, here (never in a
module that also runs as `__main__`, which would register it twice), with
names prefixed by their job where a short name could clash; each job composes
the groups it needs by multiple inheritance without adding flags itself.
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.readers.sequences import KINDS as SEQUENCE_KINDS
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
