"""Training the RL tracking agent (Zhang et al., "Deep Reinforcement Learning
for Visual Object Tracking in Videos"), Algorithm 1, as a trainer Task.

Each training step takes the next T frames (rl.window, paper T = 10) of a
batch of videos; the first window of a video starts from the zero LSTM state,
later windows continue from the state the previous window ended in (held
constant: truncated backpropagation), as "move on to the next T frames" of
Algorithm 1 reads. Per window:

  mu_1..T = agent(frames)                             (lines 4-7)
  l^i_t ~ N(mu_t, sigma^2 I), i = 1..N episodes        (line 8, paper N = 5)
  r^i_t = -mean|l^i_t - g_t| - max|l^i_t - g_t|        (line 9, eq. 4)
  R^i_t = cumulative reward (rl.return_mode, default: from t to the window end)
  b_t = mean_i R^i_t                                   (line 10, baseline)
  grad G = 1/N sum_i sum_t grad log pi(l^i_t) (R^i_t - b_t)   (line 11, eq. 8)

The agent's observations are the frames only, so the N episodes share one
forward pass and differ in their sampled actions. The optimizer minimizes
-G's surrogate; the learning rate anneals linearly to 0 (trainer.lr_schedule:
linear). Alongside pure REINFORCE the config offers clearly named
supervised alternatives (rl.objective: supervised | warm_start | mixed) whose
loss is -r(mu_t, g_t), the eq. 4 reward of the mean action, differentiable.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from configs.experiment import ExperimentConfig
from model import geometry
from model.rl_agent import build_rl_agent, log_prob, reward, sample_actions
from train import data as data_lib
from train.curriculum import Stage
from train.eval import metrics
from train.task import Task, init_from_model


def returns_tf(rewards, mode: str):
  """Rewards [..., T] -> R [..., T]: to_go (sum from t to the end), total
  (the window's sum at every t) or step (r_t itself)."""
  if mode == "to_go":
    return tf.cumsum(rewards, axis=-1, reverse=True)
  if mode == "total":
    return tf.broadcast_to(tf.reduce_sum(rewards, axis=-1, keepdims=True), tf.shape(rewards))
  if mode == "step":
    return rewards
  raise ValueError(f"return mode must be to_go|total|step, got {mode!r}")


def reinforce_surrogate(mu, targets, sigma: float, episodes: int, return_mode: str = "to_go",
                        noise=None):
  """Per-example REINFORCE surrogate loss of eq. 8 with the mean baseline.

  mu, targets [B, T, D]. Draws `episodes` action sequences (or uses `noise`
  [N, B, T, D]: actions = mu + sigma * noise). Returns (loss [B], info) where
  the gradient of loss w.r.t. mu is -1/N sum_i (R^i_t - b_t) (l^i_t - mu_t) / sigma^2,
  i.e. minus the eq. 8 estimate; info holds the sampled rewards [N, B, T].
  """
  mu = tf.cast(mu, tf.float32)
  targets = tf.cast(targets, tf.float32)
  actions = tf.stop_gradient(sample_actions(mu, sigma, episodes=episodes, noise=noise))
  rewards = reward(actions, targets[None])                          # [N, B, T]
  ret = returns_tf(rewards, return_mode)
  baseline = tf.reduce_mean(ret, axis=0, keepdims=True)             # b_t: mean over episodes
  advantage = tf.stop_gradient(ret - baseline)
  logp = log_prob(actions, mu[None], sigma)                          # [N, B, T]
  loss = -tf.reduce_mean(tf.reduce_sum(logp * advantage, axis=-1), axis=0)   # [B]
  return loss, {"rewards": rewards, "actions": actions, "advantage": advantage}


class RLTask(Task):
  name = "rl_agent"

  def __init__(self, cfg: ExperimentConfig):
    self.cfg = cfg
    self.rl = cfg.trainer.rl
    self._val: Optional[List[Dict[str, np.ndarray]]] = None
    self._val_unroll = None  # (model, its traced unroll) for validate()

  def build_model(self):
    net = build_rl_agent(self.cfg.model)
    if self.cfg.trainer.init_model:
      init_from_model(net, self.cfg.trainer.init_model)
    return net

  def num_stages(self) -> int:
    return 1

  def stage(self, index: int) -> Stage:
    r = self.rl
    return Stage(index=0, batch_size=r.batch_size,
                 description=(f"{r.objective}: T={r.window}, N={r.episodes}, "
                              f"{r.windows_per_video} windows per video, batch {r.batch_size}"),
                 info={"window": float(r.window), "episodes": float(r.episodes)})

  def source_requirements(self):
    return [self.rl.window * self.rl.windows_per_video], True, []

  def dataset(self, stage, input_context, seed):
    batch = (input_context.get_per_replica_batch_size(stage.batch_size)
             if input_context else stage.batch_size)
    return data_lib.rl_dataset(self.cfg.data, self.rl.window, self.rl.windows_per_video, batch,
                               self.cfg.model.frame_size, input_context=input_context, seed=seed,
                               checked=self.checked_sources)

  def initial_carry(self, model, stage, per_replica_batch):
    return model.zero_state(per_replica_batch)

  def loss(self, model, batch, carry, stage, step):
    r = self.rl
    frames, boxes, first = batch["frames"], batch["boxes"], batch["first"]
    if r.carry_state:
      state = tuple(tf.where(first, tf.zeros_like(s), s) for s in carry)
    else:
      state = tuple(tf.zeros_like(s) for s in carry)
    mu, new_state = model.unroll(frames, initial_state=state, training=True)
    mu = tf.cast(mu, tf.float32)
    targets = tf.cast(model.encode_boxes(boxes), tf.float32)
    sigma = float(self.cfg.model.sigma)
    supervised = -tf.reduce_mean(reward(mu, targets), axis=-1)                    # [B]
    reinforce, info = reinforce_surrogate(mu, targets, sigma, r.episodes, r.return_mode)
    if r.objective == "reinforce":
      per_example = reinforce
    elif r.objective == "supervised":
      per_example = supervised
    elif r.objective == "mixed":
      per_example = reinforce + r.supervised_weight * supervised
    else:  # warm_start: supervised for the first warm_start_steps updates
      warm = tf.cast(step, tf.int64) < r.warm_start_steps
      per_example = tf.where(warm, supervised, reinforce)
    gb = stage.batch_size
    loss = tf.nn.compute_average_loss(per_example, global_batch_size=gb)
    pred_boxes = model.decode_actions(mu)
    iou = tf.reduce_mean(geometry.iou_xyxy_tf(tf.cast(pred_boxes, tf.float32), boxes), axis=-1)
    metrics = {
        "reward": tf.nn.compute_average_loss(
            tf.reduce_mean(info["rewards"], axis=[0, 2]), global_batch_size=gb),
        "mean_action_reward": tf.nn.compute_average_loss(-supervised, global_batch_size=gb),
        "iou": tf.nn.compute_average_loss(iou, global_batch_size=gb),
    }
    k = 3
    vis = {"frames": frames[:k, -1], "pred": pred_boxes[:k, -1], "true": boxes[:k, -1]}
    return loss, metrics, vis, tuple(tf.stop_gradient(s) for s in new_state)

  def summary_images(self, vis):
    """Last frame of the window with the mean action's box (red) and the truth (green)."""
    img = tf.cast(vis["frames"], tf.float32)
    if img.shape[-1] == 1:
      img = tf.image.grayscale_to_rgb(img)
    shape = tf.shape(img)
    hw = tf.cast(tf.stack([shape[1], shape[2]]), tf.float32)

    def yxyx(b):
      b = tf.cast(b, tf.float32)
      b = tf.stack([b[:, 1] / hw[0], b[:, 0] / hw[1], b[:, 3] / hw[0], b[:, 2] / hw[1]], -1)
      return tf.clip_by_value(tf.where(tf.math.is_finite(b), b, tf.zeros_like(b)), 0.0, 1.0)

    img = tf.image.draw_bounding_boxes(img, yxyx(vis["pred"])[:, None],
                                       tf.constant([[1.0, 0, 0, 1]]))
    img = tf.image.draw_bounding_boxes(img, yxyx(vis["true"])[:, None],
                                       tf.constant([[0, 1.0, 0, 1]]))
    return tf.cast(tf.round(tf.clip_by_value(img, 0, 1) * 255), tf.uint8)

  def validate(self, model) -> Dict[str, float]:
    """train.eval.metrics.rl_scores of the mean action over the validation
    tracks, whole tracks from the zero state (as train.evaluate runs the
    agent): mean IoU, centre error, and the centre error of the first and the
    last 10 frames. Tracks of one length run as one batch, in chunks."""
    d = self.cfg.data
    if not d.val_dir:
      return {}
    if self._val is None:
      self._val = data_lib.load_val_tracks(d.val_dir, d.val_split, d.val_tracks,
                                           d.val_max_frames, d.channels)
    size = self.cfg.model.frame_size
    by_length: Dict[int, List] = {}
    for t in self._val:
      frames, boxes, _ = data_lib.fit_canvas_tf(tf.constant(t["frames"]),
                                                tf.constant(t["boxes"]), [size, size])
      by_length.setdefault(len(t["frames"]), []).append((frames, boxes.numpy()))
    if self._val_unroll is None or self._val_unroll[0] is not model:
      self._val_unroll = (model, tf.function(lambda f: model.unroll(f, training=False)[0],
                                             reduce_retracing=True))
    unroll = self._val_unroll[1]
    preds, gts = [], []
    chunk = 25
    for tracks in by_length.values():
      for i in range(0, len(tracks), chunk):
        part = tracks[i:i + chunk]
        frames = tf.cast(tf.stack([f for f, _ in part]), tf.float32) / 255.0
        preds.extend(model.decode_actions(tf.cast(unroll(frames), tf.float32)).numpy())
        gts.extend(gt for _, gt in part)
    s = metrics.rl_scores(preds, gts)
    return {"iou": s["average_iou"], "center_error_px": s["average_center_error"],
            "center_error_px_first10": s["center_error_first_frames"],
            "center_error_px_last10": s["center_error_last_frames"]}
