"""Per-track random generators derived from a stable hash.

Why: a Beam job may process track 17 on any worker, in any order, any number
of times (retries). Seeding a fresh numpy Generator from sha256(seed, names,
index) makes every track's content depend only on those values, never on
Python's salted hash() or on the processing order.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stable_seed(*parts) -> int:
  """A 64-bit integer from sha256 of the parts joined by '/'."""
  text = "/".join(str(p) for p in parts)
  return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def track_rng(*parts) -> np.random.Generator:
  """numpy Generator (PCG64) seeded from `stable_seed(*parts)`."""
  return np.random.default_rng(stable_seed(*parts))
