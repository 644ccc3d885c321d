"""Tracking scores, as the benchmarks define them (pure NumPy, no TensorFlow).

Everything here takes per-frame predicted and ground-truth boxes in xyxy
pixels (model.geometry's convention) and works on arrays, so the protocol
runners (train/eval/protocols.py) and tests can call it on anything.

Conventions (and why):
  * A frame counts only where its ground truth is valid (finite, positive
    size). UAV123/LaSOT/GOT-10k mark absent targets with NaN rows; scoring
    those frames would punish a tracker for a box nobody can check.
  * A missing prediction (NaN row, e.g. an OpenCV tracker that gave up) has
    IoU 0 and an infinite center error: it is a miss, never skipped.
  * Success curve (OTB OPE): fraction of frames with IoU *strictly above* t
    for t = 0, 0.05, ..., 1, AUC = mean of the 21 values. This is the OTB
    toolkit's (and pysot's) definition; as a consequence the value at t = 1
    is always 0 and a perfect tracker's AUC is 20/21 = 0.952, not 1.
  * Precision: fraction of frames with center error <= t pixels (t = 0..50),
    the headline number at 20 px.
  * Normalized precision (TrackingNet / LaSOT): the center offset divided by
    the ground-truth width and height per axis, thresholds 0..0.5 in steps of
    0.01; the headline number is the area under that curve (TrackingNet), and
    the value at 0.2 is reported beside it.
  * OPE averages the per-sequence curves over sequences (OTB); the ImageNet
    VID protocol of the Re3 paper pools every box of every track instead
    ("each individual bounding box is evaluated").
  * RL paper: average center pixel error and average IoU over all
    predictions (pooled).
  * VOT supervised (Re3 Table I): accuracy = mean IoU over tracked frames
    outside the burn-in after each (re-)initialization, averaged over
    sequences; robustness = exp(-30 * drops / frames) over the dataset.
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional, Sequence

import numpy as np

from model import geometry

SUCCESS_THRESHOLDS = np.round(np.linspace(0.0, 1.0, 21), 10)
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_PRECISION_THRESHOLDS = np.round(np.linspace(0.0, 0.5, 51), 10)
PRECISION_AT = 20.0
NORM_PRECISION_AT = 0.2
VOT_ROBUSTNESS_SENSITIVITY = 30.0


# ---------------------------------------------------------------------------
# Per-frame quantities
# ---------------------------------------------------------------------------


def _boxes(boxes, name: str) -> np.ndarray:
  b = np.asarray(boxes, dtype=np.float64)
  if b.ndim != 2 or b.shape[-1] != 4:
    raise ValueError(f"{name}: expected an [N, 4] array of xyxy boxes, got shape {b.shape}")
  return b


def _pair(pred, gt):
  p = _boxes(pred, "predicted boxes")
  g = _boxes(gt, "ground-truth boxes")
  if p.shape != g.shape:
    raise ValueError(f"predicted boxes {p.shape} and ground truth {g.shape} differ in length")
  return p, g


def valid_ground_truth(gt_xyxy) -> np.ndarray:
  """[N] bool: frames whose ground truth can be scored (finite, positive size)."""
  return geometry.box_is_valid_xyxy(_boxes(gt_xyxy, "ground-truth boxes"))


def frame_ious(pred_xyxy, gt_xyxy) -> np.ndarray:
  """[N] IoU per frame; 0 where the prediction is missing (NaN)."""
  p, g = _pair(pred_xyxy, gt_xyxy)
  return geometry.iou_xyxy(p, g)


def center_errors(pred_xyxy, gt_xyxy) -> np.ndarray:
  """[N] center distance in pixels; inf where the prediction is missing."""
  p, g = _pair(pred_xyxy, gt_xyxy)
  err = geometry.center_error_xyxy(p, g)
  return np.where(np.isfinite(err), err, np.inf)


def normalized_center_errors(pred_xyxy, gt_xyxy) -> np.ndarray:
  """[N] center offset in units of the ground-truth size (per axis), then its norm."""
  p, g = _pair(pred_xyxy, gt_xyxy)
  size = geometry.xyxy_size(g)
  with np.errstate(invalid="ignore", divide="ignore"):
    d = (geometry.xyxy_center(p) - geometry.xyxy_center(g)) / size
    err = np.sqrt(np.sum(d * d, axis=-1))
  return np.where(np.isfinite(err), err, np.inf)


# ---------------------------------------------------------------------------
# Curves
# ---------------------------------------------------------------------------


def success_curve(ious, thresholds: Sequence[float] = SUCCESS_THRESHOLDS) -> np.ndarray:
  """Fraction of frames with IoU strictly above each threshold (NaN if no frames)."""
  ious = np.asarray(ious, dtype=np.float64).reshape(-1)
  t = np.asarray(thresholds, dtype=np.float64)
  if ious.size == 0:
    return np.full(t.shape, np.nan)
  return np.mean(ious[:, None] > t[None, :], axis=0)


def precision_curve(errors, thresholds: Sequence[float] = PRECISION_THRESHOLDS) -> np.ndarray:
  """Fraction of frames with center error at most each threshold (NaN if no frames)."""
  e = np.asarray(errors, dtype=np.float64).reshape(-1)
  t = np.asarray(thresholds, dtype=np.float64)
  if e.size == 0:
    return np.full(t.shape, np.nan)
  return np.mean(e[:, None] <= t[None, :], axis=0)


def curve_auc(curve) -> float:
  """Area under a curve sampled at evenly spaced thresholds = mean of its values."""
  c = np.asarray(curve, dtype=np.float64)
  return float(np.mean(c)) if c.size else float("nan")


def _value_at(curve, thresholds, t) -> float:
  idx = int(np.argmin(np.abs(np.asarray(thresholds, dtype=np.float64) - t)))
  return float(np.asarray(curve)[idx])


# ---------------------------------------------------------------------------
# One-pass evaluation (OTB / LaSOT / UAV123 / GOT-10k style)
# ---------------------------------------------------------------------------


def _curve_scores(succ, prec, nprec) -> Dict[str, object]:
  """The OPE curves and the scores read off them (success AUC, precision at 20 px,
  normalized precision AUC and at 0.2), for one sequence or a dataset's mean curves."""
  return {
      "success_curve": succ,
      "success_auc": curve_auc(succ),
      "precision_curve": prec,
      "precision_20px": _value_at(prec, PRECISION_THRESHOLDS, PRECISION_AT),
      "norm_precision_curve": nprec,
      "norm_precision_auc": curve_auc(nprec),
      "norm_precision_0.2": _value_at(nprec, NORM_PRECISION_THRESHOLDS, NORM_PRECISION_AT),
  }


