"""Exports a trained tracker as a SavedModel a serving system can call statelessly.

    python -m model.export --model_dir runs/re3_small --export_dir exports/re3_small
    python -m model.export --model_dir runs/re3_small --format tflite --quantize int8 \
        --calibration calib.npz --export_dir exports/re3_small_int8.tflite
    saved_model_cli show --dir exports/re3_small --all

--format tflite|onnx writes the one-step function (model/step_graph.py) as one
file for LiteRT / onnxruntime; --quantize bf16 (SavedModel), fp16|dynamic|int8
(LiteRT), dynamic|int8 (ONNX): model/export_formats.py. model.tracker loads them all.

The model_dir is a training directory (config.yaml + checkpoints holding the
network as `model=`); a checkpoint prefix can be given with --checkpoint.
The task in config.yaml picks what is exported:

Re3 (`model.tracking_graphs.Re3Graph`; boxes are float32 (x, y, w, h) pixels, images
uint8 [H, W, 3] RGB, LSTM state float32 [4, units] = (h1, c1, h2, c2)):
  init(image, box)                                  -> state
  track_step(prev_image, image, box, state, initial_state, reset)
                                                    -> box, state
  track_step_crops(prev_crop, crop, box, state)     -> box, label, state
  init_batch / track_step_batch / track_step_crops_batch: the same with a
    leading target axis B (boxes [B, 4], state [B, 4, units], reset [B]).
  crop_batch(image, boxes) -> crops, track_step_carry_batch(prev_crops, image,
    boxes, state, initial_state, reset) -> boxes, state, crops: what
    model.tracker.Re3MultiTracker calls (it keeps crops, not images).
  serving_default = track_step.
  A client keeps `state` and `initial_state` (= init's state) per target and
  sets `reset` every `model.tracker.RESET_EVERY`-th step, which makes the
  graph run Re3's LSTM reset.

RL agent (`model.tracking_graphs.RLAgentGraph`; frames uint8 [S, S, C]):
  step(frames [B, S, S, C], state [B, 2, units]) -> boxes_xyxy, mu, state
  track(frames [B, T, S, S, C]) -> boxes_xyxy, mu        (serving_default)
"""

from __future__ import annotations

import os

from configs import quiet

quiet.setup()

from typing import Dict, Optional  # noqa: E402

from absl import app, flags, logging  # noqa: E402
import tensorflow as tf  # noqa: E402

from configs import cli as cli_errors  # noqa: E402
from configs import dir_lock  # noqa: E402
from model import export_formats  # noqa: E402
from model.loading import load_model  # noqa: E402
from model.tracking_graphs import Re3Graph, RLAgentGraph  # noqa: E402

RE3_SIGNATURES = ("init", "track_step", "track_step_crops", "init_batch", "track_step_batch",
                  "track_step_crops_batch", "crop_batch", "track_step_carry_batch")
RL_SIGNATURES = ("step", "track")
# What the command ends with one line (exit 2): bad paths and models, TF's file errors included.
EXPECTED_ERRORS = cli_errors.EXPECTED_ERRORS + (tf.errors.OpError,)


def _signatures(module, names) -> Dict[str, object]:
  return {name: getattr(module, name).get_concrete_function() for name in names}


def _save(graph, names, serving_default: str, export_dir: str) -> str:
  sigs = _signatures(graph, names)
  sigs["serving_default"] = sigs[serving_default]
  tf.saved_model.save(graph, export_dir, signatures=sigs)
  return export_dir


def export_re3(net, export_dir: str) -> str:
  return _save(Re3Graph(net), RE3_SIGNATURES, "track_step", export_dir)


def export_rl_agent(agent, export_dir: str) -> str:
  return _save(RLAgentGraph(agent), RL_SIGNATURES, "track", export_dir)


# Held while an export writes: inside the SavedModel folder, beside a one-file export.
EXPORT_LOCK_NAME = ".export.lock"
LOCK_SUFFIX = ".lock"
PROG = "model.export"


