"""Helpers shared by the tracking/export/evaluation tests (tiny fresh models,
model_dirs shaped like the trainer's, a few real OTB frames)."""

import os

import tensorflow as tf
import yaml

from configs import base
from configs.model import Re3ModelConfig, RLAgentConfig
from model import geometry
from model.re3 import build_re3
from model.rl_agent import build_rl_agent
from pipelines.images import load_image_rgb
from pipelines.readers.sequences import read_sequence

# A Re3 with the paper's layer list and 227 crops but a few channels: seconds, not minutes.
TINY_RE3 = Re3ModelConfig(conv_filters=(8, 16, 16, 16, 16), skip_filters=(2, 2, 2),
                          fc6_units=32, lstm_units=16)
TINY_RL = RLAgentConfig(output_dim=3, conv_filters=(4, 4), lstm_units=16, hidden_units=16)


def tiny_re3(seed=0):
  tf.random.set_seed(seed)
  return build_re3(TINY_RE3)


def tiny_rl(seed=0):
  tf.random.set_seed(seed)
  return build_rl_agent(TINY_RL)


def set_head(net, label):
  """Makes Re3's output constant: zero head kernel, bias = `label`."""
  net.head.kernel.assign(tf.zeros_like(net.head.kernel))
  net.head.bias.assign(tf.constant(label, tf.float32))


def make_model_dir(path, net, task, sub="checkpoints"):
  """config.yaml (task + model) and a CheckpointManager checkpoint holding `model=net`."""
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "config.yaml"), "w") as f:
    yaml.safe_dump({"task": task, "model": base.to_dict(net.cfg)}, f)
  mgr = tf.train.CheckpointManager(tf.train.Checkpoint(model=net),
                                   os.path.join(path, sub) if sub else path, max_to_keep=2)
  mgr.save()
  return str(path)


def otb_frames(shared_dir, name="Deer", n=8):
  """The first n frames (RGB arrays) and the xywh boxes of an OTB sequence."""
  seq = read_sequence("otb", str(shared_dir / "data" / "tracking" / "otb" / name))
  frames = [load_image_rgb(p) for p in seq.frame_paths[:n]]
  return frames, geometry.xyxy_to_xywh(seq.boxes_xyxy[:n])
