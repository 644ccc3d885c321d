"""NanoTrack v2's backbone as a Re3 tower: the ONNX importer against
onnxruntime on real crops, the importer's checks, tower shapes and parameter
counts, and Re3 with the template memory (model.template: xcorr): step ==
unroll with the template on and off, the template carried unchanged in the
state, .keras round trip, and the tracker API keeping it per target."""

import pathlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tensorflow as tf
import tf_keras as keras
from onnx import numpy_helper
from PIL import Image

from configs.base import ConfigError
from configs.model import Re3ModelConfig
from model import geometry
from model.re3 import build_re3, count_parameters, state_parts, template_geometry
from model.towers import nanotrack
from model.towers.nanotrack import NanoTrackImportError, NanoTrackTower, load_tower_weights
from model.tracker import Re3MultiTracker, Re3Tracker
from pipelines.readers.sequences import read_sequences

REPO = pathlib.Path(__file__).resolve().parents[1]
PEERS = REPO.parent / "shared" / "models" / "peers"
BACKBONE = PEERS / "nanotrack_v2" / "nanotrack_backbone_sim.onnx"


def _cfg(**kw):
  base = dict(tower="nanotrack_v2", crop_size=128, tower_blocks=8, tower_taps=(2,), tap_filters=(8,),
              fc6_units=32, lstm_units=32, template="xcorr")
  base.update(kw)
  cfg = Re3ModelConfig(**base)
  cfg.validate()
  return cfg


def _real_crops(shared_dir, size, n=4):
  """Crops of real OTB frames at Re3's 2x window around the first ground-truth box."""
  crops = []
  for seq in read_sequences("otb", str(shared_dir / "data" / "tracking" / "otb"))[:n]:
    img = np.asarray(Image.open(seq.frame_paths[0]).convert("RGB"))
    window = geometry.crop_window_xyxy(seq.boxes_xyxy[0])
    crop = geometry.crop_tf(tf.constant(img[None]), tf.constant(window[None], tf.float32),
                            size=size)
    crops.append(crop.numpy()[0])
  return np.stack(crops).astype(np.float32)


@pytest.mark.parametrize("size", [255, 128, 127])
def test_keras_tower_equals_onnxruntime_on_real_crops(shared_dir, size):
  crops = _real_crops(shared_dir, size)
  tower = NanoTrackTower(8, ())
  tower.build((None, size, size, 3))
  loaded = load_tower_weights(tower, str(BACKBONE))
  assert len(loaded) == 36                         # every conv and fc of the graph
  ours = tower(crops)["block7"].numpy()
  model = onnx.load(str(BACKBONE))
  if size != 255:                                  # the file fixes 255: free the spatial dims
    for d in list(model.graph.input[0].type.tensor_type.shape.dim)[2:]:
      d.dim_param = "s"
    for d in list(model.graph.output[0].type.tensor_type.shape.dim)[2:]:
      d.dim_param = "o"
  sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
  bgr = np.ascontiguousarray(crops[..., ::-1].transpose(0, 3, 1, 2))   # the network's BGR input
  ref = np.concatenate([sess.run(None, {"input": bgr[i:i + 1]})[0] for i in range(len(bgr))])
  assert ours.shape == ref.transpose(0, 2, 3, 1).shape == (len(crops),) + nanotrack.tower_shapes(size)["block7"]
  # float32 sums in another order (oneDNN vs onnxruntime): within 1e-4 of the
  # features' range (|ref| up to ~30 here; a wrong layer or padding is off by > 0.1)
  scale = np.abs(ref).max()
  assert scale > 1.0                               # real, non-trivial features
  np.testing.assert_allclose(ours, ref.transpose(0, 2, 3, 1), atol=1e-4 * scale, rtol=0)


def test_tower_shapes_and_taps():
  sh = nanotrack.tower_shapes(255)
  assert sh["block7"] == (16, 16, 48) and sh["block2"] == (32, 32, 24)
  assert nanotrack.tower_shapes(127)["block7"] == (8, 8, 48)
  tower = NanoTrackTower(6, (2, 4))
  tower.build((None, 128, 128, 3))
  out = tower(tf.zeros([1, 128, 128, 3]))
  assert {k: tuple(v.shape[1:]) for k, v in out.items()} == {
      "block2": (16, 16, 24), "block4": (8, 8, 40), "block5": (8, 8, 40)}
  with pytest.raises(ValueError, match="blocks must be in 1..8"):
    NanoTrackTower(9)
  with pytest.raises(ValueError, match="taps"):
    NanoTrackTower(4, (5,))


def test_parameter_count_matches_built_model():
  for template in ("none", "xcorr"):
    cfg = _cfg(template=template)
    net = build_re3(cfg)
    assert count_parameters(cfg)["total"] == net.count_params()
  # the ONNX file's 188,238 initializer values less its 30 Reshape shape constants
  assert count_parameters(_cfg())["tower"] == 188208


