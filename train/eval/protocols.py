"""Protocol runners: drive any tracker through a sequence the way a benchmark does.

A tracker is anything with `init(image_rgb, box_xywh)` and
`update(image_rgb) -> (ok, box_xywh)` (train/eval/baselines.py's `Tracker`; the
GOT-10k toolkit's and OpenCV's convention), so Re3, the OpenCV trackers and
test doubles all run through the same code.

  run_one_pass      OTB OPE and the Re3 paper's ImageNet VID protocol:
                    initialize on the first frame with a valid ground truth,
                    never reset.
  run_supervised    VOT supervised (Re3 Table I): a failure is a frame whose
                    box has IoU 0 with a valid ground truth; the tracker is
                    re-initialized on the ground truth `skip` (5) frames later
                    (or the next frame with a valid ground truth); frames in
                    between are not tracked. Burn-in is applied when scoring
                    (train/eval/metrics.vot_sequence).

Frames are read lazily through a sequence-like object (`frames[i]` -> RGB
array; train/eval/datasets.py builds them), so a supervised run never decodes
the frames it skips and long sequences never sit in memory. Per-frame tracker
time is measured around `init`/`update` only (image decoding is excluded),
which is what FPS in tracking papers reports.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Optional

import numpy as np

from model import geometry
from train.eval import metrics

# VOT supervised protocol (Re3 Table I, the VOT toolkit's defaults): frames
# between a failure and the re-initialization, and frames after each
# initialization left out of accuracy.
VOT_SKIP = 5
VOT_BURN_IN = 10


@dataclasses.dataclass
class SequenceRun:
  """What one tracker did on one sequence (arrays have one row per frame)."""
  name: str
  pred_xyxy: np.ndarray        # [N, 4] reported box, NaN where not tracked
  ok: np.ndarray               # [N] bool: the tracker's own ok flag (False where not tracked)
  codes: np.ndarray            # [N] metrics.CODE_*
  times: np.ndarray            # [N] seconds spent in init/update (0 where not run)
  predicted: np.ndarray        # [N] bool: the box is the tracker's prediction (not a given box)
  # [N] the tracker's own score after each update (its `tracking_score`, e.g. the
  # peers' OpenCV getTrackingScore(); NaN elsewhere); None for trackers without one
  scores: Optional[np.ndarray] = None

  @property
  def tracker_calls(self) -> int:
    return int(np.isin(self.codes, (metrics.CODE_INIT, metrics.CODE_TRACK, metrics.CODE_FAIL)).sum())

  @property
  def fps(self) -> float:
    total = float(np.sum(self.times))
    calls = self.tracker_calls
    return calls / total if total > 0 and calls else float("nan")

  def pred_xywh(self) -> np.ndarray:
    return geometry.xyxy_to_xywh(self.pred_xyxy)


def _check(frames, gt_xyxy, name):
  gt = np.asarray(gt_xyxy, dtype=np.float64)
  if gt.ndim != 2 or gt.shape[1] != 4:
    raise ValueError(f"{name}: ground truth must be [N, 4] xyxy, got shape {gt.shape}")
  if len(frames) != gt.shape[0]:
    raise ValueError(f"{name}: {len(frames)} frames but {gt.shape[0]} ground-truth rows")
  return gt


def _first_valid(valid: np.ndarray, start: int) -> Optional[int]:
  idx = np.flatnonzero(valid[start:])
  return int(start + idx[0]) if idx.size else None


def _as_xyxy(box_xywh) -> np.ndarray:
  if box_xywh is None:
    return np.full([4], np.nan)
  b = np.asarray(box_xywh, dtype=np.float64).reshape(-1)
  if b.shape != (4,):
    return np.full([4], np.nan)
  return geometry.xywh_to_xyxy(b)


class _Runner:
  """Shared bookkeeping of both protocols."""

  def __init__(self, tracker, frames, gt, name):
    n = gt.shape[0]
    self.tracker, self.frames, self.gt, self.name = tracker, frames, gt, name
    self.pred = np.full([n, 4], np.nan)
    self.ok = np.zeros([n], bool)
    self.codes = np.full([n], metrics.CODE_SKIP, np.int64)
    self.times = np.zeros([n])
    self.predicted = np.zeros([n], bool)
    self.scores = np.full([n], np.nan) if hasattr(tracker, "tracking_score") else None

  def init(self, i):
    image = self.frames[i]
    box = geometry.xyxy_to_xywh(self.gt[i])
    t0 = time.perf_counter()
    self.tracker.init(image, box)
    self.times[i] = time.perf_counter() - t0
    self.codes[i] = metrics.CODE_INIT
    self.ok[i] = True
    own = getattr(self.tracker, "initial_prediction_xywh", None)
    if own is not None:  # trackers that predict the first frame themselves (RL agent)
      self.pred[i] = _as_xyxy(own)
      self.predicted[i] = True
    else:
      self.pred[i] = self.gt[i]

  def update(self, i):
    image = self.frames[i]
    t0 = time.perf_counter()
    ok, box = self.tracker.update(image)
    self.times[i] = time.perf_counter() - t0
    self.pred[i] = _as_xyxy(box)
    self.ok[i] = bool(ok) and bool(np.all(np.isfinite(self.pred[i])))
    self.codes[i] = metrics.CODE_TRACK
    self.predicted[i] = True
    if self.scores is not None:
      self.scores[i] = float(self.tracker.tracking_score)

  def result(self):
    return SequenceRun(self.name, self.pred, self.ok, self.codes, self.times, self.predicted,
                       self.scores)


def run_one_pass(tracker, frames, gt_xyxy, name: str = "sequence") -> SequenceRun:
  """OTB OPE / ImageNet VID: initialize once on the first valid ground truth, never reset."""
  gt = _check(frames, gt_xyxy, name)
  valid = metrics.valid_ground_truth(gt)
  r = _Runner(tracker, frames, gt, name)
  start = _first_valid(valid, 0)
  if start is None:
    r.codes[:] = metrics.CODE_ABSENT
    return r.result()
  r.codes[:start] = metrics.CODE_ABSENT
  r.init(start)
  for i in range(start + 1, gt.shape[0]):
    r.update(i)
  return r.result()


def run_supervised(tracker, frames, gt_xyxy, name: str = "sequence",
                   skip: int = VOT_SKIP) -> SequenceRun:
  """VOT supervised: failure at IoU 0 with a valid ground truth, re-init `skip` frames later."""
  if skip < 1:
    raise ValueError(f"skip must be >= 1, got {skip}")
  gt = _check(frames, gt_xyxy, name)
  valid = metrics.valid_ground_truth(gt)
  r = _Runner(tracker, frames, gt, name)
  n = gt.shape[0]
  start = _first_valid(valid, 0)
  if start is None:
    r.codes[:] = metrics.CODE_ABSENT
    return r.result()
  r.codes[:start] = metrics.CODE_ABSENT
  i = start
  r.init(i)
  i += 1
  while i < n:
    r.update(i)
    if valid[i] and geometry.iou_xyxy(r.pred[i], gt[i]) <= 0.0:
      r.codes[i] = metrics.CODE_FAIL
      nxt = _first_valid(valid, i + skip)
      if nxt is None:
        break  # remaining frames stay CODE_SKIP
      r.init(nxt)
      i = nxt + 1
      continue
    i += 1
  return r.result()


def supervised_scores(run: SequenceRun, gt_xyxy, burn_in: int = VOT_BURN_IN):
  """metrics.vot_sequence on a supervised run (NaN IoU where the ground truth is invalid)."""
  gt = np.asarray(gt_xyxy, dtype=np.float64)
  ious = metrics.frame_ious(run.pred_xyxy, gt)
  ious = np.where(metrics.valid_ground_truth(gt), ious, np.nan)
  return metrics.vot_sequence(ious, run.codes, burn_in=burn_in)


PROTOCOLS = ("ope", "vot", "vid")


def run_protocol(protocol: str, tracker, frames, gt_xyxy, name: str = "sequence",
                 skip: int = VOT_SKIP) -> SequenceRun:
  if protocol in ("ope", "vid"):
    return run_one_pass(tracker, frames, gt_xyxy, name)
  if protocol == "vot":
    return run_supervised(tracker, frames, gt_xyxy, name, skip=skip)
  raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
