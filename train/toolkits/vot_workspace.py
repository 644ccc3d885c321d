"""Writes a ready VOT toolkit workspace from local OTB- or VOT-layout sequences.

  python -m train.toolkits.vot_workspace --dataset otb:../shared/data/tracking/otb \\
      --model runs/re3_small --workspace vot_ws
  vot evaluate --workspace vot_ws re3          # or: python -m train.toolkits.vot_cli evaluate ...
  vot analysis --workspace vot_ws --format json re3

The workspace (nothing is downloaded: the stack has no `dataset:` key):
  config.yaml           stack: stack.yaml, registry: [./trackers.ini]
  stack.yaml            one short-term supervised experiment `baseline` (VOT's
                        reset protocol: re-initialize --skip_initialize frames
                        after a failure, overlap 0) with the AR analyses
                        (per sequence and averaged; burn-in --burn_in, S = 30)
  trackers.ini          Re3 with --model: tracker --tracker through the python
                        protocol; --protocols python,traxpython adds
                        <tracker>_trax through the traxpython protocol
  sequences/list.txt    the sequence names; per sequence `sequence`
                        (channels.color=color/%08d.jpg), color/ frames (copied,
                        or symlinked with --symlink, never re-encoded) and
                        groundtruth.txt

Ground truth is what the project's readers (pipelines.readers.sequences) read:
0-based x,y,w,h rectangles; a VOT polygon becomes its axis-aligned bounding
box, as in train.evaluate. The toolkit then scores the same boxes against the
same ground truth as `train.evaluate --protocol vot` (README "Official
toolkits" lists the remaining convention differences).

--model is anything Re3Tracker.load accepts, "default" included; a path is
written to trackers.ini as an absolute path.
"""

from __future__ import annotations

import configparser
import os
import shutil
import sys
from typing import Dict, List, Optional, Sequence

from configs import quiet

quiet.setup()

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from configs import cli as cli_errors  # noqa: E402
from model import geometry  # noqa: E402
from pipelines.readers import sequences as sequence_readers  # noqa: E402
from train.eval import cli, metrics, protocols  # noqa: E402
from train.eval.datasets import parse_dataset  # noqa: E402

WORKSPACE_KINDS = ("otb", "vot")
TRACKER_PROTOCOLS = ("python", "traxpython")
EXPERIMENT = "baseline"
DEFAULT_TRACKER = "re3"
# Seconds the toolkit waits for each answer of the tracker; the first loads
# TensorFlow and the model.
DEFAULT_TIMEOUT_S = 600


def _model_arg(model: str) -> str:
  """'default' as it is; a path made absolute (the toolkit runs from anywhere)."""
  if model == "default" or not model:
    return model or "default"
  return os.path.abspath(model)


def _box_text(box_xywh) -> str:
  """One ground-truth row; repr keeps every float exactly as the reader parsed it."""
  return ",".join(repr(float(v)) for v in box_xywh)


def write_sequence(seq, out_dir: str, max_frames: int = 0, symlink: bool = False) -> int:
  """One sequence in the VOT layout; returns its number of frames."""
  n = len(seq.frame_paths) if not max_frames else min(max_frames, len(seq.frame_paths))
  boxes = seq.boxes_xyxy[:n]
  bad = np.flatnonzero(~metrics.valid_ground_truth(boxes))
  if bad.size:
    raise ValueError(f"sequence {seq.name!r}: frame {int(bad[0]) + 1} ({seq.frame_paths[bad[0]]})"
                     " has no valid ground-truth box; a VOT supervised experiment needs one "
                     "on every frame (cut the sequence with --max_frames or leave it out)")
  exts = {os.path.splitext(p)[1].lower() for p in seq.frame_paths[:n]}
  if len(exts) != 1:
    raise ValueError(f"sequence {seq.name!r}: frames of several types {sorted(exts)}")
  ext = exts.pop()
  color = os.path.join(out_dir, "color")
  os.makedirs(color, exist_ok=True)
  for i, src in enumerate(seq.frame_paths[:n], start=1):
    dst = os.path.join(color, f"{i:08d}{ext}")
    if os.path.lexists(dst):
      os.remove(dst)
    if symlink:
      os.symlink(os.path.abspath(src), dst)
    else:
      shutil.copyfile(src, dst)
  with open(os.path.join(out_dir, "groundtruth.txt"), "w") as f:
    for b in geometry.xyxy_to_xywh(boxes):
      f.write(_box_text(b) + "\n")
  with open(os.path.join(out_dir, "sequence"), "w") as f:
    f.write(f"channels.color=color/%08d{ext}\nchannel.default=color\nfps=30\nlength={n}\n")
  return n


