"""The export formats and quantizations of `python -m model.export` beyond the
float32 SavedModel.

    --format savedmodel  [--quantize bf16]              a folder (model/export.py)
    --format tflite      [--quantize fp16|dynamic|int8] a .tflite file (model/export_tflite.py)
    --format onnx        [--quantize dynamic|int8]      a .onnx file (model/export_onnx.py)

int8 for LiteRT is post-training quantization calibrated on real crops
(--calibration, a .npz of `python -m pipelines.calibration`); for ONNX it is
onnxruntime's dynamic quantization (int8 weights, activations at run time), as
`dynamic` is for LiteRT. A SavedModel has no int8: TensorFlow's CPU int8
matmuls are slower than its float32 ones (model/quantize.py).
"""

from __future__ import annotations

from typing import Optional

from absl import flags

from model import export_onnx, export_tflite, quantize

FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZE = {
    "savedmodel": ("none", "bf16"),
    "tflite": ("none", "fp16", "dynamic", "int8"),
    "onnx": ("none", "dynamic", "int8"),
}
SUFFIX = {"tflite": export_tflite.TFLITE_SUFFIX, "onnx": export_onnx.ONNX_SUFFIX}


def check_format(fmt: str, quantization: str, out: str) -> str:
  """The quantization to use ('none' for ''), or a ValueError naming the flags."""
  quantization = quantization or "none"
  if fmt not in FORMATS:
    raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
  if quantization not in QUANTIZE[fmt]:
    hint = " (int8 runs in LiteRT or ONNX: --format tflite or onnx)" \
        if fmt == "savedmodel" and quantization in ("int8", "dynamic") else ""
    raise ValueError(f"--quantize {quantization!r} is not offered for --format {fmt}; "
                     f"choose from {QUANTIZE[fmt]}{hint}")
  if fmt in SUFFIX and not out.endswith(SUFFIX[fmt]):
    raise ValueError(f"--export_dir {out}: a {fmt} export is one file; give a path ending "
                     f"in {SUFFIX[fmt]}")
  return quantization


def savedmodel_net(net, quantization: str):
  """The network a SavedModel export saves: `net`, or its bfloat16 copy."""
  return quantize.bf16_net(net) if quantization == "bf16" else net


def write_step(net, fmt: str, quantization: str, out: str,
               calibration: Optional[str] = None) -> str:
  """Writes the one-step export of `net` (tflite or onnx) to the file `out`."""
  quantization = check_format(fmt, quantization, out)
  if fmt == "tflite":
    calib = export_tflite.CalibrationCrops.load(calibration) if calibration else None
    return export_tflite.write_tflite(net, out, quantization, calib)
  if fmt == "onnx":
    return export_onnx.write_onnx(net, out, "none" if quantization == "none" else "dynamic")
  raise ValueError(f"--format {fmt}: not a one-step export (the SavedModel is model/export.py)")


def define_flags(flag_values=flags.FLAGS):
  flags.DEFINE_enum("format", "savedmodel", FORMATS,
                    "savedmodel (a folder), tflite or onnx (one file: --export_dir ends in "
                    ".tflite / .onnx).", flag_values=flag_values)
  flags.DEFINE_string("quantize", "none",
                      "savedmodel: none|bf16; tflite: none|fp16|dynamic|int8; "
                      "onnx: none|dynamic|int8.", flag_values=flag_values)
  flags.DEFINE_string("calibration", None,
                      "For --format tflite --quantize int8: calibration crops (.npz of "
                      "python -m pipelines.calibration).", flag_values=flag_values)