def ope_sequence(pred_xyxy, gt_xyxy, mask=None) -> Dict[str, object]:
  """Scores of one sequence. `mask` ([N] bool) restricts the frames further
  (e.g. occluded frames only); invalid ground truth is always left out."""
  p, g = _pair(pred_xyxy, gt_xyxy)
  keep = valid_ground_truth(g)
  if mask is not None:
    m = np.asarray(mask, dtype=bool).reshape(-1)
    if m.shape[0] != keep.shape[0]:
      raise ValueError(f"mask has {m.shape[0]} entries for {keep.shape[0]} frames")
    keep &= m
  p, g = p[keep], g[keep]
  ious = frame_ious(p, g)
  err = center_errors(p, g)
  nerr = normalized_center_errors(p, g)
  succ = success_curve(ious)
  prec = precision_curve(err)
  nprec = precision_curve(nerr, NORM_PRECISION_THRESHOLDS)
  n = int(keep.sum())
  return {
      "frames": n,
      **_curve_scores(succ, prec, nprec),
      "mean_iou": float(np.mean(ious)) if n else float("nan"),
      "mean_center_error": float(np.mean(err)) if n else float("nan"),
      "median_area_ratio": median_area_ratio(p, g),
  }


def lost_detection(scores: Sequence, preds: Sequence, gts: Sequence,
                   lost_below: float = 0.1) -> Dict[str, float]:
  """How well a tracker's own score flags the frames where its box is lost
  (IoU with the truth below `lost_below`), pooled over sequences: the ROC AUC
  of -score as a lost-frame detector (0.5 = no better than chance, 1 =
  perfect), the lost fraction, and precision / recall at the score threshold
  with the best F1. Frames with a valid truth and a finite score count."""
  s_all, lost_all = [], []
  for sc, p, g in zip(scores, preds, gts):
    if sc is None:
      continue
    pp, gg = _pair(p, g)
    sc = np.asarray(sc, np.float64).reshape(-1)
    keep = valid_ground_truth(gg) & np.isfinite(sc)
    if not keep.any():
      continue
    s_all.append(sc[keep])
    lost_all.append(frame_ious(pp[keep], gg[keep]) < lost_below)
  if not s_all:
    return {"frames": 0}
  s, lost = np.concatenate(s_all), np.concatenate(lost_all)
  out = {"frames": int(s.size), "lost_fraction": float(lost.mean()), "lost_below_iou": lost_below}
  n_lost, n_ok = int(lost.sum()), int((~lost).sum())
  if n_lost and n_ok:
    # one pass over the distinct scores (ascending): their frame counts and lost frames
    values, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    flagged = np.cumsum(counts)                                   # frames with score <= value
    # ROC AUC = P(score of a lost frame < score of a kept frame), ties half:
    # the rank sum of the kept frames, ties given their average rank
    ranks = (flagged - (counts - 1) / 2.0)[inverse]
    out["roc_auc"] = float((ranks[~lost].sum() - n_ok * (n_ok + 1) / 2) / (n_ok * n_lost))
    tp = np.cumsum(np.bincount(inverse, weights=lost.astype(np.float64)))
    prec, rec = tp / flagged, tp / n_lost
    f1 = 2 * prec * rec / np.maximum(prec + rec, 1e-12)
    i = int(np.argmax(f1))                         # the lowest threshold of the best F1
    best = (float(f1[i]), float(values[i]), float(prec[i]), float(rec[i]))
    out.update({"best_f1": best[0], "threshold": best[1], "precision": best[2], "recall": best[3]})
  return out