def vot_experiment_class() -> str:
  """The stack's experiment type: the project's SupervisedExperiment, which
  runs vot-toolkit 0.9.0's reset protocol for a single-object tracker
  (train/toolkits/vot_experiment.py says why the toolkit's own cannot)."""
  return "train.toolkits.vot_experiment.SupervisedExperiment"


def stack_config(repetitions: int, skip_initialize: int, burn_in: int) -> Dict[str, object]:
  ar = {"sensitivity": int(metrics.VOT_ROBUSTNESS_SENSITIVITY), "burnin": burn_in}
  return {
      "title": "Local sequences, short-term supervised (reset) experiment",
      "experiments": {EXPERIMENT: {
          "type": vot_experiment_class(), "repetitions": repetitions, "skip_initialize": skip_initialize,
          "analyses": [dict(type="supervised_ar", name="ar", **ar),
                       {"type": "supervised_average_ar", "name": "average_ar",
                        "analysis": dict(ar)}],
      }},
  }


def trackers_ini(ids: Dict[str, str], model: str, reset_period: Optional[int],
                 timeout_s: int) -> configparser.ConfigParser:
  """One section per protocol ({protocol: identifier})."""
  ini = configparser.ConfigParser()
  ini.optionxform = str            # keep env_RE3_VOT_MODEL's case
  for protocol, identifier in ids.items():
    section = {"label": "Re3" if protocol == "python" else "Re3 (TraX)",
               "protocol": protocol, "timeout": str(timeout_s)}
    if protocol == "python":
      section.update(command="train.toolkits.vot_toolkit:Re3VOTTracker", convert="rectangle",
                     arg_model=_model_arg(model))
      if reset_period is not None:
        section["arg_reset_period"] = str(reset_period)
    else:
      section.update(command="train.toolkits.vot_toolkit", env_RE3_VOT_MODEL=_model_arg(model))
      if reset_period is not None:
        section["env_RE3_VOT_RESET_PERIOD"] = str(reset_period)
    ini[identifier] = section
  return ini


def tracker_ids(tracker: str, tracker_protocols: Sequence[str]) -> Dict[str, str]:
  """Identifier per protocol: the first protocol's tracker is `tracker`, a
  later traxpython one `<tracker>_trax`."""
  out = {}
  for i, p in enumerate(tracker_protocols):
    if p not in TRACKER_PROTOCOLS:
      raise ValueError(f"--protocols: {p!r} is not one of {TRACKER_PROTOCOLS}")
    out[p] = tracker if i == 0 else f"{tracker}_trax"
  if not out:
    raise ValueError("--protocols is empty")
  return out


def write_workspace(datasets: Sequence[str], workspace: str, model: str = "default",
                    sequences: Sequence[str] = (), max_sequences: int = 0, max_frames: int = 0,
                    tracker: str = DEFAULT_TRACKER, tracker_protocols: Sequence[str] = ("python",),
                    repetitions: int = 1, skip_initialize: int = protocols.VOT_SKIP,
                    burn_in: int = protocols.VOT_BURN_IN, reset_period: Optional[int] = None,
                    timeout_s: int = DEFAULT_TIMEOUT_S, symlink: bool = False) -> Dict[str, object]:
  """Writes the workspace from one or more KIND:DIR datasets (`sequences`
  picks names from any of them); returns {"sequences": [names], "frames":
  {name: n}, "trackers": {protocol: identifier}, ...}."""
  if isinstance(datasets, str):
    datasets = [datasets]
  if not datasets:
    raise ValueError("--dataset is required")
  if not tracker.replace("_", "").replace("-", "").isalnum():
    raise ValueError(f"--tracker {tracker!r}: letters, digits, '_' and '-' only")
  if repetitions < 1 or skip_initialize < 1 or burn_in < 0:
    raise ValueError(f"--repetitions ({repetitions}) and --skip_initialize ({skip_initialize}) "
                     f"must be >= 1, --burn_in ({burn_in}) >= 0")
  ids = tracker_ids(tracker, tracker_protocols)
  seqs = []
  wanted = set(sequences)
  for spec in datasets:
    kind, root = parse_dataset(spec, WORKSPACE_KINDS)
    found = sorted(sequence_readers.read_sequences(kind, root), key=lambda s: s.name)
    seqs.extend(s for s in found if not wanted or s.name in wanted)
  missing = wanted - {s.name for s in seqs}
  if missing:
    raise ValueError(f"--sequences: not in {', '.join(datasets)}: {sorted(missing)}")
  names_seen = [s.name for s in seqs]
  dupes = sorted({n for n in names_seen if names_seen.count(n) > 1})
  if dupes:
    raise ValueError(f"sequence names occur twice in {', '.join(datasets)}: {dupes}")
  if max_sequences:
    seqs = seqs[:max_sequences]
  if not seqs:
    raise ValueError(f"{', '.join(datasets)}: no sequences selected")
  seq_root = os.path.join(workspace, "sequences")
  os.makedirs(seq_root, exist_ok=True)
  frames: Dict[str, int] = {}
  for s in seqs:
    frames[s.name] = write_sequence(s, os.path.join(seq_root, s.name), max_frames, symlink)
  with open(os.path.join(seq_root, "list.txt"), "w") as f:
    f.write("".join(f"{s.name}\n" for s in seqs))
  with open(os.path.join(workspace, "stack.yaml"), "w") as f:
    yaml.safe_dump(stack_config(repetitions, skip_initialize, burn_in), f, sort_keys=False)
  with open(os.path.join(workspace, "trackers.ini"), "w") as f:
    trackers_ini(ids, model, reset_period, timeout_s).write(f)
  with open(os.path.join(workspace, "config.yaml"), "w") as f:
    yaml.safe_dump({"registry": ["./trackers.ini"], "stack": "stack.yaml"}, f, sort_keys=False)
  names: List[str] = [s.name for s in seqs]
  return {"workspace": os.path.abspath(workspace), "trackers": ids, "sequences": names,
          "frames": frames, "experiment": EXPERIMENT}


