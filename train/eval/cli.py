"""What the absl command lines of evaluation and tracking (train.evaluate,
train.track) share: running `main` with `--help` that exits 0, and expected
errors ending in one line `prog: message` with exit 2 (configs/cli.py; the
traceback with --verbose), a bad flag value or unknown flag too (one line,
exit 2), Ctrl-C in one line with exit 130.

absl's own --help exits with status 1; here -h / --help / --helpshort print the
command's docstring and its flags and exit 0, also when the command runs as an
installed console script (whose __main__ module is not the command's module).
"""

from __future__ import annotations

import sys
from typing import Callable, List, Optional, Sequence

from absl import app, flags

from configs import cli as cli_errors

# What the commands turn into one line: bad values and files, and a missing
# optional dependency (OpenCV), whose message names the package.
EXPECTED_ERRORS = cli_errors.EXPECTED_ERRORS + (ImportError,)
HELP_ARGS = cli_errors.HELP_ARGS


def help_text(doc: str, flag_name: str, flag_values=flags.FLAGS) -> str:
  """The command's docstring and the flags of the module that defines `flag_name`."""
  module = flag_values.find_module_defining_flag(flag_name)
  return f"{doc.strip()}\n\nflags:\n{flag_values.module_help(module)}"


def run(main: Callable, define_flags: Callable[[], None], doc: str, flag_name: str,
        argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> None:
  """define_flags(), then absl's app.run(main); --help prints help_text and exits 0;
  an expected error ends in one line `prog: message` and exit 2."""
  define_flags()
  prog = prog or flag_name

  def parse(args: List[str]):
    words = list(args[1:])
    if "--" in words:
      words = words[:words.index("--")]
    if any(a in HELP_ARGS for a in words):
      print(help_text(doc, flag_name))
      sys.exit(0)
    return cli_errors.parse_flags(prog, args)   # a bad flag value: one line, exit 2

  app.run(cli_errors.guarded(prog, main, flags.FLAGS, EXPECTED_ERRORS),
          argv=list(argv) if argv is not None else None, flags_parser=parse)
