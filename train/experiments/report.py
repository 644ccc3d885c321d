"""Result tables of the experiment scripts, read from train.evaluate's performance.json.

  python -m train.experiments.report mnist --root runs/mnist_table1/eval
  python -m train.experiments.report real --root runs/re3_real/eval

`mnist`: the RL tracker paper's Table 1 (average center pixel error, average
IoU over all test frames) next to ours, one row per setting and tracker, from
ROOT/{run}_{variant}/performance.json (run = rl_reinforce | rl_mixed | re3 ...;
every directory found is reported, none is required).

`real`: one table per dataset directory ROOT/{otb,vot,...}/performance.json
with every tracker evaluated there side by side: success AUC, precision at
20 px, the RL paper's mean IoU, frames per second (tracker time only); with
several datasets, a last table "all" scores their sequences together.

Markdown tables on stdout; --json writes the same numbers to a file.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Dict, List, Optional

from configs import cli as cli_errors, quiet

quiet.setup()

from absl import app, flags  # noqa: E402

# The RL tracker paper's Table 1 (Zhang et al.): center error (px), IoU (%).
PAPER_TABLE1 = {
    "fixed": ("fixed-size digit, black background", 4.13, 72.14),
    "scalable": ("scalable digit, black background", 3.57, 75.85),
    "noisy": ("scalable digit, noise + distractor digit", 6.54, 64.29),
}
VARIANTS = ("fixed", "scalable", "noisy")
# How each run directory of mnist_table1.sh is described in the table.
RUN_NAMES = {
    "rl_reinforce": "RL agent, pure REINFORCE (T=10, N=5, sigma=1)",
    "rl_mixed": "RL agent, REINFORCE + supervised eq. 4 loss (mixed)",
    "rl_mixed_tanh": "RL agent, mixed loss, tanh LSTM (not the paper's ReLU)",
    "rl_mixed_aug": "RL agent, mixed loss, tanh LSTM, mirrored videos",
    "re3": "Re3 (CPU size, configs/experiments/re3_mnist.yaml)",
    # mnist_noisy_rl.sh (pure REINFORCE, the paper's network, chosen on a val split)
    "rl_paper": "RL agent, pure REINFORCE, mnist_noisy_rl.sh rl_paper",
    "rl_aug": "RL agent, pure REINFORCE, whole-video symmetries (rl_aug)",
    "rl_paper_step": "RL agent, pure REINFORCE, step returns (rl_paper_step)",
    "rl_aug_step": "RL agent, pure REINFORCE, symmetries, step returns (rl_aug_step)",
    "rl_5000": "RL agent, pure REINFORCE, 5,000 training videos (rl_5000, not the paper's 500)",
    "rl_curriculum": "RL agent, pure REINFORCE, scalable then noisy (rl_curriculum)",
}


def load_perf(path: str) -> Dict[str, object]:
  with open(path) as f:
    return json.load(f)


def mnist_rows(root: str) -> List[Dict[str, object]]:
  """One row per (variant, run) found under root, paper rows first."""
  rows = []
  for variant in VARIANTS:
    desc, err, iou = PAPER_TABLE1[variant]
    rows.append({"variant": variant, "setting": desc, "tracker": "paper (Zhang et al., Table 1)",
                 "center_error_px": err, "iou_pct": iou, "frames": None, "fps": None})
    found = sorted(glob.glob(os.path.join(root, f"*_{variant}", "performance.json")))
    for path in found:
      run = os.path.basename(os.path.dirname(path))[:-len(variant) - 1]
      perf = load_perf(path)
      for tname, r in perf["trackers"].items():
        rl = r["rl_paper"]
        rows.append({"variant": variant, "setting": desc, "tracker": RUN_NAMES.get(run, run),
                     "run": run, "tracker_name": tname,
                     "center_error_px": rl["average_center_error"],
                     "iou_pct": 100.0 * rl["average_iou"], "frames": perf["dataset"]["frames"],
                     "error_first_px": rl.get("center_error_first_frames"),
                     "error_last_px": rl.get("center_error_last_frames"),
                     "sequences": len(perf["dataset"]["sequences"]),
                     "fps": r["speed"]["fps"]})
  return rows


def mnist_table(rows: List[Dict[str, object]]) -> str:
  out = ["| setting | tracker | avg center error (px) | avg IoU (%) | beats paper row | "
         "error, first 10 frames (px) | error, last 10 frames (px) |",
         "|---|---|---|---|---|---|---|"]
  paper = {v: (e, i) for v, (_, e, i) in PAPER_TABLE1.items()}
  for r in rows:
    if r["tracker"].startswith("paper"):
      beats = ""
    else:
      e, i = paper[r["variant"]]
      both = r["center_error_px"] < e and r["iou_pct"] > i
      beats = "yes (both)" if both else ("IoU only" if r["iou_pct"] > i else
                                         ("error only" if r["center_error_px"] < e else "no"))
    edges = " | ".join("" if r.get(k) is None else f"{r[k]:.2f}"
                       for k in ("error_first_px", "error_last_px"))
    out.append(f"| {r['setting']} | {r['tracker']} | {r['center_error_px']:.2f} | "
               f"{r['iou_pct']:.2f} | {beats} | {edges} |")
  return "\n".join(out)


def dataset_perfs(root: str) -> Dict[str, Dict[str, object]]:
  """{dataset directory name: its performance.json}, for every ROOT/*/."""
  return {os.path.basename(os.path.dirname(path)): load_perf(path)
          for path in sorted(glob.glob(os.path.join(root, "*", "performance.json")))}


def real_rows(perfs: Dict[str, Dict[str, object]]) -> List[Dict[str, object]]:
  rows = []
  for name, perf in perfs.items():
    ds = perf["dataset"]
    for tname, r in perf["trackers"].items():
      s = r["summary"]
      rows.append({"dataset": name, "kind": ds["kind"],
                   "sequences": len(ds["sequences"]), "frames": ds["frames"], "tracker": tname,
                   "success_auc": s["success_auc"], "precision_20px": s["precision_20px"],
                   "mean_iou": r.get("rl_paper", {}).get("average_iou"),
                   "fps": r["speed"]["fps"]})
  return rows


def pooled_rows(perfs: Dict[str, Dict[str, object]]) -> List[Dict[str, object]]:
  """One row per tracker evaluated in every dataset directory: the one-pass
  scores over all their sequences together, averaged per sequence as within
  a dataset (train.eval.metrics.ope_summary), so 7 OTB sequences and the VOT bag
  count as 8 sequences."""
  per_tracker: Dict[str, List[Dict[str, object]]] = {}
  for perf in perfs.values():
    for tname, r in perf["trackers"].items():
      per_tracker.setdefault(tname, []).append(r)
  rows = []
  for tname, results in per_tracker.items():
    if len(results) != len(perfs):
      continue
    seqs = [s for r in results for s in r["per_sequence"].values() if s["frames"] > 0]
    seconds = sum(r["speed"]["seconds"] for r in results)
    frames = sum(r["speed"]["frames"] for r in results)
    rows.append({"dataset": "all", "sequences": len(seqs),
                 "frames": int(sum(s["frames"] for s in seqs)), "tracker": tname,
                 "success_auc": sum(s["success_auc"] for s in seqs) / len(seqs),
                 "precision_20px": sum(s["precision_20px"] for s in seqs) / len(seqs),
                 "mean_iou": None, "fps": frames / seconds if seconds > 0 else float("nan")})
  return rows


def real_table(rows: List[Dict[str, object]]) -> str:
  out = []
  names = sorted({r["dataset"] for r in rows} - {"all"})
  for ds in names + (["all"] if any(r["dataset"] == "all" for r in rows) else []):
    part = sorted((r for r in rows if r["dataset"] == ds), key=lambda r: -r["success_auc"])
    what = "all datasets together, averaged per sequence" if ds == "all" else "one-pass (OPE)"
    out.append(f"{ds}: {part[0]['sequences']} sequences, {part[0]['frames']} frames, {what}\n")
    out.append("| tracker | success AUC | precision @20px | mean IoU | FPS |")
    out.append("|---|---|---|---|---|")
    for r in part:
      iou = "" if r["mean_iou"] is None else f"{r['mean_iou']:.3f}"
      out.append(f"| {r['tracker']} | {r['success_auc']:.3f} | {r['precision_20px']:.3f} | "
                 f"{iou} | {r['fps']:.1f} |")
    out.append("")
  return "\n".join(out)


def report(kind: str, root: str, json_path: Optional[str] = None) -> str:
  if not os.path.isdir(root):
    raise ValueError(f"--root {root!r} is not a directory")
  if kind == "mnist":
    rows = mnist_rows(root)
    text = mnist_table(rows)
  elif kind == "real":
    perfs = dataset_perfs(root)
    rows = real_rows(perfs)
    if not rows:
      raise ValueError(f"{root}: no */performance.json found")
    if len(perfs) > 1:
      rows += pooled_rows(perfs)
    text = real_table(rows)
  else:
    raise ValueError(f"table kind must be mnist or real, got {kind!r}")
  if json_path:
    with open(json_path, "w") as f:
      json.dump(rows, f, indent=1)
  return text


def define_flags(flag_values=flags.FLAGS):
  """Defined on demand (by __main__), not at import, like the other commands."""
  flags.DEFINE_string("root", None, "Directory holding one evaluation directory per run.",
                      flag_values=flag_values)
  flags.DEFINE_string("json", None, "Also write the rows as JSON here.", flag_values=flag_values)
  cli_errors.define_verbose_flag(flag_values)
  flags.mark_flag_as_required("root", flag_values=flag_values)


def main(argv, flag_values=None):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m train.experiments.report mnist|real --root DIR")
  f = flag_values or flags.FLAGS
  print(report(argv[1], f.root, f.json))
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli_errors.flags_parser(__doc__))
