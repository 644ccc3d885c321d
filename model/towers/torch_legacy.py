"""Reads a legacy (non-zip) `torch.save` state dict with pickle and NumPy.

No torch needed. The legacy format (torch < 1.6, and `torch.save(...,
_use_new_zipfile_serialization=False)`) is five pieces back to back:

  pickle(MAGIC_NUMBER)  pickle(PROTOCOL_VERSION)  pickle(sys_info dict)
  pickle(the object)    pickle(list of storage keys)
  then for each key: int64 element count + the storage's raw bytes

Inside the object every tensor is `torch._utils._rebuild_tensor_v2(storage,
offset, size, stride, ...)` whose storage is a persistent id
('storage', torch.<Type>Storage, key, location, numel[, view metadata]).
The unpickler here resolves only those names (and collections.OrderedDict);
any other global is refused, so reading runs no code from the file. Tensors
are rebuilt from their storage with their offset and strides (converted
checkpoints often hold transposed, non-contiguous views) and copied out as
C-contiguous arrays.
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
from typing import Dict

import numpy as np

MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
PROTOCOL_VERSION = 1001

STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class TorchLegacyError(ValueError):
  """The file is not a readable legacy torch.save file; the message names it."""


class _StorageType:
  def __init__(self, name: str):
    self.name = name
    self.dtype = np.dtype(STORAGE_DTYPES[name])


class _StorageRef:
  def __init__(self, key: str, stype: _StorageType, numel: int, offset: int = 0):
    self.key, self.stype, self.numel, self.offset = key, stype, numel, offset


class _TensorRef:
  def __init__(self, storage: _StorageRef, offset: int, size, stride):
    self.storage, self.offset = storage, int(offset)
    self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
  del requires_grad, backward_hooks, metadata
  return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
  del requires_grad, backward_hooks
  return data


_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
  def __init__(self, f, path: str, allow_storages: bool):
    super().__init__(f, encoding="latin1")
    self._path = path
    self._allow_storages = allow_storages
    self.storage_dtypes: Dict[str, np.dtype] = {}   # every storage key seen -> its dtype

  def find_class(self, module, name):
    if (module, name) in _GLOBALS:
      return _GLOBALS[(module, name)]
    if module == "torch" and name in STORAGE_DTYPES and self._allow_storages:
      return _StorageType(name)
    raise TorchLegacyError(f"{self._path}: refuses to load global {module}.{name} "
                           f"(only tensors, storages and OrderedDict are read)")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)):
      raise TorchLegacyError(f"{self._path}: unexpected persistent id {pid!r:.200}")
    _, stype, key, _location, numel = pid[:5]
    self.storage_dtypes[str(key)] = stype.dtype
    view = pid[5] if len(pid) > 5 else None
    if view is not None:  # (view key, offset, size) into the root storage `key`
      _view_key, offset, size = view
      return _StorageRef(str(key), stype, int(size), int(offset))
    return _StorageRef(str(key), stype, int(numel))


def read_legacy_state_dict(path: str) -> Dict[str, np.ndarray]:
  """{tensor name: np.ndarray} of a legacy torch.save state dict (see module doc).

  Entries that are not tensors are dropped. Raises TorchLegacyError naming the
  file when it is missing, a zip-format checkpoint, or not this format.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise TorchLegacyError(f"torch checkpoint not found: {path}")
  with open(path, "rb") as f:
    head = f.read(4)
    if head.startswith(b"PK"):
      raise TorchLegacyError(f"{path}: is a zip-format torch.save file; only the legacy "
                             "(non-zip) format is read here")
    f.seek(0)
    try:
      magic = _Unpickler(f, path, False).load()
      if magic != MAGIC_NUMBER:
        raise TorchLegacyError(f"{path}: bad magic number {magic!r:.60} (expected {MAGIC_NUMBER:#x}); "
                               "not a legacy torch.save file")
      protocol = _Unpickler(f, path, False).load()
      if protocol != PROTOCOL_VERSION:
        raise TorchLegacyError(f"{path}: unsupported protocol version {protocol!r:.60} "
                               f"(expected {PROTOCOL_VERSION})")
      sys_info = _Unpickler(f, path, False).load()
      if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise TorchLegacyError(f"{path}: sys info {sys_info!r:.200} is not a little-endian torch file")
      unpickler = _Unpickler(f, path, True)
      obj = unpickler.load()
      keys = _Unpickler(f, path, False).load()
    except TorchLegacyError:
      raise
    except Exception as e:  # noqa: BLE001 - any pickle failure is a bad file
      raise TorchLegacyError(f"{path}: not a legacy torch.save file ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
      raise TorchLegacyError(f"{path}: holds a {type(obj).__name__}, expected a state dict")
    if not isinstance(keys, list):
      raise TorchLegacyError(f"{path}: storage key list missing (got {type(keys).__name__})")
    buffers = {}
    for key in keys:
      raw = f.read(8)
      if len(raw) != 8:
        raise TorchLegacyError(f"{path}: truncated before storage {key!r}")
      (numel,) = struct.unpack("<q", raw)
      dtype = unpickler.storage_dtypes.get(str(key))
      if dtype is None:  # its element size is unknown, so the rest could not be read
        raise TorchLegacyError(f"{path}: storage {key!r} is listed but no tensor refers to it")
      nbytes = numel * dtype.itemsize
      data = f.read(nbytes)
      if numel < 0 or len(data) != nbytes:
        raise TorchLegacyError(f"{path}: storage {key!r} truncated ({len(data)} of {nbytes} bytes)")
      buffers[str(key)] = np.frombuffer(data, dtype.newbyteorder("<"))
  out: Dict[str, np.ndarray] = {}
  for name, value in obj.items():
    if isinstance(value, _TensorRef):
      out[str(name)] = _materialise(value, buffers, path, str(name))
  return out


def _materialise(t: _TensorRef, buffers, path: str, name: str) -> np.ndarray:
  buf = buffers.get(t.storage.key)
  if buf is None:
    raise TorchLegacyError(f"{path}: tensor '{name}' refers to storage {t.storage.key!r}, "
                           "which the file does not hold")
  start = t.storage.offset + t.offset
  if len(t.size) != len(t.stride):
    raise TorchLegacyError(f"{path}: tensor '{name}' has size {t.size} but stride {t.stride}")
  if any(s < 0 for s in t.size + t.stride):
    raise TorchLegacyError(f"{path}: tensor '{name}' has a negative size or stride")
  if 0 in t.size:
    return np.zeros(t.size, buf.dtype)
  last = start + sum((n - 1) * s for n, s in zip(t.size, t.stride))
  if start < 0 or last >= len(buf):
    raise TorchLegacyError(f"{path}: tensor '{name}' (size {t.size}, stride {t.stride}, offset "
                           f"{start}) reads past its storage of {len(buf)} elements")
  view = np.lib.stride_tricks.as_strided(
      buf[start:], shape=t.size, strides=tuple(s * buf.itemsize for s in t.stride), writeable=False)
  return np.ascontiguousarray(view).astype(buf.dtype.newbyteorder("="), copy=False)
