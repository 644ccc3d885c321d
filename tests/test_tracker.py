"""Re3Tracker / Re3MultiTracker: test-time rules, multi = single, bad input."""

import numpy as np
import pytest
import tensorflow as tf

from model import geometry as g
from model.tracker import Re3MultiTracker, Re3Tracker
from model.tracking_graphs import Re3Graph
from tests import tracking_utils as tu

STILL = (2.5, 2.5, 7.5, 7.5)


@pytest.fixture(scope="module")
def frames(shared_dir):
  return tu.otb_frames(shared_dir, "Deer", 8)


@pytest.fixture(scope="module")
def near_still_net():
  """Random tiny Re3 whose head is scaled down around the still label: boxes stay
  sane while every output still depends on the LSTM state."""
  net = tu.tiny_re3(seed=1)
  net.head.kernel.assign(net.head.kernel * 0.1)
  net.head.bias.assign(tf.constant(STILL, tf.float32))
  return net


@pytest.fixture(scope="module")
def graph(near_still_net):
  """One traced graph shared by the trackers below (tracing costs seconds)."""
  return Re3Graph(near_still_net)


def _reference(net, frames, box_xywh, period):
  """The Re3 test-time rules written out step by step (eager, NumPy boxes)."""
  def crop(img, box_xyxy):
    win = g.crop_window_xyxy(box_xyxy)[None].astype(np.float32)
    return g.crop_tf(img[None], win)

  box = g.xywh_to_xyxy(np.asarray(box_xywh, np.float64))
  c = crop(frames[0], box)
  _, state = net.step(c, c, net.zero_state(1))        # first frame fed twice, zero state
  initial = state
  out = []
  for t in range(1, len(frames)):
    win = g.crop_window_xyxy(box)
    labels, state = net.step(crop(frames[t - 1], box), crop(frames[t], box), state)
    box = g.label_to_box(labels.numpy()[0], win)
    if period and t % period == 0:                      # LSTM reset from the initial state
      c = crop(frames[t], box)
      _, state = net.step(c, c, initial)
    out.append(g.xyxy_to_xywh(box))
  return np.array(out)


def _run(tracker, frames, box):
  tracker.init(frames[0], box)
  return np.array([tracker.update(f)[1] for f in frames[1:]])


def test_follows_re3_test_time_rules_with_reset(near_still_net, graph, frames):
  imgs, gt = frames
  tracker = Re3Tracker(graph, reset_period=3)
  got = _run(tracker, imgs, gt[0])
  want = _reference(near_still_net, imgs, gt[0], period=3)
  np.testing.assert_allclose(got, want, atol=1e-3)
  # the reset matters: without it the boxes drift apart after the 3rd frame
  no_reset = _run(Re3Tracker(graph, reset_period=0), imgs, gt[0])
  np.testing.assert_allclose(no_reset[:3], got[:3], atol=1e-4)
  assert np.max(np.abs(no_reset[3:] - got[3:])) > 1e-2
  np.testing.assert_allclose(no_reset, _reference(near_still_net, imgs, gt[0], 0), atol=1e-3)


def test_still_label_keeps_box_and_shifted_label_moves_it():
  net = tu.tiny_re3(seed=2)
  frames = [np.full([120, 200, 3], 90, np.uint8)] * 4
  box = np.array([50.0, 40.0, 20.0, 10.0])
  tu.set_head(net, STILL)
  tracker = Re3Tracker.from_net(net)
  out = _run(tracker, frames, box)
  np.testing.assert_allclose(out, [box] * 3, atol=1e-3)
  # +1 in x1 and x2 = a tenth of the window (2 w) = 0.2 w to the right per frame
  tu.set_head(net, (3.5, 2.5, 8.5, 7.5))
  out = _run(tracker, frames, box)
  np.testing.assert_allclose(out[:, 0], box[0] + 0.2 * box[2] * np.arange(1, 4), atol=1e-3)
  np.testing.assert_allclose(out[:, 1:], [box[1:]] * 3, atol=1e-3)


def test_target_leaving_image():
  net = tu.tiny_re3(seed=3)
  tu.set_head(net, (5.5, 2.5, 10.5, 7.5))   # 0.6 w to the right per frame
  tracker = Re3Tracker.from_net(net)
  # (a session keeps one frame size: frames of another size are refused, see
  # tests/test_reliability_track.py)
  sizes = [(100, 160)] * 6
  tracker.init(np.zeros(sizes[0] + (3,), np.uint8), (100, 40, 20, 20))
  oks, xs = [], []
  for h, w in sizes[1:]:
    ok, box = tracker.update(np.full((h, w, 3), 50, np.uint8))
    oks.append(ok)
    xs.append(box[0])
  np.testing.assert_allclose(xs, 100 + 12 * np.arange(1, 6), atol=1e-3)
  # x = 112, 124, 136, 148, 160 (>= 160: off the frame)
  assert oks == [True, True, True, True, False]


