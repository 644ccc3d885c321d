"""Re3Tracker for the GOT-10k toolkit (got10k 0.1.3, the `got10k` extra).

    from train.toolkits.got10k_toolkit import Re3GOT10kTracker, LocalExperimentOTB
    tracker = Re3GOT10kTracker("runs/re3_small")            # or "default"
    experiment = LocalExperimentOTB("../shared/data/tracking/otb", sequences=["Deer"])
    experiment.run(tracker)
    performance = experiment.report([tracker.name])

or from the command line:

  python -m train.toolkits.got10k_toolkit --model runs/re3_small \\
      --otb_dir ../shared/data/tracking/otb --sequences Deer,Freeman1 --output_dir got10k_otb

Re3GOT10kTracker is a got10k.trackers.Tracker: `init(image, box)` and
`update(image) -> box` on PIL images with x,y,w,h boxes, so every got10k
experiment (ExperimentOTB, ExperimentGOT10k, ExperimentVOT, ...) runs it.
The toolkit hands trackers the boxes of the dataset's files, which are 1-based
(Matlab convention) in OTB, GOT-10k, LaSOT and VOT, the rule of the project's
readers; the adapter turns them into the tracker's 0-based pixels and its
answers back (box_origin=0 for 0-based data).

got10k's ExperimentOTB always downloads the OTB sequences it does not find;
LocalExperimentOTB is the same experiment (same runner, same report: success
AUC over 21 IoU thresholds, precision at 20 px, per sequence and averaged) on
the OTB sequences found under a local folder (optionally a named subset, cut
to max_frames), with nothing downloaded. Its ground truth is read by the
project's reader (pipelines.readers.sequences.read_box_rows): a malformed row
is an error naming the file and its 1-based line.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Dict, Optional, Sequence

from configs import quiet

quiet.setup()

from absl import app, flags  # noqa: E402
from got10k.datasets import OTB  # noqa: E402
from got10k.experiments import ExperimentOTB  # noqa: E402
from got10k.trackers import Tracker as GOT10kTracker  # noqa: E402
import numpy as np  # noqa: E402

from configs import cli as cli_errors  # noqa: E402
from model.tracker import RESET_EVERY, Re3Tracker  # noqa: E402
from model.tracker_inputs import as_rgb  # noqa: E402
from pipelines.readers import sequences as sequence_readers  # noqa: E402
from train.eval import cli  # noqa: E402

DEFAULT_NAME = "Re3"
OTB_VERSIONS = (2013, 2015, "tb50", "tb100")


class Re3GOT10kTracker(GOT10kTracker):
  """Re3Tracker behind got10k's Tracker interface (deterministic)."""

  def __init__(self, model: str = "default", reset_period: Optional[int] = None,
               name: str = DEFAULT_NAME, box_origin: float = 1.0):
    super().__init__(name=name, is_deterministic=True)
    self.model = model
    self.tracker = Re3Tracker.load(model, RESET_EVERY if reset_period is None else reset_period)
    self._shift = np.array([box_origin, box_origin, 0.0, 0.0])

  def init(self, image, box):
    self.tracker.init(as_rgb(np.asarray(image)), np.asarray(box, np.float64) - self._shift)

  def update(self, image):
    _, box = self.tracker.update(as_rgb(np.asarray(image)))
    return np.asarray(box, np.float64) + self._shift


