"""Test-wide settings: quiet TensorFlow, paths to the shared real data."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir():
  """`../shared` beside the checkout (real data); tests needing it fail loudly if absent."""
  if not SHARED.exists():
    pytest.fail(f"../shared not found next to the repository ({SHARED})")
  return SHARED