def test_multi_tracker_equals_single_object(graph, frames):
  imgs, gt = frames
  box_a, box_b, box_c = gt[0], np.array([100.0, 150.0, 60.0, 80.0]), np.array([500.0, 200, 40, 40])
  multi = Re3MultiTracker(graph, reset_period=3)
  multi.add_many(imgs[0], {"a": box_a, "c": box_c})
  got = {"a": [], "b": [], "c": []}
  for t in range(1, len(imgs)):
    res = multi.update(imgs[t])
    for k, (ok, box) in res.items():
      got[k].append(box)
    if t == 2:
      multi.add("b", imgs[2], box_b)                  # joins on a later frame
    if t == 5:
      multi.remove("c")                               # leaves mid-sequence
  assert multi.target_ids == ["a", "b"]
  assert len(got["c"]) == 5 and len(got["b"]) == 5
  single = Re3Tracker(graph, reset_period=3)
  np.testing.assert_allclose(got["a"], _run(single, imgs, box_a), atol=1e-3)
  np.testing.assert_allclose(got["b"], _run(single, imgs[2:], box_b), atol=1e-3)
  np.testing.assert_allclose(got["c"], _run(single, imgs[:6], box_c), atol=1e-3)
  with pytest.raises(ValueError, match="already tracked"):
    multi.add("a", imgs[0], box_a)
  with pytest.raises(KeyError):
    multi.remove("zzz")
  multi.remove("a")
  multi.remove("b")
  assert multi.update(imgs[0]) == {}


def test_grayscale_and_rgba_frames_equal_rgb(graph, frames):
  imgs, gt = frames
  gray = [f[..., 1] for f in imgs[:3]]
  rgb = [np.repeat(x[..., None], 3, axis=2) for x in gray]
  rgba = [np.concatenate([x, np.full(x.shape[:2] + (1,), 255, np.uint8)], 2) for x in rgb]
  tracker = Re3Tracker(graph)
  want = _run(tracker, rgb, gt[0])
  np.testing.assert_array_equal(_run(tracker, gray, gt[0]), want)
  np.testing.assert_array_equal(_run(tracker, rgba, gt[0]), want)


@pytest.mark.parametrize("box, message", [
    ((10, 10, 0, 5), "zero or negative size"),
    ((10, 10, 5, -3), "zero or negative size"),
    ((np.nan, 10, 5, 5), "NaN"),
    ((500, 10, 5, 5), "wholly outside"),
    ((-20, -20, 10, 10), "wholly outside"),
    ((1, 2, 3), "4 values"),
])
def test_bad_boxes_are_clear_errors(graph, box, message):
  tracker = Re3Tracker(graph)
  with pytest.raises(ValueError, match=message):
    tracker.init(np.zeros([100, 200, 3], np.uint8), box)


def test_bad_images_and_call_order(graph):
  tracker = Re3Tracker(graph)
  with pytest.raises(RuntimeError, match="before init"):
    tracker.update(np.zeros([10, 10, 3], np.uint8))
  with pytest.raises(ValueError, match="uint8"):
    tracker.init(np.zeros([10, 10, 3], np.float32), (1, 1, 3, 3))
  with pytest.raises(ValueError, match="channels"):
    tracker.init(np.zeros([10, 10, 2], np.uint8), (1, 1, 3, 3))
  with pytest.raises(ValueError, match="reset_period"):
    Re3Tracker(graph, reset_period=-1)


def test_trackers_of_one_network_share_one_traced_graph(frames, tmp_path):
  """A tracker made per sequence reuses the graph traced for the first one
  (no tf.function retracing: TensorFlow warns after five)."""
  imgs, gt = frames
  net = tu.tiny_re3(seed=3)
  trackers = [Re3Tracker.from_net(net) for _ in range(3)]
  boxes = [_run(t, imgs[:3], gt[0]) for t in trackers]
  assert trackers[0].graph is trackers[1].graph is trackers[2].graph
  assert trackers[0].graph.init_batch.experimental_get_tracing_count() == 1
  assert trackers[0].graph.track_step_carry_batch.experimental_get_tracing_count() == 1
  np.testing.assert_array_equal(boxes[0], boxes[2])
  # the network's checkpoint does not gain the graph
  names = {n for n, _ in tf.train.list_variables(
      tf.train.Checkpoint(model=net).write(str(tmp_path / "ckpt")))}
  assert not any("tracking_graph" in n for n in names)


def test_loading_one_checkpoint_again_reuses_its_graph(tmp_path):
  net = tu.tiny_re3(seed=4)
  model_dir = tu.make_model_dir(tmp_path / "m", net, "re3")
  first = Re3Tracker.load(model_dir)
  assert Re3Tracker.load(model_dir).graph is first.graph
  # a newer checkpoint in the same model_dir is loaded anew
  tu.make_model_dir(tmp_path / "m", net, "re3")
  assert Re3Tracker.load(model_dir).graph is not first.graph
