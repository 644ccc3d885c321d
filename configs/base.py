"""Strict YAML <-> dataclass loading shared by every config in the project.

Every configuration is a (possibly nested) dataclass. Loading is strict:
unknown keys, wrong types and failed validation raise `ConfigError` naming the
dotted key, before any work starts. `--set key.sub=value` overrides (a list
element by index: `--set trainer.stages[1].steps=5`) are applied with
`apply_overrides`, the one override parser of every command.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from typing import Any, Dict, Iterable, List, Mapping, Optional, Type, TypeVar, Union

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
  """A configuration value or key is invalid; the message names it."""


def _type_name(tp) -> str:
  return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
  """Converts a YAML value to the annotated type `tp`, strictly."""
  origin = typing.get_origin(tp)
  args = typing.get_args(tp)
  if tp is Any:
    return value
  if origin in (typing.Union, types.UnionType):
    if value is None and type(None) in args:
      return None
    errors = []
    for arg in args:
      if arg is type(None):
        continue
      try:
        return _coerce(value, arg, key)
      except ConfigError as e:
        errors.append(str(e))
    raise ConfigError(f"{key}: value {value!r} matches none of {tp}: {errors}")
  if typing.get_origin(tp) is typing.Literal:
    if value not in args:
      raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
    return value
  if dataclasses.is_dataclass(tp):
    if isinstance(value, tp):
      return value
    if not isinstance(value, Mapping):
      raise ConfigError(f"{key}: expected a mapping for {_type_name(tp)}, got {value!r}")
    return from_dict(tp, value, prefix=key)
  if origin in (list, tuple, typing.List, typing.Tuple) or tp in (list, tuple):
    if isinstance(value, str) or not isinstance(value, Iterable):
      raise ConfigError(f"{key}: expected a list, got {value!r}")
    items = list(value)
    if origin in (tuple, typing.Tuple) and args and not (len(args) == 2 and args[1] is Ellipsis):
      if len(items) != len(args):
        raise ConfigError(f"{key}: expected {len(args)} values, got {len(items)}")
      return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(items, args)))
    item_tp = args[0] if args else Any
    out = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(items)]
    return tuple(out) if (origin in (tuple, typing.Tuple) or tp is tuple) else out
  if origin in (dict, typing.Dict) or tp is dict:
    if not isinstance(value, Mapping):
      raise ConfigError(f"{key}: expected a mapping, got {value!r}")
    vt = args[1] if args else Any
    return {str(k): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
  if tp is bool:
    if isinstance(value, bool):
      return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
      return value.lower() in ("true", "yes", "1")
    raise ConfigError(f"{key}: expected true/false, got {value!r}")
  if tp is int:
    if isinstance(value, bool):
      raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if isinstance(value, int):
      return value
    if isinstance(value, float) and value.is_integer():
      return int(value)
    if isinstance(value, str):
      try:
        return int(value)
      except ValueError:
        pass
    raise ConfigError(f"{key}: expected an integer, got {value!r}")
  if tp is float:
    if isinstance(value, bool):
      raise ConfigError(f"{key}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
      return float(value)
    if isinstance(value, str):
      try:
        return float(value)
      except ValueError:
        pass
    raise ConfigError(f"{key}: expected a number, got {value!r}")
  if tp is str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
      return str(value)
    raise ConfigError(f"{key}: expected a string, got {value!r}")
  return value


def from_dict(cls: Type[T], data: Mapping[str, Any], prefix: str = "") -> T:
  """Builds dataclass `cls` from a mapping; unknown keys are an error."""
  if data is None:
    data = {}
  if not isinstance(data, Mapping):
    raise ConfigError(f"{prefix or cls.__name__}: expected a mapping, got {data!r}")
  hints = typing.get_type_hints(cls)
  fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
  unknown = sorted(set(data) - set(fields))
  if unknown:
    where = f" under '{prefix}'" if prefix else ""
    raise ConfigError(
        f"unknown config key(s){where}: {', '.join(unknown)}; "
        f"known keys: {', '.join(sorted(fields))}")
  kwargs = {}
  for name, value in data.items():
    key = f"{prefix}.{name}" if prefix else name
    kwargs[name] = _coerce(value, hints[name], key)
  obj = cls(**kwargs)
  return obj


def as_config(cls: Type[T], value: Any, prefix: str = "") -> T:
  """`value` as a validated `cls`: an instance, a mapping (strictly parsed) or
  None (the defaults). Used where code accepts a config or its dict form
  (e.g. a Keras model rebuilt from `get_config()`)."""
  if value is None:
    cfg = cls()
  elif isinstance(value, cls):
    cfg = value
  else:
    cfg = from_dict(cls, dict(value), prefix=prefix)
  validate(cfg)
  return cfg


def to_dict(cfg: Any) -> Dict[str, Any]:
  """Plain dict (lists for tuples) suitable for YAML dumping."""
  def convert(v):
    if dataclasses.is_dataclass(v):
      return {f.name: convert(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, (list, tuple)):
      return [convert(x) for x in v]
    if isinstance(v, dict):
      return {k: convert(x) for k, x in v.items()}
    return v
  return convert(cfg)


def validate(cfg: Any, prefix: str = "") -> None:
  """Runs `validate()` on every nested dataclass that defines it (children first)."""
  for f in dataclasses.fields(cfg):
    v = getattr(cfg, f.name)
    key = f"{prefix}.{f.name}" if prefix else f.name
    if dataclasses.is_dataclass(v):
      validate(v, key)
    elif isinstance(v, (list, tuple)):
      for i, item in enumerate(v):
        if dataclasses.is_dataclass(item):
          validate(item, f"{key}[{i}]")
  check = getattr(cfg, "validate", None)
  if callable(check):
    try:
      check()
    except ConfigError as e:
      raise ConfigError(f"{prefix}: {e}" if prefix else str(e)) from None


def require(condition: bool, message: str) -> None:
  """Raises ConfigError(message) unless condition holds (for validate())."""
  if not condition:
    raise ConfigError(message)


def parse_override(text: str):
  """'a.b=3' -> ('a.b', 3) with the value parsed as YAML."""
  if "=" not in text:
    raise ConfigError(f"override {text!r} must look like key.sub=value")
  key, raw = text.split("=", 1)
  key = key.strip()
  if not key:
    raise ConfigError(f"override {text!r} has an empty key")
  try:
    value = yaml.safe_load(raw) if raw.strip() else ""
  except yaml.YAMLError:
    value = raw
  return key, value


_KEY_PART = re.compile(r"([^\[\]]*)((?:\[-?\d+\])*)")
_INDEX = re.compile(r"\[(-?\d+)\]")


def override_path(key: str, text: str = "") -> List[Union[str, int]]:
  """'trainer.stages[1].steps' -> ['trainer', 'stages', 1, 'steps'].

  A list element is named by its index in brackets (`stages[1]`) or as a
  numeric dotted part (`stages.1`); both forms index the same element.
  """
  text = text or key
  parts: List[Union[str, int]] = []
  for piece in key.split("."):
    m = _KEY_PART.fullmatch(piece)
    if m is None or not (m.group(1) or m.group(2)):
      raise ConfigError(f"override {text!r}: cannot parse key part {piece!r} (use "
                        "name, name[index] or a numeric index)")
    if m.group(1):
      parts.append(m.group(1))
    parts.extend(int(i) for i in _INDEX.findall(m.group(2)))
  return parts


def _list_index(node: list, part: Union[str, int], where: str, text: str) -> int:
  try:
    idx = int(part)
  except ValueError:
    raise ConfigError(f"override {text!r}: '{where}' is a list; '{part}' must be an "
                      "index") from None
  if not -len(node) <= idx < len(node):
    raise ConfigError(f"override {text!r}: index {idx} of '{where}' out of range (the list "
                      f"has {len(node)} elements)")
  return idx


def apply_overrides(data: Dict[str, Any], overrides: Iterable[str]) -> Dict[str, Any]:
  """Applies dotted `key=value` overrides to a raw config dict (before from_dict).

  The one `--set` parser of every command (train.train, model.summary): a
  key is dotted section names, and a list element is reached with its index,
  `trainer.stages[1].steps=5` (or `trainer.stages.1.steps=5`). Missing
  sections are created; indexing needs the list to be in the config.
  """
  for text in overrides or ():
    key, value = parse_override(text)
    parts = override_path(key, text)
    node: Any = data
    where = ""
    for i, part in enumerate(parts):
      last = i == len(parts) - 1
      if isinstance(node, list):
        idx = _list_index(node, part, where, text)
        if last:
          node[idx] = value
          break
        child = node[idx]
      elif isinstance(part, int):
        raise ConfigError(f"override {text!r}: '{where or part}' is not a list in the config, "
                          f"so it has no element [{part}] (set the whole list instead)")
      elif last:
        node[part] = value
        break
      else:
        child = node.get(part)
        if child is None:
          child = node[part] = {}
      where = f"{where}[{part}]" if isinstance(node, list) else (
          f"{where}.{part}" if where else str(part))
      if not isinstance(child, (dict, list)):
        if isinstance(parts[i + 1], int):
          raise ConfigError(f"override {text!r}: '{where}' is not a list in the config, so it "
                            f"has no element [{parts[i + 1]}] (set the whole list instead)")
        raise ConfigError(f"override {text!r}: '{where}' is not a section")
      node = child
  return data


def _duplicate_key(node, where: str = ""):
  """(dotted key, line, first line) of the first key given twice in one
  mapping of the composed YAML `node`, or None. Plain YAML keeps the last
  value silently; keys brought in by a `<<` merge may be overridden."""
  if isinstance(node, yaml.MappingNode):
    first: Dict[str, int] = {}
    for key_node, value_node in node.value:
      if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
        continue
      dotted = f"{where}.{key_node.value}" if where else key_node.value
      line = key_node.start_mark.line + 1
      if key_node.value in first:
        return dotted, line, first[key_node.value]
      first[key_node.value] = line
      found = _duplicate_key(value_node, dotted)
      if found:
        return found
  elif isinstance(node, yaml.SequenceNode):
    for i, item in enumerate(node.value):
      found = _duplicate_key(item, f"{where}[{i}]")
      if found:
        return found
  return None


def load_yaml(path: str) -> Dict[str, Any]:
  """The YAML mapping in `path`; ConfigError naming the file (and line) when it
  is missing, not YAML, gives a key twice in one section, or is no mapping."""
  if not os.path.exists(path):
    raise ConfigError(f"config file not found: {path}")
  with open(path) as f:
    text = f.read()
  try:
    duplicate = _duplicate_key(yaml.compose(text, Loader=yaml.SafeLoader))
    data = yaml.safe_load(text) or {}
  except yaml.YAMLError as e:
    raise ConfigError(f"{path}: not valid YAML: {e}") from None
  if duplicate:
    key, line, first = duplicate
    raise ConfigError(f"{path}:{line}: {key} is given twice (first on line {first}); "
                      "keep one")
  if not isinstance(data, dict):
    raise ConfigError(f"{path}: top level must be a mapping")
  return data


def load(cls: Type[T], path: Optional[str] = None, overrides: Iterable[str] = (),
         data: Optional[Mapping[str, Any]] = None) -> T:
  """Loads, overrides, builds and validates a config. Errors name the key."""
  raw = dict(data or {})
  if path:
    raw = load_yaml(path)
  raw = apply_overrides(raw, overrides)
  try:
    cfg = from_dict(cls, raw)
  except ConfigError as e:
    raise ConfigError(f"{path or cls.__name__}: {e}") from None
  validate(cfg)
  return cfg


def save(cfg: Any, path: str) -> None:
  """Writes the resolved config as YAML (saved beside every model)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    yaml.safe_dump(to_dict(cfg), f, sort_keys=False)
