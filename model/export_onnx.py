"""ONNX export of the one-step Re3 function (`model.step_graph.Re3StepModule`).

    write_onnx(net, "re3_step.onnx")                  # float32
    write_onnx(net, "re3_step.onnx", "dynamic")       # int8 MatMul weights (onnxruntime)

The step is saved as a SavedModel, loaded back, and its concrete function is
converted by tf2onnx (the graph the SavedModel serves, not the Keras model).
Inputs prev, curr [B, S, S, 3] float32 and state [B, 4, units]; outputs
labels [B, 4] and new_state; B is dynamic. `dynamic` then runs onnxruntime's
dynamic quantization (int8 weights of the MatMul/Gemm nodes: fc6, the LSTMs
and the head; activations quantized at run time). Needs the `onnx` extra
(tf2onnx, onnx, onnxruntime).
"""

from __future__ import annotations

import logging
import os
import tempfile

import tensorflow as tf

from model.step_graph import Re3StepModule

ONNX_EXTRA = "onnx"
ONNX_SUFFIX = ".onnx"
ONNX_QUANTIZATIONS = ("none", "dynamic")
OPSET = 17


def missing_extra(package: str, extra: str, what: str) -> ImportError:
  return ImportError(f"{what} needs the Python package {package!r}, which is not installed: "
                     f"pip install 're3-tf[{extra}]'")


def _tf2onnx():
  try:
    import tf2onnx  # pylint: disable=g-import-not-at-top  # optional extra, heavy
  except ImportError:
    raise missing_extra("tf2onnx", ONNX_EXTRA, "ONNX export") from None
  return tf2onnx


def write_onnx(net, path: str, quantize: str = "none", opset: int = OPSET) -> str:
  if not path.endswith(ONNX_SUFFIX):
    raise ValueError(f"{path}: an ONNX export is a file ending in {ONNX_SUFFIX}")
  if quantize not in ONNX_QUANTIZATIONS:
    raise ValueError(f"ONNX quantize must be one of {ONNX_QUANTIZATIONS}, got {quantize!r}")
  tf2onnx = _tf2onnx()
  module = Re3StepModule(net)
  s, u = module.crop_size, module.lstm_units
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with tempfile.TemporaryDirectory(prefix="re3_step_") as tmp:
    loaded = tf.saved_model.load(module.save(os.path.join(tmp, "saved_model")))
    crops = tf.TensorSpec([None, s, s, 3], tf.float32)
    spec = (crops, crops, tf.TensorSpec([None, module.state_parts, u], tf.float32))
    float_path = path if quantize == "none" else os.path.join(tmp, "float.onnx")
    tf2onnx.convert.from_function(loaded.step, input_signature=spec, opset=opset,
                                  output_path=float_path)
    if quantize == "dynamic":
      try:
        from onnxruntime.quantization import QuantType, quantize_dynamic  # pylint: disable=g-import-not-at-top  # optional extra
      except ImportError:
        raise missing_extra("onnxruntime", ONNX_EXTRA, "ONNX int8 export") from None
      root = logging.getLogger()
      level = root.level
      root.setLevel(max(level, logging.WARNING))   # the quantizer logs every tensor at INFO
      try:
        quantize_dynamic(float_path, path, op_types_to_quantize=["MatMul", "Gemm"],
                         weight_type=QuantType.QInt8)
      finally:
        root.setLevel(level)
  return path
