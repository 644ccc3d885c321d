"""Reduced-precision inference: which precision a CPU should track in, and the
bfloat16 copy of a Re3 network. Training weights are never touched: every
reduced-precision model is a copy made from the float32 network.

    choice = choose_precision("auto")      # PrecisionChoice(precision, reason)
    net16 = bf16_net(net)                  # same layers, bfloat16 weights and matmuls

Precisions (`PRECISIONS`):
  float32  the training graph as it is.
  bf16     a copy of the network built under Keras' pure "bfloat16" policy:
           weights stored in bfloat16 (half the bytes an fc6 step reads) and
           every conv/matmul in bfloat16; the LSTM state, its gates and the
           box head stay float32 (model.layers, model.re3). Needs bf16
           instructions (AVX512_BF16 or AMX-BF16) to be worth anything.
  int8     dynamic-range quantization: int8 weights (per output channel) of
           the large layers (fc6, the LSTMs, the convolutions), activations
           quantized on the fly, run by LiteRT (XNNPACK) whose kernels read
           the int8 weights directly. TensorFlow's own CPU int8 matmuls
           (tf.matmul on int8, QuantizedMatMul) were 3-9x slower than its
           float32 matmul at fc6's shape, so int8 is never a TF graph here.
  auto     the fastest of these this machine supports (`choose_precision`).

Support is detected at run time from the CPU's flags (/proc/cpuinfo on Linux;
elsewhere nothing is assumed) and from whether LiteRT imports; both can be
forced (the `cpu_flags` / `litert` arguments) for tests and for users who know better.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import FrozenSet, Iterable, Optional

import tensorflow as tf
import tf_keras as keras

from model.re3 import Re3Net

PRECISIONS = ("float32", "bf16", "int8", "auto")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")      # either gives the CPU native bfloat16 dot products
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
LITERT_EXTRA = "litert"


@dataclasses.dataclass(frozen=True)
class PrecisionChoice:
  """What `choose_precision` picked and why (printed by the tracker and the benchmark)."""
  requested: str
  precision: str
  reason: str

  def __str__(self):
    return f"precision {self.precision} (asked {self.requested}): {self.reason}"


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> FrozenSet[str]:
  """The CPU feature flags of this machine (empty where they cannot be read)."""
  try:
    with open(cpuinfo, encoding="utf-8", errors="replace") as f:
      for line in f:
        if line.startswith(("flags", "Features")):
          return frozenset(line.split(":", 1)[1].split())
  except OSError:
    pass
  return frozenset()


def litert_available() -> bool:
  return importlib.util.find_spec("ai_edge_litert") is not None


def _has(flags: FrozenSet[str], wanted: Iterable[str]) -> Optional[str]:
  return next((f for f in wanted if f in flags), None)


def choose_precision(requested: str = "auto", flags: Optional[Iterable[str]] = None,
                     litert: Optional[bool] = None) -> PrecisionChoice:
  """The precision to track in for a request ('float32', 'bf16', 'int8', 'auto').

  bf16 runs where the CPU has bfloat16 instructions, else falls back to int8
  (LiteRT installed) or float32; int8 needs LiteRT (the `litert` extra) and is
  an error without it. auto takes bf16 only with AMX (tile matmuls; with
  AVX512_BF16 alone TensorFlow's batch-1 bf16 matmul of fc6's shape ran at
  0.6x the float32 one on this project's CPUs, see WORKSPACE.md "Edge and
  reduced-precision inference"), else int8 when LiteRT is installed, else
  float32. `flags` / `litert` force what is detected.
  """
  if requested not in PRECISIONS:
    raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
  flags = cpu_flags() if flags is None else frozenset(flags)
  litert = litert_available() if litert is None else bool(litert)
  bf16_flag = _has(flags, BF16_FLAGS)
  int8_flag = _has(flags, INT8_FLAGS)
  int8_why = ("int8 dynamic-range in LiteRT (XNNPACK reads int8 weights directly"
              + (f"; {int8_flag} int8 dot products)" if int8_flag else ")"))

  def pick(precision, reason):
    return PrecisionChoice(requested, precision, reason)

  if requested == "float32":
    return pick("float32", "as asked")
  if requested == "int8":
    if not litert:
      raise ImportError(f"precision 'int8' runs in LiteRT, which is not installed: "
                        f"pip install 're3-tf[{LITERT_EXTRA}]' (ai-edge-litert)")
    return pick("int8", int8_why)
  if requested == "bf16":
    if bf16_flag:
      return pick("bf16", f"the CPU has {bf16_flag}")
    if litert:
      return pick("int8", f"no bfloat16 instructions ({'/'.join(BF16_FLAGS)}) on this CPU: "
                          + int8_why)
    return pick("float32", f"no bfloat16 instructions ({'/'.join(BF16_FLAGS)}) on this CPU and "
                           f"LiteRT is not installed (extra '{LITERT_EXTRA}')")
  # auto
  if "amx_bf16" in flags:
    return pick("bf16", "the CPU has amx_bf16 (tile matmuls in bfloat16)")
  if litert:
    return pick("int8", int8_why)
  return pick("float32", f"no AMX and LiteRT is not installed (extra '{LITERT_EXTRA}')")


def bf16_net(net):
  """A copy of `net` (same config) under Keras' pure 'bfloat16' policy, its
  weights cast from `net`'s float32 ones; `net` is left as it is."""
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("bfloat16")
  try:
    copy = Re3Net(net.cfg, name=f"{net.name}_bf16")
    for cell in (copy.lstm1, copy.lstm2):
      # The weights are copied below; the orthogonal initializer's QR has no bfloat16 kernel.
      cell.recurrent_initializer = keras.initializers.Zeros()
    copy.build()
  finally:
    keras.mixed_precision.set_global_policy(previous)
  src = {_key(v, net.name): v for v in net.variables}
  dst = {_key(v, copy.name): v for v in copy.variables}
  if set(src) != set(dst):
    raise ValueError(f"bf16_net: variables differ between {net.name!r} and its copy: "
                     f"{sorted(set(src) ^ set(dst))[:5]}")
  for k, v in dst.items():
    v.assign(tf.cast(src[k], v.dtype))
  return copy


def _key(variable, model_name: str) -> str:
  name = variable.name
  return name[len(model_name) + 1:] if name.startswith(model_name + "/") else name
