"""WORKSPACE.md's "where each piece lives" table matches the tree.

Every path in the table's "where" column exists, and every module under configs/, model/,
pipelines/ and train/ (and every experiment script) is named by a row: by its path, or by its
file name in a row that names its folder (`train/eval/`: `metrics.py`, ...). `{a,b}` in a path
stands for both names; a path with `*` must match at least one file.
"""

import glob
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]
HEADER = "| piece | where | entry point |"
PACKAGES = ("configs", "model", "pipelines", "train")


def _rows():
  lines = (REPO / "WORKSPACE.md").read_text().splitlines()
  assert HEADER in lines, f"WORKSPACE.md: table header {HEADER!r} not found"
  rows = []
  for line in lines[lines.index(HEADER) + 2:]:
    if not line.startswith("|"):
      break
    rows.append(line)
  return rows


def _expand(path):
  m = re.search(r"\{([^}]*)\}", path)
  if not m:
    return [path]
  return [p for alt in m.group(1).split(",") for p in _expand(path[:m.start()] + alt + path[m.end():])]


def _table_paths():
  """(named paths, problems): the files the table names, and the names that match nothing."""
  named, problems = set(), []
  for row in _rows():
    where = row.split("|")[2]
    tokens = re.findall(r"`([^`]+)`", where)
    folders = [t for t in tokens if t.endswith("/")]
    for token in tokens:
      for path in _expand(token):
        if "/" in path and "*" in path:
          hits = glob.glob(str(REPO / path))
          if not hits:
            problems.append(f"{path}: matches no file")
          named.update(str(pathlib.Path(h).relative_to(REPO)) for h in hits)
        elif "/" in path:
          if not (REPO / path).exists():
            problems.append(f"{path}: does not exist")
          named.add(path.rstrip("/"))
        elif path.endswith((".py", ".sh")):
          hits = [f + path for f in folders if (REPO / (f + path)).exists()]
          if not hits:
            problems.append(f"{path}: in no folder its row names ({', '.join(folders) or 'none'})")
          named.update(hits)
  return named, problems


def _modules():
  found = []
  for package in PACKAGES:
    for path in (REPO / package).rglob("*.py"):
      if path.name != "__init__.py" and "__pycache__" not in path.parts:
        found.append(str(path.relative_to(REPO)))
  found += [str(p.relative_to(REPO)) for p in (REPO / "train" / "experiments").glob("*.sh")]
  return sorted(found)


def test_every_path_in_the_table_exists():
  _, problems = _table_paths()
  assert not problems, "WORKSPACE.md table:\n  " + "\n  ".join(problems)


def test_every_module_has_a_row():
  named, _ = _table_paths()
  missing = [m for m in _modules() if m not in named]
  assert not missing, ("modules with no row in WORKSPACE.md's 'where each piece lives' table:\n  "
                       + "\n  ".join(missing))


def test_brace_names_expand():
  assert _expand("pipelines/build_{vid,det}.py") == ["pipelines/build_vid.py",
                                                     "pipelines/build_det.py"]
