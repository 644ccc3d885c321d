"""Benchmark metrics and protocol runners against hand-computed cases."""

import numpy as np
import pytest

from model import geometry as g
from train.eval import metrics as m
from train.eval import protocols as p


def _box(x, y=0.0, w=10.0, h=10.0):
  return [x, y, x + w, y + h]


def test_threshold_grids():
  assert len(m.SUCCESS_THRESHOLDS) == 21
  np.testing.assert_allclose(m.SUCCESS_THRESHOLDS[[0, 1, 10, 20]], [0, 0.05, 0.5, 1.0])
  assert m.PRECISION_THRESHOLDS[20] == 20


def test_perfect_tracker():
  gt = np.array([_box(0), _box(3, 4), _box(7, 1, 20, 5)])
  s = m.ope_sequence(gt, gt)
  # OTB's "IoU strictly above t": every threshold but t = 1 is passed.
  np.testing.assert_allclose(s["success_curve"], [1.0] * 20 + [0.0])
  assert s["success_auc"] == pytest.approx(20 / 21)
  assert s["precision_20px"] == 1.0
  np.testing.assert_allclose(s["precision_curve"], 1.0)
  assert s["norm_precision_auc"] == 1.0
  assert s["mean_iou"] == 1.0 and s["mean_center_error"] == 0.0
  v = m.vid_scores([gt], [gt])
  assert v["fraction_above_0.5"] == 1.0 and v["auc"] == pytest.approx(20 / 21)
  r = m.rl_scores([gt], [gt])
  assert r == {"predictions": 3, "average_center_error": 0.0, "average_iou": 1.0,
               "center_error_first_frames": 0.0, "center_error_last_frames": 0.0,
               "edge_frames": 10}


def test_shifted_tracker_with_known_iou():
  gt = np.array([_box(0)] * 4)
  pred = np.array([_box(5)] * 4)  # IoU 50/150 = 1/3, center error 5 px, 0.5 box widths
  s = m.ope_sequence(pred, gt)
  assert s["mean_iou"] == pytest.approx(1 / 3)
  # thresholds 0, 0.05, ..., 0.30 are below 1/3: 7 of 21
  np.testing.assert_allclose(s["success_curve"], [1.0] * 7 + [0.0] * 14)
  assert s["success_auc"] == pytest.approx(7 / 21)
  # errors of 5 px pass thresholds 5..50: 46 of 51
  assert s["precision_curve"][4] == 0.0 and s["precision_curve"][5] == 1.0
  assert s["precision_20px"] == 1.0
  # normalized error 0.5 passes only the last threshold (0.5) of 51
  assert s["norm_precision_auc"] == pytest.approx(1 / 51)
  assert s["norm_precision_0.2"] == 0.0
  r = m.rl_scores([pred], [gt])
  assert r["average_center_error"] == pytest.approx(5.0)
  assert r["average_iou"] == pytest.approx(1 / 3)


def test_stay_put_on_moving_target():
  # target moves right by 0, 5, 10, 20 px; a stay-put tracker keeps the first box
  gt = np.array([_box(0), _box(5), _box(10), _box(20)])
  pred = np.array([_box(0)] * 4)
  s = m.ope_sequence(pred, gt)
  ious = m.frame_ious(pred, gt)
  np.testing.assert_allclose(ious, [1, 1 / 3, 0, 0])
  # t = 0 .. 0.30: IoU 1 and 1/3 pass (2/4); t = 0.35 .. 0.95: only 1 (1/4); t = 1: none
  expected = [0.5] * 7 + [0.25] * 13 + [0.0]
  np.testing.assert_allclose(s["success_curve"], expected)
  assert s["success_auc"] == pytest.approx((7 * 0.5 + 13 * 0.25) / 21)
  assert s["precision_20px"] == 1.0  # errors 0, 5, 10, 20
  assert s["precision_curve"][9] == 0.5  # only 0 and 5 are <= 9
  assert s["mean_center_error"] == pytest.approx(35 / 4)


def test_invalid_ground_truth_skipped_missing_prediction_counts_as_miss():
  gt = np.array([_box(0), [np.nan] * 4, _box(0), [5, 5, 5, 9]])  # rows 1, 3 unscorable
  pred = np.array([_box(0), _box(0), [np.nan] * 4, _box(0)])
  s = m.ope_sequence(pred, gt)
  assert s["frames"] == 2
  np.testing.assert_allclose(s["success_curve"][:20], 0.5)
  assert s["precision_20px"] == 0.5  # the NaN prediction has infinite center error
  r = m.rl_scores([pred], [gt])
  assert r["predictions"] == 2 and r["average_center_error"] == np.inf


def test_mask_restricts_to_occluded_frames():
  gt = np.array([_box(0)] * 4)
  pred = np.array([_box(0), _box(0), _box(5), _box(5)])
  occluded = np.array([False, False, True, True])
  assert m.ope_sequence(pred, gt, occluded)["mean_iou"] == pytest.approx(1 / 3)
  assert m.ope_sequence(pred, gt, ~occluded)["mean_iou"] == pytest.approx(1.0)
  empty = m.ope_sequence(pred, gt, np.zeros(4, bool))
  assert empty["frames"] == 0 and np.isnan(empty["success_auc"])