def _broken_copy(tmp_path, mutate, source=BACKBONE):
  """A copy of an ONNX file with `mutate(graph)` applied."""
  model = onnx.load(str(source))
  mutate(model.graph)
  path = tmp_path / "broken.onnx"
  onnx.save(model, str(path))
  return str(path)


def test_importer_names_a_missing_or_misshaped_tensor_and_assigns_nothing(tmp_path):
  tower = NanoTrackTower(8, ())
  tower.build((None, 128, 128, 3))
  before = [v.numpy().copy() for v in tower.weights]

  def drop_se(graph):
    keep = [t for t in graph.initializer if t.name != "features.5.conv.5.fc.2.weight"]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    graph.input.add().name = "features.5.conv.5.fc.2.weight"

  with pytest.raises(NanoTrackImportError, match="features.6.conv.5.fc.2|not an initializer"):
    load_tower_weights(tower, _broken_copy(tmp_path, drop_se))

  def reshape_project(graph):
    node = next(n for n in graph.node if "/features.7/conv/conv.7/" in n.output[0])
    init = next(t for t in graph.initializer if t.name == node.input[1])
    arr = numpy_helper.to_array(init)[:40]
    init.CopyFrom(numpy_helper.from_array(arr, init.name))

  with pytest.raises(NanoTrackImportError, match=r"features.7.conv.7/kernel has shape .*block6/project"):
    load_tower_weights(tower, _broken_copy(tmp_path, reshape_project))
  for b, v in zip(before, tower.weights):
    np.testing.assert_array_equal(b, v.numpy())
  missing = tmp_path / "none.onnx"
  with pytest.raises(NanoTrackImportError, match=str(missing)):
    load_tower_weights(tower, str(missing))
  junk = tmp_path / "junk.onnx"
  junk.write_bytes(b"not a model")
  with pytest.raises(NanoTrackImportError, match="junk.onnx"):
    load_tower_weights(tower, str(junk))


def test_find_weights_names_the_missing_file(tmp_path, monkeypatch):
  monkeypatch.setenv("RE3_PEER_MODELS", str(tmp_path))
  with pytest.raises(NanoTrackImportError, match=str(tmp_path / "nanotrack_v2" / "nanotrack_backbone_sim.onnx")):
    nanotrack.find_weights()
  assert nanotrack.find_weights(str(PEERS)) == str(BACKBONE)


def test_template_config_errors():
  with pytest.raises(ConfigError, match="model.template must be one of"):
    _cfg(template="dcorr")
  with pytest.raises(ConfigError, match="xcorr needs a pretrained tower"):
    Re3ModelConfig(template="xcorr").validate()