class _OTBSubset:
  """got10k's OTB dataset restricted to the sequences present (or named),
  each optionally cut to its first `max_frames` frames."""

  def __init__(self, root_dir: str, version, names: Sequence[str], max_frames: int):
    if not os.path.isdir(root_dir):
      raise ValueError(f"--otb_dir {root_dir!r} does not exist")
    with contextlib.redirect_stdout(io.StringIO()):   # one 'not exists' line per absent sequence
      self._otb = OTB(root_dir, version, download=False)
    present = list(self._otb.seq_names)
    if names:
      missing = sorted(set(names) - set(present))
      if missing:
        raise ValueError(f"{root_dir}: OTB{version} sequences not found: {missing} "
                         f"(found: {present})")
      present = [n for n in present if n in set(names)]
    if not present:
      raise ValueError(f"{root_dir}: no OTB{version} sequences (folders with "
                       "groundtruth_rect.txt and img/)")
    self.seq_names = present
    self.max_frames = max_frames
    self.root_dir, self.version = root_dir, version

  def __len__(self):
    return len(self.seq_names)

  def __getitem__(self, index):
    name = self.seq_names[index] if not isinstance(index, str) else index
    # The rows are read by the project's reader (errors name file:line), not
    # by got10k's np.loadtxt (numpy's message: no file, a 0-based row).
    anno_file = self._otb.anno_files[self._otb.seq_names.index(name)]
    anno = sequence_readers.read_box_rows(anno_file, (4,))
    try:
      img_files, _ = self._otb[name]
    except (AssertionError, ValueError) as e:
      raise ValueError(f"{anno_file}: got10k cannot pair its {len(anno)} rows with the "
                       f"images of {name} ({cli_errors.one_line(e)})") from None
    if self.max_frames:
      img_files, anno = img_files[:self.max_frames], anno[:self.max_frames]
    return img_files, anno

  def __iter__(self):
    return (self[i] for i in range(len(self)))


class LocalExperimentOTB(ExperimentOTB):
  """got10k's ExperimentOTB on local sequences only (no download)."""

  def __init__(self, root_dir: str, sequences: Sequence[str] = (), version=2015,
               result_dir: str = "results", report_dir: str = "reports", max_frames: int = 0):
    # ExperimentOTB.__init__ downloads whatever is missing; these are the
    # attributes it sets, with the local dataset.
    if version not in OTB_VERSIONS:
      raise ValueError(f"OTB version must be one of {OTB_VERSIONS}, got {version!r}")
    self.dataset = _OTBSubset(root_dir, version, sequences, max_frames)
    self.result_dir = os.path.join(result_dir, "OTB" + str(version))
    self.report_dir = os.path.join(report_dir, "OTB" + str(version))
    self.nbins_iou = 21
    self.nbins_ce = 51


def run_otb(model: str, otb_dir: str, output_dir: str, sequences: Sequence[str] = (),
            max_frames: int = 0, reset_period: Optional[int] = None,
            name: str = DEFAULT_NAME) -> Dict[str, object]:
  """Runs and reports LocalExperimentOTB; returns got10k's performance dict."""
  experiment = LocalExperimentOTB(otb_dir, sequences, result_dir=os.path.join(output_dir, "results"),
                                  report_dir=os.path.join(output_dir, "reports"),
                                  max_frames=max_frames)
  tracker = Re3GOT10kTracker(model, reset_period, name=name)
  experiment.run(tracker)
  return experiment.report([tracker.name])


def define_flags(flag_values=flags.FLAGS):
  """Defined on demand (by run()); tests pass their own `flags.FlagValues()`."""
  flags.DEFINE_string("model", "default", "Model: model_dir, SavedModel or 'default'.",
                      flag_values=flag_values)
  flags.DEFINE_string("otb_dir", None, "Folder of OTB sequences.", flag_values=flag_values)
  flags.DEFINE_list("sequences", [], "Only these sequences.", flag_values=flag_values)
  flags.DEFINE_integer("max_frames", 0, "Cut every sequence (0 = all).", flag_values=flag_values)
  flags.DEFINE_integer("reset_period", None, "Re3 LSTM reset period.", flag_values=flag_values)
  flags.DEFINE_string("output_dir", None, "Where results/ and reports/ go.",
                      flag_values=flag_values)
  cli_errors.define_verbose_flag(flag_values)


def main(argv, flag_values=None):
  del argv
  FLAGS = flag_values or flags.FLAGS  # pylint: disable=invalid-name
  if not FLAGS.otb_dir or not FLAGS.output_dir:
    raise app.UsageError("--otb_dir and --output_dir are required")
  perf = run_otb(FLAGS.model, FLAGS.otb_dir, FLAGS.output_dir, FLAGS.sequences,
                 FLAGS.max_frames, FLAGS.reset_period)
  for tracker, p in perf.items():
    o = p["overall"]
    print(f"{tracker}: success AUC {o['success_score']:.3f}  precision@20px "
          f"{o['precision_score']:.3f}  ({len(p['seq_wise'])} sequences)")


def run(argv=None):
  cli.run(main, define_flags, __doc__, "otb_dir", argv, prog="train.toolkits.got10k_toolkit")


if __name__ == "__main__":
  run()
