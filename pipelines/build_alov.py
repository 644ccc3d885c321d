"""Beam job: ALOV300++ -> track records.

  python -m pipelines.build_alov --input_dir=/data/alov --output_dir=/data/records/alov \
      --split=train --num_shards=16

--input_dir holds imagedata++/ and alov300++_rectangleAnnotation_full/. One
track per video holding only the annotated frames (about every 5th; no
interpolation, see pipelines/readers/alov.py), boxes by GOTURN's rule,
whole frames stored with their original JPEG bytes. --alov_exclude_vot leaves
out the 7 videos that overlap VOT2014.
"""

from __future__ import annotations

import sys

from configs import quiet

quiet.setup()

import apache_beam as beam  # noqa: E402

from pipelines import options, runner, segments, writer  # noqa: E402
from pipelines.readers import alov  # noqa: E402


class AlovJobOptions(options.DatasetJobOptions, options.TrackSegmentOptions,
                     options.AlovOptions):
  """The flags build_alov reads (composed; defines none itself)."""


def validate(opts) -> None:
  options.check_track_options(opts)
  try:
    videos = alov.find_videos(opts.input_dir)
  except alov.AlovFormatError as e:
    raise options.JobConfigError(f"--input_dir: {e}") from None
  if not any(v.ann_path for v in videos):
    raise options.JobConfigError(
        f"--input_dir {opts.input_dir!r}: no .ann files under {alov.ANN_DIR}/<category>/")


class ReadAlovVideo(beam.DoFn):
  """AlovVideo -> SegmentTasks of its one track, or rejects."""

  def __init__(self, root: str, segment_length: int, exclude_vot: bool):
    self._root = root
    self._segment_length = int(segment_length)
    self._exclude_vot = bool(exclude_vot)

  def process(self, video: alov.AlovVideo):
    if self._exclude_vot and video.name in alov.VOT_OVERLAP:
      writer.count("videos_excluded_vot_overlap")
      return
    ann, refs, rejects = alov.read_video(video, self._root)
    for r in rejects:
      yield writer.reject(r)
    if ann is None:
      return
    writer.count("tracks")
    writer.count("annotated_frames", len(ann))
    yield from segments.make_tasks(
        f"alov/{video.key}", "alov", ann.label, ann.frame_paths, ann.boxes_xyxy, ann.visible,
        ann.frame_index, refs, self._segment_length)


def build(p: beam.Pipeline, opts) -> None:
  videos = alov.find_videos(opts.input_dir)
  staged = (p
            | "Videos" >> beam.Create(videos)
            | "ReadVideos" >> beam.ParDo(ReadAlovVideo(
                opts.input_dir, opts.segment_length, opts.alov_exclude_vot)).with_outputs(
                    writer.REJECTED_TAG, main="tasks"))
  segments.write_tracks((staged.tasks, staged[writer.REJECTED_TAG]), opts, opts.name or "alov",
                        extra_info={"source": "alov", "frames": "annotated only",
                                    "segment_length": opts.segment_length,
                                    "max_side": opts.max_side,
                                    "exclude_vot_overlap": bool(opts.alov_exclude_vot)})


def main(argv=None):
  return runner.run_job(argv if argv is not None else sys.argv[1:], AlovJobOptions, validate,
                        build, "build_alov", __doc__)


if __name__ == "__main__":
  runner.cli_main(main, "build_alov")
