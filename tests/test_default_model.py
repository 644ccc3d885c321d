"""The shipped default tracker: loads by name in a fresh process with no
network and no training, runs its LiteRT fp16 step there, is the track
command's default, and is what its model card says (NanoTrack v2 backbone
and head around Re3's LSTMs, box damping 0.5, under 25 MB, NanoTrack's
Apache-2.0 notice beside it); the previous defaults (NanoTrack tower with the
xcorr template; EfficientNet-Lite0) stay loadable by name."""

import os
import subprocess
import sys

import numpy as np

from tests.conftest import REPO

DEFAULT_DIR = REPO / "model" / "pretrained" / "re3_nano_head"
NANO_DIR = REPO / "model" / "pretrained" / "re3_nano"
PREVIOUS_DIR = REPO / "model" / "pretrained" / "re3_lite0"


def _env():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
  # Any attempt to reach the network would fail fast through these.
  env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
             HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
  return env


def test_default_model_is_shipped_small_and_pretrained_tower():
  from configs.model import load_model_config
  assert (DEFAULT_DIR / "config.yaml").exists(), "model/pretrained/re3_nano_head/config.yaml missing"
  size = sum(f.stat().st_size for f in DEFAULT_DIR.iterdir())
  assert size < 25 * 2**20, f"shipped model is {size / 2**20:.1f} MiB (limit 25)"
  task, cfg = load_model_config(str(DEFAULT_DIR / "config.yaml"))
  assert task == "re3" and cfg.tower == "nanotrack_v2" and cfg.template == "nano_head"
  assert (cfg.track_scale_rate, cfg.track_aspect_rate) == (0.5, 0.5)
  notice = (DEFAULT_DIR / "NOTICE").read_text()
  assert "Apache License" in notice and "nanotrack_head_sim.onnx" in notice
  task, cfg = load_model_config(str(NANO_DIR / "config.yaml"))
  assert task == "re3" and cfg.template == "xcorr"
  assert "quantize: fp16" in (DEFAULT_DIR / "runtime.yaml").read_text()
  task, cfg = load_model_config(str(PREVIOUS_DIR / "config.yaml"))
  assert task == "re3" and cfg.tower == "efficientnet_lite0"


def test_load_default_in_a_fresh_process_tracks_a_real_sequence(shared_dir, tmp_path):
  seq = shared_dir / "data" / "tracking" / "otb" / "Freeman1"
  # A tiny script that does not depend on reader internals: frames by name.
  script = f"""
import os, sys
import numpy as np
from PIL import Image
from model.tracker import Re3Tracker
seq = {str(seq)!r}
names = sorted(n for n in os.listdir(os.path.join(seq, "img")) if n.endswith(".jpg"))[:12]
gt = [list(map(float, l.replace(",", " ").split())) for l in open(os.path.join(seq, "groundtruth_rect.txt"))]
t = Re3Tracker.load("default")
assert (t.runtime, t.precision) == ("litert", "fp16"), (t.runtime, t.precision)
prev = Re3Tracker.load("re3_lite0")
assert prev.runtime == "tensorflow"
frames = [np.asarray(Image.open(os.path.join(seq, "img", n)).convert("RGB")) for n in names]
x, y, w, h = gt[0]
t.init(frames[0], (x - 1, y - 1, w, h))
ious = []
for f, g in zip(frames[1:], gt[1:]):
  ok, b = t.update(f)
  assert ok, b
  gx, gy, gw, gh = g[0] - 1, g[1] - 1, g[2], g[3]
  ix = max(0.0, min(b[0] + b[2], gx + gw) - max(b[0], gx))
  iy = max(0.0, min(b[1] + b[3], gy + gh) - max(b[1], gy))
  inter = ix * iy
  ious.append(inter / (b[2] * b[3] + gw * gh - inter))
print("MEAN_IOU", float(np.mean(ious)))
"""
  out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path,
                       env=dict(_env(), RE3_CACHE_DIR=str(tmp_path / "cache")),
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  mean_iou = float(out.stdout.split("MEAN_IOU")[-1])
  # Freeman1's first frames: a slowly moving face; a working tracker stays on it.
  assert mean_iou > 0.3, out.stdout


def test_track_command_uses_the_default_model(shared_dir, tmp_path):
  seq = shared_dir / "data" / "tracking" / "otb" / "Freeman1"
  boxes = tmp_path / "boxes.txt"
  out = subprocess.run([sys.executable, "-m", "train.track", "--input", str(seq), "--max_frames", "6",
                        "--output", str(boxes)], cwd=REPO, env=_env(), capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  rows = np.loadtxt(boxes, delimiter=",", ndmin=2)
  assert rows.shape == (6, 4) and np.all(rows[:, 2:] > 0), rows
  assert "default (litert, fp16): tracked 6 frames" in out.stderr, out.stderr   # the fast path, named
