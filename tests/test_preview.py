"""The contact sheet: boxes drawn where the records say, colored by visibility."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines import images, preview, schema


def _track(track_id, visible, n=4, h=50, w=80):
  frames = [np.full((h, w, 3), 90, np.uint8) for _ in range(n)]
  boxes = np.array([[10 + 5 * i, 10, 40 + 5 * i, 30] for i in range(n)], np.float32)
  return schema.Track(track_id=track_id, source="synthetic", height=h, width=w,
                      images=[images.encode_png(f) for f in frames], boxes_xyxy=boxes,
                      visible=visible, frame_index=np.arange(n),
                      occlusion=np.where(np.asarray(visible) > 0, 0.0, 0.8), label="toy")


def _has(region, color):
  return np.any(np.all(region == np.array(color, np.uint8), axis=-1))


def test_boxes_are_drawn_green_when_visible_red_when_occluded():
  t = _track("t0", [1, 0, 1, 1])
  sheet = preview.contact_sheet([t], frames_per_track=4, cell_size=80)
  assert sheet.shape == (80 + 14, 4 * 80, 3)
  top = 14  # title strip
  for col, vis in enumerate([1, 0, 1, 1]):
    x0, y0, x1, y1 = t.boxes_xyxy[col]
    # The box's left edge, inside the cell (cell scale = 80 / 80 = 1).
    edge = sheet[top + int(y0) + 3:top + int(y1) - 3, col * 80 + int(x0):col * 80 + int(x0) + 2]
    assert _has(edge, preview.VISIBLE_COLOR if vis else preview.OCCLUDED_COLOR)
    assert not _has(edge, preview.OCCLUDED_COLOR if vis else preview.VISIBLE_COLOR)


def test_cli_reads_records_and_writes_a_png(tmp_path):
  with tf.io.TFRecordWriter(str(tmp_path / "toy-train.tfrecord-00000-of-00001")) as w:
    for i in range(3):
      w.write(schema.serialize_track(_track(f"t{i}", [1, 1, 0, 1])))
  out = tmp_path / "sheet.png"
  assert preview.main(["preview", f"--records={tmp_path}", "--num_tracks=2",
                       "--frames_per_track=3", "--cell_size=64", f"--output={out}"]) == 0
  sheet = images.load_image_rgb(str(out))
  assert sheet.shape == (2 * (64 + 14), 3 * 64, 3)
  with pytest.raises(FileNotFoundError, match="no track records"):
    preview.write_preview(str(tmp_path / "empty"), str(out), 2)
  with pytest.raises(ValueError, match="--num_tracks"):
    preview.write_preview(str(tmp_path), str(out), 0)
