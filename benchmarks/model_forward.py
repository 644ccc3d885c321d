"""Re3 forward time per frame on CPU, model code vs the bare compute.

  python -m benchmarks.model_forward                      # re3_paper and re3_small, batches 1, 4, 16
  python -m benchmarks.model_forward --configs=configs/re3_small.yaml --batches=1 --iters=50

For each config and batch size B (B tracked objects, one frame each) it times
one tracking step, `Re3Net.step` inside a tf.function (two crops per object
through the tower, fc6, both LSTMs, the head), and, in the same run and
with the same weights, the bare compute of the same shapes written with plain
tf.nn ops in one tf.function: the convolutions (grouped ones as one
tf.nn.conv2d per group, as the model does), ReLUs, pools and LRNs, the
1x1 skip convolutions, the fc6 / LSTM / head matmuls. The ratio model / bare
shows what the model code adds (Keras layer dispatch, PReLU, peepholes, gate
element-wise ops). For batch 1 it also prints an eager (un-wrapped) step,
to show what calling `step` without tf.function costs. Times are medians over --iters calls after warm-up, the
two versions called alternately so machine load affects both alike;
"per frame" divides a call by B.
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from configs import cli as cli_errors  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from configs.model import load_model_config  # noqa: E402
from model.re3 import build_re3  # noqa: E402


def define_flags(flag_values=flags.FLAGS):
  """Defined on demand (by __main__), not at import, like the other commands."""
  flags.DEFINE_list("configs", ["configs/re3_paper.yaml", "configs/re3_small.yaml"],
                    "Model YAMLs.", flag_values=flag_values)
  flags.DEFINE_list("batches", ["1", "4", "16"], "Batch sizes (objects per step).",
                    flag_values=flag_values)
  flags.DEFINE_integer("iters", 20, "Timed calls per measurement (median reported).",
                       flag_values=flag_values)
  flags.DEFINE_integer("warmup", 3, "Untimed calls before timing.", flag_values=flag_values)


def bare_step_fn(net):
  """The same computation as net.step from raw tf.nn ops on net's variables."""
  cfg = net.cfg
  mean = tf.constant(cfg.mean_rgb, tf.float32)
  lrn = dict(depth_radius=cfg.lrn_depth_radius, bias=cfg.lrn_bias, alpha=cfg.lrn_alpha, beta=cfg.lrn_beta)
  p, s = cfg.pool_size, cfg.pool_stride

  def conv(layer, x, stride, padding):
    if layer.groups == 1:
      y = tf.nn.conv2d(x, layer.kernel, stride, padding)
    else:
      y = tf.concat([tf.nn.conv2d(a, k, stride, padding) for a, k in
                     zip(tf.split(x, layer.groups, -1), tf.split(layer.kernel, layer.groups, -1))], -1)
    return tf.nn.relu(y + layer.bias)

  def lstm(cell, x, h, c):
    gates = tf.matmul(x, cell.kernel) + tf.matmul(h, cell.recurrent_kernel) + cell.bias
    i, f, z, o = tf.split(gates, 4, axis=1)
    c = tf.sigmoid(i) * tf.tanh(z) + tf.sigmoid(f) * c
    h = tf.sigmoid(o) * tf.tanh(c)
    return h, c

  @tf.function
  def step(prev, curr, h1, c1, h2, c2):
    n = tf.shape(prev)[0]
    x = tf.cast(tf.concat([prev, curr], 0), tf.float32) - mean
    x = conv(net.conv1, x, cfg.conv1_stride, "VALID")
    norm1 = tf.nn.local_response_normalization(tf.nn.max_pool2d(x, p, s, "VALID"), **lrn)
    x = conv(net.conv2, norm1, 1, "SAME")
    norm2 = tf.nn.local_response_normalization(tf.nn.max_pool2d(x, p, s, "VALID"), **lrn)
    x = conv(net.conv3, norm2, 1, "SAME")
    x = conv(net.conv4, x, 1, "SAME")
    conv5 = conv(net.conv5, x, 1, "SAME")
    pool5 = tf.nn.max_pool2d(conv5, p, s, "VALID")
    parts = [tf.reshape(tf.nn.conv2d(src, layer.kernel, 1, "VALID") + layer.bias, [2 * n, -1])
             for src, layer in zip((norm1, norm2, conv5), net.skip_convs)]
    feats = tf.concat(parts + [tf.reshape(pool5, [2 * n, -1])], 1)
    pair = tf.concat([feats[:n], feats[n:]], 1)
    e = tf.nn.relu(tf.matmul(pair, net.fc6.kernel) + net.fc6.bias)
    h1, c1 = lstm(net.lstm1, e, h1, c1)
    h2, c2 = lstm(net.lstm2, tf.concat([e, h1], 1), h2, c2)
    return tf.matmul(h2, net.head.kernel) + net.head.bias, h1, c1, h2, c2

  return step


def median_ms(fns_args, iters, warmup):
  """Median ms per call of each (fn, args); calls interleaved so that load
  changes on a shared machine hit all of them alike."""
  for fn, args in fns_args:
    for _ in range(warmup):
      tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
  times = [[] for _ in fns_args]
  for _ in range(iters):
    for k, (fn, args) in enumerate(fns_args):
      t0 = time.perf_counter()
      tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
      times[k].append((time.perf_counter() - t0) * 1000.0)
  return [statistics.median(t) for t in times]


def main(argv, flag_values=None):
  del argv
  FLAGS = flag_values or flags.FLAGS  # pylint: disable=invalid-name
  print(f"TensorFlow {tf.__version__}, CPU threads: intra {tf.config.threading.get_intra_op_parallelism_threads()}"
        f" (0 = all {os.cpu_count()} cores)")
  header = (f"{'config':<12} {'batch':>5} {'model ms/call':>14} {'model ms/frame':>15} "
            f"{'bare ms/call':>13} {'bare ms/frame':>14} {'model/bare':>11}")
  rows = []
  for path in FLAGS.configs:
    _, cfg = load_model_config(path)
    name = os.path.splitext(os.path.basename(path))[0]
    net = build_re3(cfg)
    model_step = tf.function(net.step)
    bare_step = bare_step_fn(net)
    rng = np.random.default_rng(0)
    for b in (int(v) for v in FLAGS.batches):
      prev = tf.constant(rng.integers(0, 256, (b, cfg.crop_size, cfg.crop_size, 3), dtype=np.uint8))
      curr = tf.constant(rng.integers(0, 256, (b, cfg.crop_size, cfg.crop_size, 3), dtype=np.uint8))
      state = net.zero_state(b)
      m, r = median_ms([(model_step, (prev, curr, state)), (bare_step, (prev, curr) + tuple(state))],
                       FLAGS.iters, FLAGS.warmup)
      rows.append((name, b, m, m / b, r, r / b, m / r))
      print(f"{name:<12} {b:>5} {m:>14.2f} {m / b:>15.2f} {r:>13.2f} {r / b:>14.2f} {m / r:>11.2f}",
            flush=True)
      if b == 1:
        eager = median_ms([(net.step, (prev, curr, state))], max(3, FLAGS.iters // 4), 1)[0]
        print(f"{name:<12} {b:>5} eager (no tf.function) step: {eager:.2f} ms", flush=True)
    del net, model_step, bare_step
  print()
  print(header)
  for name, b, m, mf, r, rf, ratio in rows:
    print(f"{name:<12} {b:>5} {m:>14.2f} {mf:>15.2f} {r:>13.2f} {rf:>14.2f} {ratio:>11.2f}")


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli_errors.flags_parser(__doc__))
