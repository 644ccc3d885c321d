"""train.experiments.rl_curves: curves and the last validation from train_log.jsonl."""

import json

import pytest

from train.experiments import rl_curves


def _log(path, records):
  path.mkdir()
  with open(path / "train_log.jsonl", "w") as f:
    for r in records:
      f.write(json.dumps(r) + "\n")


def test_curves_table_and_plot(tmp_path):
  a = tmp_path / "a"
  _log(a, [{"event": "start", "step": 0},
           {"event": "step", "step": 250, "reward": -30.0},
           {"event": "step", "step": 500, "reward": -20.0},
           {"event": "validation", "step": 500, "val_iou": 0.4, "val_center_error_px": 9.0,
            "val_center_error_px_first10": 12.0, "val_center_error_px_last10": 8.5},
           {"event": "restored", "step": 250},          # a restart: steps 500.. again
           {"event": "step", "step": 500, "reward": -18.0},
           {"event": "validation", "step": 1000, "val_iou": 0.55, "val_center_error_px": 6.0}])
  b = tmp_path / "b"
  _log(b, [{"event": "step", "step": 250, "reward": -35.0}])
  c = rl_curves.read_curves(str(a))
  assert c["reward"] == [(250, -30.0), (500, -18.0)]       # the later entry of a step wins
  assert c["val_iou"] == [(500, 0.4), (1000, 0.55)]
  assert c["val_last10_px"] == [(500, 8.5)]
  table = rl_curves.validation_table([("first", str(a)), ("second", str(b))]).splitlines()
  assert table[2] == "| first | 1000 | 55.00 | 6.00 |  |  |"
  assert table[3].startswith("| second | no validation yet")
  assert rl_curves.read_curves(str(a / "train_log.jsonl")) == c   # the log file itself
  assert rl_curves.validation_table([("first", str(a / "train_log.jsonl"))]).splitlines()[2] == table[2]
  png = rl_curves.plot_runs([("first", str(a)), ("second", str(b))], str(tmp_path / "p" / "c.png"))
  with open(png, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_bad_logs_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="no training log"):
    rl_curves.read_curves(str(tmp_path / "none"))
  with pytest.raises(FileNotFoundError, match="none.jsonl: no training log"):
    rl_curves.read_curves(str(tmp_path / "none.jsonl"))
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / "train_log.jsonl").write_text('{"event": "step", "step": 1, "reward": 1}\n{oops\n')
  with pytest.raises(ValueError, match="train_log.jsonl:2: not a JSON line"):
    rl_curves.read_curves(str(bad))
