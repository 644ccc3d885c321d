"""One evaluation experiment: every tracker on every sequence of a dataset, one protocol.

Output (output_dir):
  performance.json              per tracker: dataset summary, per-sequence scores,
                                occluded-frames-only scores, speed
  boxes/<tracker>/<seq>.txt     one `x,y,w,h` line per frame (0-based pixels as the
                                tracker reports them, NaN where not tracked)
  boxes/<tracker>/<seq>_time.txt seconds spent in the tracker per frame
  boxes/<tracker>/<seq>_score.txt the tracker's own score per frame, for trackers that
                                give one (the peers' OpenCV getTrackingScore(); NaN where
                                it did not update)
  boxes/<tracker>/<seq>_codes.txt (vot) per-frame codes: 0 tracked, 1 init, 2 failure,
                                3 skipped, 4 before the first box
  *.png                         plots with every tracker on one figure (success,
                                precision, normalized precision / vid / accuracy-robustness;
                                `_occluded` variants when the data marks occlusion)
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from tqdm import tqdm

from model import geometry
from model.tracker import RESET_EVERY
from train.eval import (datasets, metrics, peers, plots, protocols, scoring,
                        trackers as tracker_lib)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(name: str) -> str:
  """A sequence name as a file name."""
  return _UNSAFE.sub("_", name).strip("_") or "sequence"


def _write_run(out_dir: str, tracker: str, seq: datasets.EvalSequence,
               run: protocols.SequenceRun, protocol: str) -> None:
  d = os.path.join(out_dir, "boxes", tracker)
  os.makedirs(d, exist_ok=True)
  base = os.path.join(d, _safe(seq.name))
  np.savetxt(base + ".txt", run.pred_xywh(), fmt="%.2f", delimiter=",")
  np.savetxt(base + "_time.txt", run.times, fmt="%.6f")
  if protocol == "vot":
    np.savetxt(base + "_codes.txt", run.codes, fmt="%d")
  if run.scores is not None:
    np.savetxt(base + "_score.txt", run.scores, fmt="%.6f")


def _warm_up(make, seqs: List[datasets.EvalSequence]) -> None:
  """One untimed init + update on the first scorable frames, so graph tracing
  (seconds, once per model) is not billed to the first sequence's FPS."""
  for s in seqs:
    valid = np.flatnonzero(metrics.valid_ground_truth(s.gt_xyxy))
    if valid.size and valid[0] + 1 < len(s):
      tracker = make()
      tracker.init(s.frames[int(valid[0])], geometry.xyxy_to_xywh(s.gt_xyxy[int(valid[0])]))
      tracker.update(s.frames[int(valid[0]) + 1])
      return


def _run_tracker(tname, make, seqs, protocol, output_dir, vot_skip, progress):
  _warm_up(make, seqs)
  runs = []
  for s in (tqdm(seqs, desc=tname, unit="seq") if progress else seqs):
    try:
      run = protocols.run_protocol(protocol, make(), s.frames, s.gt_xyxy, s.name, skip=vot_skip)
    except ValueError as e:
      raise ValueError(f"sequence {s.name!r}, tracker {tname!r}: {e}") from e
    _write_run(output_dir, tname, s, run, protocol)
    runs.append(run)
  return runs


def _peer_models_used(trackers: Sequence[str], peer_models: Optional[str]) -> Optional[str]:
  """The peer-models folder the run read (None when it ran no peer)."""
  if not any(t in tracker_lib.PEER_TRACKERS for t in trackers):
    return None
  return os.path.abspath(peers.models_dir(peer_models))


def evaluate(model: Optional[str], dataset: str, protocol: str, output_dir: str,
             trackers: Sequence[str] = ("re3",), reset_period: int = RESET_EVERY,
             split: str = "test", sequences: Sequence[str] = (), max_sequences: int = 0,
             max_frames: int = 0, vot_skip: int = 5, vot_burn_in: int = 10,
             progress: bool = True, peer_models: Optional[str] = None) -> Dict[str, object]:
  """Runs every tracker on every sequence; writes boxes, performance.json and plots.

  The peers (nano, nano_v1, vit) take their ONNX files from `peer_models`, else
  $RE3_PEER_MODELS (train/eval/peers.py); a missing file is named before any run."""
  if protocol not in protocols.PROTOCOLS:
    raise ValueError(f"--protocol must be one of {protocols.PROTOCOLS}, got {protocol!r}")
  kind, path = datasets.parse_dataset(dataset)
  if not trackers:
    raise ValueError("--trackers is empty")
  seqs = datasets.load_sequences(kind, path, split, sequences, max_sequences, max_frames)
  factories = tracker_lib.tracker_factories(trackers, model, reset_period, peer_models)
  os.makedirs(output_dir, exist_ok=True)
  results: Dict[str, Dict] = {}
  for tname, make in factories.items():
    runs = _run_tracker(tname, make, seqs, protocol, output_dir, vot_skip, progress)
    results[tname] = scoring.score(protocol, seqs, runs, vot_burn_in)
  title = f"{kind} ({len(seqs)} sequences)"
  plot_paths = plots.performance_plots(protocol, results, output_dir, title)
  perf = {
      "dataset": {"kind": kind, "path": os.path.abspath(path),
                  "split": split if kind == datasets.MNIST_KIND else None,
                  "sequences": [s.name for s in seqs],
                  "frames": int(sum(len(s) for s in seqs)),
                  "occluded_frames": int(sum(s.occluded.sum() for s in seqs))},
      "protocol": protocol,
      "settings": {"reset_period": reset_period, "vot_skip": vot_skip, "vot_burn_in": vot_burn_in,
                   "max_frames": max_frames, "model": model,
                   "peer_models": _peer_models_used(trackers, peer_models)},
      "conventions": {"boxes": "x,y,w,h, 0-based continuous pixels (add 1 to x and y for the "
                               "1-based OTB/VOT toolkits)",
                      "success": "fraction of frames with IoU > t, t = 0:0.05:1; AUC = mean",
                      "precision": "fraction of frames with center error <= 20 px"},
      "trackers": results,
      "plots": [os.path.basename(p) for p in plot_paths],
      "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
  }
  with open(os.path.join(output_dir, "performance.json"), "w") as f:
    json.dump(metrics.to_jsonable(perf), f, indent=1, allow_nan=False)
  return perf
