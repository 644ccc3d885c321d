"""Loading a trained tracker: a training model_dir (config.yaml + checkpoints),
a checkpoint prefix beside/below a config.yaml, or a SavedModel written by
model/export.py.

    task, net, ckpt, config_path = load_model("runs/re3_small")
    task, graph = load_graph(path)         # Re3Graph / RLAgentGraph or a loaded SavedModel
    graph = load_re3_graph(path)           # the same, refusing anything but Re3
"""

from __future__ import annotations

import os
import weakref
from typing import Optional

import tensorflow as tf

from configs.model import load_model_config
from model.re3 import build_re3
from model.rl_agent import build_rl_agent
from model.tracking_graphs import Re3Graph, RLAgentGraph, re3_graph_for


# The tracker the package ships (train/experiments/re3_pretrained.sh, README
# model card): a model_dir with config.yaml and a weights-only checkpoint.
DEFAULT_MODEL_NAME = "default"
DEFAULT_MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained", "re3_lite0")


def resolve_model_path(path: str) -> str:
  """`path` itself, or the shipped model's folder for the name "default"."""
  if path != DEFAULT_MODEL_NAME:
    return path
  if not os.path.exists(os.path.join(DEFAULT_MODEL_DIR, "config.yaml")):
    raise ValueError(f"the default model is missing from this installation ({DEFAULT_MODEL_DIR}); "
                     "reinstall the package or rebuild it with "
                     "STEPS='data train ship' bash train/experiments/re3_pretrained.sh")
  return DEFAULT_MODEL_DIR


def is_saved_model(path: str) -> bool:
  return tf.io.gfile.exists(os.path.join(path, "saved_model.pb"))


CHECKPOINT_SUBDIRS = ("", "checkpoints", "ckpt", "train")


def find_checkpoint(model_dir: str) -> Optional[str]:
  """Latest checkpoint of a training model_dir (itself or a usual subfolder)."""
  for sub in CHECKPOINT_SUBDIRS:
    ckpt = tf.train.latest_checkpoint(os.path.join(model_dir, sub) if sub else model_dir)
    if ckpt:
      return ckpt
  return None


def _config_near(path: str) -> Optional[str]:
  for d in (path, os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
    cand = os.path.join(d, "config.yaml")
    if d and tf.io.gfile.exists(cand):
      return cand
  return None


def _model_files(path: str):
  """(checkpoint prefix, config.yaml) of a model_dir, a checkpoint prefix or "default"."""
  path = resolve_model_path(path)
  if tf.io.gfile.isdir(path):
    config_path = os.path.join(path, "config.yaml")
    if not tf.io.gfile.exists(config_path):
      raise ValueError(f"{path}: neither a SavedModel (no saved_model.pb) nor a training "
                       "model_dir (no config.yaml)")
    ckpt = find_checkpoint(path)
    if ckpt is None:
      raise ValueError(f"{path}: no checkpoint found (looked in "
                       f"{', '.join(repr(s or '.') for s in CHECKPOINT_SUBDIRS)})")
  else:
    if not tf.io.gfile.exists(path + ".index"):
      raise ValueError(f"{path}: not a SavedModel, model_dir or checkpoint prefix")
    ckpt = path
    config_path = _config_near(os.path.dirname(path))
    if config_path is None:
      raise ValueError(f"{path}: no config.yaml next to the checkpoint or in its parent folders")
  return ckpt, config_path


def load_model(path: str, expect_task: Optional[str] = None):
  """A model from a training model_dir (config.yaml + checkpoints) or a
  checkpoint prefix beside/below a config.yaml, or "default" (the shipped
  model) -> (task, net, checkpoint path, config.yaml path).

  The checkpoint must hold the network as `model=` (tf.train.Checkpoint(
  model=net, ...)), as the trainer writes it; every network variable must be
  restored, or this fails naming the checkpoint.
  """
  ckpt, config_path = _model_files(path)
  task, model_cfg = load_model_config(config_path)
  if expect_task is not None and task != expect_task:
    raise ValueError(f"{config_path}: task is {task!r}, this needs {expect_task!r}")
  if task == "re3":
    net = build_re3(model_cfg)
  else:
    net = build_rl_agent(model_cfg)
  restore_weights(net, ckpt, f"{ckpt}: the checkpoint does not hold this {task} network as "
                              "`model`")
  return task, net, ckpt, config_path


def restore_weights(net, ckpt: str, error: str) -> None:
  """Every variable of `net` from checkpoint `ckpt` (written as
  tf.train.Checkpoint(model=net, ...); optimizer slots and the step are not
  read). A variable missing from it or of another shape -> ValueError
  "{error} (first line of TensorFlow's reason)"."""
  try:
    status = tf.train.Checkpoint(model=net).restore(ckpt)
    status.expect_partial().assert_existing_objects_matched()
  except (AssertionError, ValueError) as e:
    raise ValueError(f"{error} ({str(e).splitlines()[0]})") from None


def load_graph(path: str):
  """(task, graph) from a SavedModel export (loaded once) or a training model_dir /
  checkpoint prefix (a Re3Graph or RLAgentGraph around the restored model, shared
  by every load of the same unchanged checkpoint);
  "default" is the shipped model."""
  path = resolve_model_path(path)
  if is_saved_model(path):
    loaded = tf.saved_model.load(path)
    task = loaded.task.numpy().decode() if hasattr(loaded, "task") else "?"
    if task not in ("re3", "rl_agent"):
      raise ValueError(f"{path}: SavedModel is not a tracker export of model/export.py")
    return task, loaded
  key = _graph_key(path)
  graph = _GRAPHS.get(key)
  if graph is None:
    task, net, _, _ = load_model(path)
    graph = re3_graph_for(net) if task == "re3" else RLAgentGraph(net)
    _GRAPHS[key] = graph
  _LAST_GRAPH[:] = [graph]
  return ("re3" if isinstance(graph, Re3Graph) else "rl_agent"), graph


# Graphs loaded from a model_dir / checkpoint, keyed by the checkpoint files:
# loading the same unchanged checkpoint again (a tracker made per sequence)
# returns the graph already traced while anything still holds it (the last one
# loaded is always held). A newer checkpoint or a rewritten file is a new key.
_GRAPHS: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()
_LAST_GRAPH: list = []


def _graph_key(path: str):
  """The checkpoint's and config's identity: path, and for local files inode,
  mtime in ns and size (a checkpoint is written under a temporary name and
  renamed, so a rewrite gets a new inode); remote files: mtime and size."""
  ckpt, config_path = _model_files(path)

  def stamp(f):
    if "://" in f:
      st = tf.io.gfile.stat(f)
      return f, st.mtime_nsec, st.length
    st = os.stat(f)
    return os.path.abspath(f), st.st_ino, st.st_mtime_ns, st.st_size

  return stamp(ckpt + ".index"), stamp(config_path)


def load_re3_graph(path: str):
  """Re3Graph-compatible object from a SavedModel (model/export.py) or a model_dir."""
  task, graph = load_graph(path)
  if task != "re3":
    raise ValueError(f"{path}: not a Re3 tracker export or model_dir (task {task!r})")
  return graph


def load_rl_graph(path: str):
  task, graph = load_graph(path)
  if task != "rl_agent":
    raise ValueError(f"{path}: not an RL agent export or model_dir (task {task!r})")
  return graph
