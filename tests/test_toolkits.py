"""The official toolkits drive Re3 on real sequences from ../shared: the VOT
toolkit (vot-toolkit, through a workspace of train.toolkits.vot_workspace, the
README's `vot evaluate` / `vot analysis` commands, offline) and the GOT-10k
toolkit (got10k's OTB experiment on a local subset), each cross-checked
against train.evaluate on the same sequences.

Convention differences between the VOT toolkit and `train.evaluate --protocol
vot`, both running the same tracker on the same frames and ground truth:
  * overlap: the toolkit rounds both rectangles to whole pixels, rasterizes
    them and clips them to the image (`bounded`); train.evaluate uses the
    continuous IoU. Failures (overlap 0) and the frames scored are the same;
    accuracy differs by the rounding. The test recomputes the toolkit's
    accuracy from train.evaluate's boxes with the toolkit's own overlap
    function (exact match) and bounds the rounding difference.
  * repetitions: the workspace runs Re3 once per sequence (it is
    deterministic); the toolkit averages over repetitions, so one run is the
    same number.
  * burn-in (10) and the re-initialization 5 frames after a failure are the
    same in both; the initialization frame counts as burn-in frame 0 in both.
  * dataset average: the toolkit weights each sequence's accuracy by its
    length, train.evaluate averages sequences equally; per sequence the two
    agree (compared here).
"""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import requests
import tensorflow as tf
import yaml
from vot.region import Rectangle, calculate_overlap

from model import geometry as g
from model.tracker import Re3Tracker
from pipelines.images import load_image_rgb
from pipelines.readers import sequences as sequence_readers
from train.eval import experiment, metrics, protocols
from train.toolkits import got10k_toolkit, vot_cli, vot_experiment, vot_toolkit, vot_workspace
from tests import tracking_utils as tu

STILL = (2.5, 2.5, 7.5, 7.5)
VOT_FRAMES = 40


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """Tiny random Re3, head scaled down around the still label: boxes follow the
  image content a little and drift, so runs have failures and nonzero accuracy."""
  net = tu.tiny_re3(seed=1)
  net.head.kernel.assign(net.head.kernel * 0.1)
  net.head.bias.assign(tf.constant(STILL, tf.float32))
  return tu.make_model_dir(str(tmp_path_factory.mktemp("m") / "re3"), net, "re3", sub="")


def _otb(shared_dir):
  return str(shared_dir / "data" / "tracking" / "otb")


def _vot(shared_dir):
  return str(shared_dir / "data" / "tracking" / "vot")


def _env():
  env = dict(os.environ)
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env["PYTHONPATH"] = os.pathsep.join([repo] + [p for p in [env.get("PYTHONPATH")] if p])
  return env


def _run(cmd, cwd):
  out = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stdout + out.stderr
  return out.stdout + out.stderr


def _vot_command():
  exe = os.path.join(os.path.dirname(sys.executable), "vot")
  return [exe] if os.path.exists(exe) else [sys.executable, "-m", "vot"]


def _analysis(ws):
  """{tracker: {sequence: (accuracy, failures, length)}} from the newest analysis JSON."""
  path = sorted(glob.glob(os.path.join(ws, "analysis", "*.json")))[-1]
  with open(path) as f:
    report = json.load(f)
  trackers, seqs = list(report["trackers"]), list(report["sequences"])
  per_seq = report["results"][vot_workspace.EXPERIMENT]["results"][0]
  assert len(per_seq) == len(trackers) * len(seqs)
  out = {}
  for i, t in enumerate(trackers):
    out[t] = {s: tuple(per_seq[i * len(seqs) + j][k] for k in (0, 1, 3))
              for j, s in enumerate(seqs)}
  return out


