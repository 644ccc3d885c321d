"""The peer trackers: OpenCV's NanoTrack v2, NanoTrack v1 and VitTrack.

The one place that says which peers there are, which ONNX files each needs and
how OpenCV builds them; evaluation (train/eval/trackers.py), the quick start
and benchmarks/default_vs_peers.py all come here.

  nano      NanoTrack v2  cv2.TrackerNano  backbone: nanotrack_v2/nanotrack_backbone_sim.onnx
                                           neckhead: nanotrack_v2/nanotrack_head_sim.onnx
  nano_v1   NanoTrack v1  cv2.TrackerNano  the same two files under nanotrack_v1/
  vit       VitTrack      cv2.TrackerVit   net: vittrack/vitTracker.onnx

The files live in one folder laid out like ../shared/models/peers (its
SOURCE.txt names their origin and hashes; Apache-2.0), given as `peer_models`
(`--peer_models DIR` on the command lines) or by the environment variable
RE3_PEER_MODELS. A missing folder or file is a FileNotFoundError naming it, a
file OpenCV cannot load a ValueError naming it (both one line, so the command
lines end with exit 2).

`PeerTracker` has the comparison trackers' interface (RGB frames, float xywh
boxes; train/eval/baselines.py converts to OpenCV's BGR frames and integer
0-based boxes) and `tracking_score`: OpenCV's `getTrackingScore()` after the
last `update` (NanoTrack: the classification peak; VitTrack: the peak of its
score map, which OpenCV compares with `tracking_score_threshold` for `ok`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Dict, Optional, Tuple

from configs.cli import one_line
from train.eval import baselines

PEER_MODELS_ENV = "RE3_PEER_MODELS"
LAYOUT = "nanotrack_v2/, nanotrack_v1/, vittrack/ as in ../shared/models/peers"


@dataclasses.dataclass(frozen=True)
class PeerSpec:
  """One peer: its title, OpenCV's parameter struct and factory, and the files
  (parameter field, path relative to the peer-models folder) it needs."""
  name: str
  title: str
  params: str
  create: str
  files: Tuple[Tuple[str, str], ...]


PEERS: Dict[str, PeerSpec] = {
    "nano": PeerSpec("nano", "NanoTrack v2", "TrackerNano_Params", "TrackerNano_create",
                     (("backbone", "nanotrack_v2/nanotrack_backbone_sim.onnx"),
                      ("neckhead", "nanotrack_v2/nanotrack_head_sim.onnx"))),
    "nano_v1": PeerSpec("nano_v1", "NanoTrack v1", "TrackerNano_Params", "TrackerNano_create",
                        (("backbone", "nanotrack_v1/nanotrack_backbone_sim.onnx"),
                         ("neckhead", "nanotrack_v1/nanotrack_head_sim.onnx"))),
    "vit": PeerSpec("vit", "VitTrack", "TrackerVit_Params", "TrackerVit_create",
                    (("net", "vittrack/vitTracker.onnx"),)),
}
PEER_NAMES = tuple(PEERS)


def _spec(name: str) -> PeerSpec:
  if name not in PEERS:
    raise ValueError(f"unknown peer tracker {name!r}; expected one of {list(PEER_NAMES)}")
  return PEERS[name]


def models_dir(peer_models: Optional[str] = None, name: str = "nano") -> str:
  """The peer-models folder: `peer_models`, else $RE3_PEER_MODELS; it must exist."""
  folder = peer_models or os.environ.get(PEER_MODELS_ENV, "")
  if not folder:
    raise FileNotFoundError(
        f"peer tracker {name!r} ({_spec(name).title}) needs its ONNX files: give --peer_models DIR "
        f"or set {PEER_MODELS_ENV} (a folder with {LAYOUT})")
  source = "--peer_models" if peer_models else PEER_MODELS_ENV
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"peer models folder {folder} ({source}) does not exist "
                            f"(expected {LAYOUT})")
  return folder


def model_files(name: str, peer_models: Optional[str] = None) -> Dict[str, str]:
  """Parameter field -> path of each file the peer needs; the first missing one is named."""
  spec = _spec(name)
  folder = models_dir(peer_models, name)
  out = {}
  for field, rel in spec.files:
    path = os.path.join(folder, rel)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"peer tracker {name!r} ({spec.title}): missing file {path} "
                              f"(peer models folder {folder}: expected {LAYOUT})")
    out[field] = path
  return out


@contextlib.contextmanager
def _opencv_errors_only(cv2):
  """OpenCV's dnn warns on every net it builds ("Targets are not supported by the
  new graph engine"); its log level is lowered to errors while a peer is built."""
  log = getattr(getattr(cv2, "utils", None), "logging", None)
  if log is None:
    yield
    return
  level = log.getLogLevel()
  log.setLogLevel(min(level, log.LOG_LEVEL_ERROR))
  try:
    yield
  finally:
    log.setLogLevel(level)


def create_opencv(name: str, peer_models: Optional[str] = None):
  """A fresh OpenCV tracker object of the peer (cv2.TrackerNano / cv2.TrackerVit):
  BGR frames, integer 0-based xywh boxes."""
  spec = _spec(name)
  files = model_files(name, peer_models)
  cv2 = baselines.import_cv2()
  params_cls, create = getattr(cv2, spec.params, None), getattr(cv2, spec.create, None)
  if params_cls is None or create is None:
    raise ImportError(f"this OpenCV ({cv2.__version__}) has no cv2.{spec.create} "
                      f"({spec.title} needs OpenCV >= {'4.9' if name == 'vit' else '4.7'})")
  params = params_cls()
  for field, path in files.items():
    setattr(params, field, path)
  try:
    with _opencv_errors_only(cv2):
      return create(params)
  except cv2.error as e:
    raise ValueError(f"peer tracker {name!r} ({spec.title}): OpenCV cannot load "
                     f"{' + '.join(files.values())}: {one_line(e)}") from e


class PeerTracker(baselines.OpenCVTracker):
  """A peer behind the comparison trackers' interface, with its tracking score."""

  def __init__(self, name: str, peer_models: Optional[str] = None):
    self.spec = _spec(name)
    self.peer_models = peer_models
    # Built now, so a missing file is named before any frame; the first init uses it.
    self._ready = create_opencv(name, peer_models)
    super().__init__(name, factory=self._next)
    self.tracking_score = float("nan")

  def _next(self):
    made, self._ready = self._ready, None
    return made if made is not None else create_opencv(self.name, self.peer_models)

  def init(self, image_rgb, box_xywh) -> None:
    super().init(image_rgb, box_xywh)
    self.tracking_score = float("nan")

  def update(self, image_rgb):
    out = super().update(image_rgb)
    self.tracking_score = float(self._tracker.getTrackingScore())
    return out


def make_peer(name: str, peer_models: Optional[str] = None) -> PeerTracker:
  """A fresh peer tracker by name (nano, nano_v1, vit)."""
  return PeerTracker(name, peer_models)
