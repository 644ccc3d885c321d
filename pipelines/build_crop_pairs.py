"""Beam job: track records -> crop-pair records for fast first-stage training.

  python -m pipelines.build_crop_pairs --input_dir=/data/records/vid \
      --output_dir=/data/records/vid_pairs --split=train --num_shards=64 \
      [--crop_pairs_jitter --crop_pairs_seed=1] [--crop_pairs_max_per_track=16]

For every two consecutive stored frames of a track segment where the target
is visible in both: the crop window is the Re3 window of the previous frame's
box (2x its width and height; with --crop_pairs_jitter the previous box is
first jittered the GOTURN/Re3 way: model.geometry.jitter_xyxy with the
training defaults of configs.experiment.JitterConfig). Both frames are cut at
that same window with model.geometry.crop_reference (227x227, zeros outside
the image), and the label is model.geometry.box_to_label of the current box
in that window.

Determinism: each pair's random draws come from a generator seeded with
sha256(seed, pair key), so the output does not depend on worker scheduling.
Input is the record shards of --split in --input_dir (any dataset name); the
output split has the same name. In dataset_info.json, "num_tracks" counts
pairs and "num_frames" counts pairs too (one training example each).
"""

from __future__ import annotations

import hashlib
import sys

from configs import quiet

quiet.setup()

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402

from configs.experiment import JitterConfig  # noqa: E402
from model import geometry  # noqa: E402
from pipelines import images, options, runner, schema, shards, writer  # noqa: E402
from pipelines.schema import Reject, RejectReason  # noqa: E402

JITTER = JitterConfig()  # the recipe's constants: the training defaults of data.jitter


class CropPairJobOptions(options.DatasetJobOptions, options.CropPairOptions):
  """The flags build_crop_pairs reads (composed; defines none itself)."""


def validate(opts) -> None:
  options.check_common_options(opts)
  if opts.crop_pairs_max_per_track < 0:
    raise options.JobConfigError(
        f"--crop_pairs_max_per_track must be >= 0, got {opts.crop_pairs_max_per_track}")
  if not 1 <= opts.crop_pairs_quality <= 100:
    raise options.JobConfigError(
        f"--crop_pairs_quality must be in 1..100, got {opts.crop_pairs_quality}")
  if not shards.record_files(opts.input_dir, None, opts.split):
    raise options.JobConfigError(
        f"--input_dir {opts.input_dir!r}: no track record shards of split {opts.split!r} "
        "(expected NAME-SPLIT.tfrecord-XXXXX-of-YYYYY files)")


def pair_rng(seed: int, key: str) -> np.random.Generator:
  digest = hashlib.sha256(f"{int(seed)}/{key}".encode("utf-8")).digest()
  return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def jitter_box(box, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
  """`geometry.jitter_xyxy` of one xyxy box with JITTER."""
  return geometry.jitter_xyxy(box, height, width, rng, JITTER)


def pair_indices(visible, max_per_track: int):
  """Indices i of pairs (i - 1, i) with both frames visible; evenly thinned
  to at most max_per_track (0 = all)."""
  v = np.asarray(visible).astype(bool)
  idx = [i for i in range(1, len(v)) if v[i - 1] and v[i]]
  if max_per_track and len(idx) > max_per_track:
    pick = np.linspace(0, len(idx) - 1, max_per_track).round().astype(int)
    idx = [idx[k] for k in pick]
  return idx


class MakeCropPairs(beam.DoFn):
  """Serialized track record -> (key, crop-pair Example, 1) per pair."""

  def __init__(self, jitter: bool, seed: int, max_per_track: int, quality: int):
    self._jitter = bool(jitter)
    self._seed = int(seed)
    self._max = int(max_per_track)
    self._quality = int(quality)

  def process(self, serialized: bytes):
    try:
      track = schema.parse_track(serialized)
    except Exception as e:  # pylint: disable=broad-except
      yield writer.reject(Reject("<record>", RejectReason.MALFORMED_RECORD,
                                 f"cannot parse a track record: {e}"))
      return
    writer.count("tracks_read")
    idx = pair_indices(track.visible, self._max)
    if not idx:
      writer.count("tracks_without_pairs")
      return
    decoded = {}

    def frame(i):
      if i not in decoded:
        decoded[i] = images.decode_image_rgb(track.images[i], f"{track.track_id} frame {i}")
      return decoded[i]

    for i in idx:
      key = f"{track.track_id}/{int(track.frame_index[i]):06d}"
      try:
        prev_img, curr_img = frame(i - 1), frame(i)
      except images.ImageError as e:
        yield writer.reject(Reject(track.track_id, RejectReason.CORRUPT_IMAGE, str(e)))
        continue
      prev_box = track.boxes_xyxy[i - 1].astype(np.float64)
      curr_box = track.boxes_xyxy[i].astype(np.float64)
      if self._jitter:
        prev_box = jitter_box(prev_box, track.height, track.width, pair_rng(self._seed, key))
      window = geometry.crop_window_xyxy(prev_box)
      label = geometry.box_to_label(curr_box, window)
      prev_crop = geometry.crop_reference(prev_img, window)
      curr_crop = geometry.crop_reference(curr_img, window)
      data = schema.serialize_crop_pair(
          images.encode_jpeg(prev_crop, self._quality), images.encode_jpeg(curr_crop, self._quality),
          label.astype(np.float32), key)
      writer.count("pairs")
      yield key, data, 1


def read_records(path: str):
  """Every serialized record of one shard, then a reject if the file is
  damaged or not a TFRecord file (the records before the damage are kept).
  shards.read_record_file reads with tf.data rather than Beam's tfrecordio,
  which needs an extra CRC package; shards are the unit of parallelism here,
  and the Reshuffle after this spreads the records."""
  try:
    for _, raw in shards.read_record_file(path):
      yield raw
  except shards.CorruptRecordFile as e:
    yield writer.reject(e.to_reject(path))


def build(p: beam.Pipeline, opts) -> None:
  files = shards.record_files(opts.input_dir, None, opts.split)
  read = (p
          | "RecordFiles" >> beam.Create(files)
          | "ReadTracks" >> beam.FlatMap(read_records).with_outputs(
              writer.REJECTED_TAG, main="records"))
  built = (read.records
           | "Reshuffle" >> beam.Reshuffle()
           | "MakePairs" >> beam.ParDo(MakeCropPairs(
               opts.crop_pairs_jitter, opts.crop_pairs_seed, opts.crop_pairs_max_per_track,
               opts.crop_pairs_quality)).with_outputs(writer.REJECTED_TAG, main="pairs"))
  rejects = ((read[writer.REJECTED_TAG], built[writer.REJECTED_TAG])
             | "AllRejects" >> beam.Flatten())
  _ = (built.pairs, rejects) | "Write" >> writer.WriteShardedRecords(
      opts.output_dir, opts.name or "crop_pairs", opts.split, opts.num_shards,
      record_kind="crop_pair",
      extra_info={"jitter": bool(opts.crop_pairs_jitter), "seed": opts.crop_pairs_seed,
                  "max_per_track": opts.crop_pairs_max_per_track,
                  "num_frames_counts": "pairs", "source_files": len(files)})


def main(argv=None):
  return runner.run_job(argv if argv is not None else sys.argv[1:], CropPairJobOptions, validate,
                        build, "build_crop_pairs", __doc__)


if __name__ == "__main__":
  runner.cli_main(main, "build_crop_pairs")
