"""Training curves of RL agent runs: reward and validation IoU per update.

  python -m train.experiments.rl_curves --output docs/images/rl_noisy_curves.png \\
      --run "paper=runs/mnist_noisy_rl/paper" --run "augmented=runs/mnist_noisy_rl/aug"

Reads each run's train_log.jsonl (train.train writes it; --run takes the
model_dir or the log file itself, e.g. a copy under docs/results): the mean sampled
reward of the logged steps (eq. 4, pixels, higher is better) and the
validation events (trainer.val_every; mean IoU and the centre error of the
last 10 frames of each validation track). A run restarted from its
checkpoint logs some steps twice; the later entry wins. Two panels in one
PNG (matplotlib, Agg), and a Markdown table of each run's last validation
(printed; --table also writes it).
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Sequence, Tuple

from configs import cli as cli_errors, quiet

quiet.setup()

from absl import app, flags  # noqa: E402

from train.eval import plots  # noqa: E402

Curve = List[Tuple[int, float]]


def log_path(run: str) -> str:
  """A run's training log: `run` itself when it is a .jsonl file, else run/train_log.jsonl."""
  path = run if run.endswith(".jsonl") else os.path.join(run, "train_log.jsonl")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no training log (is {run!r} a train.train model_dir "
                            "or its train_log.jsonl?)")
  return path


def read_curves(model_dir: str) -> Dict[str, Curve]:
  """{"reward": [(step, value)], "val_iou": [...], "val_last10_px": [...]} of a run
  (its model_dir or its train_log.jsonl)."""
  path = log_path(model_dir)
  by_key: Dict[str, Dict[int, float]] = {"reward": {}, "val_iou": {}, "val_last10_px": {}}
  with open(path) as f:
    for n, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        rec = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{n}: not a JSON line ({e.msg})") from None
      step = rec.get("step")
      if rec.get("event") == "step" and "reward" in rec:
        by_key["reward"][step] = rec["reward"]
      elif rec.get("event") == "validation" and "val_iou" in rec:
        by_key["val_iou"][step] = rec["val_iou"]
        if "val_center_error_px_last10" in rec:
          by_key["val_last10_px"][step] = rec["val_center_error_px_last10"]
  return {k: sorted(v.items()) for k, v in by_key.items()}


def last_validation(model_dir: str) -> Dict[str, float]:
  """The run's last validation event (step, val_* metrics); {} when none."""
  last: Dict[str, float] = {}
  with open(log_path(model_dir)) as f:
    for line in f:
      if '"validation"' in line:
        rec = json.loads(line)
        if rec.get("event") == "validation":
          last = rec
  return last


def validation_table(runs: Sequence[Tuple[str, str]]) -> str:
  """Markdown: each run's last validation (mean IoU, centre errors)."""
  out = ["| run | update | val mean IoU (%) | centre error (px) | frames 0-9 (px) | last 10 frames (px) |",
         "|---|---|---|---|---|---|"]
  for label, model_dir in runs:
    v = last_validation(model_dir)
    if not v:
      out.append(f"| {label} | no validation yet | | | | |")
      continue
    cell = lambda k: f"{v[k]:.2f}" if k in v else ""  # noqa: E731
    out.append(f"| {label} | {v['step']} | {100 * v['val_iou']:.2f} | "
               f"{cell('val_center_error_px')} | {cell('val_center_error_px_first10')} | "
               f"{cell('val_center_error_px_last10')} |")
  return "\n".join(out)


def plot_runs(runs: Sequence[Tuple[str, str]], output: str, title: str = "") -> str:
  """runs: (label, model_dir) pairs -> the PNG at `output`."""
  plt = plots._plt()  # pylint: disable=protected-access
  fig, (ax_r, ax_v) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
  for i, (label, model_dir) in enumerate(runs):
    c = read_curves(model_dir)
    # ten colours, then the same colours dashed: no two runs look alike
    style = {"color": f"C{i % 10}", "linestyle": "-" if i < 10 else "--", "linewidth": 1.5,
             "label": label}
    if c["reward"]:
      ax_r.plot(*zip(*c["reward"]), **style)
    if c["val_iou"]:
      ax_v.plot(*zip(*c["val_iou"]), marker="o", **style)
  ax_r.set_xlabel("update")
  ax_r.set_ylabel("mean sampled reward (eq. 4, px)")
  ax_r.set_title("training reward")
  ax_r.grid(True, alpha=0.3)
  ax_v.set_ylim(0.0, 1.0)
  ax_v.set_xlabel("update")
  ax_v.set_ylabel("mean IoU, validation sequences")
  ax_v.set_title("validation IoU (held-out training digits)")
  ax_v.grid(True, alpha=0.3)
  if ax_r.get_legend_handles_labels()[0]:
    ax_r.legend(fontsize=8)
  if ax_v.get_legend_handles_labels()[0]:  # two columns at the top: above the noisy-row curves (IoU < 0.7)
    ax_v.legend(fontsize=7, loc="upper center", ncol=2)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  fig.savefig(output)
  plt.close(fig)
  return output


FLAGS = flags.FLAGS


def define_flags(flag_values=flags.FLAGS):
  flags.DEFINE_multi_string("run", [], "LABEL=MODEL_DIR (or LABEL=.../train_log.jsonl) of a "
                            "train.train RL run (repeatable).",
                            flag_values=flag_values)
  flags.DEFINE_string("output", None, "PNG to write.", flag_values=flag_values)
  flags.DEFINE_string("title", "", "Figure title.", flag_values=flag_values)
  flags.DEFINE_string("table", None, "Also write each run's last validation as a Markdown "
                      "table here (it is printed either way).", flag_values=flag_values)
  cli_errors.define_verbose_flag(flag_values)


def main(argv, flag_values=None):
  fv = flag_values or FLAGS
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not fv.run or not fv.output:
    raise app.UsageError("usage: python -m train.experiments.rl_curves --run LABEL=DIR ... "
                         "--output PNG")
  runs = []
  for spec in fv.run:
    label, sep, path = spec.partition("=")
    if not sep or not label or not path:
      raise app.UsageError(f"--run {spec!r}: expected LABEL=MODEL_DIR or LABEL=LOG.jsonl")
    runs.append((label, path))
  print(plot_runs(runs, fv.output, fv.title))
  table = validation_table(runs)
  print(table)
  if fv.table:
    with open(fv.table, "w") as f:
      f.write(table + "\n")


if __name__ == "__main__":
  define_flags()
  app.run(cli_errors.guarded("rl_curves", main, flags.FLAGS))
