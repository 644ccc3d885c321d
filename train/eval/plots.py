"""Benchmark plots (matplotlib, Agg backend: no display needed), several
trackers per figure, each legend entry carrying the number the benchmark
ranks by (AUC for success, the 20 px value for precision), sorted best first
as the OTB toolkit draws them.
"""

from __future__ import annotations

import os
from typing import Dict, List, Mapping

import numpy as np

from train.eval import metrics


def _plt():
  # matplotlib (slow to import) only once a figure is drawn; Agg: no display needed.
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _finish(plt, fig, ax, path: str, title: str, xlabel: str, ylabel: str, legend_loc,
            legend_size: int) -> str:
  """What every figure ends with: y in [0, 1.02], labels, grid, the legend (legend_loc None:
  no entries, no legend), and the PNG written to `path` (folders made). Returns path."""
  ax.set_ylim(0.0, 1.02)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(True, alpha=0.3)
  if legend_loc:
    ax.legend(loc=legend_loc, fontsize=legend_size)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path)
  plt.close(fig)
  return path


def _curve_plot(path: str, curves: Mapping[str, np.ndarray], thresholds, scores: Mapping[str, float],
                title: str, xlabel: str, ylabel: str, score_fmt: str) -> str:
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
  order = sorted(curves, key=lambda k: -np.nan_to_num(scores.get(k, np.nan), nan=-1.0))
  for name in order:
    y = np.asarray(curves[name], dtype=np.float64)
    ax.plot(thresholds, y, linewidth=2, label=f"{name} [{score_fmt.format(scores[name])}]")
  ax.set_xlim(float(np.min(thresholds)), float(np.max(thresholds)))
  return _finish(plt, fig, ax, path, title, xlabel, ylabel, "best" if curves else None, 9)


def success_plot(path: str, summaries: Mapping[str, Mapping], title: str = "Success plot (OPE)") -> str:
  """summaries: tracker name -> metrics.ope_summary(...) output."""
  return _curve_plot(path, {k: v["success_curve"] for k, v in summaries.items()},
                     metrics.SUCCESS_THRESHOLDS, {k: v["success_auc"] for k, v in summaries.items()},
                     title, "Overlap threshold (IoU)", "Success rate", "AUC {:.3f}")


def precision_plot(path: str, summaries: Mapping[str, Mapping],
                   title: str = "Precision plot (OPE)") -> str:
  return _curve_plot(path, {k: v["precision_curve"] for k, v in summaries.items()},
                     metrics.PRECISION_THRESHOLDS,
                     {k: v["precision_20px"] for k, v in summaries.items()},
                     title, "Location error threshold (pixels)", "Precision", "@20px {:.3f}")


def norm_precision_plot(path: str, summaries: Mapping[str, Mapping],
                        title: str = "Normalized precision plot (OPE)") -> str:
  return _curve_plot(path, {k: v["norm_precision_curve"] for k, v in summaries.items()},
                     metrics.NORM_PRECISION_THRESHOLDS,
                     {k: v["norm_precision_auc"] for k, v in summaries.items()},
                     title, "Normalized location error threshold", "Normalized precision",
                     "AUC {:.3f}")


def vid_plot(path: str, scores: Mapping[str, Mapping],
             title: str = "Fraction of boxes above IoU threshold") -> str:
  """scores: tracker name -> metrics.vid_scores(...) output (the Re3 paper's Fig. 4)."""
  return _curve_plot(path, {k: v["fraction_above_curve"] for k, v in scores.items()},
                     metrics.SUCCESS_THRESHOLDS, {k: v["auc"] for k, v in scores.items()},
                     title, "IoU threshold", "Fraction of boxes", "AUC {:.3f}")


def accuracy_robustness_plot(path: str, summaries: Mapping[str, Mapping],
                             title: str = "VOT supervised: accuracy vs robustness") -> str:
  """summaries: tracker name -> metrics.vot_summary(...) output (VOT's AR plot)."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
  for name, s in summaries.items():
    ax.scatter([s["robustness"]], [s["accuracy"]], s=60,
               label=f"{name} [A {s['accuracy']:.2f}, R {s['robustness']:.2f}, {s['drops']} drops]")
  ax.set_xlim(0.0, 1.02)
  return _finish(plt, fig, ax, path, title, "Robustness exp(-30 drops / frames)",
                 "Accuracy (mean IoU)", "lower left" if summaries else None, 8)


def ope_plots(output_dir: str, summaries: Mapping[str, Mapping], suffix: str = "",
              title_suffix: str = "") -> Dict[str, str]:
  """success, precision and normalized precision PNGs; returns name -> path."""
  return {
      "success": success_plot(os.path.join(output_dir, f"success{suffix}.png"), summaries,
                              "Success plot (OPE)" + title_suffix),
      "precision": precision_plot(os.path.join(output_dir, f"precision{suffix}.png"), summaries,
                                  "Precision plot (OPE)" + title_suffix),
      "norm_precision": norm_precision_plot(
          os.path.join(output_dir, f"norm_precision{suffix}.png"), summaries,
          "Normalized precision plot (OPE)" + title_suffix),
  }


def _ope_plot_input(summary, curves):
  return {"success_curve": curves["success"], "precision_curve": curves["precision"],
          "norm_precision_curve": curves["norm_precision"], "success_auc": summary["success_auc"],
          "precision_20px": summary["precision_20px"],
          "norm_precision_auc": summary["norm_precision_auc"]}


def performance_plots(protocol: str, results: Mapping[str, Mapping], out_dir: str,
                      title: str) -> List[str]:
  """The figures of performance.json's `trackers` blocks (train/eval/scoring.py): every
  tracker on one figure per plot kind; `_occluded` twins where the data has occlusion."""
  paths: List[str] = []
  occ = {n: r["occluded"] for n, r in results.items() if "occluded" in r}
  if protocol == "ope":
    main = {n: _ope_plot_input(r["summary"], r["curves"]) for n, r in results.items()}
    paths += ope_plots(out_dir, main, "", f" - {title}").values()
    occ = {n: _ope_plot_input(o, o["curves"]) for n, o in occ.items() if o["frames"]}
    if occ:
      paths += ope_plots(out_dir, occ, "_occluded", f" - {title}, occluded").values()
  elif protocol == "vid":
    main = {n: {"fraction_above_curve": r["curves"]["fraction_above"], "auc": r["summary"]["auc"]}
            for n, r in results.items()}
    paths.append(vid_plot(os.path.join(out_dir, "vid.png"), main,
                          f"Boxes above IoU threshold - {title}"))
    if occ:
      paths.append(vid_plot(os.path.join(out_dir, "vid_occluded.png"), occ,
                            f"Boxes above IoU threshold - {title}, occluded"))
  else:
    paths.append(accuracy_robustness_plot(
        os.path.join(out_dir, "accuracy_robustness.png"),
        {n: r["summary"] for n, r in results.items()}, f"VOT supervised - {title}"))
  return paths
