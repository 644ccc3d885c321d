"""Speed of Re3 tracker steps with the EfficientNet-Lite0 tower, against re3_small.

Times a tf.function `net.step` (both crops through the tower, fc6, both
LSTMs, head) at batch 1 and batch 16 for several tower choices (crop size,
blocks run, taps, fc6 / LSTM widths). Alternatives are timed interleaved
(round robin, best of `--rounds` rounds of `--iters` calls) in one process,
so a load change on the shared cores hits them all alike; the ratio to the
first entry (the CaffeNet re3_small baseline) is printed beside each.

  python -m benchmarks.tower_speed                 # the default candidates
  python -m benchmarks.tower_speed --rounds=5 --iters=50 --batches=1
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from configs.model import Re3ModelConfig, load_model_config  # noqa: E402
from model.re3 import build_re3, count_parameters, features_per_crop  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def candidates():
  """(label, config): the CaffeNet baseline first, then EfficientNet variants."""
  _, small = load_model_config(os.path.join(REPO, "configs/re3_small.yaml"))
  _, shipped = load_model_config(os.path.join(REPO, "configs/re3_effnet_lite0.yaml"))
  eff = dict(tower="efficientnet_lite0", weight_decay=0.0005)
  out = [("re3_small (caffenet 227)", small), ("re3_effnet_lite0.yaml", shipped)]
  for size, blocks, taps, taps_ch, fc6, lstm in (
      (96, 8, (4,), (16,), 256, 256),
      (112, 11, (4,), (16,), 256, 256),
      (112, 8, (2, 4), (4, 16), 256, 256),
      (112, 8, (4,), (16,), 512, 256),
      (128, 8, (4,), (16,), 256, 256),
      (128, 11, (4,), (16,), 256, 256),
  ):
    cfg = Re3ModelConfig(crop_size=size, tower_blocks=blocks, tower_taps=taps, tap_filters=taps_ch,
                         fc6_units=fc6, lstm_units=lstm, **eff)
    out.append((f"effnet {size} blocks<{blocks} taps{list(taps)} fc6 {fc6} lstm {lstm}", cfg))
  return out


def define_flags(flag_values=flags.FLAGS):
  """Defined on demand (by __main__), not at import, like the other commands."""
  flags.DEFINE_integer("rounds", 3, "Rounds (best of them reported).", flag_values=flag_values)
  flags.DEFINE_integer("iters", 30, "Timed calls per round.", flag_values=flag_values)
  flags.DEFINE_list("batches", ["1", "16"], "Batch sizes (objects per step).",
                    flag_values=flag_values)


def main(argv, flag_values=None):
  del argv
  args = flag_values or flags.FLAGS
  rng = np.random.default_rng(0)
  entries = []
  for label, cfg in candidates():
    net = build_re3(cfg)
    step = tf.function(net.step)
    entries.append((label, cfg, net, step))
  for batch in (int(b) for b in args.batches):
    runs = []
    for label, cfg, net, step in entries:
      s = cfg.crop_size
      crops = tf.constant(rng.integers(0, 256, (batch, s, s, 3)).astype(np.uint8))
      state = net.zero_state(batch)
      step(crops, crops, state)  # trace
      runs.append((step, crops, state))
    best = [float("inf")] * len(runs)
    for _ in range(args.rounds):
      for i, (step, crops, state) in enumerate(runs):
        t0 = time.perf_counter()
        for _ in range(args.iters):
          out, _ = step(crops, crops, state)
        out.numpy()
        best[i] = min(best[i], (time.perf_counter() - t0) / args.iters)
    print(f"\nbatch {batch}: ms per step (best of {args.rounds} rounds of {args.iters}), ratio to the first")
    for (label, cfg, net, _), t in zip(entries, best):
      params = count_parameters(cfg)
      print(f"  {label:52s} {1e3 * t:7.2f} ms  x{t / best[0]:.2f}  {batch / t:7.0f} objects/s  "
            f"features/crop {features_per_crop(cfg):6d}  params {params['total']:,}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
