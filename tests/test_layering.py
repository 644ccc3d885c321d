"""The package layering holds: configs < model < pipelines < train, and no import cycles.

Every module under configs/, model/, pipelines/ and train/ is parsed with `ast` (nothing is
imported). An import from a lower layer to a higher one fails the test wherever it sits
(module level or inside a function); a cycle among the module-level imports fails it too.
Failures name the offending import as file:line.
"""

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
LAYERS = ("configs", "model", "pipelines", "train")  # lowest first


def _modules():
  """{dotted module name: path} for every .py file in the four packages."""
  found = {}
  for package in LAYERS:
    for path in sorted((REPO / package).rglob("*.py")):
      parts = list(path.relative_to(REPO).with_suffix("").parts)
      if parts[-1] == "__init__":
        parts = parts[:-1]
      found[".".join(parts)] = path
  return found


def _is_package(path):
  return path.name == "__init__.py"


def _resolve_from(module, path, node):
  """The absolute module a `from ... import` names (relative levels resolved)."""
  if not node.level:
    return node.module or ""
  base = module.split(".")
  if not _is_package(path):
    base = base[:-1]
  if node.level > 1:
    base = base[:len(base) - (node.level - 1)]
  return ".".join(base + ([node.module] if node.module else []))


def _imports(module, path):
  """Yields (imported module, line, module_level) for each import in the file.

  `from pkg import name` yields pkg.name when that is a module of the project (a submodule
  import), else pkg.
  """
  tree = ast.parse(path.read_text(), filename=str(path))
  known = _modules_cache()
  module_level = {id(node) for node in _module_level_nodes(tree)}
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield alias.name, node.lineno, id(node) in module_level
    elif isinstance(node, ast.ImportFrom):
      target = _resolve_from(module, path, node)
      for alias in node.names:
        sub = f"{target}.{alias.name}" if target else alias.name
        yield (sub if sub in known else target), node.lineno, id(node) in module_level


def _module_level_nodes(tree):
  """Import nodes that run when the module is imported: outside any def or lambda
  (inside module-level if/try/with blocks too)."""
  stack = list(tree.body)
  while stack:
    node = stack.pop()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
      continue
    if isinstance(node, (ast.Import, ast.ImportFrom)):
      yield node
      continue
    stack.extend(ast.iter_child_nodes(node))


_CACHE = {}


def _modules_cache():
  if "modules" not in _CACHE:
    _CACHE["modules"] = _modules()
  return _CACHE["modules"]


def _layer(name):
  top = name.split(".")[0]
  return LAYERS.index(top) if top in LAYERS else None


def _where(path, line):
  return f"{path.relative_to(REPO)}:{line}"


def test_every_package_module_is_found():
  modules = _modules_cache()
  for package in LAYERS:
    assert package in modules, f"{package}/__init__.py not found"
  assert len(modules) > 40, sorted(modules)


def test_no_import_runs_from_a_lower_layer_to_a_higher_one():
  wrong = []
  for module, path in sorted(_modules_cache().items()):
    own = _layer(module)
    for target, line, _ in _imports(module, path):
      other = _layer(target)
      if other is not None and other > own:
        wrong.append(f"{_where(path, line)}: {module} ({LAYERS[own]}) imports {target} "
                     f"({LAYERS[other]})")
  assert not wrong, ("imports against the layering " + " < ".join(LAYERS) + ":\n  "
                     + "\n  ".join(wrong))


def _module_graph():
  """{module: {imported project module: file:line}} over module-level imports."""
  modules = _modules_cache()
  graph = {}
  for module, path in modules.items():
    edges = graph.setdefault(module, {})
    for target, line, module_level in _imports(module, path):
      if module_level and target in modules and target != module:
        edges.setdefault(target, _where(path, line))
  return graph


def _find_cycle(graph):
  """One cycle as a list of modules (first == last), or None."""
  state = {}  # module -> 1 on the current path, 2 done
  path = []

  def visit(node):
    state[node] = 1
    path.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == 1:
        return path[path.index(nxt):] + [nxt]
      if nxt not in state:
        found = visit(nxt)
        if found:
          return found
    path.pop()
    state[node] = 2
    return None

  for node in sorted(graph):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


def test_no_module_level_import_cycle():
  graph = _module_graph()
  cycle = _find_cycle(graph)
  assert cycle is None, "module-level import cycle:\n  " + "\n  ".join(
      f"{a} -> {b} ({graph[a][b]})" for a, b in zip(cycle, cycle[1:]))


def test_the_checks_catch_what_they_look_for():
  """The cycle finder and the import resolver see what they must (so the tests above can fail)."""
  assert _find_cycle({"a": {"b": ""}, "b": {"c": ""}, "c": {"a": ""}}) == ["a", "b", "c", "a"]
  assert _find_cycle({"a": {"b": ""}, "b": {}, "c": {"a": ""}}) is None
  tree = ast.parse("from .. import geometry\nfrom .x import y\n")
  first, second = tree.body
  init = REPO / "model" / "__init__.py"
  leaf = REPO / "pipelines" / "readers" / "fs.py"
  assert _resolve_from("pipelines.readers.fs", leaf, first) == "pipelines"
  assert _resolve_from("pipelines.readers.fs", leaf, second) == "pipelines.readers.x"
  assert _resolve_from("model", init, second) == "model.x"
  nested = ast.parse("import a\ndef f():\n  import b\nif True:\n  import c\n")
  names = sorted(n.names[0].name for n in _module_level_nodes(nested))
  assert names == ["a", "c"]
