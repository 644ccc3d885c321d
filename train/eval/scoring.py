"""Scoring glue: one tracker's protocol runs -> its performance.json block.

  ope  success curve / AUC, precision at 20 px, normalized precision, plus the
       RL paper's average center error and IoU
  vid  the Re3 paper's ImageNet VID figure: fraction of all boxes above each IoU
       threshold and its AUC (plus the RL paper's metrics)
  vot  supervised (Re3 Table I): accuracy, drops, robustness exp(-30 drops / frames)

Frames the data marks as occluded are scored again on their own (`occluded`).
A sequence without a single valid ground-truth box has no score (NaN) and says
why in its per-sequence `no_score`; summary_lines prints it.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from train.eval import metrics, protocols
from train.eval.datasets import EvalSequence


def speed(runs: Sequence[protocols.SequenceRun]) -> Dict[str, float]:
  """Tracker calls, seconds spent in them and their rate over all runs."""
  calls = int(sum(r.tracker_calls for r in runs))
  seconds = float(sum(np.sum(r.times) for r in runs))
  return {"frames": calls, "seconds": seconds,
          "fps": calls / seconds if seconds > 0 else float("nan")}


def strip_curves(summary):
  return {k: v for k, v in summary.items() if not k.endswith("_curve")}


def curves(summary):
  return {k[:-len("_curve")]: v for k, v in summary.items() if k.endswith("_curve")}


def _score_vot(seqs, runs, vot_burn_in, out, per_seq, has_occlusion):
  scores = [protocols.supervised_scores(r, s.gt_xyxy, vot_burn_in) for s, r in zip(seqs, runs)]
  out["summary"] = metrics.vot_summary(scores)
  if has_occlusion:
    occ_scores = []
    for s, r in zip(seqs, runs):
      ious = np.where(s.occluded, metrics.frame_ious(r.pred_xyxy, s.gt_xyxy), np.nan)
      codes = np.where(s.occluded | (r.codes == metrics.CODE_INIT), r.codes, metrics.CODE_SKIP)
      occ_scores.append(metrics.vot_sequence(ious, codes, vot_burn_in))
    o = metrics.vot_summary(occ_scores)
    out["occluded"] = {"frames": int(sum(s.occluded.sum() for s in seqs)),
                       "accuracy": o["accuracy"], "drops": o["drops"]}
  for s, r, sc in zip(seqs, runs, scores):
    per_seq[s.name] = dict(sc, fps=r.fps)


def _score_one_pass(protocol, seqs, runs, out, per_seq, has_occlusion):
  preds = [r.pred_xyxy for r in runs]
  gts = [s.gt_xyxy for s in seqs]
  occ = [s.occluded for s in seqs]
  seq_scores = [metrics.ope_sequence(p, g) for p, g in zip(preds, gts)]
  if protocol == "ope":
    summ = metrics.ope_summary(seq_scores)
    out["summary"] = strip_curves(summ)
    out["curves"] = curves(summ)
  else:
    vid = metrics.vid_scores(preds, gts)
    out["summary"] = {k: v for k, v in vid.items() if k != "fraction_above_curve"}
    out["curves"] = {"fraction_above": vid["fraction_above_curve"]}
  out["rl_paper"] = metrics.rl_scores(preds, gts, [r.predicted for r in runs])
  if any(r.scores is not None and np.isfinite(r.scores).any() for r in runs):
    out["lost_detection"] = metrics.lost_detection([r.scores for r in runs], preds, gts)
  if has_occlusion:
    if protocol == "ope":
      summ = metrics.ope_summary([metrics.ope_sequence(p, g, m)
                                  for p, g, m in zip(preds, gts, occ)])
      out["occluded"] = dict(strip_curves(summ), curves=curves(summ))
    else:
      out["occluded"] = dict(metrics.vid_scores(preds, gts, occ))
  for s, r, sc in zip(seqs, runs, seq_scores):
    per_seq[s.name] = strip_curves(sc)
    per_seq[s.name]["fps"] = r.fps


def score(protocol: str, seqs: List[EvalSequence], runs: List[protocols.SequenceRun],
          vot_burn_in: int = 10) -> Dict[str, object]:
  """performance.json block of one tracker."""
  if protocol not in protocols.PROTOCOLS:
    raise ValueError(f"protocol must be one of {protocols.PROTOCOLS}, got {protocol!r}")
  per_seq: Dict[str, Dict[str, object]] = {}
  out: Dict[str, object] = {"speed": speed(runs)}
  has_occlusion = any(s.occluded.any() for s in seqs)
  if protocol == "vot":
    _score_vot(seqs, runs, vot_burn_in, out, per_seq, has_occlusion)
  else:
    _score_one_pass(protocol, seqs, runs, out, per_seq, has_occlusion)
  for s in seqs:
    if not metrics.valid_ground_truth(s.gt_xyxy).any():
      per_seq[s.name]["no_score"] = (f"none of its {len(s)} frames has a valid ground-truth "
                                     "box (all NaN or zero size)")
  out["per_sequence"] = per_seq
  return out


def summary_lines(perf: Dict[str, object]) -> List[str]:
  """One console line per tracker of a performance.json dict."""
  lines = []
  for name, r in perf["trackers"].items():
    s, sp = r["summary"], r["speed"]
    if perf["protocol"] == "ope":
      txt = (f"AUC {s['success_auc']:.3f}  P@20px {s['precision_20px']:.3f}  "
             f"nP {s['norm_precision_auc']:.3f}")
    elif perf["protocol"] == "vid":
      txt = f"AUC {s['auc']:.3f}  >0.5 {s['fraction_above_0.5']:.3f}"
    else:
      txt = (f"accuracy {s['accuracy']:.3f}  drops {s['drops']}  robustness "
             f"{s['robustness']:.3f}")
    if "rl_paper" in r:
      txt += (f"  center err {r['rl_paper']['average_center_error']:.2f}px  "
              f"mean IoU {r['rl_paper']['average_iou']:.3f}")
    lines.append(f"{name:10s} {txt}  {sp['fps']:.1f} FPS")
    for seq, scores in r.get("per_sequence", {}).items():
      if "no_score" in scores:
        lines.append(f"{name:10s} no score for sequence {seq!r}: {scores['no_score']}")
  return lines
