"""One-line errors for the project's command lines (train.train, model.export,
train.track, train.evaluate; the Beam jobs have their own runner).

An expected failure (a bad flag value, a missing or unreadable file, bad data:
ValueError and OSError, which ConfigError and the commands' own errors derive
from, plus what a command adds, e.g. TensorFlow's file errors) ends the command
with one line on stderr, `prog: message`, the message naming the file, flag or
value, and exit status 2. The traceback is printed only with --verbose.
Ctrl-C (KeyboardInterrupt) ends it with one line `prog: interrupted (Ctrl-C)
...` and exit status 130 (the command's own cleanup, e.g. of partial files,
has run). Anything else (a bug) keeps Python's traceback and its exit status 1.

    from configs import cli as cli_errors
    cli_errors.define_verbose_flag(flag_values)           # in define_flags
    app.run(lambda argv: cli_errors.call("model.export", main, argv, flags.FLAGS))
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Callable, List, Sequence, Tuple, Type

from absl import flags

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130   # 128 + SIGINT, as a shell reports a Ctrl-C
EXPECTED_ERRORS: Tuple[Type[BaseException], ...] = (ValueError, OSError)


class CommandError(ValueError):
  """An expected failure of a command; its message names the file, flag or value."""


# -h / --help / --helpshort: the command's docstring and its flags, exit status 0
# (absl's own help exits 1 and lists only the __main__ module's flags).
HELP_ARGS = ("-h", "-?", "--help", "--helpshort")
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PROJECT_PACKAGES = ("configs", "model", "pipelines", "train", "benchmarks")


def _is_project_module(name: str) -> bool:
  """A flag-defining module of this project: dotted name or (for __main__) file path."""
  if os.path.isabs(name):
    rel = os.path.relpath(os.path.realpath(name), os.path.realpath(_PROJECT_ROOT))
    return rel.split(os.sep)[0] in _PROJECT_PACKAGES
  return name.split(".")[0] in _PROJECT_PACKAGES


def help_text(doc: str, flag_values=flags.FLAGS) -> str:
  """The docstring, then every flag the project's modules define, with defaults."""
  modules = [m for m in flag_values.flags_by_module_dict() if _is_project_module(m)]
  parts = [flag_values.module_help(m) for m in modules]
  return f"{(doc or '').strip()}\n\nflags:\n" + "\n\n".join(p for p in parts if p.strip())


def help_requested(args: Sequence[str]) -> bool:
  words = list(args)
  if "--" in words:
    words = words[:words.index("--")]
  return any(a in HELP_ARGS for a in words)


def flags_parser(doc: str, flag_values=flags.FLAGS) -> Callable[[List[str]], List[str]]:
  """A flags_parser for absl's app.run: --help prints help_text and exits 0,
  --helpfull absl's full list and exits 0; other arguments parse as usual."""
  def parse(args: List[str]) -> List[str]:
    if help_requested(args[1:]):
      print(help_text(doc, flag_values))
      sys.exit(0)
    if "--helpfull" in args[1:]:
      print(flag_values.get_help())
      sys.exit(0)
    return flag_values(args)
  return parse


def define_verbose_flag(flag_values=flags.FLAGS) -> None:
  flags.DEFINE_bool("verbose", False, "On an error, print the traceback after the one-line "
                    "message.", flag_values=flag_values)


def one_line(error: BaseException) -> str:
  """The error's message on one line (its first non-empty line; the type if it has none)."""
  for line in str(error).splitlines():
    if line.strip():
      return line.strip()
  return type(error).__name__


def report(prog: str, error: BaseException, verbose: bool = False,
           code: int = EXIT_BAD_INPUT, prefix: str = "") -> int:
  """Prints `prog: [prefix]message` (after the traceback when verbose) on
  stderr; -> code."""
  if verbose:
    traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
  print(f"{prog}: {prefix}{one_line(error)}", file=sys.stderr)
  return code


def _verbose(flag_values) -> bool:
  try:
    return bool(flag_values["verbose"].value)
  except (KeyError, AttributeError):
    return "--verbose" in sys.argv


def call(prog: str, main: Callable, argv: Sequence[str], flag_values=None,
         expected: Tuple[Type[BaseException], ...] = EXPECTED_ERRORS) -> int:
  """main(argv, flag_values) -> its exit status (None = 0); an expected error
  -> the one line on stderr and EXIT_BAD_INPUT."""
  fv = flag_values if flag_values is not None else flags.FLAGS
  try:
    code = main(list(argv), fv)
  except expected as e:  # pylint: disable=catching-non-exception
    return report(prog, e, _verbose(fv))
  except KeyboardInterrupt as e:
    if _verbose(fv):
      traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    return report(prog, CommandError("interrupted (Ctrl-C)"), code=EXIT_INTERRUPTED)
  return 0 if code is None else int(code)


def parse_flags(prog: str, args: Sequence[str], flag_values=None) -> list:
  """flag_values(args) for absl's app.run(flags_parser=...): a bad flag value or
  an unknown flag ends in one line `prog: flag --x=v: reason` and exit 2
  (absl's own parser prints two lines and exits 1)."""
  fv = flag_values if flag_values is not None else flags.FLAGS
  try:
    return fv(list(args))
  except flags.Error as e:
    sys.exit(report(prog, e))


def guarded(prog: str, main: Callable, flag_values=None,
            expected: Tuple[Type[BaseException], ...] = EXPECTED_ERRORS
            ) -> Callable[[Sequence[str]], int]:
  """A main(argv) for absl's app.run that ends expected errors with one line."""
  def wrapped(argv: Sequence[str]) -> int:
    return call(prog, main, argv, flag_values, expected)
  return wrapped

