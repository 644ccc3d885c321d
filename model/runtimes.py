"""Step backends: the Re3 tracking step run by LiteRT or onnxruntime (or a
reduced-precision TF graph) behind the graph interface `model.tracker` calls.

    graph = load_re3_runtime("exports/re3_step_int8.tflite")   # or .onnx, a SavedModel, a model_dir
    graph = graph_for_net(net, precision="auto")               # float32 / bf16 / int8, chosen at run time
    tracker = Re3Tracker(graph)                                # what Re3Tracker.load does

A step backend (`LiteRTStep`, `OnnxStep`) runs the exported one-step function
of model.step_graph: step(prev, curr, state) -> (labels, new_state, score or
None for an export made before scores) on float32
NumPy arrays with a batch axis of any size. It checks what it is fed against
the model file's inputs and refuses anything else with an error naming the
file, the input, and the expected and given shape and dtype.

`StepGraph` wraps a backend in the methods `Re3MultiTracker` uses from a
`model.tracking_graphs.Re3Graph` (init_batch, crop_batch,
track_step_carry_batch, crop_size, lstm_units): the crops are cut on the host
at the same windows and sample positions (`geometry.crop_windows_xywh`,
`geometry.crop_cv2`: OpenCV, equal to the graph's crop_and_resize up to
float rounding) and labels mapped back by `geometry.label_to_box`, with no
TensorFlow call per frame, and the LSTM reset pass is the same rule
(the rows flagged `reset`: one step on (crop, crop) from the initial state,
its state kept, its output dropped). So a .tflite or .onnx tracker behaves as
the SavedModel tracker does, up to the runtime's float rounding (or the
quantization).
"""

from __future__ import annotations

import os
from typing import Optional, Tuple, Union

from absl import logging
import numpy as np
import tensorflow as tf

from configs import quiet
from model import export_tflite, geometry, quantize
from model.export_onnx import ONNX_EXTRA, ONNX_SUFFIX, missing_extra
from model.loading import (find_checkpoint, load_model, load_re3_graph, named_runtime,
                           resolve_model_path)
from model.step_graph import STEP_INPUTS, STEP_SIGNATURE
from model.tracking_graphs import Re3Graph, re3_graph_for

RUNTIME_SUFFIXES = (export_tflite.TFLITE_SUFFIX, ONNX_SUFFIX)


def _threads(num_threads: Optional[int]) -> int:
  return int(num_threads or os.cpu_count() or 1)


class _CheckedStep:
  """Input checks shared by the backends (the file's input shapes are the truth)."""

  name = "?"
  crop_size = 0
  lstm_units = 0
  state_parts = 0     # rows of the state: 4 (h1, c1, h2, c2) + template rows

  def _check(self, prev, curr, state) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    s, u = self.crop_size, self.lstm_units
    want = {"prev": (s, s, 3), "curr": (s, s, 3), "state": (self.state_parts, u)}
    out = []
    for key, value in zip(STEP_INPUTS, (prev, curr, state)):
      a = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
      if a.dtype != np.float32 or a.ndim != 1 + len(want[key]) or tuple(a.shape[1:]) != want[key]:
        raise ValueError(f"{self.name}: input {key!r} must be float32 [B, "
                         f"{', '.join(map(str, want[key]))}], got {a.dtype} {list(a.shape)}")
      out.append(a)
    if not out[0].shape[0] == out[1].shape[0] == out[2].shape[0]:
      raise ValueError(f"{self.name}: prev, curr and state must have the same batch size, got "
                       f"{[a.shape[0] for a in out]}")
    return tuple(out)


def _tflite_precision(tensor_dtypes) -> str:
  kinds = {np.dtype(d).name for d in tensor_dtypes}
  if "int8" in kinds:
    return "int8"
  if "float16" in kinds:
    return "fp16"
  return "float32"


class LiteRTStep(_CheckedStep):
  """The step of a .tflite export (or its bytes) run by the ai-edge-litert interpreter."""

  def __init__(self, model: Union[str, bytes], num_threads: Optional[int] = None,
               name: Optional[str] = None):
    try:
      from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top  # optional extra
    except ImportError:
      raise missing_extra("ai-edge-litert", quantize.LITERT_EXTRA, "a LiteRT (.tflite) model") from None
    self.name = name or (model if isinstance(model, str) else "<tflite bytes>")
    kw = {"model_path": model} if isinstance(model, str) else {"model_content": model}
    try:
      self._interpreter = Interpreter(num_threads=_threads(num_threads), **kw)
      self._runner = self._interpreter.get_signature_runner(STEP_SIGNATURE)
    except (ValueError, RuntimeError) as e:
      raise ValueError(f"{self.name}: not a Re3 step export of model.export_tflite ({e})") from None
    inputs = self._runner.get_input_details()
    if set(inputs) != set(STEP_INPUTS):
      raise ValueError(f"{self.name}: inputs {sorted(inputs)}, a Re3 step has {list(STEP_INPUTS)}")
    self.crop_size = int(inputs["prev"]["shape_signature"][1])
    self.lstm_units = int(inputs["state"]["shape_signature"][2])
    self.state_parts = int(inputs["state"]["shape_signature"][1])
    self.precision = _tflite_precision(t["dtype"] for t in self._interpreter.get_tensor_details())
    # The first call allocates the tensors and applies XNNPACK, whose notice
    # LiteRT writes to fd 2: made here, once, with that notice hidden.
    s, p, u = self.crop_size, self.state_parts, self.lstm_units
    with quiet.native_notices():
      self._runner(prev=np.zeros([1, s, s, 3], np.float32), curr=np.zeros([1, s, s, 3], np.float32),
                   state=np.zeros([1, p, u], np.float32))

  def step(self, prev, curr, state):
    prev, curr, state = self._check(prev, curr, state)
    out = self._runner(prev=prev, curr=curr, state=state)
    return out["labels"], out["new_state"], out.get("score")


