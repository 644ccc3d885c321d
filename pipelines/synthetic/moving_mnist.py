"""The moving-MNIST generator of the RL tracker paper (section 5.3), in three variants.

  fixed     one 28x28 digit on a black 100x100 canvas, random walk with
            momentum; the box is the digit's 28x28 square.
  scalable  the same, but the square's side changes every frame,
            s_t = k_t * s_{t-1}, and stays within [14, 56].
  noisy     scalable, plus 500 white noise dots per frame and a second digit
            in the background (drawn first): static by default, or moving
            like the target with --mnist_distractor_motion moving.

What the paper leaves open, and what this generator does:

* "Random walk with momentum": the square's velocity is an AR(1) process,
  v_t = momentum * v_{t-1} + N(0, velocity_noise^2) per axis, with speed
  capped at `max_speed` px/frame; the first velocity is drawn from the
  process's stationary distribution. The square bounces off the borders
  (the position is mirrored back into the canvas and that velocity
  component flips sign), so it is always fully inside the canvas.
* Scale: the paper's k is "uniform in (-0.5, 2)", which a length factor
  cannot be (k <= 0 would make the side vanish or go negative). We read k
  as a per-frame change in percent: s_t = (1 + k/100) * s_{t-1} with
  k ~ U(-0.5, 2), i.e. between -0.5% and +2% a frame (+0.75% on average),
  kept within [14, 56] as the paper says: a step that would leave the range
  is applied inverted (s_{t-1} / (1 + k/100)), a bounce like the
  position's, so a digit at a bound keeps changing size instead of sticking
  there. This keeps the formula, the interval and the bounds, and gives
  smooth scale changes a tracker can follow. The first side is drawn
  uniformly from [14, 56] (the paper does not say; starting every digit at
  28 would leave the 20-frame training sequences with far smaller digits
  than the 100-frame test sequences, which drift up). Because of the
  upward drift, long sequences spend much of their time near 56 (about
  57% of the default test frames have a side of 49-56). Scaling is about
  the square's center.
* Rendering: the square is drawn at integer pixels: side S = round(s),
  top-left (X, Y) = round(position); the 28x28 digit image is resized to
  SxS (bilinear) and pasted there, digits combine with max(). The box is
  (X, Y, X+S, Y+S) in continuous pixel coordinates: exactly the pixels the
  square covers.
* Noise dots: 500 distinct pixel positions per frame set to 255, drawn over
  everything (they are noise, they may cover the target).
* The distractor: the paper adds "one MNIST digit as distraction in the
  background". Its agent sees frames only, never a first box, so the target
  must be something it can tell apart from the distractor in the frames.
  A second digit with the target's own motion model (same look, same kind of
  walk) leaves nothing to tell them apart by: on such data (the `moving`
  option) an agent trained on 500 sequences learns which training digits
  are targets (training IoU 0.91) and picks either digit at random on test
  digits (IoU 0.36 over the first 10 test frames). So by default the
  distractor is part of the background: a random digit at a random place
  and side in [min_side, max_side] that stays put for the whole sequence.
  A tracker given the first box (Re3) can handle either option.
"""

from __future__ import annotations

import dataclasses
from typing import List, Tuple

import numpy as np
from PIL import Image

VARIANTS = ("fixed", "scalable", "noisy")
DISTRACTOR_MOTIONS = ("static", "moving")


@dataclasses.dataclass
class MovingMnistConfig:
  variant: str = "fixed"
  canvas_size: int = 100
  digit_size: int = 28          # side of the fixed-size square (MNIST's own size)
  min_side: float = 14.0        # scalable: side bounds (paper: (14, 56))
  max_side: float = 56.0
  scale_k_low: float = -0.5     # scalable: k ~ U(low, high), percent per frame
  scale_k_high: float = 2.0
  momentum: float = 0.9
  velocity_noise: float = 0.8   # px/frame, std of the per-frame velocity kick
  max_speed: float = 5.0        # px/frame
  noise_dots: int = 500         # noisy: white dots per frame
  distractors: int = 1          # noisy: extra digits in the background
  distractor_motion: str = "static"   # noisy: static | moving (like the target)

  def validate(self) -> None:
    """ValueError naming the option for any value the generator cannot honour."""
    def need(ok, msg):
      if not ok:
        raise ValueError(msg)
    need(self.variant in VARIANTS,
         f"--variant must be one of {'|'.join(VARIANTS)}, got {self.variant!r}")
    need(self.canvas_size >= 8, f"--mnist_canvas_size must be >= 8, got {self.canvas_size}")
    need(1 <= self.digit_size <= self.canvas_size,
         f"--mnist_digit_size {self.digit_size} must be in [1, canvas size {self.canvas_size}]")
    if self.variant != "fixed":
      need(1 <= self.min_side <= self.max_side,
           f"--mnist_min_side ({self.min_side}) must be >= 1 and <= --mnist_max_side "
           f"({self.max_side})")
      need(self.max_side <= self.canvas_size,
           f"--mnist_max_side ({self.max_side}) is larger than the canvas ({self.canvas_size}): "
           f"the digit would not fit")
      need(self.scale_k_low <= self.scale_k_high,
           f"--mnist_scale_k_low ({self.scale_k_low}) must be <= --mnist_scale_k_high "
           f"({self.scale_k_high})")
      need(self.scale_k_low > -100,
           f"--mnist_scale_k_low must be > -100 (percent), got {self.scale_k_low}")
    need(0 <= self.momentum < 1, f"--mnist_momentum must be in [0, 1), got {self.momentum}")
    need(self.velocity_noise >= 0,
         f"--mnist_velocity_noise must be >= 0, got {self.velocity_noise}")
    need(self.max_speed > 0, f"--mnist_max_speed must be > 0, got {self.max_speed}")
    need(0 <= self.noise_dots <= self.canvas_size ** 2,
         f"--mnist_noise_dots must be in [0, {self.canvas_size ** 2}], got {self.noise_dots}")
    need(self.distractors >= 0, f"--mnist_distractors must be >= 0, got {self.distractors}")
    need(self.distractor_motion in DISTRACTOR_MOTIONS,
         f"--mnist_distractor_motion must be one of {'|'.join(DISTRACTOR_MOTIONS)}, "
         f"got {self.distractor_motion!r}")

  @property
  def scalable(self) -> bool:
    return self.variant in ("scalable", "noisy")


