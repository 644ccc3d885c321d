"""Model configurations: every size of the Re3 network and of the RL agent.

Two dataclasses, loaded through the strict loader of `configs.base`:

* `Re3ModelConfig`: the CaffeNet-with-skips tower, fc6, the two-layer peephole
  LSTM and the 4-unit head. The defaults are the paper's sizes
  (`configs/re3_paper.yaml`, 183,719,012 parameters with diagonal peepholes).
* `RLAgentConfig`: the CNN + ReLU-LSTM + Gaussian location policy of the RL
  tracker paper (`configs/drlt_mnist_*.yaml`).

Every experiment YAML has top-level sections `task` (re3 | rl_agent), `model`,
`data`, `trainer`, `runtime`. `load_model_config` reads only `task` and
`model` (strict inside `model`) so that model tools such as `model.summary`
work on any experiment file; `configs.experiment.load_experiment` is the full
strict loader.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Tuple, Union

from configs import base
from configs.base import ConfigError, require

PEEPHOLE_MODES = ("diagonal", "full", "none")
TOWERS = ("caffenet", "efficientnet_lite0", "nanotrack_v2")
TEMPLATE_MODES = ("none", "xcorr", "nano_head")     # model.template
# Fields that only the CaffeNet tower reads (an EfficientNet config must leave them unset).
CAFFENET_FIELDS = ("mean_rgb", "input_scale", "conv_filters", "conv_kernels", "conv_groups",
                   "conv1_stride", "pool_size", "pool_stride", "lrn_depth_radius", "lrn_alpha",
                   "lrn_beta", "lrn_bias", "skip_filters")
EFFNET_FIELDS = ("tower_blocks", "tower_taps", "tap_filters")
# Frames between Re3 LSTM resets: the Re3 paper ("Tracking at test time") trains on
# at most 32 unrolls and, every 32 frames at test time, feeds the current crop as both
# inputs from the initial state. The trackers' default reset period
# (model.tracker re-exports it) and the default of trainer.val_reset_every.
RESET_EVERY = 32


def _conv_out(size: int, kernel: int, stride: int, padding: str) -> int:
  """Output length of a conv/pool along one axis (TF's VALID/SAME rules)."""
  if padding == "same":
    return -(-size // stride)
  return (size - kernel) // stride + 1


@dataclasses.dataclass
class Re3ModelConfig:
  """Sizes of the Re3 network. Defaults reproduce the paper (Gordon et al. 2018).

  Tower (CaffeNet): conv1 VALID with stride `conv1_stride`, 3x3/2 max-pool and
  LRN after conv1 and conv2; conv2-conv5 SAME with stride 1; max-pool after
  conv5; ReLU after every conv. `conv_groups` splits a conv's input and output
  channels into groups as CaffeNet does (conv2, conv4, conv5 use 2 groups).

  Skips: a 1x1 conv with `skip_filters[k]` channels and a per-channel PReLU
  (initial slope `prelu_init`) on norm1, norm2 and conv5 (before pool5).
  Features per crop = flatten(skip1) ++ flatten(skip2) ++ flatten(skip3) ++
  flatten(pool5), NHWC flattening (37,104 values with the paper sizes).

  Recurrent part: fc6 (ReLU) on the concatenated features of the two crops,
  LSTM1 on fc6, LSTM2 on concat(fc6, h1), a linear head of 4 outputs.

  `peephole` selects the peephole connections of equations 1-6 of the paper:
  'diagonal' (default; Greff et al.'s per-unit peephole weights, as the later
  public TensorFlow Re3 used; 183,719,012 parameters), 'full' (a units x units
  peephole matrix per gate, as the Caffe-era cell; 190,004,324 parameters), or
  'none' (a plain LSTM, for ablations).

  `weight_decay` is the L2 coefficient put on every kernel as a Keras
  regularizer: the model's `losses` then hold weight_decay * sum(w**2) and the
  training loss adds `sum(model.losses)`; 0 disables it.

  `input_scale` multiplies the mean-subtracted pixels (MeanSubtract's scale).
  1 (default) is CaffeNet's input range, which imported CaffeNet weights
  expect. A net trained from scratch with He-initialised layers sees features
  of magnitude ~100 at fc6 at that range, which saturates the LSTM gates so
  that the net can get stuck at a constant output; 1/64 brings them to ~1.

  `tower` picks the conv tower: 'caffenet' (default, everything above) or
  'efficientnet_lite0', the ImageNet-pretrained EfficientNet-Lite0 of
  model.towers.efficientnet_lite (it scales its 0..255 input itself; the CaffeNet
  fields above must then be left at their defaults). It runs blocks
  0..`tower_blocks - 1` (16 in all); a 1x1 conv with `tap_filters[k]`
  channels + PReLU taps the output of block `tower_taps[k]`, and the per-crop
  features are the flattened taps ++ the flattened last block
  (model.re3.features_per_crop). 'nanotrack_v2' is the tracking-pretrained
  backbone of OpenCV's NanoTrack v2 (model.towers.nanotrack; 8 blocks, stride
  16, 48 channels), with the same tower_blocks / taps / tap_filters fields.
  `tower_trainable: false` freezes the tower (any kind) so that only skips,
  fc6, LSTMs and head train.

  `template` gives the tracker a memory of the target: 'xcorr' keeps the
  target's first-frame features (the central half of the init crop's last
  tower block, i.e. the target box itself at Re3's 2x context) in each
  target's state and correlates them, pixel-wise and L2-normalised, with
  every position of the current crop's last block; the correlation map
  joins the pair features into fc6 (model.re3). 'nano_head' keeps the whole
  init crop's last block (8x8x48: the target at 2x context, NanoTrack's
  template) and runs NanoTrack v2's own head on it and the current crop's
  last block (model.towers.nanotrack_head); its score and box maps join fc6,
  and the box its score map points to (a soft arg-max, in label units) and
  the peak score join the LSTM output into the box regression, which starts
  as that box (train.re3_task). Needs tower nanotrack_v2 with all 8 blocks
  and a crop of 113-128 px (an 8x8 last block). 'none' is Re3.

  `track_scale_rate` and `track_aspect_rate` damp the box a tracker reports
  (not training): of the change of scale (the geometric mean of width and
  height) and of aspect ratio the network predicts from the previous box,
  the tracker keeps that change raised to these powers (1: the network's
  box, 0: the previous size or shape); the centre is the network's. Every
  tracking form applies them (model.geometry.damp_labels_tf), like the size
  learning rate of Siamese trackers; chosen on validation clips.
  """

  crop_size: int = 227
  mean_rgb: Tuple[float, float, float] = (123.15, 115.90, 103.06)
  input_scale: float = 1.0
  conv_filters: Tuple[int, ...] = (96, 256, 384, 384, 256)
  conv_kernels: Tuple[int, ...] = (11, 5, 3, 3, 3)
  conv_groups: Tuple[int, ...] = (1, 2, 1, 2, 2)
  conv1_stride: int = 4
  pool_size: int = 3
  pool_stride: int = 2
  lrn_depth_radius: int = 2
  lrn_alpha: float = 2e-5
  lrn_beta: float = 0.75
  lrn_bias: float = 1.0
  skip_filters: Tuple[int, int, int] = (16, 32, 64)
  prelu_init: float = 0.25
  fc6_units: int = 2048
  lstm_units: int = 1024
  peephole: str = "diagonal"
  forget_bias: float = 1.0
  output_units: int = 4
  weight_decay: float = 0.0005
  tower: str = "caffenet"
  tower_blocks: int = 8
  tower_taps: Tuple[int, ...] = (4,)
  tap_filters: Tuple[int, ...] = (16,)
  tower_trainable: bool = True
  template: str = "none"
  track_scale_rate: float = 1.0
  track_aspect_rate: float = 1.0

  def validate(self) -> None:
    require(self.tower in TOWERS, f"model.tower must be one of {list(TOWERS)}, got {self.tower!r}")
    require(isinstance(self.tower_trainable, bool),
            f"model.tower_trainable must be true or false, got {self.tower_trainable!r}")
    require(self.crop_size >= 32, f"model.crop_size must be >= 32, got {self.crop_size}")
    require(self.fc6_units >= 1, f"model.fc6_units must be >= 1, got {self.fc6_units}")
    require(self.lstm_units >= 1, f"model.lstm_units must be >= 1, got {self.lstm_units}")
    require(self.peephole in PEEPHOLE_MODES,
            f"model.peephole must be one of {list(PEEPHOLE_MODES)}, got {self.peephole!r}")
    require(self.output_units == 4, f"model.output_units must be 4 (x1, y1, x2, y2), got {self.output_units}")
    require(self.weight_decay >= 0, f"model.weight_decay must be >= 0, got {self.weight_decay}")
    require(self.template in TEMPLATE_MODES,
            f"model.template must be one of {list(TEMPLATE_MODES)}, got {self.template!r}")
    require(self.template == "none" or self.tower != "caffenet",
            "model.template: xcorr needs a pretrained tower (efficientnet_lite0 or nanotrack_v2)")
    for name in ("track_scale_rate", "track_aspect_rate"):
      require(0.0 <= getattr(self, name) <= 1.0,
              f"model.{name} must be in [0, 1], got {getattr(self, name)}")
    if self.template == "nano_head":
      require(self.tower == "nanotrack_v2" and self.tower_blocks == 8
              and 113 <= self.crop_size <= 128,
              "model.template: nano_head needs model.tower: nanotrack_v2 with tower_blocks: 8 and "
              f"crop_size 113-128 (an 8x8 last block), got {self.tower} with {self.tower_blocks} "
              f"blocks at {self.crop_size} px")
    if self.tower != "caffenet":
      self._validate_effnet()
      return
    for name in EFFNET_FIELDS:
      require(self._is_default(name),
              f"model.{name} applies to the pretrained towers only (tower is caffenet)")
    require(len(self.mean_rgb) == 3, f"model.mean_rgb needs 3 values, got {self.mean_rgb}")
    require(self.input_scale > 0, f"model.input_scale must be > 0, got {self.input_scale}")
    for name in ("conv_filters", "conv_kernels", "conv_groups"):
      value = getattr(self, name)
      require(len(value) == 5, f"model.{name} needs 5 values (conv1-conv5), got {list(value)}")
      require(all(v >= 1 for v in value), f"model.{name} values must be >= 1, got {list(value)}")
    in_ch = 3
    for k, (f, g) in enumerate(zip(self.conv_filters, self.conv_groups), start=1):
      require(in_ch % g == 0 and f % g == 0,
              f"model.conv_groups[{k - 1}]={g} must divide conv{k}'s input ({in_ch}) "
              f"and output ({f}) channels")
      in_ch = f
    require(self.conv1_stride >= 1, f"model.conv1_stride must be >= 1, got {self.conv1_stride}")
    require(self.pool_size >= 1 and self.pool_stride >= 1,
            f"model.pool_size/pool_stride must be >= 1, got {self.pool_size}/{self.pool_stride}")
    require(self.lrn_depth_radius >= 0, f"model.lrn_depth_radius must be >= 0, got {self.lrn_depth_radius}")
    require(len(self.skip_filters) == 3 and all(v >= 1 for v in self.skip_filters),
            f"model.skip_filters needs 3 positive values, got {list(self.skip_filters)}")
    shapes = self.tower_shapes()
    require(all(h >= 1 for h, _, _ in shapes.values()),
            f"model.crop_size={self.crop_size} is too small for the tower: {shapes}")

  def _is_default(self, name: str) -> bool:
    value = getattr(self, name)
    default = next(f.default for f in dataclasses.fields(self) if f.name == name)
    if isinstance(value, (list, tuple)):
      return tuple(value) == tuple(default)
    return value == default

  def _validate_effnet(self) -> None:
    """Checks of an EfficientNet-tower config (block counts are checked against
    the architecture when the net is built: model.re3)."""
    for name in CAFFENET_FIELDS:
      require(self._is_default(name),
              f"model.{name} applies to model.tower: caffenet only (tower is {self.tower}, "
              f"which scales its own input); remove it")
    require(self.tower_blocks >= 1, f"model.tower_blocks must be >= 1, got {self.tower_blocks}")
    taps = list(self.tower_taps)
    require(all(0 <= t < self.tower_blocks - 1 for t in taps) and taps == sorted(set(taps)),
            f"model.tower_taps must be increasing block indices below the last block run "
            f"(tower_blocks - 1 = {self.tower_blocks - 1}), got {taps}")
    require(len(self.tap_filters) == len(taps) and all(c >= 1 for c in self.tap_filters),
            f"model.tap_filters needs one positive value per tap ({len(taps)}), got {list(self.tap_filters)}")

  def tower_shapes(self) -> dict:
    """(height, width, channels) of every CaffeNet tower endpoint for one crop."""
    require(self.tower == "caffenet", f"model.tower is {self.tower}: its shapes come from "
            "model.towers.efficientnet_lite.tower_shapes (features: model.re3.features_per_crop)")
    s = self.crop_size
    f = self.conv_filters
    out = {}
    s = _conv_out(s, self.conv_kernels[0], self.conv1_stride, "valid")
    out["conv1"] = (s, s, f[0])
    s = _conv_out(s, self.pool_size, self.pool_stride, "valid")
    out["pool1"] = out["norm1"] = (s, s, f[0])
    out["conv2"] = (s, s, f[1])
    s = _conv_out(s, self.pool_size, self.pool_stride, "valid")
    out["pool2"] = out["norm2"] = (s, s, f[1])
    out["conv3"] = (s, s, f[2])
    out["conv4"] = (s, s, f[3])
    out["conv5"] = (s, s, f[4])
    s5 = _conv_out(s, self.pool_size, self.pool_stride, "valid")
    out["pool5"] = (s5, s5, f[4])
    return out

  def features_per_crop(self) -> int:
    """Length of one crop's feature vector: skips (norm1, norm2, conv5) ++ pool5."""
    sh = self.tower_shapes()
    n1, n2, c5, p5 = sh["norm1"], sh["norm2"], sh["conv5"], sh["pool5"]
    return (n1[0] * n1[1] * self.skip_filters[0] + n2[0] * n2[1] * self.skip_filters[1]
            + c5[0] * c5[1] * self.skip_filters[2] + p5[0] * p5[1] * p5[2])


@dataclasses.dataclass
class RLAgentConfig:
  """The CNN + LSTM + RL-unit agent of the RL tracker paper (moving MNIST).

  Feature extractor: convs `conv_filters` (kernel `conv_kernel`, padding
  `conv_padding`), each followed by `pool_size` max-pooling and ReLU, on the
  whole `frame_size` x `frame_size` x `channels` frame. Memory: an LSTM with
  `lstm_units` and `lstm_activation` (ReLU in the paper's Figure 2) in place of
  tanh. RL unit: a `hidden_units` ReLU layer, then a linear layer giving the
  mean mu of a Gaussian location policy with fixed `sigma`.

  Target encoding (`model.rl_agent.RLAgent.encode_boxes`): pixels of the
  frame: (cx, cy) for output_dim 2 and (cx, cy, side) for output_dim 3, so
  sigma = 1 (the paper's value) means one pixel and the reward of equation 4
  is in pixels, like the paper's reported errors. The output layer's bias
  starts at (frame_size / 2, frame_size / 2, fixed_side) so the initial
  policy points at the centre of the canvas instead of at its corner.
  `fixed_side` is the box side used to decode 2-D actions (28: the MNIST digit).
  """

  output_dim: int = 2
  sigma: float = 1.0
  frame_size: int = 100
  channels: int = 1
  conv_filters: Tuple[int, ...] = (8, 16)
  conv_kernel: int = 5
  conv_padding: str = "same"
  pool_size: int = 2
  lstm_units: int = 256
  lstm_activation: str = "relu"
  hidden_units: int = 256
  fixed_side: float = 28.0
  # L2 coefficient on every kernel (Keras regularizers, added to the loss by
  # the trainer); 0 = none, as in the paper.
  weight_decay: float = 0.0

  def validate(self) -> None:
    require(self.weight_decay >= 0, f"model.weight_decay must be >= 0, got {self.weight_decay}")
    require(self.output_dim in (2, 3), f"model.output_dim must be 2 (x, y) or 3 (x, y, side), got {self.output_dim}")
    require(self.sigma > 0, f"model.sigma must be > 0, got {self.sigma}")
    require(self.frame_size >= 8, f"model.frame_size must be >= 8, got {self.frame_size}")
    require(self.channels in (1, 3), f"model.channels must be 1 or 3, got {self.channels}")
    require(len(self.conv_filters) >= 1 and all(f >= 1 for f in self.conv_filters),
            f"model.conv_filters needs positive values, got {list(self.conv_filters)}")
    require(self.conv_kernel >= 1, f"model.conv_kernel must be >= 1, got {self.conv_kernel}")
    require(self.conv_padding in ("same", "valid"),
            f"model.conv_padding must be 'same' or 'valid', got {self.conv_padding!r}")
    require(self.pool_size >= 1, f"model.pool_size must be >= 1, got {self.pool_size}")
    require(self.lstm_units >= 1, f"model.lstm_units must be >= 1, got {self.lstm_units}")
    require(self.lstm_activation in ("relu", "tanh"),
            f"model.lstm_activation must be 'relu' or 'tanh', got {self.lstm_activation!r}")
    require(self.hidden_units >= 1, f"model.hidden_units must be >= 1, got {self.hidden_units}")
    require(self.fixed_side > 0, f"model.fixed_side must be > 0, got {self.fixed_side}")
    require(self.feature_shape()[0] >= 1,
            f"model.frame_size={self.frame_size} is too small for {len(self.conv_filters)} conv+pool stages")

  def feature_shape(self) -> Tuple[int, int, int]:
    s = self.frame_size
    for _ in self.conv_filters:
      s = _conv_out(s, self.conv_kernel, 1, self.conv_padding)
      s = _conv_out(s, self.pool_size, self.pool_size, "valid")
    return (s, s, self.conv_filters[-1])


ModelConfig = Union[Re3ModelConfig, RLAgentConfig]
MODEL_CLASSES = {"re3": Re3ModelConfig, "rl_agent": RLAgentConfig}  # task -> model config
TASKS = tuple(MODEL_CLASSES)  # the `task` values of an experiment YAML


def model_config_from_dict(task: str, data, where: str = "model") -> ModelConfig:
  """Builds and validates the model config of `task` from a mapping (strict)."""
  if task not in MODEL_CLASSES:
    raise ConfigError(f"task must be one of {list(TASKS)}, got {task!r}")
  try:
    cfg = base.from_dict(MODEL_CLASSES[task], data or {}, prefix="model")
    base.validate(cfg)
  except ConfigError as e:
    raise ConfigError(f"{where}: {e}") from None
  return cfg


def load_model_config(path: str, overrides: Iterable[str] = ()) -> Tuple[str, ModelConfig]:
  """Reads `task` and `model` of an experiment YAML -> (task, model config).

  Other top-level sections (data, trainer, runtime) are ignored here; inside
  `model` unknown keys and bad values raise ConfigError naming file and key.
  `overrides` are 'model.key=value' strings (others are ignored).
  """
  raw = base.load_yaml(path)
  raw = base.apply_overrides(raw, [o for o in overrides if o.split("=", 1)[0].strip().startswith(("model.", "task"))])
  if "task" not in raw:
    raise ConfigError(f"{path}: missing top-level key 'task' (one of {list(TASKS)})")
  task = raw["task"]
  if task not in TASKS:
    raise ConfigError(f"{path}: task must be one of {list(TASKS)}, got {task!r}")
  model = raw.get("model") or {}
  if not isinstance(model, dict):
    raise ConfigError(f"{path}: 'model' must be a mapping, got {model!r}")
  return task, model_config_from_dict(task, model, where=path)