def check_export_dir(export_dir: str) -> None:
  """ValueError unless export_dir is new or an empty directory (its own lock
  aside); the message says when the folder looks like an export that did not
  finish."""
  if tf.io.gfile.exists(export_dir):
    if not tf.io.gfile.isdir(export_dir):
      raise ValueError(f"--export_dir {export_dir}: is a file, not a directory")
    entries = [e.rstrip("/") for e in tf.io.gfile.listdir(export_dir)
               if e.rstrip("/") != EXPORT_LOCK_NAME]
    if entries:
      if "saved_model.pb" not in entries and "variables" in entries:
        raise ValueError(f"{export_dir}: export directory exists and is not empty: it holds "
                         "variables/ but no saved_model.pb, the remains of an export that did "
                         "not finish; remove it and export again")
      raise ValueError(f"{export_dir}: export directory exists and is not empty")


def partial_name(path: str, pid: int) -> str:
  """NAME.partial-PID.EXT: where a one-file export is written before its rename."""
  root, ext = os.path.splitext(path)
  return f"{root}.partial-{pid}{ext}"


def _remove_dead_export(export_dir: str, fmt: str, holder) -> None:
  """Removes what an export killed midway (its lock found stale) left."""
  if fmt == "savedmodel":
    left = [e.rstrip("/") for e in tf.io.gfile.listdir(export_dir)
            if e.rstrip("/") != EXPORT_LOCK_NAME]
    for entry in left:
      path = os.path.join(export_dir, entry)
      if tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
      else:
        tf.io.gfile.remove(path)
  else:
    try:
      partial = partial_name(export_dir, int(holder.get("pid")))
    except (TypeError, ValueError):
      return
    left = [partial] if tf.io.gfile.exists(partial) else []
    for path in left:
      tf.io.gfile.remove(path)
  if left:
    logging.warning("%s: removed what an export that did not finish (pid %s, started %s) left "
                    "in %s: %s", PROG, holder.get("pid"), holder.get("started", "?"), export_dir,
                    ", ".join(left))


def _lock(export_dir: str, fmt: str) -> dir_lock.DirLock:
  """The export's lock: EXPORT_DIR/.export.lock (the folder is created), or
  EXPORT.lock beside a one-file export."""
  if fmt == "savedmodel":
    path = os.path.join(export_dir, EXPORT_LOCK_NAME)
  else:
    path = export_dir + LOCK_SUFFIX
  return dir_lock.DirLock(path, PROG, f"--export_dir {export_dir}")


def export(model_dir: str, export_dir: str, checkpoint: Optional[str] = None,
           fmt: str = "savedmodel", quantize: str = "none",
           calibration: Optional[str] = None) -> Dict[str, str]:
  """Restores the latest (or the given) checkpoint of `model_dir` and exports it
  (`fmt`, `quantize`, `calibration`: model/export_formats.py; Re3 only beyond
  the float32 SavedModel).

  One export at a time per destination (configs/dir_lock.py): a second is
  refused naming the first; what an export killed midway left (its lock is
  stale) is removed. A failed export leaves nothing: a one-file export is
  written as NAME.partial-PID.EXT and renamed when complete; a SavedModel
  folder this call created is removed again, one it found empty is emptied.
  """
  quantize = export_formats.check_format(fmt, quantize, export_dir)
  if fmt == "savedmodel":
    if tf.io.gfile.exists(export_dir) and not tf.io.gfile.isdir(export_dir):
      raise ValueError(f"--export_dir {export_dir}: is a file, not a directory")
    created = not tf.io.gfile.exists(export_dir)
    if created:
      tf.io.gfile.makedirs(export_dir)
  else:
    created = False
    if tf.io.gfile.exists(export_dir):
      raise ValueError(f"--export_dir {export_dir}: exists (a {fmt} export is a new file)")
    if os.path.dirname(export_dir):
      tf.io.gfile.makedirs(os.path.dirname(export_dir))   # for the lock beside the file
  lock = _lock(export_dir, fmt)
  try:
    lock.acquire()
  except Exception:
    if created and not tf.io.gfile.listdir(export_dir):
      tf.io.gfile.rmtree(export_dir)
    raise
  checked = done = False
  try:
    if lock.stale_holder is not None:
      _remove_dead_export(export_dir, fmt, lock.stale_holder)
    if fmt == "savedmodel":
      check_export_dir(export_dir)   # after the lock: a killed export's files are gone
    elif tf.io.gfile.exists(export_dir):  # written while this export waited for the lock
      raise ValueError(f"--export_dir {export_dir}: exists (a {fmt} export is a new file)")
    checked = True   # from here on, what is in export_dir is this export's
    info = _export_locked(model_dir, export_dir, checkpoint, fmt, quantize, calibration)
    done = True
    return info
  finally:
    if checked and not done:
      _remove_failed_export(export_dir, fmt)
    lock.release()
    if not done and created and tf.io.gfile.isdir(export_dir) \
        and not tf.io.gfile.listdir(export_dir):
      tf.io.gfile.rmtree(export_dir)