class OnnxStep(_CheckedStep):
  """The step of a .onnx export run by onnxruntime (CPU)."""

  def __init__(self, path: str, num_threads: Optional[int] = None):
    try:
      import onnxruntime as ort  # pylint: disable=g-import-not-at-top  # optional extra
    except ImportError:
      raise missing_extra("onnxruntime", ONNX_EXTRA, "an ONNX (.onnx) model") from None
    self.name = path
    options = ort.SessionOptions()
    options.intra_op_num_threads = _threads(num_threads)
    try:
      self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types  # pylint: disable=broad-except
      raise ValueError(f"{path}: onnxruntime cannot load it ({e})") from None
    inputs = {i.name: i for i in self._session.get_inputs()}
    if set(inputs) != set(STEP_INPUTS):
      raise ValueError(f"{path}: inputs {sorted(inputs)}, a Re3 step has {list(STEP_INPUTS)}")
    self.crop_size = int(inputs["prev"].shape[1])
    self.lstm_units = int(inputs["state"].shape[2])
    self.state_parts = int(inputs["state"].shape[1])
    # exports made before tracking scores have no "score" output
    self._outputs = [o for o in ("labels", "new_state", "score")
                     if o in {out.name for out in self._session.get_outputs()}]
    ops = {n.op_type for n in _onnx_nodes(path)}
    self.precision = "int8" if ops & {"MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul"} \
        else "float32"

  def step(self, prev, curr, state):
    prev, curr, state = self._check(prev, curr, state)
    out = self._session.run(self._outputs, {"prev": prev, "curr": curr, "state": state})
    return out[0], out[1], (out[2] if len(out) > 2 else None)


def _onnx_nodes(path: str):
  try:
    import onnx  # pylint: disable=g-import-not-at-top  # optional extra
  except ImportError:
    return []
  return onnx.load(path, load_external_data=False).graph.node


def load_step_backend(path: str, num_threads: Optional[int] = None):
  if path.endswith(export_tflite.TFLITE_SUFFIX):
    return LiteRTStep(path, num_threads)
  if path.endswith(ONNX_SUFFIX):
    return OnnxStep(path, num_threads)
  raise ValueError(f"{path}: a step export ends in one of {RUNTIME_SUFFIXES}")


class StepGraph:
  """The Re3Graph methods Re3MultiTracker calls, around a step backend, with
  no TensorFlow call on the hot path: crops are cut on the host by OpenCV
  (`geometry.crop_cv2`: crop_tf's sample positions, equal to its crops up to
  float rounding), windows and labels -> boxes by the NumPy twins of the
  graph's rules. Arrays in, NumPy arrays out (boxes, state, crops, scores)."""

  def __init__(self, backend):
    self.backend = backend
    s, u, p = int(backend.crop_size), int(backend.lstm_units), int(backend.state_parts)
    self._s, self._u, self._p = s, u, p
    self.crop_size = tf.constant(s)
    self.lstm_units = tf.constant(u)
    self.state_parts = tf.constant(p)
    self.precision = backend.precision
    self.runtime = "litert" if isinstance(backend, LiteRTStep) else "onnxruntime"

  def _cut(self, image, boxes):
    """(crops [N, S, S, 3] float32, windows [N, 4]) of one frame at xywh boxes."""
    windows = geometry.crop_windows_xywh(np.asarray(boxes, np.float32))
    return geometry.crop_cv2(np.asarray(image), windows, self._s), windows

  def crop_batch(self, image, boxes):
    return {"crops": self._cut(image, boxes)[0]}

  def init_batch(self, image, boxes):
    crops, _ = self._cut(image, boxes)
    zero = np.zeros([len(crops), self._p, self._u], np.float32)
    _, state, _ = self.backend.step(crops, crops, zero)
    return {"state": state}

  def track_step_carry_batch(self, prev_crops, image, boxes, state, initial_state, reset):
    image = np.asarray(image)
    crops, windows = self._cut(image, boxes)
    labels, new_state, scores = self.backend.step(prev_crops, crops, state)
    out = geometry.xyxy_to_xywh(geometry.label_to_box(labels, windows)).astype(np.float32)
    next_crops, _ = self._cut(image, out)
    rows = np.flatnonzero(np.asarray(reset))
    if rows.size:                                  # the LSTM reset pass, as Re3Graph._reset_rows
      initial = np.asarray(initial_state)[rows]
      _, reset_state, _ = self.backend.step(next_crops[rows], next_crops[rows], initial)
      new_state = np.array(new_state)
      new_state[rows] = reset_state
    result = {"boxes": out, "state": new_state, "crops": next_crops}
    if scores is not None:
      result["scores"] = scores
    return result


