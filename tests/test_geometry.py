"""Box conversions, IoU and the Re3 crop geometry (NumPy and TF twins)."""

import numpy as np
import pytest

from configs.experiment import JitterConfig
from model import geometry as g


def test_xywh_xyxy_round_trip():
  b = np.array([[10.0, 20.0, 30.0, 40.0], [0.5, 1.5, 2.0, 3.0]])
  xyxy = g.xywh_to_xyxy(b)
  np.testing.assert_allclose(xyxy, [[10, 20, 40, 60], [0.5, 1.5, 2.5, 4.5]])
  np.testing.assert_allclose(g.xyxy_to_xywh(xyxy), b)
  np.testing.assert_allclose(g.xywh_to_xyxy_tf(b).numpy(), xyxy)
  np.testing.assert_allclose(g.xyxy_to_xywh_tf(xyxy).numpy(), b)


def test_polygon_bounds():
  poly = [3, 1, 9, 2, 8, 7, 2, 6]
  np.testing.assert_allclose(g.polygon_to_xyxy(poly), [2, 1, 9, 7])


def test_iou_known_cases():
  a = np.array([0, 0, 10, 10.0])
  assert g.iou_xyxy(a, a) == pytest.approx(1.0)
  assert g.iou_xyxy(a, [5, 0, 15, 10]) == pytest.approx(50 / 150)
  assert g.iou_xyxy(a, [20, 20, 30, 30]) == 0.0
  assert g.iou_xyxy([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0
  assert g.iou_xywh([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(1 / 3)
  assert g.center_error_xyxy(a, [3, 4, 13, 14]) == pytest.approx(5.0)


def test_numpy_and_tf_metrics_agree():
  rng = np.random.default_rng(0)
  xy = rng.uniform(0, 100, (50, 2))
  a = np.concatenate([xy, xy + rng.uniform(1, 50, (50, 2))], -1)
  xy = rng.uniform(0, 100, (50, 2))
  b = np.concatenate([xy, xy + rng.uniform(1, 50, (50, 2))], -1)
  np.testing.assert_allclose(g.iou_xyxy_tf(a, b).numpy(), g.iou_xyxy(a, b), atol=1e-9)
  np.testing.assert_allclose(g.center_error_xyxy_tf(a, b).numpy(), g.center_error_xyxy(a, b))
  np.testing.assert_allclose(g.crop_window_xyxy_tf(a).numpy(), g.crop_window_xyxy(a))
  w = g.crop_window_xyxy(b)
  np.testing.assert_allclose(g.box_to_label_tf(a, w).numpy(), g.box_to_label(a, w))
  np.testing.assert_allclose(g.label_to_box_tf(g.box_to_label(a, w), w).numpy(), a)


def test_crop_window_is_twice_the_box_and_not_square():
  w = g.crop_window_xyxy([10, 20, 30, 60])  # 20 x 40 box centered (20, 40)
  np.testing.assert_allclose(w, [0, 0, 40, 80])


def test_still_target_label_and_inverse():
  box = np.array([100.0, 50.0, 140.0, 70.0])
  window = g.crop_window_xyxy(box)
  np.testing.assert_allclose(g.box_to_label(box, window), [2.5, 2.5, 7.5, 7.5])
  moved = box + [10, 5, 10, 5]
  label = g.box_to_label(moved, window)
  np.testing.assert_allclose(label, [2.5 + 10 / 80 * 10, 2.5 + 5 / 40 * 10,
                                     7.5 + 10 / 80 * 10, 7.5 + 5 / 40 * 10])
  np.testing.assert_allclose(g.label_to_box(label, window), moved)


def _smooth_image(h, w):
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
  img = np.stack([127 + 120 * np.sin(xx / 17.0), 127 + 120 * np.cos(yy / 23.0),
                  (xx + yy) / (h + w) * 255], axis=-1)
  return img.clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("box", [
    [60.0, 40.0, 120.0, 100.0],     # inside
    [-20.0, -10.0, 40.0, 50.0],     # window hangs off the top-left
    [250.0, 180.0, 330.0, 235.0],   # window hangs off the bottom-right
    [100.0, 100.0, 103.0, 180.0],   # thin and tall: the window is not square
])
def test_in_graph_crop_matches_reference(box):
  img = _smooth_image(240, 320)
  window = g.crop_window_xyxy(box)
  ref = g.crop_reference(img, window).astype(np.float64)
  got = g.crop_tf(img[None], window[None].astype(np.float32))[0].numpy()
  assert got.shape == (227, 227, 3)
  # zero region outside the image is the same (up to a pixel row of rounding)
  outside_ref = ref.sum(-1) == 0
  outside_got = got.sum(-1) == 0
  assert np.mean(outside_ref != outside_got) < 0.02
  both = ~outside_ref & ~outside_got
  assert np.mean(np.abs(ref[both] - got[both])) < 3.0


def test_crop_indices_cut_many_windows_from_one_image():
  img = _smooth_image(100, 100)
  windows = np.array([[0, 0, 50, 50], [50, 50, 100, 100]], np.float32)
  crops = g.crop_tf(img[None], windows, box_indices=[0, 0], size=50).numpy()
  np.testing.assert_allclose(crops[0], img[:50, :50], atol=1e-3)
  np.testing.assert_allclose(crops[1], img[50:, 50:], atol=1e-3)


def test_box_validity():
  ok = g.box_is_valid_xyxy([[0, 0, 1, 1], [5, 5, 5, 9], [np.nan, 0, 1, 1], [200, 0, 300, 10]],
                           height=100, width=100)
  assert ok.tolist() == [True, False, False, False]


def test_crop_box_rule_on_degenerate_boxes():
  nan = float("nan")
  boxes = np.array([
      [10.0, 20.0, 30.0, 60.0],       # valid, larger than the minimum: unchanged
      [30.0, 60.0, 10.0, 20.0],       # swapped corners: ordered
      [5.0, 5.0, 5.0, 5.0],           # zero size: 1 px about the same center
      [5.0, 5.0, 5.4, 9.0],           # 0.4 px wide: widened to 1 px, height kept
      [nan, 4.0, 6.0, nan],           # NaN coordinates read as 0
      [-np.inf, 0.0, np.inf, 2.0],    # infinite ones too
  ])
  want = np.array([
      [10.0, 20.0, 30.0, 60.0],
      [10.0, 20.0, 30.0, 60.0],
      [4.5, 4.5, 5.5, 5.5],
      [4.7, 5.0, 5.7, 9.0],
      [0.0, 0.0, 6.0, 4.0],
      [-0.5, 0.0, 0.5, 2.0],
  ])
  got = g.crop_box_xyxy(boxes)
  np.testing.assert_allclose(got, want, atol=1e-12)
  assert g.MIN_CROP_BOX == 1.0
  np.testing.assert_allclose(g.crop_box_xyxy_tf(boxes).numpy(), want, atol=1e-12)
  np.testing.assert_allclose(g.crop_box_xyxy_tf(boxes.astype(np.float32)).numpy(), want,
                             atol=1e-5)
  # every crop box gives a finite window of at least 2 px a side
  win = g.crop_window_xyxy(got)
  assert np.all(np.isfinite(win)) and np.all(win[:, 2:] - win[:, :2] >= 2.0 - 1e-12)


def test_numpy_and_tf_box_rules_agree():
  rng = np.random.default_rng(1)
  b = rng.uniform(-20, 120, (200, 4))
  b[::7, 2] = b[::7, 0]                         # some zero-width boxes
  b[::11, 1] = np.nan
  np.testing.assert_allclose(g.crop_box_xyxy_tf(b).numpy(), g.crop_box_xyxy(b), atol=1e-9)
  np.testing.assert_array_equal(g.box_is_valid_xyxy_tf(b).numpy(), g.box_is_valid_xyxy(b))
  np.testing.assert_allclose(g.mirror_xyxy_tf(b, 100).numpy(), g.mirror_xyxy(b, 100), atol=1e-9)
  ok = g.box_is_valid_xyxy(b)
  w = g.crop_window_xyxy(rng.uniform(0, 100, (int(ok.sum()), 4)).cumsum(-1) / 2)
  np.testing.assert_allclose(g.coverage_xyxy_tf(w, b[ok]).numpy(), g.coverage_xyxy(w, b[ok]),
                             atol=1e-9)


def test_mirror_and_coverage_known_cases():
  np.testing.assert_allclose(g.mirror_xyxy([10, 5, 30, 25], 100), [70, 5, 90, 25])
  np.testing.assert_allclose(g.mirror_xyxy(g.mirror_xyxy([10, 5, 30, 25], 100), 100),
                             [10, 5, 30, 25])
  assert g.coverage_xyxy([0, 0, 100, 100], [10, 10, 20, 20]) == pytest.approx(1.0)
  assert g.coverage_xyxy([0, 0, 15, 100], [10, 10, 20, 20]) == pytest.approx(0.5)
  assert g.coverage_xyxy([50, 50, 60, 60], [10, 10, 20, 20]) == 0.0
  assert list(g.box_is_valid_xyxy_tf([[0, 0, 1, 1], [0, 0, 0, 1], [np.nan, 0, 1, 1]]).numpy()) \
      == [True, False, False]


def test_jitter_twins_follow_the_same_rule():
  cfg = JitterConfig()
  box = np.array([100.0, 80.0, 160.0, 200.0])
  rng = np.random.default_rng(0)
  np_out = np.stack([g.jitter_xyxy(box, 400, 400, rng, cfg) for _ in range(3000)])
  tf_out = g.jitter_xyxy_tf(np.tile(box, (3000, 1)), [400, 400], cfg, seed=5).numpy()
  wh = box[2:] - box[:2]
  for out in (np_out, tf_out):
    c = (out[:, :2] + out[:, 2:]) / 2
    s = out[:, 2:] - out[:, :2]
    assert np.all(c > box[:2]) and np.all(c < box[2:])
    assert np.all(s >= cfg.size_min * wh - 1e-4) and np.all(s <= cfg.size_max * wh + 1e-4)
  # same distribution: the center shift (in box sizes; Laplace(0, center_scale)
  # cut to the box) and the size scale (Laplace(1, size_scale) clipped)
  def stats(out):
    shift = ((out[:, :2] + out[:, 2:]) / 2 - (box[:2] + box[2:]) / 2) / wh
    scale = (out[:, 2:] - out[:, :2]) / wh
    return np.mean(np.abs(shift)), np.mean(np.abs(scale - 1.0)), np.median(scale)
  np_stats, tf_stats = stats(np_out), stats(tf_out)
  assert 0.1 < np_stats[0] < cfg.center_scale
  np.testing.assert_allclose(np_stats[1], cfg.size_scale, rtol=0.1)
  np.testing.assert_allclose(tf_stats, np_stats, rtol=0.1, atol=0.005)
  # no try fits (center outside the image) or jitter off: the box as it is, in both
  off_image = np.array([500.0, 500.0, 520.0, 520.0])
  np.testing.assert_array_equal(g.jitter_xyxy(off_image, 400, 400, rng, cfg), off_image)
  np.testing.assert_array_equal(
      g.jitter_xyxy_tf(off_image[None], [400, 400], cfg, seed=1).numpy()[0], off_image)
  off = JitterConfig(enabled=False)
  np.testing.assert_array_equal(g.jitter_xyxy(box, 400, 400, rng, off), box)
  np.testing.assert_array_equal(g.jitter_xyxy_tf(box[None], [400, 400], off).numpy()[0], box)


def test_damp_labels_keeps_the_center_and_damps_scale_and_aspect():
  prev = [2.5, 2.5, 7.5, 7.5]                        # the previous box in its own window
  grown = np.array([[1.0, 2.0, 9.0, 6.0]], np.float32)   # 8 x 4: scale x1.13, aspect 2
  np.testing.assert_allclose(g.damp_labels_tf(grown, 1.0, 1.0).numpy(), grown)
  np.testing.assert_allclose(g.damp_labels_tf(grown, 0.0, 0.0).numpy(),
                             [[2.5, 1.5, 7.5, 6.5]], atol=1e-5)     # previous size, new centre
  half = g.damp_labels_tf(grown, 0.5, 0.5).numpy()[0]
  w, h = half[2] - half[0], half[3] - half[1]
  np.testing.assert_allclose([(half[0] + half[2]) / 2, (half[1] + half[3]) / 2], [5.0, 4.0], atol=1e-5)
  np.testing.assert_allclose(np.sqrt(w * h) / 5.0, (32 / 25) ** 0.25, rtol=1e-5)  # scale change ^ 0.5
  np.testing.assert_allclose(w / h, 2.0 ** 0.5, rtol=1e-5)                       # aspect change ^ 0.5
  np.testing.assert_allclose(g.damp_labels_tf(np.array([prev], np.float32), 0.3, 0.7).numpy(),
                             [prev], atol=1e-5)                      # no change stays no change


def test_crop_cv2_equals_crop_tf(shared_dir):
  """The host crop of the LiteRT/ONNX runtimes against the graph's
  crop_and_resize on a real frame: windows inside, across every border, far
  larger than the image and a few pixels wide."""
  from PIL import Image
  frame = sorted((shared_dir / "data" / "tracking" / "otb" / "Deer" / "img").glob("*.jpg"))[5]
  img = np.asarray(Image.open(frame).convert("RGB"))
  h, w = img.shape[:2]
  wins = np.array([[300, 150, 420, 310], [-50, -40, 100, 90], [w - 40, h - 30, w + 60, h + 90],
                   [10.3, 20.7, 11.1, 21.5], [-500, -500, 2000, 2000], [100.25, 50.5, 400.75, 300.1],
                   [w + 10, 5, w + 50, 40], [-0.4, -0.7, w - 0.3, h + 0.6]], np.float32)
  ref = g.crop_tf(img[None], wins, np.zeros(len(wins), np.int32), 128).numpy()
  ours = g.crop_cv2(img, wins, 128)
  assert ours.shape == ref.shape and ours.dtype == np.float32
  np.testing.assert_allclose(ours, ref, atol=0.01)
  from model.tracking_graphs import crop_windows_tf
  boxes = np.array([[1, 2, 3, 4], [50.5, 20.25, 0.0, 7.0], [np.nan, 1, 2, 3]], np.float32)
  np.testing.assert_allclose(g.crop_windows_xywh(boxes), crop_windows_tf(boxes).numpy(), atol=1e-5)
  np.testing.assert_allclose(g.crop_windows_xywh(boxes[:1]), [[-0.5, 0.0, 5.5, 8.0]])
