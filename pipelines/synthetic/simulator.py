"""The Re3 occluded-track simulator: one still image becomes a moving scene.

One algorithm in one module (about 490 lines): the config, the scene objects and the motion
and occlusion rules, kept together so it reads in the order of the recipe below.

What the Re3 paper (section "Training from Synthetic Sequences") and its
public code do, and this module reproduces:

* Canvas (400x400 by default) with the whole image, resized, as background.
* The target: a patch of the image around an object box with context
  (`context_scale` times the box, clipped to the image), the whole image
  mirrored left-right with p = 0.5 first.
* Distractors: random rectangular patches of the same image, half drawn
  behind the target and half in front of it (the front ones are occluders).
  Keeping everything from one image keeps the frames near the manifold of
  real images.
* Every patch moves by itself. Per step (the Re3 constants are the defaults
  of `SimulatorConfig`):
    speed    += Laplace(0, speed_noise), clipped to [0, max_speed]
    heading  += N(0, 1) * heading_noise
    vw, vh   += N(0, size_velocity_noise), clipped to +-max_size_velocity
    w, h     += (vw, vh) * size_velocity_scale * canvas
    aspect ratio kept in [ar0 / aspect_range, ar0 * aspect_range] (sizes
             snap back and the size velocity stops when it leaves the range)
    center   += (cos, sin)(heading) * speed * velocity_scale * (w, h)
    bounce   off the canvas border: that direction component flips, the
             speed is multiplied by bounce_speed_factor, the patch is put
             back inside.
  The Re3 code moves a patch by 0.5 * speed * its size per step with a
  target patch 4x its object box; we keep the same motion relative to the
  *object* with a 2x context patch and velocity_scale 1.0 (see
  `SimulatorConfig`), because our frames are stored whole at canvas size
  and the object needs more pixels than in Re3's direct-to-crop renderer.
* A track starts after a random number of warm-up steps, at the first step
  where the target is not occluded at all.

Frames are rendered at integer pixels: each patch is resized to its rounded
rectangle and pasted (no blending), so coverage is exact. The ground-truth
box is the object's true extent: its box inside the texture mapped linearly
onto the drawn rectangle. `occlusion` is the fraction of the target box's
pixels (pixels whose centers lie in the box) covered by a front occluder's
drawn rectangle; `visible` is 0 when that fraction exceeds
`occlusion_threshold`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from pipelines.schema import RejectError, RejectReason


class SimulationError(RejectError):
  """A source that cannot give a track (box too small, no unoccluded start)."""


@dataclasses.dataclass
class SimulatorConfig:
  """Every simulator constant (the job exposes each as a flag of the same name)."""
  canvas_size: int = 400
  track_length: int = 32
  # Motion (Re3 defaults).
  speed_noise: float = 0.01            # Laplace scale added to the speed each step
  max_speed: float = 1.5               # speed clip
  initial_speed_scale: float = 1.0 / 15.0  # first speed = |Laplace(0, this)|, clipped
  heading_noise: float = math.pi / 32  # N(0, 1) * this added to the heading (radians)
  size_velocity_noise: float = 0.01    # N(0, this) added to the w/h velocities
  max_size_velocity: float = 0.1       # w/h velocity clip
  size_velocity_scale: float = 0.1     # size change per unit velocity, x canvas (Re3: 40 px / 400)
  velocity_scale: float = 1.0          # displacement per unit speed, x patch size
  aspect_range: float = 2.0            # aspect ratio kept in [ar0 / this, ar0 * this]
  bounce_speed_factor: float = 0.5     # speed multiplier at a border bounce
  # Target.
  context_scale: float = 2.0           # target patch = object box x this (clipped to the image)
  mirror_prob: float = 0.5             # probability of mirroring the source image
  target_min_size: float = 0.1         # object box longer side, fraction of the canvas
  target_max_size: float = 0.3
  # Distractors / occluders.
  distractors_behind: int = 10
  occluders_front: int = 10
  distractor_min_scale: float = 0.2    # distractor longer side, x the target patch's
  distractor_max_scale: float = 0.5
  distractor_max_overlap: float = 0.3  # max fraction of the object box a distractor crop may cut
  # Occlusion and start.
  occlusion_threshold: float = 0.5     # visible = 0 when occluded fraction > this
  max_warmup_steps: int = 20           # random warm-up steps before the search for a start
  max_start_search: int = 200          # steps searched for an unoccluded start
  min_box_size: float = 4.0            # source boxes below this many pixels a side are refused

  def validate(self) -> None:
    """ValueError naming the flag for any value the simulator cannot honour."""
    def need(ok, msg):
      if not ok:
        raise ValueError(msg)
    need(self.canvas_size >= 16, f"--canvas_size must be >= 16 pixels, got {self.canvas_size}")
    need(self.track_length >= 1, f"--track_length must be >= 1, got {self.track_length}")
    for name in ("speed_noise", "initial_speed_scale", "heading_noise", "size_velocity_noise",
                 "max_size_velocity", "size_velocity_scale"):
      v = getattr(self, name)
      need(math.isfinite(v) and v >= 0, f"--{name} must be a finite number >= 0, got {v}")
    need(math.isfinite(self.max_speed) and self.max_speed > 0,
         f"--max_speed must be > 0, got {self.max_speed}")
    need(math.isfinite(self.velocity_scale) and self.velocity_scale >= 0,
         f"--velocity_scale must be >= 0, got {self.velocity_scale}")
    need(self.aspect_range >= 1, f"--aspect_range must be >= 1, got {self.aspect_range}")
    need(0 <= self.bounce_speed_factor <= 1,
         f"--bounce_speed_factor must be in [0, 1], got {self.bounce_speed_factor}")
    need(self.context_scale >= 1, f"--context_scale must be >= 1, got {self.context_scale}")
    need(0 <= self.mirror_prob <= 1, f"--mirror_prob must be in [0, 1], got {self.mirror_prob}")
    need(0 < self.target_min_size <= self.target_max_size,
         f"--target_min_size ({self.target_min_size}) must be > 0 and <= --target_max_size "
         f"({self.target_max_size})")
    need(self.target_max_size * self.context_scale <= 1.0,
         f"the target patch (--target_max_size {self.target_max_size} x --context_scale "
         f"{self.context_scale} = {self.target_max_size * self.context_scale:.2f} of the "
         f"canvas) does not fit in the canvas: need <= 1")
    need(self.target_min_size * self.canvas_size >= 2,
         f"--canvas_size {self.canvas_size} is too small for --target_min_size "
         f"{self.target_min_size}: the target would be under 2 pixels")
    need(self.distractors_behind >= 0,
         f"--distractors_behind must be >= 0, got {self.distractors_behind}")
    need(self.occluders_front >= 0, f"--occluders_front must be >= 0, got {self.occluders_front}")
    need(0 < self.distractor_min_scale <= self.distractor_max_scale <= 1,
         f"need 0 < --distractor_min_scale ({self.distractor_min_scale}) <= "
         f"--distractor_max_scale ({self.distractor_max_scale}) <= 1")
    need(0 <= self.distractor_max_overlap <= 1,
         f"--distractor_max_overlap must be in [0, 1], got {self.distractor_max_overlap}")
    need(0 <= self.occlusion_threshold <= 1,
         f"--occlusion_threshold must be in [0, 1], got {self.occlusion_threshold}")
    need(self.max_warmup_steps >= 0,
         f"--max_warmup_steps must be >= 0, got {self.max_warmup_steps}")
    need(self.max_start_search >= 0,
         f"--max_start_search must be >= 0, got {self.max_start_search}")
    need(self.min_box_size >= 1, f"--min_box_size must be >= 1 pixel, got {self.min_box_size}")


# ---------------------------------------------------------------------------
# Moving patches
# ---------------------------------------------------------------------------


class SimObject:
  """A textured patch moving over the canvas.

  `object_box` is the object's box in texture pixels (the whole texture for
  distractors). The drawn size (w, h) is the whole patch; the object's
  longer side is kept within [min_obj, max_obj] pixels.
  """

  def __init__(self, texture: np.ndarray, object_box: Sequence[float], center: Sequence[float],
               size: Sequence[float], speed: float, heading: float,
               min_obj: float, max_obj: float):
    self.texture = np.ascontiguousarray(texture, dtype=np.uint8)
    th, tw = self.texture.shape[:2]
    self.object_box = np.asarray(object_box, np.float64)
    self.obj_frac = np.array([(self.object_box[2] - self.object_box[0]) / tw,
                              (self.object_box[3] - self.object_box[1]) / th])
    self.cx, self.cy = float(center[0]), float(center[1])
    self.w, self.h = float(size[0]), float(size[1])
    self.ar0 = self.w / self.h
    self.speed = float(speed)
    self.heading = float(heading)
    self.vw = 0.0
    self.vh = 0.0
    self.min_obj = float(min_obj)
    self.max_obj = float(max_obj)
    self._pil = None
    self._cache_size = None
    self._cache = None

  # -- geometry ---------------------------------------------------------------
  def rect(self, canvas: int) -> Tuple[int, int, int, int]:
    """The drawn rectangle: integer (x0, y0, x1, y1), at least 1 px, inside the canvas."""
    x0 = int(round(self.cx - self.w / 2.0))
    y0 = int(round(self.cy - self.h / 2.0))
    x1 = int(round(self.cx + self.w / 2.0))
    y1 = int(round(self.cy + self.h / 2.0))
    x0 = min(max(x0, 0), canvas - 1)
    y0 = min(max(y0, 0), canvas - 1)
    x1 = min(max(x1, x0 + 1), canvas)
    y1 = min(max(y1, y0 + 1), canvas)
    return x0, y0, x1, y1

  def object_box_on_canvas(self, canvas: int) -> np.ndarray:
    """xyxy of the object inside the drawn rectangle (the true extent)."""
    x0, y0, x1, y1 = self.rect(canvas)
    th, tw = self.texture.shape[:2]
    sx, sy = (x1 - x0) / tw, (y1 - y0) / th
    b = self.object_box
    return np.array([x0 + b[0] * sx, y0 + b[1] * sy, x0 + b[2] * sx, y0 + b[3] * sy])

  def _object_long_side(self) -> float:
    return max(self.w * self.obj_frac[0], self.h * self.obj_frac[1])

  # -- motion -----------------------------------------------------------------
  def step(self, rng: np.random.Generator, cfg: SimulatorConfig) -> None:
    """One Re3 motion step (four random draws, always in the same order)."""
    canvas = cfg.canvas_size
    d_speed = rng.laplace(0.0, cfg.speed_noise) if cfg.speed_noise > 0 else 0.0
    d_heading, d_vw, d_vh = rng.standard_normal(3)
    self.speed = float(np.clip(self.speed + d_speed, 0.0, cfg.max_speed))
    self.heading += d_heading * cfg.heading_noise
    self.vw = float(np.clip(self.vw + d_vw * cfg.size_velocity_noise,
                            -cfg.max_size_velocity, cfg.max_size_velocity))
    self.vh = float(np.clip(self.vh + d_vh * cfg.size_velocity_noise,
                            -cfg.max_size_velocity, cfg.max_size_velocity))
    self.w += self.vw * cfg.size_velocity_scale * canvas
    self.h += self.vh * cfg.size_velocity_scale * canvas
    self.w, self.h = max(self.w, 1.0), max(self.h, 1.0)
    lo, hi = self.ar0 / cfg.aspect_range, self.ar0 * cfg.aspect_range
    ar = self.w / self.h
    if ar < lo:
      self.h = self.w / lo
      self.vw = self.vh = 0.0
    elif ar > hi:
      self.w = self.h * hi
      self.vw = self.vh = 0.0
    # Size bounds (object's longer side) and the canvas: scale both sides.
    factor = 1.0
    side = self._object_long_side()
    if side > self.max_obj:
      factor = self.max_obj / side
    elif side < self.min_obj:
      factor = self.min_obj / side
    factor = min(factor, canvas / self.w, canvas / self.h)
    if factor != 1.0:
      self.w *= factor
      self.h *= factor
      self.vw = self.vh = 0.0
    self.cx += math.cos(self.heading) * self.speed * self.w * cfg.velocity_scale
    self.cy += math.sin(self.heading) * self.speed * self.h * cfg.velocity_scale
    self._bounce(cfg)

  def _bounce(self, cfg: SimulatorConfig) -> None:
    canvas = cfg.canvas_size
    out_x = self.cx - self.w / 2 < 0 or self.cx + self.w / 2 > canvas
    out_y = self.cy - self.h / 2 < 0 or self.cy + self.h / 2 > canvas
    if out_x or out_y:
      dx, dy = math.cos(self.heading), math.sin(self.heading)
      if out_x:
        dx = -dx
      if out_y:
        dy = -dy
      self.heading = math.atan2(dy, dx)
      self.speed *= cfg.bounce_speed_factor
      self.cx = min(max(self.cx, self.w / 2), canvas - self.w / 2)
      self.cy = min(max(self.cy, self.h / 2), canvas - self.h / 2)

  # -- pixels -------------------------------------------------------------------
  def pixels(self, width: int, height: int) -> np.ndarray:
    """The texture resized to (height, width, 3), cached while the size holds."""
    if self._cache_size != (width, height):
      if self._pil is None:
        self._pil = Image.fromarray(self.texture)
      self._cache = np.asarray(self._pil.resize((width, height), Image.BILINEAR))
      self._cache_size = (width, height)
    return self._cache


def _pixel_span(a: float, b: float, limit: int) -> Tuple[int, int]:
  """Pixels whose centers lie in [a, b): [ceil(a - .5), ceil(b - .5)), at least one pixel."""
  i0 = int(math.ceil(a - 0.5))
  i1 = int(math.ceil(b - 0.5))
  if i1 <= i0:
    i0 = int(math.floor((a + b) / 2.0))
    i1 = i0 + 1
  return min(max(i0, 0), limit - 1), min(max(i1, 1), limit)


class Scene:
  """Background + patches in drawing order; `objects[target_index]` is the target."""

  def __init__(self, background: np.ndarray, objects: List[SimObject], target_index: int,
               cfg: SimulatorConfig):
    size = cfg.canvas_size
    if background.shape[:2] != (size, size):
      raise ValueError(f"background is {background.shape[:2]}, canvas is {size}x{size}")
    self.background = np.ascontiguousarray(background, dtype=np.uint8)
    self.objects = objects
    self.target_index = target_index
    self.cfg = cfg

  @property
  def target(self) -> SimObject:
    return self.objects[self.target_index]

  @property
  def occluders(self) -> List[SimObject]:
    return self.objects[self.target_index + 1:]

  def step(self, rng: np.random.Generator) -> None:
    for obj in self.objects:
      obj.step(rng, self.cfg)

  def target_box(self) -> np.ndarray:
    return self.target.object_box_on_canvas(self.cfg.canvas_size)

  def occlusion(self) -> float:
    """Fraction of the target box's pixels under a front occluder's rectangle."""
    size = self.cfg.canvas_size
    box = self.target_box()
    x0, x1 = _pixel_span(box[0], box[2], size)
    y0, y1 = _pixel_span(box[1], box[3], size)
    covered = np.zeros((y1 - y0, x1 - x0), bool)
    for obj in self.occluders:
      r = obj.rect(size)
      ix0, iy0 = max(r[0], x0), max(r[1], y0)
      ix1, iy1 = min(r[2], x1), min(r[3], y1)
      if ix1 > ix0 and iy1 > iy0:
        covered[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = True
    return float(covered.mean())

  def render(self) -> np.ndarray:
    """The frame, HxWx3 uint8: background, then every patch in order."""
    size = self.cfg.canvas_size
    frame = self.background.copy()
    for obj in self.objects:
      x0, y0, x1, y1 = obj.rect(size)
      frame[y0:y1, x0:x1] = obj.pixels(x1 - x0, y1 - y0)
    return frame


# ---------------------------------------------------------------------------
# Building a scene from an image and a box
# ---------------------------------------------------------------------------


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
  if image.shape[1] == width and image.shape[0] == height:
    return image
  return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def _first_motion(rng: np.random.Generator, cfg: SimulatorConfig) -> Tuple[float, float]:
  speed = min(abs(float(rng.laplace(0.0, cfg.initial_speed_scale)))
              if cfg.initial_speed_scale > 0 else 0.0, cfg.max_speed)
  heading = float(rng.uniform(0.0, 2.0 * math.pi))
  return speed, heading


def _random_center(rng, w, h, canvas):
  return (float(rng.uniform(w / 2.0, canvas - w / 2.0)),
          float(rng.uniform(h / 2.0, canvas - h / 2.0)))


def _distractor_crop(rng: np.random.Generator, image: np.ndarray, box: np.ndarray,
                     max_overlap: float) -> np.ndarray:
  """A random rectangle of the image (sides 10 px to half the image, as in
  Re3) cutting at most `max_overlap` of the object box; the least
  overlapping of 100 tries otherwise."""
  ih, iw = image.shape[:2]
  box_area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-6)
  best, best_overlap = None, 2.0
  for _ in range(100):
    w = int(rng.integers(min(10, iw), max(min(10, iw) + 1, iw // 2 + 1)))
    h = int(rng.integers(min(10, ih), max(min(10, ih) + 1, ih // 2 + 1)))
    x = int(rng.integers(0, iw - w + 1))
    y = int(rng.integers(0, ih - h + 1))
    ow = max(0.0, min(x + w, box[2]) - max(x, box[0]))
    oh = max(0.0, min(y + h, box[3]) - max(y, box[1]))
    overlap = ow * oh / box_area
    if overlap < best_overlap:
      best, best_overlap = (x, y, w, h), overlap
    if overlap <= max_overlap:
      break
  x, y, w, h = best
  return image[y:y + h, x:x + w]


def check_source_box(box_xyxy, height: int, width: int, min_size: float) -> np.ndarray:
  """The box clipped to the image; SimulationError (reason invalid_box / small_box)."""
  b = np.asarray(box_xyxy, np.float64).reshape(-1)
  if b.shape != (4,) or not np.all(np.isfinite(b)):
    raise SimulationError(RejectReason.INVALID_BOX, f"box {b.tolist()} is not 4 finite numbers")
  c = np.array([min(max(b[0], 0), width), min(max(b[1], 0), height),
                min(max(b[2], 0), width), min(max(b[3], 0), height)])
  if c[2] <= c[0] or c[3] <= c[1]:
    raise SimulationError(RejectReason.INVALID_BOX,
                          f"box {b.tolist()} is empty inside the {width}x{height} image")
  if min(c[2] - c[0], c[3] - c[1]) < min_size:
    raise SimulationError(RejectReason.SMALL_BOX, f"box {b.tolist()} is under {min_size} px a side")
  return c


def build_scene(image: np.ndarray, box_xyxy, rng: np.random.Generator,
                cfg: SimulatorConfig) -> Scene:
  """The Re3 scene for one object of one image (mirroring decided here)."""
  canvas = cfg.canvas_size
  ih, iw = image.shape[:2]
  box = check_source_box(box_xyxy, ih, iw, cfg.min_box_size)
  if rng.random() < cfg.mirror_prob:
    image = image[:, ::-1]
    box = np.array([iw - box[2], box[1], iw - box[0], box[3]])
  # Target texture: the box scaled by context_scale about its center, in whole pixels.
  cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
  bw, bh = box[2] - box[0], box[3] - box[1]
  px0 = int(max(math.floor(cx - bw * cfg.context_scale / 2.0), 0))
  py0 = int(max(math.floor(cy - bh * cfg.context_scale / 2.0), 0))
  px1 = int(min(math.ceil(cx + bw * cfg.context_scale / 2.0), iw))
  py1 = int(min(math.ceil(cy + bh * cfg.context_scale / 2.0), ih))
  texture = image[py0:py1, px0:px1]
  object_box = box - np.array([px0, py0, px0, py0])
  tw, th = px1 - px0, py1 - py0
  # Drawn size: the object's longer side uniform in [min, max] x canvas.
  min_obj, max_obj = cfg.target_min_size * canvas, cfg.target_max_size * canvas
  long_side = float(rng.uniform(min_obj, max_obj))
  scale = long_side / max(bw, bh)
  scale = min(scale, canvas / tw, canvas / th)
  w, h = tw * scale, th * scale
  speed, heading = _first_motion(rng, cfg)
  target = SimObject(texture, object_box, _random_center(rng, w, h, canvas), (w, h), speed,
                     heading, min_obj=min(min_obj, max(bw, bh) * scale), max_obj=max_obj)
  patch_side = max(w, h)
  distractors = []
  for _ in range(cfg.distractors_behind + cfg.occluders_front):
    crop = _distractor_crop(rng, image, box, cfg.distractor_max_overlap)
    ch, cw = crop.shape[:2]
    side = float(rng.uniform(cfg.distractor_min_scale, cfg.distractor_max_scale)) * patch_side
    s = min(side / max(cw, ch), canvas / cw, canvas / ch)
    dw, dh = max(cw * s, 1.0), max(ch * s, 1.0)
    speed, heading = _first_motion(rng, cfg)
    distractors.append(SimObject(
        crop, (0, 0, cw, ch), _random_center(rng, dw, dh, canvas), (dw, dh), speed, heading,
        min_obj=min(2.0, max(dw, dh)), max_obj=max(max(dw, dh),
                                                   cfg.distractor_max_scale * patch_side)))
  background = _resize(np.ascontiguousarray(image), canvas, canvas)
  objects = distractors[:cfg.distractors_behind] + [target] + distractors[cfg.distractors_behind:]
  return Scene(background, objects, cfg.distractors_behind, cfg)


def _clear_target(scene: Scene, rng: np.random.Generator) -> None:
  """Moves each occluder touching the target box to a random free place
  (Re3 retried placements the same way when a start was occluded)."""
  size = scene.cfg.canvas_size
  box = scene.target_box()
  for obj in scene.occluders:
    for _ in range(50):
      r = obj.rect(size)
      if r[2] <= box[0] or r[0] >= box[2] or r[3] <= box[1] or r[1] >= box[3]:
        break
      obj.cx, obj.cy = _random_center(rng, obj.w, obj.h, size)


@dataclasses.dataclass
class SimulatedTrack:
  frames: List[np.ndarray]   # [T] HxWx3 uint8
  boxes_xyxy: np.ndarray     # [T, 4] float32
  occlusion: np.ndarray      # [T] float32
  visible: np.ndarray        # [T] int64
  start_step: int            # simulation steps before the first frame


def run_scene(scene: Scene, rng: np.random.Generator,
              length: Optional[int] = None) -> SimulatedTrack:
  """Warm-up, find an unoccluded start, then render `length` frames."""
  cfg = scene.cfg
  length = cfg.track_length if length is None else length
  steps = int(rng.integers(0, cfg.max_warmup_steps + 1))
  for _ in range(steps):
    scene.step(rng)
  searched = 0
  while scene.occlusion() > 0.0 and searched < cfg.max_start_search:
    scene.step(rng)
    searched += 1
  if scene.occlusion() > 0.0:
    _clear_target(scene, rng)
    if scene.occlusion() > 0.0:
      raise SimulationError(
          RejectReason.NO_UNOCCLUDED_START,
          f"the target stayed occluded for {cfg.max_start_search} steps and could not be "
          f"cleared")
  frames, boxes, occ = [], np.zeros([length, 4], np.float32), np.zeros([length], np.float32)
  for t in range(length):
    if t > 0:
      scene.step(rng)
    frames.append(scene.render())
    boxes[t] = scene.target_box()
    occ[t] = scene.occlusion()
  visible = (occ <= cfg.occlusion_threshold).astype(np.int64)
  return SimulatedTrack(frames, boxes, occ, visible, steps + searched)


def simulate_track(image: np.ndarray, box_xyxy, rng: np.random.Generator,
                   cfg: SimulatorConfig) -> SimulatedTrack:
  """One track from an image and an object box in it."""
  return run_scene(build_scene(image, box_xyxy, rng, cfg), rng)
