"""Contact sheet of a few tracks with their boxes drawn: what did a job generate?

  python -m pipelines.preview --records OUT[,OUT2...] --num_tracks 6 --output sheet.png
      [--split train] [--name synthetic] [--frames_per_track 8] [--cell_size 128]

One row per track (the first tracks of the first shards, so the same
records give the same picture), `frames_per_track` frames evenly spaced
over the track. Boxes are green where `bbox/visible` is 1 and red where it
is 0 (occluded); the corner label shows the frame index and, when known,
the occluded fraction. Works for every track record dataset (synthetic,
moving MNIST, VID, ...). The jobs call it with `--preview N`.
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional

from configs import cli as cli_errors, quiet

quiet.setup()

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from pipelines import images, schema, shards  # noqa: E402

VISIBLE_COLOR = (40, 230, 40)
OCCLUDED_COLOR = (240, 40, 40)
TEXT_COLOR = (255, 255, 0)


def read_tracks(records: str, num_tracks: int, name: Optional[str] = None,
                split: Optional[str] = None):
  """The first `num_tracks` tracks of the sorted shard files (deterministic)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only to read records
  files = shards.record_files(records, name, split)
  if not files:
    raise FileNotFoundError(f"no track records in {records!r}"
                            f"{f' for {name}-{split}' if name or split else ''}")
  tracks = []
  for f in files:
    for raw in tf.data.TFRecordDataset(f):
      tracks.append(schema.parse_track(raw.numpy()))
      if len(tracks) >= num_tracks:
        return tracks
  return tracks


def contact_sheet(tracks, frames_per_track: int = 8, cell_size: int = 128) -> np.ndarray:
  """HxWx3 uint8 sheet: a row per track, a title strip above each row."""
  if not tracks:
    raise ValueError("contact_sheet: no tracks to draw")
  title_h = 14
  cols = max(1, frames_per_track)
  sheet = Image.new("RGB", (cols * cell_size, len(tracks) * (cell_size + title_h)), (24, 24, 24))
  draw = ImageDraw.Draw(sheet)
  for row, track in enumerate(tracks):
    top = row * (cell_size + title_h)
    draw.text((3, top + 1), f"{track.track_id}  [{track.source}] {track.label}  "
                            f"{len(track)} frames", fill=(230, 230, 230))
    n = len(track)
    picks = np.unique(np.linspace(0, n - 1, num=min(cols, n)).round().astype(int))
    for col, t in enumerate(picks):
      frame = images.decode_image_rgb(track.images[t], f"{track.track_id} frame {t}")
      h, w = frame.shape[:2]
      s = cell_size / float(max(h, w))
      cell = Image.fromarray(frame).resize((max(1, round(w * s)), max(1, round(h * s))),
                                           Image.BILINEAR)
      x0, y0 = col * cell_size, top + title_h
      sheet.paste(cell, (x0, y0))
      box = track.boxes_xyxy[t]
      if np.all(np.isfinite(box)):
        color = VISIBLE_COLOR if track.visible[t] else OCCLUDED_COLOR
        draw.rectangle([x0 + box[0] * s, y0 + box[1] * s, x0 + box[2] * s - 1,
                        y0 + box[3] * s - 1], outline=color, width=2)
      occ = float(track.occlusion[t])
      text = f"{int(track.frame_index[t])}"
      if occ > 0:
        text += f" occ {occ:.2f}" if occ >= 0.01 else " occ<.01"
      draw.text((x0 + 3, y0 + 2), text, fill=TEXT_COLOR)
  return np.asarray(sheet)


def write_preview(records: str, output: str, num_tracks: int, name: Optional[str] = None,
                  split: Optional[str] = None, frames_per_track: int = 8,
                  cell_size: int = 128) -> str:
  """Reads the tracks, draws the sheet, writes the PNG; returns its path.

  `records` may list several datasets separated by commas (e.g. the three
  moving-MNIST variants): `num_tracks` rows from each.
  """
  if num_tracks < 1:
    raise ValueError(f"--num_tracks must be >= 1, got {num_tracks}")
  if frames_per_track < 1 or cell_size < 8:
    raise ValueError(f"need --frames_per_track >= 1 and --cell_size >= 8, got "
                     f"{frames_per_track} and {cell_size}")
  tracks = []
  for one in records.split(","):
    tracks += read_tracks(one, num_tracks, name, split)
  sheet = contact_sheet(tracks, frames_per_track, cell_size)
  data = images.encode_png(sheet)
  parent = os.path.dirname(output)
  if parent and "://" not in output:
    os.makedirs(parent, exist_ok=True)
  if "://" in output:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top  # TF only for remote paths
    with tf.io.gfile.GFile(output, "wb") as f:
      f.write(data)
  else:
    with open(output, "wb") as f:
      f.write(data)
  return output


def main(argv: Optional[List[str]] = None) -> int:
  fl = flags.FlagValues()
  flags.DEFINE_string("records", None, "Dataset directory (or a shard file / glob); several "
                      "separated by commas.", flag_values=fl)
  flags.DEFINE_integer("num_tracks", 6, "Tracks (rows) to draw.", flag_values=fl)
  flags.DEFINE_string("output", None, "PNG to write.", flag_values=fl)
  flags.DEFINE_string("split", None, "Only this split (default: any).", flag_values=fl)
  flags.DEFINE_string("name", None, "Only this dataset name (default: any).", flag_values=fl)
  flags.DEFINE_integer("frames_per_track", 8, "Frames (columns) per track.", flag_values=fl)
  flags.DEFINE_integer("cell_size", 128, "Pixel size of a frame on the sheet.", flag_values=fl)
  cli_errors.define_verbose_flag(fl)
  args = list(argv if argv is not None else sys.argv)
  if cli_errors.help_requested(args[1:]):
    print(cli_errors.help_text(__doc__, fl))
    return 0
  fl(args)
  for required in ("records", "output"):
    if not getattr(fl, required):
      print(f"--{required} is required", file=sys.stderr)
      return 2
  path = write_preview(fl.records, fl.output, fl.num_tracks, fl.name, fl.split,
                       fl.frames_per_track, fl.cell_size)
  print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