def median_area_ratio(pred_xyxy, gt_xyxy) -> float:
  """Median over frames of predicted area / true area (1 = right size; a box
  that balloons shows > 1.5, one that shrinks < 0.67). Frames without a
  prediction are left out; NaN when none is left."""
  p, g = _pair(pred_xyxy, gt_xyxy)
  pa = np.clip(p[:, 2] - p[:, 0], 0, None) * np.clip(p[:, 3] - p[:, 1], 0, None)
  ga = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
  ok = np.isfinite(pa) & (ga > 0)
  return float(np.median(pa[ok] / ga[ok])) if ok.any() else float("nan")


def ope_summary(per_sequence: Iterable[Mapping[str, object]]) -> Dict[str, object]:
  """Dataset scores: per-sequence curves averaged over sequences (sequences
  without any scorable frame are left out and counted)."""
  seqs = [s for s in per_sequence]
  used = [s for s in seqs if int(s["frames"]) > 0]
  out: Dict[str, object] = {"sequences": len(used), "sequences_without_frames": len(seqs) - len(used),
                            "frames": int(sum(int(s["frames"]) for s in used))}
  if not used:
    for k in ("success_auc", "precision_20px", "norm_precision_auc", "norm_precision_0.2"):
      out[k] = float("nan")
    out["success_curve"] = np.full(SUCCESS_THRESHOLDS.shape, np.nan)
    out["precision_curve"] = np.full(PRECISION_THRESHOLDS.shape, np.nan)
    out["norm_precision_curve"] = np.full(NORM_PRECISION_THRESHOLDS.shape, np.nan)
    return out
  succ = np.mean([s["success_curve"] for s in used], axis=0)
  prec = np.mean([s["precision_curve"] for s in used], axis=0)
  nprec = np.mean([s["norm_precision_curve"] for s in used], axis=0)
  out.update(_curve_scores(succ, prec, nprec))
  ratios = [s["median_area_ratio"] for s in used if np.isfinite(s.get("median_area_ratio", np.nan))]
  out["median_area_ratio"] = float(np.median(ratios)) if ratios else float("nan")
  return out