def _vot_accuracy_of(boxes_xyxy, gt_xyxy, codes, size_wh, burn_in=protocols.VOT_BURN_IN):
  """The toolkit's accuracy for a train.evaluate run: its overlap function
  (rounded, rasterized, bounded rectangles) on the frames train.evaluate scores."""
  codes = np.asarray(codes)
  since, last = np.full(codes.shape, -1), None
  for i, c in enumerate(codes):
    last = i if c == metrics.CODE_INIT else last
    since[i] = -1 if last is None else i - last
  use = np.flatnonzero((codes == metrics.CODE_TRACK) & (since >= burn_in))
  if not use.size:
    return 0.0
  ov = [calculate_overlap(Rectangle(*g.xyxy_to_xywh(boxes_xyxy[i])),
                          Rectangle(*g.xyxy_to_xywh(gt_xyxy[i])), size_wh) for i in use]
  return float(np.mean(ov))


def _ours_vot(model_dir, spec, name, out_dir):
  perf = experiment.evaluate(model_dir, spec, "vot", out_dir, sequences=[name],
                             max_frames=VOT_FRAMES, progress=False)
  seq = sequence_readers.read_sequences(spec.split(":")[0], spec.split(":", 1)[1])
  seq = [s for s in seq if s.name == name][0]
  boxes = np.loadtxt(os.path.join(out_dir, "boxes", "re3", f"{name}.txt"), delimiter=",")
  codes = np.loadtxt(os.path.join(out_dir, "boxes", "re3", f"{name}_codes.txt"), dtype=int)
  return perf["trackers"]["re3"]["per_sequence"][name], g.xywh_to_xyxy(boxes), codes, seq


# ---------------------------------------------------------------------------
# VOT workspace
# ---------------------------------------------------------------------------


def test_workspace_layout_from_otb_and_vot_folders(shared_dir, tmp_path):
  ws = str(tmp_path / "ws")
  info = vot_workspace.write_workspace(
      [f"otb:{_otb(shared_dir)}", f"vot:{_vot(shared_dir)}"], ws, model="default",
      sequences=["Deer", "bag"], max_frames=12, tracker_protocols=("python", "traxpython"))
  assert info["sequences"] == ["Deer", "bag"] and info["frames"] == {"Deer": 12, "bag": 12}
  assert info["trackers"] == {"python": "re3", "traxpython": "re3_trax"}
  with open(os.path.join(ws, "sequences", "list.txt")) as f:
    assert f.read().split() == ["Deer", "bag"]
  for kind, root, name in (("otb", _otb(shared_dir), "Deer"), ("vot", _vot(shared_dir), "bag")):
    src = [s for s in sequence_readers.read_sequences(kind, root) if s.name == name][0]
    d = os.path.join(ws, "sequences", name)
    gt = np.loadtxt(os.path.join(d, "groundtruth.txt"), delimiter=",")
    np.testing.assert_array_equal(gt, g.xyxy_to_xywh(src.boxes_xyxy[:12]))   # exact, 0-based
    frames = sorted(os.listdir(os.path.join(d, "color")))
    assert frames[0] == "00000001.jpg" and len(frames) == 12
    with open(src.frame_paths[11], "rb") as a, open(os.path.join(d, "color", frames[11]), "rb") as b:
      assert a.read() == b.read()                    # copied, not re-encoded
    with open(os.path.join(d, "sequence")) as f:
      assert "channels.color=color/%08d.jpg" in f.read()
  with open(os.path.join(ws, "config.yaml")) as f:
    assert yaml.safe_load(f) == {"registry": ["./trackers.ini"], "stack": "stack.yaml"}
  with open(os.path.join(ws, "stack.yaml")) as f:
    stack = yaml.safe_load(f)
  assert "dataset" not in stack                      # never downloads
  exp = stack["experiments"][vot_workspace.EXPERIMENT]
  assert exp["type"] == vot_experiment.CLASS_PATH and exp["skip_initialize"] == 5
  with open(os.path.join(ws, "trackers.ini")) as f:
    ini = f.read()
  assert "command = train.toolkits.vot_toolkit:Re3VOTTracker" in ini
  assert "arg_model = default" in ini and "env_RE3_VOT_MODEL = default" in ini


