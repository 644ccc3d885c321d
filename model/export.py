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


def check_export_dir(export_dir: str) -> None:
  """ValueError unless export_dir is new or an empty directory (checked before
  any model is loaded)."""
  if tf.io.gfile.exists(export_dir):
    if not tf.io.gfile.isdir(export_dir):
      raise ValueError(f"--export_dir {export_dir}: is a file, not a directory")
    if tf.io.gfile.listdir(export_dir):
      raise ValueError(f"{export_dir}: export directory exists and is not empty")


def export(model_dir: str, export_dir: str, checkpoint: Optional[str] = None,
           fmt: str = "savedmodel", quantize: str = "none",
           calibration: Optional[str] = None) -> Dict[str, str]:
  """Restores the latest (or the given) checkpoint of `model_dir` and exports it
  (`fmt`, `quantize`, `calibration`: model/export_formats.py; Re3 only beyond
  the float32 SavedModel)."""
  quantize = export_formats.check_format(fmt, quantize, export_dir)
  if fmt == "savedmodel":
    check_export_dir(export_dir)
  elif tf.io.gfile.exists(export_dir):
    raise ValueError(f"--export_dir {export_dir}: exists (a {fmt} export is a new file)")
  task, net, ckpt, config_path = load_model(checkpoint or model_dir)
  if task != "re3" and (fmt, quantize) != ("savedmodel", "none"):
    raise ValueError(f"{config_path}: --format {fmt} --quantize {quantize} exports Re3 trackers, "
                     f"this is task {task!r}")
  if fmt != "savedmodel":
    export_formats.write_step(net, fmt, quantize, export_dir, calibration)
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
  app.run(cli_errors.guarded("model.export", main, flags.FLAGS, EXPECTED_ERRORS),
          flags_parser=cli_errors.flags_parser(__doc__))