# ---------------------------------------------------------------------------
# ImageNet VID (Re3 paper, Fig. 4) and RL paper (Table 1): pooled over boxes
# ---------------------------------------------------------------------------


def _tracks(preds: Sequence, gts: Sequence, masks: Optional[Sequence] = None):
  """Per track: (pred, gt, keep) with keep = valid ground truth and the mask."""
  if len(preds) != len(gts):
    raise ValueError(f"{len(preds)} prediction arrays for {len(gts)} ground-truth arrays")
  for i, (p, g) in enumerate(zip(preds, gts)):
    p, g = _pair(p, g)
    keep = valid_ground_truth(g)
    if masks is not None and masks[i] is not None:
      keep &= np.asarray(masks[i], dtype=bool).reshape(-1)
    yield p, g, keep


def _pool(preds: Sequence, gts: Sequence, masks: Optional[Sequence] = None):
  kept = [(p[keep], g[keep]) for p, g, keep in _tracks(preds, gts, masks)]
  if not kept:
    return np.zeros([0, 4]), np.zeros([0, 4])
  return np.concatenate([p for p, _ in kept]), np.concatenate([g for _, g in kept])


def vid_scores(preds: Sequence, gts: Sequence, masks: Optional[Sequence] = None) -> Dict[str, object]:
  """Fraction of all boxes (pooled over tracks) above each IoU threshold, and its AUC."""
  p, g = _pool(preds, gts, masks)
  curve = success_curve(frame_ious(p, g))
  return {"boxes": int(p.shape[0]), "fraction_above_curve": curve, "auc": curve_auc(curve),
          "fraction_above_0.5": _value_at(curve, SUCCESS_THRESHOLDS, 0.5)}


# Frames at each end of a track for the first/last-frames centre errors
# (frames 0-9 and 90-99 of the 100-frame moving-MNIST test sequences).
EDGE_FRAMES = 10


def rl_scores(preds: Sequence, gts: Sequence, masks: Optional[Sequence] = None) -> Dict[str, float]:
  """The RL paper's Table 1: average center pixel error and average IoU over all
  predictions, and the center error over the first and the last EDGE_FRAMES
  frames of every track (whether a tracker finds its target, whether its error
  stays bounded)."""
  ps, gs, first, last = [], [], [], []
  for p, g, keep in _tracks(preds, gts, masks):
    index = np.arange(len(g))
    err = center_errors(p, g)
    ps.append(p[keep])
    gs.append(g[keep])
    first.append(err[keep & (index < EDGE_FRAMES)])
    last.append(err[keep & (index >= len(g) - EDGE_FRAMES)])
  p = np.concatenate(ps) if ps else np.zeros([0, 4])
  if p.shape[0] == 0:
    return {"predictions": 0, "average_center_error": float("nan"), "average_iou": float("nan")}
  g = np.concatenate(gs)
  first, last = np.concatenate(first), np.concatenate(last)
  return {"predictions": int(p.shape[0]),
          "average_center_error": float(np.mean(center_errors(p, g))),
          "average_iou": float(np.mean(frame_ious(p, g))),
          "center_error_first_frames": float(np.mean(first)) if first.size else float("nan"),
          "center_error_last_frames": float(np.mean(last)) if last.size else float("nan"),
          "edge_frames": EDGE_FRAMES}


