"""Evaluates trackers on a benchmark with the benchmark's own protocol.

  python -m train.evaluate --model runs/re3_small --dataset otb:../shared/data/tracking/otb \\
      --protocol ope --trackers re3,kcf,csrt,mil,stay --output_dir eval/otb

--dataset KIND:DIR, KIND one of
  otb | vot | lasot | uav123 | got10k   sequence folders, read by
                                       pipelines.readers.sequences (the same readers
                                       as pipelines.build_sequences)
  mnist                                moving-MNIST track records (--split, default test)
--protocol
  ope  one pass from the first box (OTB): success curve / AUC, precision at 20 px,
       normalized precision, plus the RL paper's average center error and IoU
  vid  one pass, scored as the Re3 paper's ImageNet VID figure: fraction of all
       boxes above each IoU threshold and its AUC (plus the RL paper's metrics)
  vot  supervised (Re3 Table I): re-init 5 frames after a failure (IoU 0),
       10 burn-in frames, accuracy, drops, robustness exp(-30 drops / frames)
--trackers  comma list: re3 (the model at --model: a Re3 or RL agent model_dir or
       SavedModel), kcf, csrt, mil (OpenCV), stay (stay-put floor), and the peers
       nano (OpenCV NanoTrack v2), nano_v1 (NanoTrack v1), vit (VitTrack), whose ONNX
       files are read from --peer_models DIR (or $RE3_PEER_MODELS), a folder laid out
       like ../shared/models/peers: nanotrack_v2/, nanotrack_v1/, vittrack/

  python -m train.evaluate --model default --dataset otb:../shared/data/tracking/otb \
      --trackers re3,csrt,nano,vit --peer_models ../shared/models/peers --output_dir eval/otb

The command only parses flags; the work is the train/eval package (datasets,
trackers, protocols, metrics, scoring, experiment, plots).

Output (--output_dir):
  performance.json              per tracker: dataset summary, per-sequence scores,
                                occluded-frames-only scores, speed
  boxes/<tracker>/<seq>.txt     one `x,y,w,h` line per frame (0-based pixels as the
                                tracker reports them, NaN where not tracked)
  boxes/<tracker>/<seq>_time.txt seconds spent in the tracker per frame
  boxes/<tracker>/<seq>_score.txt the tracker's own score per frame where it gives one
                                (the peers' OpenCV getTrackingScore())
  boxes/<tracker>/<seq>_codes.txt (vot) per-frame codes: 0 tracked, 1 init, 2 failure,
                                3 skipped, 4 before the first box
  *.png                         plots with every tracker on one figure (success,
                                precision, normalized precision / vid / accuracy-robustness;
                                `_occluded` variants when the data marks occlusion)

Occluded frames are those whose ground truth is valid and that the data marks as
occluded: `visible` False with a box (LaSOT full occlusion, GOT-10k cover 0, VID
occluded) or an occlusion fraction above 0 (GOT-10k cover, synthetic records).
"""

from __future__ import annotations

import os

from configs import quiet

quiet.setup()

from absl import app, flags, logging  # noqa: E402

from configs import cli as cli_errors  # noqa: E402
from model.tracker import RESET_EVERY  # noqa: E402
from train.eval import (  # noqa: E402
    cli, datasets, experiment, peers, protocols, scoring, trackers)


def define_flags(flag_values=flags.FLAGS):
  """Defined on demand (by run()), not at import: other entry points share
  absl's global flags, and importing several of them must not clash. Tests
  pass their own `flags.FlagValues()`."""
  flags.DEFINE_string("model", None, "Model to evaluate: training model_dir, SavedModel export or 'default' (the shipped tracker).",
                      flag_values=flag_values)
  flags.DEFINE_string("dataset", None, f"KIND:DIR, KIND in {'|'.join(datasets.KINDS)}.",
                      flag_values=flag_values)
  flags.DEFINE_enum("protocol", "ope", list(protocols.PROTOCOLS), "Evaluation protocol.",
                    flag_values=flag_values)
  flags.DEFINE_string("output_dir", None, "Where boxes, performance.json and plots go.",
                      flag_values=flag_values)
  flags.DEFINE_list("trackers", None, "Trackers to run side by side (default: re3 if --model "
                    f"is given): re3 (the model), {', '.join(trackers.BASELINE_TRACKERS)}, "
                    f"and the peers {', '.join(trackers.PEER_TRACKERS)}.",
                    flag_values=flag_values)
  flags.DEFINE_string("peer_models", None, "Folder of the peers' ONNX files (nanotrack_v2/, "
                      f"nanotrack_v1/, vittrack/); default ${peers.PEER_MODELS_ENV}.",
                      flag_values=flag_values)
  flags.DEFINE_integer("reset_period", RESET_EVERY,
                       "Re3 LSTM reset period in frames (0 = never).", flag_values=flag_values)
  flags.DEFINE_string("split", "test", "Split of the moving-MNIST records.",
                      flag_values=flag_values)
  flags.DEFINE_list("sequences", [], "Only these sequence names.", flag_values=flag_values)
  flags.DEFINE_integer("max_sequences", 0, "Evaluate at most this many sequences (0 = all).",
                       flag_values=flag_values)
  flags.DEFINE_integer("max_frames", 0, "Cut every sequence to this many frames (0 = all).",
                       flag_values=flag_values)
  flags.DEFINE_integer("vot_skip", 5, "VOT: frames between a failure and the re-initialization.",
                       flag_values=flag_values)
  flags.DEFINE_integer("vot_burn_in", 10,
                       "VOT: frames after each initialization left out of accuracy.",
                       flag_values=flag_values)
  cli_errors.define_verbose_flag(flag_values)


def main(argv, flag_values=None):
  del argv
  FLAGS = flag_values or flags.FLAGS  # pylint: disable=redefined-outer-name,invalid-name
  for name in ("dataset", "output_dir"):
    if not getattr(FLAGS, name):
      raise app.UsageError(f"--{name} is required")
  names = FLAGS.trackers or (["re3"] if FLAGS.model else [])
  if not names:
    raise app.UsageError("give --model and/or --trackers")
  perf = experiment.evaluate(FLAGS.model, FLAGS.dataset, FLAGS.protocol, FLAGS.output_dir, names,
                             FLAGS.reset_period, FLAGS.split, FLAGS.sequences,
                             FLAGS.max_sequences, FLAGS.max_frames, FLAGS.vot_skip,
                             FLAGS.vot_burn_in, peer_models=FLAGS.peer_models)
  logging.info("wrote %s", os.path.join(FLAGS.output_dir, "performance.json"))
  print(f"{perf['dataset']['kind']}: {len(perf['dataset']['sequences'])} sequences, "
        f"{perf['dataset']['frames']} frames, protocol {perf['protocol']}")
  for line in scoring.summary_lines(perf):
    print(line)


def run(argv=None):
  """Entry point: defines the flags and runs main (--help exits 0)."""
  cli.run(main, define_flags, __doc__, "dataset", argv, prog="train.evaluate")


if __name__ == "__main__":
  run()
