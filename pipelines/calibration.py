"""Calibration crops for int8 post-training quantization, drawn from track records.

    python -m pipelines.calibration --records runs/data/pre_uav123 --crop_size 227 \
        --out runs/calib_227.npz
    python -m model.export --model_dir runs/re3_small --format tflite --quantize int8 \
        --calibration runs/calib_227.npz --export_dir exports/re3_small_int8.tflite

Each pair is what the tracker feeds the step when it follows the target
exactly: frame t-1 and frame t, both cut at the window of the box of frame
t-1 (`model.tracking_graphs.crop_windows_tf`, `model.geometry.crop_tf`, as
`Re3Graph` cuts them). Up to `pairs` consecutive pairs from each of up to
`tracks` tracks (spread over the record files), skipping frames where the
target is absent; the result is a `model.export_tflite.CalibrationCrops`
(prev, curr uint8 [N, S, S, 3], track [N]) saved as .npz.
"""

from __future__ import annotations

from typing import List, Optional

from absl import app, flags
import numpy as np
import tensorflow as tf

from configs import cli as cli_errors
from model import geometry
from model.export_tflite import CalibrationCrops
from model.tracking_graphs import crop_windows_tf
from pipelines import schema, shards
from pipelines.images import decode_image_rgb


def _cut(image: np.ndarray, box_xyxy: np.ndarray, size: int) -> np.ndarray:
  window = crop_windows_tf(tf.constant(geometry.xyxy_to_xywh(box_xyxy[None]), tf.float32))
  crop = geometry.crop_tf(tf.constant(image)[None], window, tf.zeros([1], tf.int32), size)
  return np.clip(np.round(crop.numpy()[0]), 0, 255).astype(np.uint8)


def crops_from_records(paths: List[str], crop_size: int, tracks: int = 16, pairs: int = 8,
                       split: Optional[str] = None) -> CalibrationCrops:
  """Crop pairs of the first `tracks` usable tracks of the record files under `paths`."""
  files = [f for p in paths for f in shards.record_files(p, None, split)]
  if not files:
    raise ValueError(f"no track records under {paths} (split {split or 'any'})")
  prev, curr, track_ids = [], [], []
  used = 0
  # One file at a time, interleaved: tracks spread over the shards and sources.
  # A damaged file gives the records before the damage, then a warning naming it
  # (shards.read_record_file, as the dataset jobs read their inputs).
  datasets = [shards.read_record_file(f) for f in files]
  damaged = []
  while used < tracks and datasets:
    for it in list(datasets):
      try:
        record = next(it, None)
      except shards.CorruptRecordFile as e:
        damaged.append(e.path)
        record = None
      if record is None:
        datasets.remove(it)
        continue
      t = schema.parse_track(record[1])
      ok = geometry.box_is_valid_xyxy(t.boxes_xyxy, t.height, t.width)
      starts = [i for i in range(1, len(t)) if ok[i - 1] and ok[i]][:pairs]
      if not starts:
        continue
      frames = {}
      for i in starts:
        for j in (i - 1, i):
          if j not in frames:
            frames[j] = decode_image_rgb(t.images[j], f"{t.track_id} frame {j}")
        prev.append(_cut(frames[i - 1], t.boxes_xyxy[i - 1], crop_size))
        curr.append(_cut(frames[i], t.boxes_xyxy[i - 1], crop_size))
        track_ids.append(used)
      used += 1
      if used >= tracks:
        break
  if not prev:
    why = (f" (damaged record files: {', '.join(damaged)})" if damaged else "")
    raise ValueError(f"{paths}: no track with two consecutive frames where the target is "
                     f"present{why}")
  return CalibrationCrops(np.stack(prev), np.stack(curr), np.asarray(track_ids, np.int32))


def define_flags(flag_values=flags.FLAGS):
  flags.DEFINE_list("records", None, "Track record folders (or files / globs).",
                    flag_values=flag_values)
  flags.DEFINE_integer("crop_size", 227, "Crop size of the model to calibrate.",
                       flag_values=flag_values)
  flags.DEFINE_integer("tracks", 16, "Tracks to draw from.", flag_values=flag_values)
  flags.DEFINE_integer("pairs", 8, "Consecutive crop pairs per track.", flag_values=flag_values)
  flags.DEFINE_string("split", None, "Record split (train, val, ...); default any.",
                      flag_values=flag_values)
  flags.DEFINE_string("out", None, "The .npz to write.", flag_values=flag_values)
  cli_errors.define_verbose_flag(flag_values)


def main(argv, flag_values=None):
  del argv
  FLAGS = flag_values or flags.FLAGS  # pylint: disable=redefined-outer-name,invalid-name
  if not FLAGS.records or not FLAGS.out:
    raise app.UsageError("--records and --out are required")
  calib = crops_from_records(FLAGS.records, FLAGS.crop_size, FLAGS.tracks, FLAGS.pairs,
                             FLAGS.split)
  calib.save(FLAGS.out)
  print(f"wrote {len(calib.prev)} crop pairs ({calib.crop_size}x{calib.crop_size}) from "
        f"{int(calib.track.max()) + 1} tracks to {FLAGS.out}")


if __name__ == "__main__":
  define_flags()
  app.run(cli_errors.guarded("pipelines.calibration", main, flags.FLAGS,
                             cli_errors.EXPECTED_ERRORS + (tf.errors.OpError,)),
          flags_parser=cli_errors.flags_parser(__doc__))
