"""LiteRT (TensorFlow Lite) export of the one-step Re3 function
(`model.step_graph.Re3StepModule`: prev crops, crops, state -> labels, new_state).

    data = convert_step(net)                               # float32
    data = convert_step(net, "fp16")                       # float16 weights
    data = convert_step(net, "dynamic")                    # int8 weights, float activations
    data = convert_step(net, "int8", calibration=calib)    # int8 PTQ of weights and activations
    write_tflite(net, "re3_step.tflite", "int8", calibration=calib)

Quantizations (`QUANTIZATIONS`):
  none     float32 weights and kernels.
  fp16     weights stored as float16 (half the bytes on disk; XNNPACK computes
           in float32 on x86 after one dequantization at load).
  dynamic  dynamic-range: int8 weights, activations quantized per batch at
           run time by the kernels (no calibration).
  int8     post-training quantization of weights and activations, calibrated
           on real crops (`CalibrationCrops`, from track records through
           pipelines.calibration); inputs and outputs stay float32 (the model
           quantizes its inputs itself).

Calibration samples are what the tracker feeds the step: each track's crop
pairs in order, the LSTM state carried by running the float32 step from the
track's init (first crop twice from the zero state), so the activations'
ranges include real states and not only zeros.

The converter needs a SavedModel: the step module is saved to a temporary folder first.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import warnings
import zipfile
from typing import Iterator, Optional

import numpy as np
import tensorflow as tf

from model.step_graph import STEP_SIGNATURE, Re3StepModule

QUANTIZATIONS = ("none", "fp16", "dynamic", "int8")
TFLITE_SUFFIX = ".tflite"
TF_INTERPRETER_DEPRECATION = r"\s*Warning: tf\.lite\.Interpreter is deprecated"


@dataclasses.dataclass
class CalibrationCrops:
  """Real crop pairs for int8 calibration: prev / curr uint8 [N, S, S, 3], cut
  as the tracker cuts them (both at the previous box's window), and track
  [N] int: pairs of one track are consecutive and in frame order."""
  prev: np.ndarray
  curr: np.ndarray
  track: np.ndarray

  def __post_init__(self):
    self.prev, self.curr = np.asarray(self.prev), np.asarray(self.curr)
    self.track = np.asarray(self.track).reshape(-1)
    if self.prev.shape != self.curr.shape or self.prev.ndim != 4 or self.prev.shape[-1] != 3:
      raise ValueError(f"calibration crops: prev {self.prev.shape} and curr {self.curr.shape} "
                       "must both be [N, S, S, 3]")
    if len(self.track) != len(self.prev) or not len(self.prev):
      raise ValueError(f"calibration crops: {len(self.prev)} pairs, {len(self.track)} track ids")

  @property
  def crop_size(self) -> int:
    return int(self.prev.shape[1])

  def save(self, path: str) -> str:
    np.savez_compressed(path, prev=self.prev, curr=self.curr, track=self.track)
    return path

  @classmethod
  def load(cls, path: str) -> "CalibrationCrops":
    try:
      with np.load(path) as z:
        return cls(z["prev"], z["curr"], z["track"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
      raise ValueError(f"{path}: not a calibration crops file (prev, curr, track arrays; "
                       f"python -m pipelines.calibration writes one): {e}") from None


def calibration_samples(module: Re3StepModule, calib: CalibrationCrops,
                        max_samples: int = 64) -> Iterator[dict]:
  """{prev, curr, state} batches of one pair each, with the state the float32
  step carries along each track (what the tracker would feed)."""
  s, u = module.crop_size, module.lstm_units
  if calib.crop_size != s:
    raise ValueError(f"calibration crops are {calib.crop_size}x{calib.crop_size}, the model "
                     f"takes {s}x{s}: cut them again with --crop_size {s}")
  state, last_track, n = None, None, 0
  for i in range(len(calib.prev)):
    prev = calib.prev[i:i + 1].astype(np.float32)
    curr = calib.curr[i:i + 1].astype(np.float32)
    if calib.track[i] != last_track:             # a new track: init as the tracker does
      zero = tf.zeros([1, module.state_parts, u])
      state = module.step(prev=tf.constant(prev), curr=tf.constant(prev), state=zero)["new_state"]
      last_track = calib.track[i]
    yield {"prev": prev, "curr": curr, "state": state.numpy()}
    state = module.step(prev=tf.constant(prev), curr=tf.constant(curr), state=state)["new_state"]
    n += 1
    if n >= max_samples:
      return


def convert_step(net, quantize: str = "none", calibration: Optional[CalibrationCrops] = None,
                 max_samples: int = 64) -> bytes:
  """The .tflite flatbuffer of `net`'s step in the given quantization."""
  if quantize not in QUANTIZATIONS:
    raise ValueError(f"LiteRT quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
  if quantize == "int8" and calibration is None:
    raise ValueError("int8 LiteRT export needs calibration crops from track records "
                     "(python -m pipelines.calibration --records DIR --out calib.npz; "
                     "then --calibration calib.npz)")
  module = Re3StepModule(net)
  with tempfile.TemporaryDirectory(prefix="re3_step_") as tmp:
    module.save(tmp)
    converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=[STEP_SIGNATURE])
    if quantize != "none":
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "fp16":
      converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
      samples = list(calibration_samples(module, calibration, max_samples))
      converter.representative_dataset = lambda: iter(samples)
    with warnings.catch_warnings():
      # TensorFlow's int8 calibrator runs the model with its own tf.lite.Interpreter,
      # which warns that it is deprecated for ai_edge_litert's; the converter has no
      # other calibrator, and the project runs every export with ai_edge_litert
      # (model/runtimes.py), so that one warning is not the user's to act on.
      warnings.filterwarnings("ignore", message=TF_INTERPRETER_DEPRECATION, category=UserWarning)
      return converter.convert()


def write_tflite(net, path: str, quantize: str = "none",
                 calibration: Optional[CalibrationCrops] = None) -> str:
  if not path.endswith(TFLITE_SUFFIX):
    raise ValueError(f"{path}: a LiteRT export is a file ending in {TFLITE_SUFFIX}")
  data = convert_step(net, quantize, calibration)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)
  return path
