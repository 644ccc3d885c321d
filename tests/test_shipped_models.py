"""Shipped models by name: every folder of model/pretrained loads by its name,
"default" is one of them, and a folder that names a faster runtime
(ship_default --runtime litert) runs it when loaded by name (converted once
into the cache) while its folder path still gives the TensorFlow graph, with
the same boxes."""

import numpy as np
import pytest

from model import loading
from model.tracker import Re3Tracker
from tests import tracking_utils as tu
from train.experiments import ship_default


def test_every_shipped_model_resolves_by_name():
  names = loading.shipped_models()
  assert loading.DEFAULT_SHIPPED in names
  for name in names:
    assert loading.resolve_model_path(name) == str(loading.PRETRAINED_DIR) + "/" + name
  assert loading.resolve_model_path("default") == loading.DEFAULT_MODEL_DIR
  assert loading.resolve_model_path("runs/not_shipped") == "runs/not_shipped"


def test_a_shipped_fast_runtime_is_used_by_name_only(shared_dir, tmp_path, monkeypatch):
  pytest.importorskip("ai_edge_litert", reason="LiteRT runtime (extra litert) not installed")
  net = tu.tiny_re3(seed=5)
  net.head.kernel.assign(net.head.kernel * 0.1)
  model_dir = tu.make_model_dir(str(tmp_path / "train"), net, "re3", sub="")
  pretrained = tmp_path / "pretrained"
  ship_default.ship(model_dir, str(pretrained / "tiny_fast"), runtime="litert")
  ship_default.ship(model_dir, str(pretrained / "tiny_tf"))
  monkeypatch.setattr(loading, "PRETRAINED_DIR", str(pretrained))
  monkeypatch.setenv("RE3_CACHE_DIR", str(tmp_path / "cache"))
  monkeypatch.setattr(loading, "DEFAULT_SHIPPED", "tiny_fast")
  assert loading.shipped_models() == ["tiny_fast", "tiny_tf"]
  imgs, gt = tu.otb_frames(shared_dir, "Deer", 5)

  def track(tracker):
    tracker.init(imgs[0], gt[0])
    return np.array([tracker.update(f)[1] for f in imgs[1:]])

  fast = Re3Tracker.load("default")
  assert (fast.runtime, fast.precision) == ("litert", "float32")   # --runtime litert
  by_path = Re3Tracker.load(str(pretrained / "tiny_fast"))
  assert by_path.runtime == "tensorflow"
  assert Re3Tracker.load("tiny_fast", precision="float32").runtime == "tensorflow"
  assert Re3Tracker.load("tiny_tf").runtime == "tensorflow"
  np.testing.assert_allclose(track(fast), track(by_path), atol=0.05)
  built = list((tmp_path / "cache" / "runtimes").glob("re3-*-none.tflite"))
  assert len(built) == 1                         # converted once, then reused
  stamp = built[0].stat().st_mtime_ns
  Re3Tracker.load("tiny_fast")
  assert built[0].stat().st_mtime_ns == stamp
  (pretrained / "tiny_fast" / "runtime.yaml").write_text("runtime: litert\n")
  with pytest.raises(ValueError, match=r"runtime.yaml: needs a 'quantize' entry"):
    Re3Tracker.load("tiny_fast")
