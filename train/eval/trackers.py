"""Tracker factories: evaluation and the track command get their trackers here.

  re3, rl_agent   the model at --model (a training model_dir, a SavedModel export or a
                  `.tflite` / `.onnx` step export, which is always Re3);
                  either name runs whichever task the model is, under that task's name
  kcf, csrt, mil  OpenCV's trackers (train/eval/baselines.py; the `opencv` extra)
  nano, nano_v1,  the peers: OpenCV's NanoTrack v2 and v1 and VitTrack, their ONNX
  vit             files from --peer_models DIR or $RE3_PEER_MODELS (train/eval/peers.py)
  stay            the stay-put floor

Every tracker has `init(image_rgb, box_xywh)` and `update(image_rgb) -> (ok, box_xywh)`.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

from model.loading import load_graph, named_runtime
from model.runtimes import RUNTIME_SUFFIXES, load_re3_runtime
from model.tracker import RESET_EVERY, Re3Tracker, RLAgentTracker
from train.eval import baselines, peers

MODEL_TRACKERS = ("re3", "rl_agent")
BASELINE_TRACKERS = tuple(baselines.BASELINES)
PEER_TRACKERS = peers.PEER_NAMES
TRACKERS = MODEL_TRACKERS + BASELINE_TRACKERS + PEER_TRACKERS


def load_model_graph(model: str):
  """(task, tracking graph) of --model: a `.tflite` / `.onnx` step export
  (model.runtimes, as Re3Tracker.load), a SavedModel export, a training
  model_dir or a shipped model's name ('default': the runtime its folder
  names, as Re3Tracker.load("default") runs it)."""
  if model.endswith(RUNTIME_SUFFIXES) or named_runtime(model):
    return "re3", load_re3_runtime(model)      # a shipped model by name: its fast runtime
  return load_graph(model)


def load_tracker(model: str, reset_period: int = RESET_EVERY):
  """Re3Tracker or RLAgentTracker from an export or a training model_dir (load_model_graph)."""
  task, graph = load_model_graph(model)
  if task == "rl_agent":
    return RLAgentTracker(graph)
  return Re3Tracker(graph, reset_period)


def tracker_factories(names: Sequence[str], model: Optional[str],
                      reset_period: int = RESET_EVERY, peer_models: Optional[str] = None
                      ) -> Dict[str, Callable[[], object]]:
  """Name -> zero-argument constructor of a fresh tracker (one per sequence).

  The model is loaded (and its graph traced) once and shared by the trackers.
  Peers find their files in `peer_models` (else $RE3_PEER_MODELS); a missing
  one is named here, before anything runs.
  """
  out: Dict[str, Callable[[], object]] = {}
  for name in names:
    if name in MODEL_TRACKERS:
      if not model:
        raise ValueError(f"tracker {name!r} needs --model (a model_dir or SavedModel)")
      task, graph = load_model_graph(model)
      if task == "re3":
        out["re3"] = lambda g=graph: Re3Tracker(g, reset_period)
      else:
        out["rl_agent"] = lambda g=graph: RLAgentTracker(g)
    elif name in BASELINE_TRACKERS:
      baselines.make_baseline(name)               # fails early if OpenCV is missing
      out[name] = lambda n=name: baselines.make_baseline(n)
    elif name in PEER_TRACKERS:
      peers.make_peer(name, peer_models)          # fails early, naming a missing file
      out[name] = lambda n=name: peers.make_peer(n, peer_models)
    else:
      raise ValueError(f"unknown tracker {name!r}; expected some of {TRACKERS}")
  return out
