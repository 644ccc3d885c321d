"""MNIST digits from the standard IDX files (gzip or not) or Keras' mnist.npz.

Why a reader of our own: the moving-MNIST job must run offline from the
files a user already has (the real 10k test set and 5k training digits ship
in ../shared/data/mnist in IDX form), and a truncated download must stop the
job with a message naming the file instead of producing garbage digits.

IDX layout (big-endian): magic = 0x00 0x00 <dtype 0x08 = uint8> <ndim>, then
ndim uint32 dimension sizes, then the data. Images are idx3 [N, 28, 28],
labels idx1 [N].

File names looked up in `--mnist_dir` for a split:
  train: train-images-idx3-ubyte[.gz] / train-labels-idx1-ubyte[.gz], or any
         other `train*-images-idx3-ubyte[.gz]` with its matching labels file
         (e.g. train5k-*)
  test:  t10k-images-idx3-ubyte[.gz] / t10k-labels-idx1-ubyte[.gz]
  either: mnist.npz (keys x_train, y_train, x_test, y_test) when no IDX pair
          for that split is present.
"""

from __future__ import annotations

import gzip
import io
import re
from typing import Tuple

import numpy as np

from pipelines.readers import fs

IDX_UBYTE = 0x08
SPLITS = ("train", "test")
_PREFIX = {"train": "train", "test": "t10k"}


class MnistError(ValueError):
  """A missing or malformed MNIST file; the message names the file."""


def _read(path: str) -> bytes:
  try:
    data = fs.read_bytes(path)
  except OSError as e:
    raise MnistError(f"{path}: cannot read file ({e})") from e
  if path.endswith(".gz"):
    try:
      data = gzip.decompress(data)
    except (OSError, EOFError, ValueError) as e:
      raise MnistError(f"{path}: not a valid gzip file ({e})") from e
  return data


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
  """IDX bytes -> uint8 array of the shape in the header; MnistError naming `name`."""
  if len(data) < 4:
    raise MnistError(f"{name}: too short for an IDX header ({len(data)} bytes)")
  if data[0] != 0 or data[1] != 0:
    raise MnistError(f"{name}: bad IDX magic {data[:4].hex()} (expected 0000 08 0n)")
  if data[2] != IDX_UBYTE:
    raise MnistError(f"{name}: IDX data type 0x{data[2]:02x} is not unsigned byte (0x08)")
  ndim = data[3]
  if ndim < 1 or ndim > 4:
    raise MnistError(f"{name}: IDX header says {ndim} dimensions")
  header = 4 + 4 * ndim
  if len(data) < header:
    raise MnistError(f"{name}: truncated IDX header")
  dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  expected = int(np.prod(dims, dtype=np.int64))
  payload = len(data) - header
  if payload != expected:
    raise MnistError(f"{name}: IDX header promises {dims} = {expected} bytes of data, "
                     f"file has {payload} (truncated or corrupt)")
  return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: str) -> np.ndarray:
  return parse_idx(_read(path), path)


def _find_idx_pair(mnist_dir: str, split: str) -> Tuple[str, str]:
  """(images, labels) paths for a split, or ('', '') when none is present."""
  names = fs.listdir(mnist_dir)
  pattern = re.compile(rf"^({_PREFIX[split]}[^-]*)-images-idx3-ubyte(\.gz)?$")
  candidates = sorted(n for n in names if pattern.match(n))
  # The official name first, then variants like train5k-*.
  candidates.sort(key=lambda n: (pattern.match(n).group(1) != _PREFIX[split], n))
  for images in candidates:
    m = pattern.match(images)
    same = m.group(2) or ""
    for suffix in (same, "" if same else ".gz"):
      labels = f"{m.group(1)}-labels-idx1-ubyte{suffix}"
      if labels in names:
        return fs.join(mnist_dir, images), fs.join(mnist_dir, labels)
    raise MnistError(f"{fs.join(mnist_dir, images)}: no matching labels file "
                     f"{m.group(1)}-labels-idx1-ubyte[.gz] beside it")
  return "", ""


def load_idx_pair(images_path: str, labels_path: str) -> Tuple[np.ndarray, np.ndarray]:
  images = read_idx(images_path)
  labels = read_idx(labels_path)
  if images.ndim != 3:
    raise MnistError(f"{images_path}: expected an idx3 image file [N, H, W], got shape "
                     f"{images.shape}")
  if labels.ndim != 1:
    raise MnistError(f"{labels_path}: expected an idx1 label file [N], got shape {labels.shape}")
  if len(images) != len(labels):
    raise MnistError(f"{images_path} has {len(images)} images but {labels_path} has "
                     f"{len(labels)} labels")
  _check_labels(labels, labels_path)
  return images, labels


def _check_labels(labels: np.ndarray, name: str) -> None:
  if labels.size and int(labels.max()) > 9:
    raise MnistError(f"{name}: label {int(labels.max())} is not a digit 0-9")


def load_npz(path: str, split: str) -> Tuple[np.ndarray, np.ndarray]:
  """Keras' mnist.npz (x_train, y_train, x_test, y_test)."""
  data = _read(path)
  try:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
      keys = set(z.files)
      xk, yk = f"x_{split}", f"y_{split}"
      if xk not in keys or yk not in keys:
        raise MnistError(f"{path}: no arrays {xk!r} and {yk!r} (has {sorted(keys)})")
      images, labels = np.asarray(z[xk]), np.asarray(z[yk])
  except MnistError:
    raise
  except Exception as e:  # zipfile.BadZipFile, ValueError, OSError  # pylint: disable=broad-except
    raise MnistError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from e
  if images.ndim != 3 or images.dtype != np.uint8:
    raise MnistError(f"{path}: {xk} must be uint8 [N, H, W], got {images.dtype} {images.shape}")
  labels = labels.reshape(-1)
  if len(labels) != len(images):
    raise MnistError(f"{path}: {len(images)} images in {xk} but {len(labels)} labels in {yk}")
  if not np.issubdtype(labels.dtype, np.integer) or (labels.size and labels.min() < 0):
    raise MnistError(f"{path}: {yk} must hold digit classes 0-9")
  _check_labels(labels, f"{path} {yk}")
  return images, labels.astype(np.uint8)


def load_mnist(mnist_dir: str, split: str) -> Tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, 28, 28], labels uint8 [N]) of a split from a folder.

  IDX files win over mnist.npz; a folder with neither is an error that lists
  what was looked for. Also accepts the path of an .npz file itself.
  """
  if split not in SPLITS:
    raise MnistError(f"unknown MNIST split {split!r}; expected one of {SPLITS}")
  if mnist_dir.endswith(".npz") and fs.isfile(mnist_dir):
    return _nonempty(load_npz(mnist_dir, split), mnist_dir)
  if not fs.isdir(mnist_dir):
    raise MnistError(f"MNIST directory {mnist_dir!r} does not exist")
  images_path, labels_path = _find_idx_pair(mnist_dir, split)
  if images_path:
    return _nonempty(load_idx_pair(images_path, labels_path), images_path)
  npz = fs.join(mnist_dir, "mnist.npz")
  if fs.isfile(npz):
    return _nonempty(load_npz(npz, split), npz)
  raise MnistError(
      f"{mnist_dir}: no MNIST {split} data: expected {_PREFIX[split]}*-images-idx3-ubyte[.gz] "
      f"with {_PREFIX[split]}*-labels-idx1-ubyte[.gz], or mnist.npz")


def _nonempty(pair, name):
  if len(pair[0]) == 0:
    raise MnistError(f"{name}: holds no digits")
  return pair