class _Walker:
  """One digit square: float top-left position, side, AR(1) velocity."""

  def __init__(self, cfg: MovingMnistConfig, rng: np.random.Generator):
    self.cfg = cfg
    if cfg.scalable:
      self.side = float(rng.uniform(cfg.min_side, cfg.max_side))
    else:
      self.side = float(cfg.digit_size)
    room = cfg.canvas_size - self.side
    self.pos = rng.uniform(0.0, room, size=2)
    stationary = cfg.velocity_noise / np.sqrt(1.0 - cfg.momentum ** 2)
    self.vel = self._cap(rng.normal(0.0, stationary, size=2))

  def _cap(self, v):
    speed = float(np.hypot(v[0], v[1]))
    if speed > self.cfg.max_speed:
      v = v * (self.cfg.max_speed / speed)
    return v

  def step(self, rng: np.random.Generator) -> None:
    cfg = self.cfg
    self.vel = self._cap(cfg.momentum * self.vel + rng.normal(0.0, cfg.velocity_noise, size=2))
    if cfg.scalable:
      k = rng.uniform(cfg.scale_k_low, cfg.scale_k_high)
      center = self.pos + self.side / 2.0
      factor = 1.0 + k / 100.0
      side = self.side * factor
      if not cfg.min_side <= side <= cfg.max_side:
        side = self.side / factor  # bounce off the bound, like the position
      self.side = float(np.clip(side, cfg.min_side, cfg.max_side))
      self.pos = center - self.side / 2.0
    self.pos = self.pos + self.vel
    room = cfg.canvas_size - self.side
    for a in range(2):
      # Mirror back into [0, room]; a speed capped well below the canvas
      # needs at most one reflection, the loop guards odd settings.
      for _ in range(4):
        if self.pos[a] < 0:
          self.pos[a] = -self.pos[a]
          self.vel[a] = abs(self.vel[a])
        elif self.pos[a] > room:
          self.pos[a] = 2 * room - self.pos[a]
          self.vel[a] = -abs(self.vel[a])
        else:
          break
      self.pos[a] = min(max(self.pos[a], 0.0), room)

  def square(self) -> Tuple[int, int, int]:
    """Integer (x, y, side) of the drawn square, inside the canvas."""
    size = self.cfg.canvas_size
    side = int(min(max(round(self.side), 1), size))
    x = int(min(max(round(self.pos[0]), 0), size - side))
    y = int(min(max(round(self.pos[1]), 0), size - side))
    return x, y, side


def _resized(digit: np.ndarray, side: int) -> np.ndarray:
  if digit.shape == (side, side):
    return digit
  return np.asarray(Image.fromarray(digit).resize((side, side), Image.BILINEAR))


def _draw(canvas: np.ndarray, digit: np.ndarray, square: Tuple[int, int, int]) -> None:
  x, y, side = square
  region = canvas[y:y + side, x:x + side]
  np.maximum(region, _resized(digit, side), out=region)


def generate_sequence(cfg: MovingMnistConfig, digits: np.ndarray, labels: np.ndarray,
                      length: int, rng: np.random.Generator):
  """One sequence: (frames uint8 [T, H, W], boxes xyxy float32 [T, 4], label int).

  `digits` [N, 28, 28] uint8 is the pool (training or test digits); the
  target and distractor digits are drawn from it with `rng`.
  """
  n = len(digits)
  # The noise dots draw from their own stream, so motion and digits do not
  # depend on --mnist_noise_dots.
  dots_rng = np.random.default_rng(int(rng.integers(2 ** 63)))
  target_index = int(rng.integers(n))
  target = _Walker(cfg, rng)
  others: List[Tuple[np.ndarray, _Walker]] = []
  if cfg.variant == "noisy":
    for _ in range(cfg.distractors):
      j = int(rng.integers(n - 1)) if n > 1 else 0
      if n > 1 and j >= target_index:
        j += 1  # a different digit image than the target
      others.append((digits[j], _Walker(cfg, rng)))
  size = cfg.canvas_size
  frames = np.zeros([length, size, size], np.uint8)
  boxes = np.zeros([length, 4], np.float32)
  for t in range(length):
    if t > 0:
      target.step(rng)
      if cfg.distractor_motion == "moving":
        for _, w in others:
          w.step(rng)
    frame = frames[t]
    for digit, w in others:
      _draw(frame, digit, w.square())
    sq = target.square()
    _draw(frame, digits[target_index], sq)
    if cfg.variant == "noisy" and cfg.noise_dots:
      flat = dots_rng.choice(size * size, size=cfg.noise_dots, replace=False)
      frame.reshape(-1)[flat] = 255
    x, y, side = sq
    boxes[t] = (x, y, x + side, y + side)
  return frames, boxes, int(labels[target_index])