def _remove_failed_export(export_dir: str, fmt: str) -> None:
  """What this export wrote before it failed (its lock still held)."""
  if fmt != "savedmodel":
    partial = partial_name(export_dir, os.getpid())
    if tf.io.gfile.exists(partial):
      tf.io.gfile.remove(partial)
    return
  if not tf.io.gfile.isdir(export_dir):
    return
  for entry in tf.io.gfile.listdir(export_dir):
    entry = entry.rstrip("/")
    path = os.path.join(export_dir, entry)
    if entry == EXPORT_LOCK_NAME:
      continue
    if tf.io.gfile.isdir(path):
      tf.io.gfile.rmtree(path)
    else:
      tf.io.gfile.remove(path)


def _export_locked(model_dir, export_dir, checkpoint, fmt, quantize, calibration):
  task, net, ckpt, config_path = load_model(checkpoint or model_dir)
  if task != "re3" and (fmt, quantize) != ("savedmodel", "none"):
    raise ValueError(f"{config_path}: --format {fmt} --quantize {quantize} exports Re3 trackers, "
                     f"this is task {task!r}")
  if fmt != "savedmodel":
    partial = partial_name(export_dir, os.getpid())
    export_formats.write_step(net, fmt, quantize, partial, calibration)
    tf.io.gfile.rename(partial, export_dir, overwrite=False)
    return {"task": task, "checkpoint": ckpt, "export_dir": export_dir}
  if task == "re3":
    export_re3(export_formats.savedmodel_net(net, quantize), export_dir)
  else:
    export_rl_agent(net, export_dir)
  # The model config beside the graph, for people (loading needs only the SavedModel).
  tf.io.gfile.copy(config_path, os.path.join(export_dir, "config.yaml"), overwrite=True)
  return {"task": task, "checkpoint": ckpt, "export_dir": export_dir}


def define_flags(flag_values=flags.FLAGS):
  """Defined on demand (by __main__), not at import: other entry points share
  absl's global flags, and importing several of them must not clash. Tests
  pass their own `flags.FlagValues()`."""
  flags.DEFINE_string("model_dir", None, "Training directory (config.yaml + checkpoints).",
                      flag_values=flag_values)
  flags.DEFINE_string("export_dir", None, "Where the SavedModel is written (must be empty/new).",
                      flag_values=flag_values)
  flags.DEFINE_string("checkpoint", None, "A checkpoint prefix to export instead of the latest.",
                      flag_values=flag_values)
  cli_errors.define_verbose_flag(flag_values)
  export_formats.define_flags(flag_values)


def main(argv, flag_values=None):
  del argv
  FLAGS = flag_values or flags.FLAGS  # pylint: disable=redefined-outer-name,invalid-name
  if not FLAGS.model_dir or not FLAGS.export_dir:
    raise app.UsageError("--model_dir and --export_dir are required")
  info = export(FLAGS.model_dir, FLAGS.export_dir, FLAGS.checkpoint, FLAGS.format, FLAGS.quantize,
                FLAGS.calibration)
  logging.info("exported %s", info)
  print(f"exported {info['task']} from {info['checkpoint']} to {info['export_dir']}")


if __name__ == "__main__":
  define_flags()
  app.run(cli_errors.guarded(PROG, main, flags.FLAGS, EXPECTED_ERRORS),
          flags_parser=cli_errors.flags_parser(__doc__))
