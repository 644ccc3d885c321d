"""End-to-end test of the main job (train.quickstart) at a tiny size.

The whole path runs for real: build_synthetic on the embedded default, a few
training steps of a tiny Re3 (the smoke config's model, one curriculum stage),
the SavedModel export, one-pass tracking of a generated sequence (no OTB
folder: the fresh-machine path) next to the stay-put tracker, the report
(metrics, success plot, GIF). Sizes are cut so it fits the slow-test budget
on 2 cores; the checks are on what a user gets, not on tracking quality.
"""

import json
import os
import re

import numpy as np
import pytest

from train import quickstart

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_TRAINING = [
    "trainer.stages=[{unroll: 2, batch_size: 2}]",
    "trainer.checkpoint_every=3",
    "trainer.log_every=1",
    "data.canvas_size=[96, 96]",
    "data.shuffle_buffer=4",
    "data.cycle_length=1",
]


def test_quickstart_end_to_end_on_generated_sequence(tmp_path, capsys, shared_dir):
  out = tmp_path / "qs"
  summary = quickstart.run(
      str(out), config=os.path.join(REPO, "configs", "re3_smoke.yaml"),
      overrides=TINY_TRAINING, num_tracks=4, track_length=6, canvas_size=96, train_steps=3,
      otb_dir=str(tmp_path / "no_otb_here"), generated_length=8, compare=("stay", "nano", "vit"),
      progress=False, peer_models=str(shared_dir / "models" / "peers"))
  printed = capsys.readouterr().out

  # Progress for each of the five stages, and the outputs listed at the end.
  for k, name in enumerate(quickstart.STAGES, start=1):
    assert f"[{k}/5] {name}:" in printed
    assert f"[{k}/5] {name} done in" in printed
  assert "Outputs:" in printed
  paths = summary["paths"]
  for key in ("gif", "success", "performance", "summary", "export_dir", "model_dir"):
    assert paths[key] in printed, key
    assert os.path.exists(paths[key]), key

  # Data: the synthetic records and the generated demo sequence in OTB layout.
  info = json.loads((out / "data" / "synthetic" / "dataset_info.json").read_text())
  assert "synthetic" in json.dumps(info)
  seq_dir = out / "data" / "demo_sequence" / quickstart.GENERATED_NAME
  gt = np.loadtxt(seq_dir / "groundtruth_rect.txt", delimiter=",", ndmin=2)
  assert gt.shape == (8, 4) and len(os.listdir(seq_dir / "img")) == 8
  assert np.all(gt[:, 2:] > 0) and np.all(gt[:, :2] >= 1.0)  # 1-based x, y; positive size

  # Training reached its last step; the export is a SavedModel.
  assert summary["sequence"] == quickstart.GENERATED_NAME
  assert os.path.exists(os.path.join(paths["export_dir"], "saved_model.pb"))
  assert any(n.startswith("ckpt-3") for n in os.listdir(paths["model_dir"]))

  # Tracking: every frame scored for Re3 and the comparison trackers, peers included.
  perf = json.loads(open(paths["performance"]).read())
  assert set(perf["trackers"]) == {"re3", "stay", "nano", "vit"}
  for name in ("re3", "stay", "nano", "vit"):
    assert re.search(rf"^  {name} +success AUC [\d.]+ ", printed, re.M), name
  assert perf["dataset"]["frames"] == 8
  for r in perf["trackers"].values():
    assert 0.0 <= r["summary"]["success_auc"] <= 1.0
    assert r["speed"]["fps"] > 0
  boxes = np.loadtxt(os.path.join(paths["eval_dir"], "boxes", "re3",
                                  f"{quickstart.GENERATED_NAME}.txt"), delimiter=",")
  assert boxes.shape == (8, 4) and np.all(np.isfinite(boxes))
  np.testing.assert_allclose(boxes[0], gt[0] - [1, 1, 0, 0], atol=0.01)  # starts at the truth

  # The GIF has one frame per tracked frame; the summary JSON has the numbers.
  from PIL import Image
  with Image.open(paths["gif"]) as gif:
    assert gif.n_frames == 8
  saved = json.loads(open(paths["summary"]).read())
  assert saved["trackers"]["re3"]["summary"]["success_auc"] == pytest.approx(
      perf["trackers"]["re3"]["summary"]["success_auc"])
  assert set(saved["times_s"]) == set(quickstart.STAGES)


def test_quickstart_compares_with_the_peers_when_their_files_are_found(shared_dir, tmp_path,
                                                                        capsys, monkeypatch):
  assert {"nano", "vit"} <= set(quickstart.COMPARE)
  peer_dir = str(shared_dir / "models" / "peers")
  monkeypatch.setenv("RE3_PEER_MODELS", peer_dir)
  assert quickstart.default_peer_models() == peer_dir
  assert quickstart.available_trackers(["stay", "nano", "vit"], peer_dir) == ["stay", "nano", "vit"]
  # No files: the peers are left out with a note naming what is missing; the rest runs.
  assert quickstart.available_trackers(["stay", "nano", "vit"], str(tmp_path)) == ["stay"]
  printed = capsys.readouterr().out
  assert (f"note: comparison tracker 'nano' left out (peer tracker 'nano' (NanoTrack v2): "
          f"missing file {tmp_path}/nanotrack_v2/nanotrack_backbone_sim.onnx") in printed
  assert "note: comparison tracker 'vit' left out" in printed
  monkeypatch.delenv("RE3_PEER_MODELS")
  monkeypatch.setattr(quickstart, "DEFAULT_PEER_MODELS", str(tmp_path / "none"))
  assert quickstart.default_peer_models() is None


def test_resumed_training_is_not_reported_as_a_nan_loss():
  assert quickstart.train_note({"step": 1200, "loss": 0.25}, "m") == "step 1200, final loss 0.250"
  note = quickstart.train_note({"step": 1200, "loss": float("nan")}, "runs/q/model")
  assert "nan" not in note and "already trained" in note and "runs/q/model" in note
  assert "already trained" in quickstart.train_note({"step": 1200}, "m")


def test_a_long_stage_is_not_silent():
  import io  # pylint: disable=g-import-not-at-top
  import threading  # pylint: disable=g-import-not-at-top
  out = io.StringIO()
  beat = threading.Event()
  with quickstart.still_running("the job", every=0.01, out=out):
    for _ in range(3000):
      if "still running" in out.getvalue():
        break
      beat.wait(0.01)
  assert out.getvalue().startswith("  ... the job still running (")
