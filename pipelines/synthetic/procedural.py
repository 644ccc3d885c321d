"""Procedural "photos" with object boxes: the simulator's embedded default source.

Why: a fresh install has no ImageNet DET. To let `python -m
pipelines.build_synthetic` build a usable set at once (trying the system,
smoke tests, CI) we draw images that have what the simulator needs from a
photo: a textured background and a few distinct objects with known boxes.
Backgrounds mix gradients, value noise, stripes and soft blobs; objects are
ellipses, rotated rectangles, triangles, stars, rings and crosses, each
filled with its own texture (stripes, checkers, noise, gradients, dots) and
outlined, so targets and distractors are never flat squares. Real training
should use DET images (`--det_dir`); these are for trying the system.

Everything is a function of the numpy Generator passed in.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np
from PIL import Image

SHAPES = ("ellipse", "rectangle", "triangle", "star", "ring", "cross")


def _colors(rng, n):
  return rng.uniform(0, 255, size=(n, 3))


def _value_noise(rng, h, w, cells):
  """Smooth noise in [0, 1]: a random grid upsampled bilinearly."""
  grid = (rng.random((cells, cells)) * 255).astype(np.uint8)
  return np.asarray(Image.fromarray(grid).resize((w, h), Image.BILINEAR), np.float32) / 255.0


def _texture(rng, h, w, kind=None) -> np.ndarray:
  """An HxWx3 float texture in [0, 255]: one of stripes, checker, noise,
  gradient, dots, blended between two random colors."""
  kind = kind or ("stripes", "checker", "noise", "gradient", "dots")[int(rng.integers(5))]
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  c = _colors(rng, 2)
  if kind == "stripes":
    theta = rng.uniform(0, math.pi)
    period = rng.uniform(4, max(5.0, min(h, w) / 3.0))
    t = 0.5 + 0.5 * np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period)
  elif kind == "checker":
    cell = rng.uniform(3, max(4.0, min(h, w) / 4.0))
    t = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float32)
  elif kind == "noise":
    t = _value_noise(rng, h, w, int(rng.integers(3, 10)))
    t = 0.7 * t + 0.3 * rng.random((h, w)).astype(np.float32)
  elif kind == "gradient":
    theta = rng.uniform(0, 2 * math.pi)
    t = xx * math.cos(theta) + yy * math.sin(theta)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
  else:  # dots
    cell = rng.uniform(5, max(6.0, min(h, w) / 3.0))
    fx = (xx / cell) % 1.0 - 0.5
    fy = (yy / cell) % 1.0 - 0.5
    t = (fx * fx + fy * fy < rng.uniform(0.04, 0.16)).astype(np.float32)
  return c[0] * (1 - t[..., None]) + c[1] * t[..., None]


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
  """HxWx3 float: a gradient with value noise, plus stripes and blobs."""
  img = _texture(rng, h, w, "gradient")
  noise = _value_noise(rng, h, w, int(rng.integers(3, 12)))
  img = img * (0.6 + 0.4 * noise[..., None])
  if rng.random() < 0.6:
    stripes = _texture(rng, h, w, "stripes")
    alpha = rng.uniform(0.15, 0.45)
    img = (1 - alpha) * img + alpha * stripes
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  for _ in range(int(rng.integers(2, 7))):
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    r = rng.uniform(0.05, 0.25) * min(h, w)
    a = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None] * rng.uniform(0.3, 0.8)
    img = (1 - a) * img + a * _colors(rng, 1)[0]
  return img


def shape_mask(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
  """Boolean HxW mask of a shape filling most of an h x w box."""
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  u = (xx + 0.5) / w * 2 - 1  # [-1, 1] over the box
  v = (yy + 0.5) / h * 2 - 1
  if kind == "ellipse":
    return u * u + v * v <= 1.0
  if kind == "ring":
    r2 = u * u + v * v
    return (r2 <= 1.0) & (r2 >= rng.uniform(0.15, 0.45))
  if kind == "rectangle":
    theta = rng.uniform(-0.5, 0.5)
    a = rng.uniform(0.55, 0.8)
    ru = u * math.cos(theta) + v * math.sin(theta)
    rv = -u * math.sin(theta) + v * math.cos(theta)
    return (np.abs(ru) <= a) & (np.abs(rv) <= a)
  if kind == "triangle":
    # Apex at the top, base at the bottom.
    return (v <= 1.0) & (np.abs(u) <= (v + 1.0) / 2.0)
  if kind == "star":
    points = int(rng.integers(5, 8))
    inner = rng.uniform(0.35, 0.6)
    ang = np.arctan2(v, u) + rng.uniform(0, 2 * math.pi)
    r = np.sqrt(u * u + v * v)
    frac = np.abs(((ang * points / (2 * math.pi)) % 1.0) - 0.5) * 2  # 1 at tips, 0 between
    return r <= inner + (1 - inner) * frac
  if kind == "cross":
    t = rng.uniform(0.25, 0.45)
    return (np.abs(u) <= t) | (np.abs(v) <= t)
  raise ValueError(f"unknown shape {kind!r}")


def make_image(rng: np.random.Generator, min_size: int = 320, max_size: int = 480,
               max_objects: int = 3) -> Tuple[np.ndarray, List[Tuple[np.ndarray, str]]]:
  """(image HxWx3 uint8, [(box xyxy float, label), ...]) with 1..max_objects shapes.

  Each box is the tight extent of its shape's drawn pixels. Shapes may
  overlap; later ones are drawn on top, and a box is recomputed from what
  stays visible of its shape, dropping a shape hidden below 40%.
  """
  h = int(rng.integers(min_size, max_size + 1))
  w = int(rng.integers(min_size, max_size + 1))
  img = background(rng, h, w)
  owner = np.full((h, w), -1, np.int32)
  kinds = []
  full_area = []
  for k in range(int(rng.integers(1, max_objects + 1))):
    kind = SHAPES[int(rng.integers(len(SHAPES)))]
    side = rng.uniform(0.15, 0.45) * min(h, w)
    ar = math.exp(rng.uniform(-0.5, 0.5))
    bw = max(8, int(side * math.sqrt(ar)))
    bh = max(8, int(side / math.sqrt(ar)))
    bw, bh = min(bw, w - 2), min(bh, h - 2)
    x0 = int(rng.integers(0, w - bw + 1))
    y0 = int(rng.integers(0, h - bh + 1))
    mask = shape_mask(kind, bh, bw, rng)
    tex = _texture(rng, bh, bw)
    # Dark or light outline, 1-3 px, so shapes read as objects.
    edge = mask & ~_erode(mask, int(rng.integers(1, 4)))
    tex[edge] = 255.0 if rng.random() < 0.5 else 0.0
    region = img[y0:y0 + bh, x0:x0 + bw]
    region[mask] = tex[mask]
    owner[y0:y0 + bh, x0:x0 + bw][mask] = k
    kinds.append(kind)
    full_area.append(int(mask.sum()))
  objects = []
  for k, kind in enumerate(kinds):
    ys, xs = np.nonzero(owner == k)
    if len(xs) < 0.4 * full_area[k] or len(xs) == 0:
      continue
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
    objects.append((box, kind))
  if not objects:  # every shape buried: the topmost one is always visible
    ys, xs = np.nonzero(owner == owner.max())
    objects.append((np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64),
                    kinds[int(owner.max())]))
  return np.clip(img, 0, 255).astype(np.uint8), objects


def _erode(mask: np.ndarray, r: int) -> np.ndarray:
  """Binary erosion by a (2r+1) square, with shifts (no scipy needed)."""
  out = mask.copy()
  padded = np.pad(mask, r, constant_values=False)
  h, w = mask.shape
  for dy in range(-r, r + 1):
    for dx in range(-r, r + 1):
      out &= padded[r + dy:r + dy + h, r + dx:r + dx + w]
  return out
