"""benchmarks.default_vs_peers: a tiny run times Re3 next to OpenCV's trackers and
NanoTrack v2 and prints the ratios to NanoTrack v2 (no timing is asserted)."""

import re

from absl import flags
import pytest

from benchmarks import default_vs_peers as bench
from configs import cli as cli_errors
from tests import tracking_utils as tu

ROW = re.compile(r"^\s*(\d+)\s+(\w+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$")


def _run(argv, capsys):
  fv = flags.FlagValues()
  bench.define_flags(fv)
  fv([bench.PROG] + argv)
  code = cli_errors.call(bench.PROG, bench.main, [], fv)
  captured = capsys.readouterr()
  return code, captured.out, captured.err


def test_tiny_run_prints_every_tracker_and_its_ratio_to_nanotrack(shared_dir, tmp_path, capsys):
  model = tu.make_model_dir(str(tmp_path / "re3"), tu.tiny_re3(seed=3), "re3", sub="")
  code, out, err = _run(
      ["--model", model, "--peer_models", str(shared_dir / "models" / "peers"),
       "--sequence", str(shared_dir / "data" / "tracking" / "otb" / "MotorRolling" / "img"),
       "--frames", "4", "--rounds", "1", "--chunk", "2", "--objects", "1,3"], capsys)
  assert code == 0, err
  rows = {}
  for line in out.splitlines():
    m = ROW.match(line)
    if m:
      rows[(int(m.group(1)), m.group(2))] = [float(m.group(k)) for k in (3, 4, 5)]
  assert set(rows) == {(n, t) for n in (1, 3) for t in bench.TRACKERS}, out
  for n in (1, 3):
    nano_fps = rows[(n, "nano")][0]
    assert rows[(n, "nano")][2] == 1.0
    for t in bench.TRACKERS:
      fps, obj_fps, ratio = rows[(n, t)]
      assert fps > 0 and obj_fps == pytest.approx(fps * n, rel=0.01, abs=0.1)
      assert ratio == pytest.approx(fps / nano_fps, rel=0.02, abs=0.01), (n, t, rows)
  assert re.search(r"^\s+1 goal re3 >= 1x nano: [\d.]+x, (met|NOT met)$", out, re.M), out
  assert "(MotorRolling" not in out and "MotorRolling/img (640x360), 4 per round" in out


def test_missing_peer_file_and_missing_reference_are_one_line(tmp_path, capsys):
  code, _, err = _run(["--peer_models", str(tmp_path), "--trackers", "nano", "--frames", "2"],
                      capsys)
  assert code == 2
  assert err.strip() == (f"{bench.PROG}: peer tracker 'nano' (NanoTrack v2): missing file "
                         f"{tmp_path}/nanotrack_v2/nanotrack_backbone_sim.onnx (peer models "
                         f"folder {tmp_path}: expected nanotrack_v2/, nanotrack_v1/, vittrack/ "
                         "as in ../shared/models/peers)")
  code, _, err = _run(["--trackers", "csrt,kcf", "--frames", "2"], capsys)
  assert code == 2 and "must include 'nano'" in err and len(err.strip().splitlines()) == 1