def precision_of(graph) -> str:
  """float32, bf16, fp16 or int8: what a tracker's graph computes in."""
  if hasattr(graph, "precision"):
    return str(graph.precision)
  dtypes = {v.dtype for v in getattr(graph, "net_variables", [])}
  return "bf16" if tf.bfloat16 in dtypes else "float32"


def graph_for_net(net, precision: Optional[str] = None):
  """A tracking graph for `net` in `precision` ('float32', 'bf16', 'int8',
  'auto'; None = float32), chosen and logged by quantize.choose_precision.
  `net`'s own weights stay float32."""
  if precision in (None, "float32"):
    return re3_graph_for(net)                  # traced once per network, then shared
  choice = quantize.choose_precision(precision)
  logging.info("%s: %s", net.name, choice)
  if choice.precision == "bf16":
    graph = Re3Graph(quantize.bf16_net(net))
  elif choice.precision == "int8":
    data = export_tflite.convert_step(net, "dynamic")
    graph = StepGraph(LiteRTStep(data, name=f"{net.name} (int8 dynamic-range LiteRT)"))
  else:
    graph = Re3Graph(net)
  graph.precision = choice.precision
  graph.precision_choice = choice
  return graph


CACHE_ENV = "RE3_CACHE_DIR"


def cache_dir() -> str:
  """Where built runtimes are kept: $RE3_CACHE_DIR, else ~/.cache/re3-tf."""
  return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "re3-tf")


def cached_litert_export(model_dir: str, quantize: str) -> str:
  """The LiteRT step export of a model_dir's latest checkpoint in `quantize`,
  converted on first use (a few seconds) and kept in cache_dir() under a name
  made of the checkpoint's contents, so a changed checkpoint converts again.
  The shipped weights are stored once (the checkpoint), not twice."""
  import hashlib  # pylint: disable=g-import-not-at-top
  ckpt = find_checkpoint(model_dir)
  if ckpt is None:
    raise ValueError(f"{model_dir}: no checkpoint to build the LiteRT runtime from")
  digest = hashlib.sha256(quantize.encode())
  for name in sorted(os.listdir(os.path.dirname(ckpt) or ".")):
    if name.startswith(os.path.basename(ckpt) + "."):
      with open(os.path.join(os.path.dirname(ckpt), name), "rb") as f:
        digest.update(f.read())
  out = os.path.join(cache_dir(), "runtimes", f"re3-{digest.hexdigest()[:20]}-{quantize}"
                     f"{export_tflite.TFLITE_SUFFIX}")
  if os.path.exists(out):
    return out
  _, net, _, _ = load_model(model_dir, expect_task="re3")
  try:
    os.makedirs(os.path.dirname(out), exist_ok=True)
    # a name of this process's own, then an atomic rename: two processes
    # building at once both succeed and leave one file
    tmp = out[:-len(export_tflite.TFLITE_SUFFIX)] + f".build-{os.getpid()}" + export_tflite.TFLITE_SUFFIX
    export_tflite.write_tflite(net, tmp, quantize)
    os.replace(tmp, out)
  except OSError as e:
    raise ValueError(f"cannot write the LiteRT runtime of {model_dir} to {out} ({e}); set "
                     f"{CACHE_ENV} to a writable folder, or load the model by its path for "
                     "the TensorFlow graph") from None
  return out


def load_re3_runtime(path: str, precision: Optional[str] = None):
  """A tracking graph from a .tflite / .onnx step export, a SavedModel, a
  training model_dir or a shipped model's name ("default"); `precision` (see
  graph_for_net) only for a model_dir or checkpoint, since an export's
  precision was fixed when it was written."""
  # A shipped model loaded by name runs the runtime its folder names (the
  # fastest that keeps its validation AUC, README model card); its folder
  # path, or any precision, gives the TensorFlow graph instead.
  fast = named_runtime(path) if precision is None else None
  if fast is not None:
    export = cached_litert_export(resolve_model_path(path), str(fast["quantize"]))
    logging.info("%s: %s (%s)", path, fast.get("runtime", "LiteRT"), export)
    return StepGraph(load_step_backend(export))
  if path.endswith(RUNTIME_SUFFIXES):
    if precision not in (None, "float32", "auto"):
      raise ValueError(f"{path}: a step export runs in the precision it was exported in; "
                       f"precision={precision!r} needs a model_dir (or model.export --quantize)")
    return StepGraph(load_step_backend(path))
  graph = load_re3_graph(path)
  if precision in (None, "float32"):
    return graph
  if not isinstance(graph, Re3Graph):
    raise ValueError(f"{path}: a SavedModel runs in the precision it was exported in; "
                     f"precision={precision!r} needs a model_dir (or model.export --quantize bf16)")
  return graph_for_net(graph.net, precision)
