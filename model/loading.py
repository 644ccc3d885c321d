"""Loading a trained tracker: a training model_dir (config.yaml + checkpoints),
a checkpoint prefix beside/below a config.yaml, or a SavedModel written by
model/export.py.

    task, net, ckpt, config_path = load_model("runs/re3_small")
    task, graph = load_graph(path)         # Re3Graph / RLAgentGraph or a loaded SavedModel
    graph = load_re3_graph(path)           # the same, refusing anything but Re3
"""

from __future__ import annotations

import os
import re
import weakref
from typing import List, Optional

import tensorflow as tf

from configs.model import load_model_config
from model.re3 import build_re3
from model.rl_agent import build_rl_agent
from model.tracking_graphs import Re3Graph, RLAgentGraph, re3_graph_for


# The trackers the package ships (README model card): each a folder of
# model/pretrained/ with config.yaml and a weights-only checkpoint, loadable by
# its folder name; "default" is one of them. A folder may also name a faster
# runtime of the same weights (RUNTIME_FILE, written by
# train.experiments.ship_default --runtime) that loading by name uses.
PRETRAINED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")
DEFAULT_MODEL_NAME = "default"
DEFAULT_SHIPPED = "re3_nano_head"   # README model card; "re3_nano", "re3_lite0" stay loadable by name
DEFAULT_MODEL_DIR = os.path.join(PRETRAINED_DIR, DEFAULT_SHIPPED)
RUNTIME_FILE = "runtime.yaml"


def shipped_models() -> List[str]:
  """Names of the shipped models (folders of model/pretrained with a config)."""
  if not os.path.isdir(PRETRAINED_DIR):
    return []
  return sorted(d for d in os.listdir(PRETRAINED_DIR)
                if os.path.exists(os.path.join(PRETRAINED_DIR, d, "config.yaml")))


def resolve_model_path(path: str) -> str:
  """`path` itself, or a shipped model's folder for "default" or a shipped
  name (an existing file or folder of that name wins)."""
  name = DEFAULT_SHIPPED if path == DEFAULT_MODEL_NAME else path
  if path != DEFAULT_MODEL_NAME and (os.path.exists(path) or os.sep in path):
    return path
  folder = os.path.join(PRETRAINED_DIR, name)
  if os.path.exists(os.path.join(folder, "config.yaml")):
    return folder
  if path == DEFAULT_MODEL_NAME:
    raise ValueError(f"the default model is missing from this installation ({folder}); "
                     "reinstall the package or rebuild it with "
                     "CONFIG=configs/experiments/re3_nano_head.yaml SEED=1 "
                     "SHIP_DIR=model/pretrained/re3_nano_head "
                     "STEPS='data train ship' bash train/experiments/re3_nano.sh")
  return path


def shipped_runtime(folder: str) -> Optional[dict]:
  """The faster runtime a shipped folder names in RUNTIME_FILE ({runtime,
  quantize, note}: a LiteRT step export of its weights, built on first use
  into the cache, model.runtimes.cached_litert_export), or None."""
  path = os.path.join(folder, RUNTIME_FILE)
  if not os.path.exists(path):
    return None
  import yaml  # pylint: disable=g-import-not-at-top
  with open(path) as f:
    spec = yaml.safe_load(f) or {}
  if not isinstance(spec, dict) or "quantize" not in spec:
    raise ValueError(f"{path}: needs a 'quantize' entry (the LiteRT export's quantization: "
                     "none, fp16 or dynamic)")
  return dict(spec)


def named_runtime(path: str) -> Optional[dict]:
  """The faster runtime of a shipped model loaded by name ("default" or its
  folder name), or None: a path, even to a shipped folder, is not a name."""
  folder = resolve_model_path(path)
  return shipped_runtime(folder) if folder != path else None


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
  "{error} (first line of TensorFlow's reason)"; a data file cut short or
  damaged, or an unreadable index -> DamagedCheckpoint naming that file."""
  try:
    status = tf.train.Checkpoint(model=net).restore(ckpt)
    status.expect_partial().assert_existing_objects_matched()
  except (AssertionError, ValueError) as e:
    raise ValueError(f"{error} ({str(e).splitlines()[0]})") from None
  except (IndexError, tf.errors.OpError) as e:
    if not is_bundle_read_error(e):
      raise
    raise damaged_checkpoint(ckpt, e) from None


class DamagedCheckpoint(ValueError):
  """A checkpoint (or a SavedModel's variables) whose files cannot be read:
  a data file cut short or with a wrong checksum, an index that is no index.
  `detail`: the damaged file and what is wrong, without advice."""

  def __init__(self, message: str, detail: str = ""):
    super().__init__(message)
    self.detail = detail or message


def checkpoint_data_files(prefix: str) -> List[str]:
  """The data shards of checkpoint `prefix` (PREFIX.data-00000-of-00001, ...)."""
  return sorted(tf.io.gfile.glob(prefix + ".data-*"))


def _tf_reason(e: BaseException) -> str:
  text = (str(e).strip().splitlines() or [type(e).__name__])[0]
  return re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", text)


def is_bundle_read_error(e: BaseException) -> bool:
  """Whether `e` is TensorFlow failing to read a checkpoint's files (its
  reader raises IndexError for a data file cut short)."""
  if isinstance(e, (IndexError, tf.errors.DataLossError)):
    return True
  return isinstance(e, tf.errors.OpError) and bool(re.search(
      r"sstable|TensorBundle|Checksum does not match|corrupt", str(e), re.IGNORECASE))


def damaged_checkpoint(prefix: str, e: BaseException) -> DamagedCheckpoint:
  """The one-line error for checkpoint `prefix` that TensorFlow could not read
  (`e`), naming the damaged file: its data shard(s) or its index."""
  reason = _tf_reason(e)
  files = checkpoint_data_files(prefix)
  if "sstable" in reason or "index" in reason.lower():
    where, what = prefix + ".index", "checkpoint index damaged"
  else:
    sized = []
    for f in files:
      try:
        sized.append(f"{f} ({tf.io.gfile.stat(f).length} bytes)")
      except tf.errors.OpError:
        sized.append(f)
    where = (sized[0] if len(sized) == 1 else "one of " + ", ".join(sized) if sized
             else prefix + ".data-*")
    what = ("checkpoint data cut short" if isinstance(e, IndexError)
            else "checkpoint data damaged")
  detail = f"{where}: {what} (TensorFlow: {reason})"
  return DamagedCheckpoint(f"{detail}; copy the checkpoint again or use another one", detail)


def check_checkpoint_data(prefix: str) -> None:
  """Reads every tensor of checkpoint `prefix` once (its whole data, one
  tensor at a time): DamagedCheckpoint naming the file when a data shard is
  cut short or damaged or the index unreadable."""
  try:
    reader = tf.train.load_checkpoint(prefix)
    for name in sorted(reader.get_variable_to_shape_map()):
      reader.get_tensor(name)
  except (IndexError, tf.errors.OpError) as e:
    if not is_bundle_read_error(e):
      raise
    raise damaged_checkpoint(prefix, e) from None


def load_graph(path: str):
  """(task, graph) from a SavedModel export (loaded once) or a training model_dir /
  checkpoint prefix (a Re3Graph or RLAgentGraph around the restored model, shared
  by every load of the same unchanged checkpoint);
  "default" is the shipped model."""
  path = resolve_model_path(path)
  if is_saved_model(path):
    try:
      loaded = tf.saved_model.load(path)
    except (IndexError, tf.errors.OpError) as e:
      if not is_bundle_read_error(e):
        raise
      raise damaged_checkpoint(os.path.join(path, "variables", "variables"), e) from None
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