# ---------------------------------------------------------------------------
# VOT supervised protocol scores (per-frame codes come from train/eval/protocols.py)
# ---------------------------------------------------------------------------

# Per-frame codes of a supervised run (VOT toolkit's trajectory codes, spelled out).
CODE_INIT = 1       # (re-)initialized on the ground truth at this frame
CODE_TRACK = 0      # tracked
CODE_FAIL = 2       # failure detected at this frame (IoU 0)
CODE_SKIP = 3       # not tracked: between a failure and the re-initialization
CODE_ABSENT = 4     # before the first valid ground truth (nothing to initialize on)


def vot_sequence(ious, codes, burn_in: int = 10) -> Dict[str, object]:
  """Accuracy and drops of one supervised run.

  ious: [N] IoU of the reported box per frame (any value where not tracked).
  codes: [N] CODE_* per frame. Accuracy averages tracked frames with valid
  IoU that are at least `burn_in` frames after the latest initialization (the
  initialization frame itself is frame 0 of the burn-in); NaN IoU marks a
  frame without valid ground truth.
  """
  ious = np.asarray(ious, dtype=np.float64).reshape(-1)
  codes = np.asarray(codes, dtype=np.int64).reshape(-1)
  if ious.shape != codes.shape:
    raise ValueError(f"{ious.shape[0]} IoU values for {codes.shape[0]} frame codes")
  since_init = np.full(codes.shape, -1, dtype=np.int64)
  last = None
  for i, c in enumerate(codes):
    if c == CODE_INIT:
      last = i
    if last is not None:
      since_init[i] = i - last
  use = (codes == CODE_TRACK) & (since_init >= burn_in) & np.isfinite(ious)
  drops = int(np.sum(codes == CODE_FAIL))
  return {"frames": int(codes.shape[0]), "drops": drops, "accuracy_frames": int(use.sum()),
          "accuracy": float(np.mean(ious[use])) if use.any() else float("nan")}


def vot_robustness(drops: int, frames: int,
                   sensitivity: float = VOT_ROBUSTNESS_SENSITIVITY) -> float:
  """Re3's robustness: exp(-S * drops / frames), S = 30."""
  if frames <= 0:
    return float("nan")
  return float(np.exp(-sensitivity * float(drops) / float(frames)))


def vot_summary(per_sequence: Iterable[Mapping[str, object]]) -> Dict[str, float]:
  """Dataset scores: accuracy averaged over sequences (VOT toolkit), drops and
  frames summed, robustness from the totals, and the mean of the two (Re3's
  Table I 'Average' column)."""
  seqs = list(per_sequence)
  frames = int(sum(int(s["frames"]) for s in seqs))
  drops = int(sum(int(s["drops"]) for s in seqs))
  accs = [float(s["accuracy"]) for s in seqs if np.isfinite(float(s["accuracy"]))]
  acc = float(np.mean(accs)) if accs else float("nan")
  rob = vot_robustness(drops, frames)
  return {"sequences": len(seqs), "frames": frames, "drops": drops, "accuracy": acc,
          "robustness": rob, "accuracy_robustness_mean": (acc + rob) / 2.0}


# ---------------------------------------------------------------------------
# JSON helpers
# ---------------------------------------------------------------------------


def to_jsonable(obj):
  """Arrays -> lists, NaN/inf -> None (strict JSON), recursively."""
  if isinstance(obj, Mapping):
    return {str(k): to_jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [to_jsonable(v) for v in obj]
  if isinstance(obj, np.ndarray):
    return [to_jsonable(v) for v in obj.tolist()]
  if isinstance(obj, (np.integer,)):
    return int(obj)
  if isinstance(obj, (float, np.floating)):
    f = float(obj)
    return f if np.isfinite(f) else None
  if isinstance(obj, (np.bool_,)):
    return bool(obj)
  return obj