def test_workspace_errors_name_the_problem(shared_dir, tmp_path):
  ws = str(tmp_path / "ws")
  with pytest.raises(ValueError, match="lasot"):
    vot_workspace.write_workspace([f"lasot:{_otb(shared_dir)}"], ws)
  with pytest.raises(ValueError, match="does not exist"):
    vot_workspace.write_workspace([f"otb:{tmp_path / 'nowhere'}"], ws)
  with pytest.raises(ValueError, match="Nope"):
    vot_workspace.write_workspace([f"otb:{_otb(shared_dir)}"], ws, sequences=["Nope"])
  with pytest.raises(ValueError, match="--protocols"):
    vot_workspace.write_workspace([f"otb:{_otb(shared_dir)}"], ws, sequences=["Deer"],
                                  tracker_protocols=("trax",))
  seq = tmp_path / "otb" / "Gap"
  (seq / "img").mkdir(parents=True)
  src = sequence_readers.read_sequence("otb", os.path.join(_otb(shared_dir), "Deer"))
  for i in range(3):
    with open(src.frame_paths[i], "rb") as a, open(seq / "img" / f"{i + 1:04d}.jpg", "wb") as b:
      b.write(a.read())
  (seq / "groundtruth_rect.txt").write_text("10,10,20,20\n0,0,0,0\n10,10,20,20\n")
  with pytest.raises(ValueError, match="'Gap': frame 2 .* no valid ground-truth box"):
    vot_workspace.write_workspace([f"otb:{tmp_path / 'otb'}"], ws)


def test_trackers_pass_the_model_name_through(monkeypatch):
  """'default' (or any name) reaches Re3Tracker.load unchanged."""
  seen = []
  monkeypatch.setattr(Re3Tracker, "load", classmethod(lambda cls, m, r=32: seen.append((m, r))))
  vot_toolkit.Re3VOTTracker("default", "0")
  got10k_toolkit.Re3GOT10kTracker("default")
  assert seen == [("default", 0), ("default", 32)]
  assert vot_toolkit.region_to_xywh(((1.0, 2.0, 3.0, 4.0), {})).tolist() == [1, 2, 3, 4]
  poly = [(1.0, 2.0), (5.0, 1.0), (6.0, 7.0), (0.5, 6.0)]
  assert vot_toolkit.region_to_xywh((poly, {})).tolist() == [0.5, 1.0, 5.5, 6.0]
  with pytest.raises(ValueError, match="reset_period"):
    vot_toolkit.Re3VOTTracker("default", "often")


@pytest.mark.slow
def test_vot_toolkit_end_to_end_matches_evaluate(shared_dir, model_dir, tmp_path, monkeypatch):
  """README commands, offline: write the workspace, `vot evaluate`, `vot
  analysis`; per sequence the toolkit's failures equal train.evaluate's drops
  and its accuracy equals the toolkit's overlap on train.evaluate's boxes."""
  ws = str(tmp_path / "ws")
  _run([sys.executable, "-m", "train.toolkits.vot_workspace", f"--dataset=otb:{_otb(shared_dir)}",
        f"--dataset=vot:{_vot(shared_dir)}", "--sequences=Deer,bag",
        f"--max_frames={VOT_FRAMES}", f"--model={model_dir}", f"--workspace={ws}"], str(tmp_path))
  log = _run(_vot_command() + ["evaluate", "--workspace", ws, "re3"], str(tmp_path))
  assert "Evaluation concluded" in log, log
  # analysis through the offline entry point: the update check is never made
  asked = []
  monkeypatch.setattr(requests, "get", lambda *a, **k: asked.append(a) or 1 / 0)
  monkeypatch.chdir(tmp_path)
  assert vot_cli.main(["analysis", "--workspace", ws, "--format", "json", "re3"]) == 0
  assert asked == []
  toolkit = _analysis(ws)["re3"]
  specs = {"Deer": f"otb:{_otb(shared_dir)}", "bag": f"vot:{_vot(shared_dir)}"}
  total_drops = 0
  for name, spec in specs.items():
    ours, boxes, codes, seq = _ours_vot(model_dir, spec, name, str(tmp_path / f"ours_{name}"))
    acc, failures, length = toolkit[name]
    assert length == VOT_FRAMES == ours["frames"]
    assert failures == ours["drops"], (name, failures, ours)
    h, w = load_image_rgb(seq.frame_paths[0]).shape[:2]
    assert acc == pytest.approx(_vot_accuracy_of(boxes, seq.boxes_xyxy[:VOT_FRAMES], codes,
                                                 (w, h)), abs=1e-6), name
    ours_acc = ours["accuracy"] if np.isfinite(ours["accuracy"]) else 0.0
    assert abs(acc - ours_acc) < 0.03, (name, acc, ours_acc)      # pixel rounding, image clipping
    total_drops += failures
  assert total_drops > 0                             # the check covers re-initializations