def define_flags(flag_values=flags.FLAGS):
  """Defined on demand (by run()); tests pass their own `flags.FlagValues()`."""
  flags.DEFINE_multi_string("dataset", None, f"KIND:DIR, KIND in {'|'.join(WORKSPACE_KINDS)}; "
                            "repeat to combine folders.", flag_values=flag_values)
  flags.DEFINE_string("workspace", None, "Folder to write the workspace to.",
                      flag_values=flag_values)
  flags.DEFINE_string("model", "default", "Model for the tracker: model_dir, SavedModel or "
                      "'default'.", flag_values=flag_values)
  flags.DEFINE_list("sequences", [], "Only these sequence names.", flag_values=flag_values)
  flags.DEFINE_integer("max_sequences", 0, "At most this many sequences (0 = all).",
                       flag_values=flag_values)
  flags.DEFINE_integer("max_frames", 0, "Cut every sequence to this many frames (0 = all).",
                       flag_values=flag_values)
  flags.DEFINE_string("tracker", DEFAULT_TRACKER, "Tracker identifier in trackers.ini.",
                      flag_values=flag_values)
  flags.DEFINE_list("protocols", ["python"], "Toolkit protocols, one tracker each: python "
                    "(named --tracker) and/or traxpython (--tracker, or <tracker>_trax when "
                    "second).", flag_values=flag_values)
  flags.DEFINE_integer("repetitions", 1, "Runs per sequence (Re3 is deterministic: one is "
                       "enough; the toolkit's own stacks use 15 and stop a deterministic "
                       "tracker after 3 identical runs).", flag_values=flag_values)
  flags.DEFINE_integer("skip_initialize", protocols.VOT_SKIP,
                       "Frames between a failure and the re-initialization.",
                       flag_values=flag_values)
  flags.DEFINE_integer("burn_in", protocols.VOT_BURN_IN,
                       "Frames after each initialization left out of accuracy.",
                       flag_values=flag_values)
  flags.DEFINE_integer("reset_period", None, "Re3 LSTM reset period (default: the tracker's).",
                       flag_values=flag_values)
  flags.DEFINE_integer("timeout", DEFAULT_TIMEOUT_S, "Seconds the toolkit waits for each "
                       "tracker answer.", flag_values=flag_values)
  flags.DEFINE_bool("symlink", False, "Symlink the frames instead of copying them.",
                    flag_values=flag_values)
  cli_errors.define_verbose_flag(flag_values)


def main(argv, flag_values=None):
  del argv
  FLAGS = flag_values or flags.FLAGS  # pylint: disable=invalid-name
  if not FLAGS.dataset or not FLAGS.workspace:
    raise app.UsageError("--dataset and --workspace are required")
  info = write_workspace(FLAGS.dataset, FLAGS.workspace, FLAGS.model, FLAGS.sequences,
                         FLAGS.max_sequences, FLAGS.max_frames, FLAGS.tracker, FLAGS.protocols,
                         FLAGS.repetitions, FLAGS.skip_initialize, FLAGS.burn_in,
                         FLAGS.reset_period, FLAGS.timeout, FLAGS.symlink)
  total = sum(info["frames"].values())
  ids = " ".join(info["trackers"].values())
  print(f"wrote {info['workspace']}: {len(info['sequences'])} sequences, {total} frames, "
        f"trackers {ids}")
  print(f"  vot evaluate --workspace {FLAGS.workspace} {ids}")
  print(f"  vot analysis --workspace {FLAGS.workspace} --format json {ids}")
  sys.stdout.flush()


def run(argv=None):
  cli.run(main, define_flags, __doc__, "workspace", argv, prog="train.toolkits.vot_workspace")


if __name__ == "__main__":
  run()
