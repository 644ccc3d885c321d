"""train.experiments.report: the tables of the experiment scripts, from
performance.json files shaped like train.evaluate's."""

import json

import pytest

from train.experiments import report


def _perf(path, kind, trackers, frames_per_seq=10):
  """A performance.json with trackers {name: {seq: (auc, p20)}}, 10 frames a sequence."""
  out = {}
  for name, seqs in trackers.items():
    per_seq = {s: {"frames": frames_per_seq, "success_auc": a, "precision_20px": p}
               for s, (a, p) in seqs.items()}
    n = len(seqs)
    out[name] = {
        "summary": {"success_auc": sum(a for a, _ in seqs.values()) / n,
                    "precision_20px": sum(p for _, p in seqs.values()) / n},
        "rl_paper": {"average_iou": 0.5, "average_center_error": 3.0},
        "speed": {"frames": n * frames_per_seq, "seconds": n * frames_per_seq / 50.0,
                  "fps": 50.0},
        "per_sequence": per_seq}
  path.mkdir(parents=True)
  seq_names = sorted({s for seqs in trackers.values() for s in seqs})
  (path / "performance.json").write_text(json.dumps({
      "dataset": {"kind": kind, "sequences": seq_names, "frames": frames_per_seq * len(seq_names)},
      "trackers": out}))


def test_real_tables_per_dataset_and_pooled_over_sequences(tmp_path):
  _perf(tmp_path / "otb", "otb", {
      "re3": {"a": (0.2, 0.3), "b": (0.4, 0.5), "c": (0.0, 0.1)},
      "kcf": {"a": (0.1, 0.1), "b": (0.3, 0.2), "c": (0.2, 0.3)},
      "mil": {"a": (0.9, 0.9), "b": (0.9, 0.9), "c": (0.9, 0.9)}})
  _perf(tmp_path / "vot", "vot", {"re3": {"bag": (0.8, 0.9)}, "kcf": {"bag": (0.4, 0.5)}})
  text = report.report("real", str(tmp_path), json_path=str(tmp_path / "rows.json"))
  rows = json.loads((tmp_path / "rows.json").read_text())
  pooled = {r["tracker"]: r for r in rows if r["dataset"] == "all"}
  # Four sequences averaged alike, not the two dataset scores: (0.2+0.4+0.0+0.8)/4.
  assert pooled["re3"]["success_auc"] == pytest.approx(0.35)
  assert pooled["kcf"]["success_auc"] == pytest.approx(0.25)
  assert pooled["re3"]["precision_20px"] == pytest.approx(0.45)
  assert pooled["re3"]["sequences"] == 4 and pooled["re3"]["frames"] == 40
  assert "mil" not in pooled  # not run on every dataset
  otb = [r for r in rows if r["dataset"] == "otb"]
  assert {r["tracker"] for r in otb} == {"re3", "kcf", "mil"}
  # Tables: each dataset, best first, then "all".
  assert text.index("otb: 3 sequences") < text.index("vot: 1 sequences") < text.index("all: 4")
  otb_part = text[text.index("otb:"):text.index("vot:")]
  assert otb_part.index("| mil |") < otb_part.index("| re3 |") < otb_part.index("| kcf |")


def test_mnist_table_marks_which_paper_rows_are_beaten(tmp_path):
  for run, err, iou in (("re3", 6.0, 0.70), ("rl_reinforce", 16.0, 0.43), ("rl_mixed", 7.0, 0.66)):
    d = tmp_path / f"{run}_noisy"
    d.mkdir()
    rl = {"average_center_error": err, "average_iou": iou}
    if run == "re3":   # newer evaluations also give the errors at both ends of the tracks
      rl.update(center_error_first_frames=3.5, center_error_last_frames=8.25)
    (d / "performance.json").write_text(json.dumps({
        "dataset": {"kind": "mnist", "sequences": ["s"], "frames": 100},
        "trackers": {"x": {"rl_paper": rl, "speed": {"fps": 1.0}}}}))
  lines = report.report("mnist", str(tmp_path)).splitlines()
  rows = [[c.strip() for c in ln.strip()[1:-1].split("|")] for ln in lines if "noise" in ln]
  cells = {c[1]: c for c in rows}
  noisy = {k: c[4] for k, c in cells.items()}
  assert cells[report.RUN_NAMES["re3"]][5:] == ["3.50", "8.25"]
  assert cells[report.RUN_NAMES["rl_mixed"]][5:] == ["", ""]
  assert noisy[report.RUN_NAMES["re3"]] == "yes (both)"          # 6.0 < 6.54 and 70 > 64.29
  assert noisy[report.RUN_NAMES["rl_reinforce"]] == "no"
  assert noisy[report.RUN_NAMES["rl_mixed"]] == "IoU only"       # 7.0 px > 6.54
  assert sum("paper (Zhang" in ln for ln in lines) == 3


def test_bad_root_and_kind_are_errors(tmp_path):
  with pytest.raises(ValueError, match="not a directory"):
    report.report("real", str(tmp_path / "missing"))
  with pytest.raises(ValueError, match="no \\*/performance.json"):
    report.report("real", str(tmp_path))
  with pytest.raises(ValueError, match="mnist or real"):
    report.report("table", str(tmp_path))
