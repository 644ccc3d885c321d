"""Writes the model the package ships as "default" from a training model_dir.

    python -m train.experiments.ship_default --model_dir runs/re3_pretrained/model \
        --output_dir model/pretrained/re3_lite0

The output is what `model.loading` reads as a model_dir: `config.yaml` (the
training config, unchanged) and a weights-only checkpoint (`tf.train.Checkpoint
(model=net)`, no optimizer slots: a third of the training checkpoint).
`Re3Tracker.load("default")` resolves to that folder.
"""

from __future__ import annotations

import os
import shutil
import sys

from configs import cli as cli_errors, quiet

quiet.setup()

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from model import loading  # noqa: E402


# --runtime -> the LiteRT quantization of the step export loading by name runs
RUNTIMES = {"tensorflow": None, "litert": "none", "litert-fp16": "fp16",
            "litert-dynamic": "dynamic"}


def ship(model_dir: str, output_dir: str, runtime: str = "tensorflow", notice: str = "") -> str:
  """Slim copy of the latest checkpoint of `model_dir` in `output_dir`; returns its prefix.

  runtime 'litert' (float32), 'litert-fp16' or 'litert-dynamic' (int8
  dynamic-range weights) names that LiteRT step export in loading.RUNTIME_FILE:
  loading the model by name runs it, converted from the checkpoint on first
  use; `notice` is a licence file copied beside the weights (NOTICE)."""
  if runtime not in RUNTIMES:
    raise ValueError(f"--runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
  task, net, ckpt, config_path = loading.load_model(model_dir, expect_task="re3")
  tmp = output_dir.rstrip("/") + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  shutil.copy(config_path, os.path.join(tmp, "config.yaml"))
  step = int(ckpt.rsplit("-", 1)[-1])
  # CheckpointManager writes the state file with paths relative to the folder,
  # so the folder can move (into the package, then site-packages).
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=net), tmp, max_to_keep=1,
                                       checkpoint_name="model")
  manager.save(checkpoint_number=step)
  if RUNTIMES[runtime] is not None:
    with open(os.path.join(tmp, loading.RUNTIME_FILE), "w") as f:
      f.write("# What loading this model by name runs (model.runtimes.load_re3_runtime): the\n"
              "# LiteRT step export of these weights in this quantization, built on first\n"
              "# use into the cache ($RE3_CACHE_DIR or ~/.cache/re3-tf). Its folder path or\n"
              "# precision='float32' gives the TensorFlow graph.\n"
              f"runtime: {runtime}\nquantize: {RUNTIMES[runtime]}\n"
              "note: the fastest runtime within 0.01 of the TensorFlow graph's validation AUC "
              "(README model card)\n")
  if notice:
    with open(notice) as f:
      licence = f.read()
    with open(os.path.join(tmp, "NOTICE"), "w") as f:
      if net.cfg.template == "nano_head":
        what = ("The tower and NanoTrack-head weights of this model are converted from NanoTrack "
                "v2's backbone and head (OpenCV's nanotrack_backbone_sim.onnx and "
                "nanotrack_head_sim.onnx")
      else:
        what = ("The tower weights of this model are converted from NanoTrack v2's backbone "
                "(OpenCV's nanotrack_backbone_sim.onnx")
      f.write(what + ", from the SiamTrackers/NanoTrack project), licensed under the Apache "
              "License 2.0, whose text follows.\n\n" + licence)
  with open(os.path.join(tmp, "SOURCE.txt"), "w") as f:
    f.write(f"checkpoint: {ckpt}\nconfig: {config_path}\n"
            "built by: python -m train.experiments.ship_default "
            f"--model_dir {model_dir} --output_dir {output_dir} --runtime {runtime}"
            + (f" --notice {notice}" if notice else "") + "\n")
  shutil.rmtree(output_dir, ignore_errors=True)
  os.replace(tmp, output_dir)
  return os.path.join(output_dir, f"model-{step}")


def main(argv, flag_values=None):
  fv = flag_values or flags.FLAGS
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  prefix = ship(fv.model_dir, fv.output_dir, fv.runtime, fv.notice)
  size = sum(os.path.getsize(os.path.join(fv.output_dir, n)) for n in os.listdir(fv.output_dir))
  print(f"ship_default: wrote {prefix} ({size / 2**20:.1f} MiB in {fv.output_dir})")


def _define_flags():
  flags.DEFINE_string("model_dir", None, "Training model_dir (config.yaml + checkpoints).")
  flags.DEFINE_string("output_dir", "model/pretrained/re3_lite0", "Where the shipped model goes.")
  flags.DEFINE_enum("runtime", "tensorflow", list(RUNTIMES),
                    "What loading the model by name runs: the TensorFlow graph, or a LiteRT "
                    "step export (float32, fp16 or int8 dynamic-range weights) of the weights, "
                    "built on first use into the cache.")
  flags.DEFINE_string("notice", "", "A licence file to ship beside the weights as NOTICE "
                      "(e.g. the Apache-2.0 text of weights derived from NanoTrack).")
  flags.mark_flag_as_required("model_dir")
  cli_errors.define_verbose_flag()


if __name__ == "__main__":
  _define_flags()
  app.run(main, flags_parser=cli_errors.flags_parser(__doc__))
  sys.exit(0)
