"""Beam job: ImageNet VID (ILSVRC2015) -> track records.

  python -m pipelines.build_vid --input_dir=/data/ILSVRC2015 --output_dir=/data/records/vid \
      --split=train --num_shards=256 [--max_side=640]

--input_dir is the ILSVRC2015 root (Data/VID/..., Annotations/VID/...); the
subset read is --vid_subset (default: --split). One track per (video,
trackid), from the object's first to its last annotated frame, cut into
segments of at most --segment_length frames; frames where the object is
absent are visible = 0 with NaN boxes, occluded ones visible = 0 with their
box (pipelines/readers/vid.py). Whole frames are stored (original JPEG bytes
unless --max_side downscales), so the 2x crop around a drifted prediction is
always available for self-training.
"""

from __future__ import annotations

import sys

from configs import quiet

quiet.setup()

import apache_beam as beam  # noqa: E402

from pipelines import options, runner, segments, writer  # noqa: E402
from pipelines.readers import vid  # noqa: E402


class VidJobOptions(options.DatasetJobOptions, options.TrackSegmentOptions,
                    options.VidOptions):
  """The flags build_vid reads (composed; defines none itself)."""


def _subset(opts) -> str:
  return opts.vid_subset or opts.split


def validate(opts) -> None:
  options.check_track_options(opts)
  try:
    videos = vid.find_videos(opts.input_dir, _subset(opts))
  except vid.VidLayoutError as e:
    raise options.JobConfigError(f"--input_dir: {e}") from None
  if not any(v.ann_dir for v in videos):
    raise options.JobConfigError(
        f"--input_dir {opts.input_dir!r}: no annotation folders with .xml files under "
        f"Annotations/VID/{_subset(opts)}")


class ReadVidVideo(beam.DoFn):
  """VidVideo -> SegmentTasks of each of its tracks, plus rejects."""

  def __init__(self, segment_length: int):
    self._segment_length = int(segment_length)

  def process(self, video: vid.VidVideo):
    tracks, rejects = vid.read_video(video)
    for r in rejects:
      yield writer.reject(r)
    writer.count("videos")
    for t in tracks:
      writer.count("tracks")
      yield from segments.make_tasks(
          f"vid/{t.video}/{t.trackid}", "vid", t.label, t.frame_paths, t.boxes_xyxy,
          t.visible, t.frame_index, t.ann_refs, self._segment_length,
          annotated_size=t.annotated_size)


def build(p: beam.Pipeline, opts) -> None:
  videos = vid.find_videos(opts.input_dir, _subset(opts))
  staged = (p
            | "Videos" >> beam.Create(videos)
            | "ReadVideos" >> beam.ParDo(ReadVidVideo(opts.segment_length)).with_outputs(
                writer.REJECTED_TAG, main="tasks"))
  segments.write_tracks((staged.tasks, staged[writer.REJECTED_TAG]), opts, opts.name or "vid",
                        extra_info={"source": "vid", "subset": _subset(opts),
                                    "segment_length": opts.segment_length,
                                    "max_side": opts.max_side})


def main(argv=None):
  return runner.run_job(argv if argv is not None else sys.argv[1:], VidJobOptions, validate,
                        build, "build_vid", __doc__)


if __name__ == "__main__":
  runner.cli_main(main, "build_vid")