def test_ope_averages_sequences_vid_pools_boxes():
  gt_a, pred_a = np.array([_box(0)]), np.array([_box(0)])               # 1 frame, IoU 1
  gt_b, pred_b = np.array([_box(0)] * 3), np.array([_box(50)] * 3)      # 3 frames, IoU 0
  summ = m.ope_summary([m.ope_sequence(pred_a, gt_a), m.ope_sequence(pred_b, gt_b)])
  assert summ["sequences"] == 2 and summ["frames"] == 4
  assert summ["success_curve"][10] == pytest.approx(0.5)   # mean of 1 and 0
  v = m.vid_scores([pred_a, pred_b], [gt_a, gt_b])
  assert v["boxes"] == 4 and v["fraction_above_0.5"] == pytest.approx(0.25)
  r = m.rl_scores([pred_a, pred_b], [gt_a, gt_b])
  assert r["average_iou"] == pytest.approx(0.25)


def test_shape_errors_are_clear():
  with pytest.raises(ValueError, match="differ in length"):
    m.ope_sequence(np.zeros([3, 4]), np.zeros([2, 4]))
  with pytest.raises(ValueError, match=r"\[N, 4\]"):
    m.frame_ious(np.zeros([3, 3]), np.zeros([3, 3]))


def test_vot_scores_burn_in_and_robustness():
  codes = np.array([m.CODE_INIT] + [m.CODE_TRACK] * 11 + [m.CODE_FAIL] + [m.CODE_SKIP] * 4
                   + [m.CODE_INIT] + [m.CODE_TRACK] * 12)
  ious = np.full(codes.shape, 0.5)
  ious[10:12] = 0.9            # frames 10, 11: first frames after the burn-in
  ious[17 + 10:] = 0.3         # frames 27..29 after the second init's burn-in
  s = m.vot_sequence(ious, codes, burn_in=10)
  assert s["drops"] == 1 and s["frames"] == 30
  assert s["accuracy_frames"] == 2 + 3
  assert s["accuracy"] == pytest.approx((2 * 0.9 + 3 * 0.3) / 5)
  assert m.vot_robustness(1, 30) == pytest.approx(np.exp(-1.0))
  summ = m.vot_summary([s, {"frames": 70, "drops": 1, "accuracy": 0.7}])
  assert summ["drops"] == 2 and summ["frames"] == 100
  assert summ["robustness"] == pytest.approx(np.exp(-30 * 2 / 100))
  assert summ["accuracy"] == pytest.approx(((2 * 0.9 + 3 * 0.3) / 5 + 0.7) / 2)
  assert m.vot_robustness(0, 10) == 1.0


def test_to_jsonable_is_strict_json():
  import json
  out = m.to_jsonable({"a": np.array([1.0, np.nan]), "b": np.int64(3), "c": float("inf")})
  assert out == {"a": [1.0, None], "b": 3, "c": None}
  json.dumps(out, allow_nan=False)


# ---------------------------------------------------------------------------
# Protocol runners with scripted trackers
# ---------------------------------------------------------------------------


class ScriptedTracker:
  """Returns prescribed xyxy boxes per frame index (frames are the index itself)."""

  name = "scripted"

  def __init__(self, boxes_xyxy):
    self.boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    self.inits = []

  def init(self, image, box_xywh):
    self.inits.append((int(image[0, 0, 0]), list(np.asarray(box_xywh, dtype=float))))

  def update(self, image):
    return True, g.xyxy_to_xywh(self.boxes[int(image[0, 0, 0])])


class CountingFrames:
  def __init__(self, n):
    self.n, self.loaded = n, []

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    self.loaded.append(i)
    return np.full([4, 4, 3], i, np.uint8)


def test_one_pass_starts_at_first_valid_box_and_never_resets():
  gt = np.array([[np.nan] * 4, _box(0), _box(1), _box(2)])
  trk = ScriptedTracker([_box(99)] * 4)
  run = p.run_one_pass(trk, CountingFrames(4), gt, "seq")
  assert trk.inits == [(1, [0.0, 0.0, 10.0, 10.0])]
  assert list(run.codes) == [m.CODE_ABSENT, m.CODE_INIT, m.CODE_TRACK, m.CODE_TRACK]
  np.testing.assert_allclose(run.pred_xyxy[1], gt[1])       # the given box on the init frame
  np.testing.assert_allclose(run.pred_xyxy[2:], [_box(99)] * 2)
  assert list(run.predicted) == [False, False, True, True]
  assert run.tracker_calls == 3


