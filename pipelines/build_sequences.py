"""Beam job: benchmark sequences (OTB, VOT, LaSOT, UAV123, GOT-10k) -> track records.

  python -m pipelines.build_sequences --sequence_kind=otb \
      --input_dir=../shared/data/tracking/otb --output_dir=/tmp/otb --split=test

One track per sequence (per target for OTB folders with several), cut into
segments of at most --segment_length frames; whole frames are stored, with
the original JPEG bytes when they decode fine. The readers in
pipelines/readers/sequences.py define the box conventions (1-based ground
truth -> 0-based continuous xyxy, NaN where absent, visibility flags); the
same readers serve evaluation, so records and evaluation agree by
construction.

Beam flags pass through (--runner, --direct_num_workers,
--direct_running_mode=multi_processing, ...).
"""

from __future__ import annotations

import sys

from configs import quiet

quiet.setup()

import apache_beam as beam  # noqa: E402

from pipelines import options, runner, segments, writer  # noqa: E402
from pipelines.readers import sequences  # noqa: E402
from pipelines.schema import RejectReason  # noqa: E402


class SequencesJobOptions(options.DatasetJobOptions, options.TrackSegmentOptions,
                          options.SequenceKindOptions):
  """The flags build_sequences reads (composed; defines none itself)."""


def validate(opts) -> None:
  options.check_track_options(opts)
  if not opts.sequence_kind:
    raise options.JobConfigError(f"--sequence_kind is required (one of {sequences.KINDS})")
  try:
    paths = sequences.find_sequence_paths(opts.sequence_kind, opts.input_dir)
  except sequences.SequenceFormatError as e:
    raise options.JobConfigError(f"--input_dir: {e}") from None
  if not paths:
    raise options.JobConfigError(
        f"--input_dir {opts.input_dir!r}: no {opts.sequence_kind} sequences found "
        "(expected sequence folders with their ground-truth file)")


class ReadSequenceTasks(beam.DoFn):
  """Sequence path -> SegmentTasks (no pixels read here), or a reject."""

  def __init__(self, kind: str, segment_length: int):
    self._kind = kind
    self._segment_length = int(segment_length)

  def process(self, path: str):
    try:
      ann = sequences.read_sequence(self._kind, path)
    except sequences.SequenceFormatError as e:
      yield writer.reject(e.to_reject(path))
      return
    writer.count("tracks")
    writer.count("annotated_frames", len(ann))
    for r in ann.rejects:  # bad rows (kept as frames without a box), frames after the last row
      yield writer.reject(r)
      if r.reason == RejectReason.UNANNOTATED_FRAMES:
        writer.count("frames_without_ground_truth", int(r.extra.get("frames", 0)))
    yield from segments.tasks_from_annotation(
        ann, f"{self._kind}/{ann.name}", self._segment_length, path)


def build(p: beam.Pipeline, opts) -> None:
  paths = sequences.find_sequence_paths(opts.sequence_kind, opts.input_dir)
  staged = (p
            | "SequencePaths" >> beam.Create(sorted(paths))
            | "ReadSequences" >> beam.ParDo(
                ReadSequenceTasks(opts.sequence_kind, opts.segment_length)).with_outputs(
                    writer.REJECTED_TAG, main="tasks"))
  name = opts.name or opts.sequence_kind
  segments.write_tracks((staged.tasks, staged[writer.REJECTED_TAG]), opts, name,
                        extra_info={"source": opts.sequence_kind,
                                    "segment_length": opts.segment_length,
                                    "max_side": opts.max_side})


def main(argv=None):
  return runner.run_job(argv if argv is not None else sys.argv[1:], SequencesJobOptions,
                        validate, build, "build_sequences", __doc__)


if __name__ == "__main__":
  runner.cli_main(main, "build_sequences")