@pytest.mark.parametrize("template", ["none", "xcorr"])
def test_step_equals_unroll_with_template_on_and_off(template):
  net = build_re3(_cfg(template=template))
  rng = np.random.default_rng(0)
  prev = rng.uniform(0, 255, (2, 3, 128, 128, 3)).astype(np.float32)
  curr = rng.uniform(0, 255, (2, 3, 128, 128, 3)).astype(np.float32)
  start = net.zero_state(2)                         # template from step 0's prev crop
  assert len(start) == state_parts(net.cfg) == (4 + 16 * 48 // 32 if template == "xcorr" else 4)
  labels, final = net.unroll(prev, curr, start)
  state, steps = start, []
  for t in range(3):
    out, state = net.step(prev[:, t], curr[:, t], state)
    steps.append(out)
  np.testing.assert_allclose(np.stack(steps, 1), labels.numpy(), atol=1e-5)
  for a, b in zip(final, state):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
  if template == "xcorr":                           # the template rides unchanged
    np.testing.assert_allclose(net.state_template(final).numpy(),
                               net.make_template(prev[:, 0]).numpy(), atol=1e-6)
    labels2, _ = net.unroll(prev, curr, net.init_state(prev[:, 0]))
    np.testing.assert_allclose(labels2.numpy(), labels.numpy(), atol=1e-5)


def test_template_score_is_high_on_the_target_and_low_elsewhere(shared_dir):
  """The score of real crops: the init crop against itself scores 1 (every
  template cell finds itself), other sequences' crops score lower."""
  net = build_re3(_cfg())
  load_tower_weights(net, str(BACKBONE))
  crops = _real_crops(shared_dir, 128, n=4)
  state = net.init_state(crops)
  _, _, same = net.step_scored(crops, crops, state)
  np.testing.assert_allclose(same.numpy(), 1.0, atol=1e-4)
  _, _, other = net.step_scored(crops, np.roll(crops, 1, axis=0), state)
  assert np.all(other.numpy() < same.numpy() - 0.05)
  _, _, none = build_re3(_cfg(template="none")).step_scored(crops, crops, net.zero_state(4)[:4])
  assert np.isnan(none.numpy()).all()


def test_template_changes_the_output_and_is_the_target_center():
  cfg = _cfg()
  net = build_re3(cfg)
  load_tower_weights(net, str(BACKBONE))
  rng = np.random.default_rng(1)
  a = rng.uniform(0, 255, (1, 128, 128, 3)).astype(np.float32)
  b = rng.uniform(0, 255, (1, 128, 128, 3)).astype(np.float32)
  g = template_geometry(cfg)
  tmpl = net.make_template(a).numpy()
  assert tmpl.shape == (1, g["cells"], g["channels"]) == (1, 16, 48)
  np.testing.assert_allclose(np.linalg.norm(tmpl, axis=-1), 1.0, atol=1e-4)
  last = net.tower(a)["block7"].numpy()[0, 2:6, 2:6].reshape(16, 48)
  np.testing.assert_allclose(tmpl[0], last / np.linalg.norm(last, axis=-1, keepdims=True), atol=1e-5)
  round_trip = net.state_template(net.zero_state(1)[:4] + net.template_state(tmpl)).numpy()
  np.testing.assert_array_equal(round_trip, tmpl)
  out_a, _ = net.step(b, b, net.init_state(a))
  out_b, _ = net.step(b, b, net.init_state(b))
  assert np.abs(out_a.numpy() - out_b.numpy()).max() > 1e-4
  # a zero template (a target's first step) is taken from the step's previous crop
  _, st = net.step(a, b, net.zero_state(1))
  np.testing.assert_allclose(net.state_template(st).numpy(), tmpl, atol=1e-6)
  _, st2 = net.step(b, b, st)                      # and then kept
  np.testing.assert_array_equal(net.state_template(st2).numpy(), net.state_template(st).numpy())


def test_keras_round_trip_with_template(tmp_path):
  net = build_re3(_cfg())
  path = tmp_path / "m.keras"
  net.save(path)
  back = keras.models.load_model(path, safe_mode=True)
  crops = np.random.default_rng(2).uniform(0, 255, (1, 128, 128, 3)).astype(np.float32)
  a, _ = net.step(crops, crops, net.init_state(crops))
  b, _ = back.step(crops, crops, back.init_state(crops))
  np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_trackers_keep_a_template_per_target():
  net = build_re3(_cfg())
  load_tower_weights(net, str(BACKBONE))
  rng = np.random.default_rng(3)
  frames = [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(4)]
  single = Re3Tracker.from_net(net)
  single.init(frames[0], (40, 30, 30, 24))
  boxes = [single.update(f)[1] for f in frames[1:]]
  multi = Re3MultiTracker.from_net(net)
  multi.add("a", frames[0], (40, 30, 30, 24))
  multi.add("b", frames[0], (90, 60, 40, 30))
  for f, want in zip(frames[1:], boxes):
    got = multi.update(f)
    np.testing.assert_allclose(got["a"][1], want, atol=1e-3)
  np.testing.assert_allclose(multi.score("a"), single.tracking_score, atol=1e-4)  # batch 2 vs 1
  assert set(multi.scores()) == {"a", "b"}
  assert tuple(multi._state.shape) == (2, 4 + 16 * 48 // 32, 32)
  t = template_geometry(net.cfg)
  carried = multi._state.numpy()[:, 4:].reshape(2, -1)[:, :t["cells"] * t["channels"]]
  assert np.abs(carried[0] - carried[1]).max() > 1e-3     # each target its own template


def test_exports_carry_the_template_state(shared_dir, tmp_path):
  """SavedModel, LiteRT and ONNX trackers of a template net track as the
  in-process tracker does (the template rides in the exported state)."""
  from model import export, export_onnx, export_tflite
  from tests import tracking_utils as tu
  net = build_re3(_cfg(crop_size=64, fc6_units=16, lstm_units=16))
  load_tower_weights(net, str(BACKBONE))
  net.head.kernel.assign(net.head.kernel * 0.1)
  net.head.bias.assign(tf.constant([2.5, 2.5, 7.5, 7.5]))
  imgs, gt = tu.otb_frames(shared_dir, "Deer", 6)

  def track(tracker):
    tracker.init(imgs[0], gt[0])
    assert np.isnan(tracker.tracking_score)         # no score before the first update
    boxes, scores = [], []
    for f in imgs[1:]:
      boxes.append(tracker.update(f)[1])
      scores.append(tracker.tracking_score)
    return np.array(boxes), np.array(scores)

  ref, ref_scores = track(Re3Tracker.from_net(net, reset_period=3))
  assert np.all((ref_scores > 0.3) & (ref_scores <= 1.0))   # the target is in view
  parts = state_parts(net.cfg)
  saved = export.export_re3(net, str(tmp_path / "saved"))
  loaded = Re3Tracker.load(saved, reset_period=3)
  assert loaded._multi._parts == parts == 4 + 4 * 48 // 16
  boxes, scores = track(loaded)
  np.testing.assert_allclose(boxes, ref, atol=1e-3)
  np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
  for path in (export_tflite.write_tflite(net, str(tmp_path / "step.tflite")),
               export_onnx.write_onnx(net, str(tmp_path / "step.onnx"))):
    boxes, scores = track(Re3Tracker.load(path, reset_period=3))
    np.testing.assert_allclose(boxes, ref, atol=0.05, err_msg=path)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-3, err_msg=path)