def test_supervised_reinitializes_five_frames_after_a_failure():
  n = 30
  gt = np.array([_box(float(i)) for i in range(n)])
  script = gt.copy()
  script[3] = _box(500)           # IoU 0 at frame 3 -> failure
  trk = ScriptedTracker(script)
  frames = CountingFrames(n)
  run = p.run_supervised(trk, frames, gt, "seq", skip=5)
  assert [i for i, _ in trk.inits] == [0, 8]
  assert run.codes[3] == m.CODE_FAIL
  assert list(run.codes[4:8]) == [m.CODE_SKIP] * 4
  assert 4 not in frames.loaded and 7 not in frames.loaded   # skipped frames are never decoded
  s = p.supervised_scores(run, gt, burn_in=10)
  assert s["drops"] == 1
  assert s["accuracy_frames"] == n - 18   # frames 18..29 (second init at 8, burn-in 10)
  assert s["accuracy"] == pytest.approx(1.0)


def test_supervised_stay_put_drops_when_target_leaves():
  from train.eval.baselines import StayPutTracker
  n = 40
  gt = np.array([_box(2.0 * i) for i in range(n)])  # 10 px box moving 2 px/frame
  frames = [np.zeros([60, 200, 3], np.uint8)] * n
  run = p.run_supervised(StayPutTracker(), frames, gt, "seq", skip=5)
  # from an init at frame k, IoU reaches 0 when the shift 2 (i - k) >= 10, at i = k + 5;
  # re-init 5 frames later: inits at 0, 10, 20, 30; failures at 5, 15, 25, 35
  assert list(np.flatnonzero(run.codes == m.CODE_FAIL)) == [5, 15, 25, 35]
  assert list(np.flatnonzero(run.codes == m.CODE_INIT)) == [0, 10, 20, 30]
  s = p.supervised_scores(run, gt, burn_in=10)
  assert s["drops"] == 4 and s["accuracy_frames"] == 0 and np.isnan(s["accuracy"])


def test_unknown_protocol_and_length_mismatch():
  with pytest.raises(ValueError, match="unknown protocol"):
    p.run_protocol("eao", ScriptedTracker([_box(0)]), CountingFrames(1), np.array([_box(0)]))
  with pytest.raises(ValueError, match="2 frames but 3"):
    p.run_one_pass(ScriptedTracker([_box(0)] * 3), CountingFrames(2), np.array([_box(0)] * 3))


def test_rl_scores_first_and_last_frames():
  # 25 frames: error 1 px in frames 0-9, 5 px in the middle, 9 px in frames 15-24
  gt = np.array([_box(0)] * 25, float)
  shift = np.array([1.0] * 10 + [5.0] * 5 + [9.0] * 10)
  pred = gt + np.stack([shift, 0 * shift, shift, 0 * shift], -1)
  short_gt, short_pred = gt[:4], gt[:4] + [3.0, 0, 3.0, 0]   # a 4-frame track: both ends
  r = m.rl_scores([pred, short_pred], [gt, short_gt])
  assert r["edge_frames"] == 10
  assert r["center_error_first_frames"] == pytest.approx((10 * 1 + 4 * 3) / 14)
  assert r["center_error_last_frames"] == pytest.approx((10 * 9 + 4 * 3) / 14)
  # frames the mask leaves out count at neither end
  mask = np.ones(25, bool)
  mask[:5] = False
  r = m.rl_scores([pred], [gt], [mask])
  assert r["center_error_first_frames"] == pytest.approx(1.0)
  assert r["predictions"] == 20


def test_median_area_ratio_reads_box_size_drift():
  gt = np.array([[0, 0, 10, 10]] * 4, np.float64)
  pred = np.array([[0, 0, 20, 20], [0, 0, 20, 20], [0, 0, 10, 10], [np.nan] * 4])
  assert m.median_area_ratio(pred, gt) == 4.0               # frames 1-3: 4, 4, 1
  seq = m.ope_sequence(pred, gt)
  assert seq["median_area_ratio"] == 4.0
  small = m.ope_sequence(np.array([[0, 0, 5, 10]] * 4, np.float64), gt)
  assert m.ope_summary([seq, small])["median_area_ratio"] == pytest.approx(2.25)


def test_lost_detection_ranks_scores_against_lost_frames():
  gt = np.array([[0, 0, 10, 10]] * 6, np.float64)
  pred = np.array([[0, 0, 10, 10]] * 3 + [[50, 50, 60, 60]] * 3, np.float64)   # 3 kept, 3 lost
  good = m.lost_detection([np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.3])], [pred], [gt])
  assert good["roc_auc"] == 1.0 and good["lost_fraction"] == 0.5
  assert (good["precision"], good["recall"], good["threshold"]) == (1.0, 1.0, 0.3)
  flipped = m.lost_detection([np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.7])], [pred], [gt])
  assert flipped["roc_auc"] == 0.0
  ties = m.lost_detection([np.full(6, 0.5)], [pred], [gt])
  assert ties["roc_auc"] == 0.5
  assert m.lost_detection([None], [pred], [gt]) == {"frames": 0}