@pytest.mark.slow
def test_vot_toolkit_traxpython_protocol(shared_dir, model_dir, tmp_path):
  """The traxpython tracker gives the python tracker's trajectory (one sequence)."""
  ws = str(tmp_path / "ws")
  vot_workspace.write_workspace([f"vot:{_vot(shared_dir)}"], ws, model=model_dir,
                                max_frames=15, tracker_protocols=("traxpython",))
  log = _run(_vot_command() + ["evaluate", "--workspace", ws, "re3"], str(tmp_path))
  assert "Evaluation concluded" in log, log
  _run(_vot_command() + ["analysis", "--workspace", ws, "--format", "json", "re3"], str(tmp_path))
  acc, failures, length = _analysis(ws)["re3"]["bag"]
  perf = experiment.evaluate(model_dir, f"vot:{_vot(shared_dir)}", "vot", str(tmp_path / "ours"),
                             max_frames=15, progress=False)
  assert length == 15 and failures == perf["trackers"]["re3"]["per_sequence"]["bag"]["drops"]
  assert acc == pytest.approx(perf["trackers"]["re3"]["per_sequence"]["bag"]["accuracy"], abs=0.03)


# ---------------------------------------------------------------------------
# GOT-10k toolkit
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_got10k_otb_experiment_matches_evaluate(shared_dir, model_dir, tmp_path):
  """got10k's ExperimentOTB (runner and report) on a local subset, no download:
  success and precision equal `train.evaluate --protocol ope` within 1e-3."""
  names = ["Deer", "Freeman1"]
  perf = got10k_toolkit.run_otb(model_dir, _otb(shared_dir), str(tmp_path / "got"), names,
                                max_frames=40)["Re3"]
  ours = experiment.evaluate(model_dir, f"otb:{_otb(shared_dir)}", "ope", str(tmp_path / "ours"),
                             sequences=names, max_frames=40, progress=False)["trackers"]["re3"]
  for name in names:
    s, o = perf["seq_wise"][name], ours["per_sequence"][name]
    assert s["success_score"] == pytest.approx(o["success_auc"], abs=1e-3), name
    assert s["precision_score"] == pytest.approx(o["precision_20px"], abs=1e-3), name
  assert perf["overall"]["success_score"] == pytest.approx(ours["summary"]["success_auc"], abs=1e-3)
  assert perf["overall"]["precision_score"] == pytest.approx(ours["summary"]["precision_20px"],
                                                             abs=1e-3)
  assert 0.0 < perf["overall"]["success_score"] < 1.0   # a check on real, imperfect tracks
  # the toolkit's result files are 1-based like its dataset: ours + 1 in x and y
  got = np.loadtxt(tmp_path / "got" / "results" / "OTB2015" / "Re3" / "Deer.txt", delimiter=",")
  mine = np.loadtxt(tmp_path / "ours" / "boxes" / "re3" / "Deer.txt", delimiter=",")
  np.testing.assert_allclose(got[1:], mine[1:] + [1, 1, 0, 0], atol=0.01)


def test_got10k_local_experiment_errors(shared_dir, tmp_path):
  with pytest.raises(ValueError, match="Nope"):
    got10k_toolkit.LocalExperimentOTB(_otb(shared_dir), ["Nope"])
  with pytest.raises(ValueError, match="does not exist"):
    got10k_toolkit.LocalExperimentOTB(str(tmp_path / "none"))
  exp = got10k_toolkit.LocalExperimentOTB(_otb(shared_dir), ["Deer"], max_frames=5)
  files, anno = exp.dataset[0]
  assert len(files) == 5 and anno.shape == (5, 4) and exp.dataset.seq_names == ["Deer"]
