"""The VOT toolkit's `vot` command without its update check.

  python -m train.toolkits.vot_cli evaluate --workspace vot_ws re3
  python -m train.toolkits.vot_cli analysis --workspace vot_ws --format json re3

Same arguments as `vot`. Each `vot` command first asks GitHub for a newer
toolkit version (vot.check_updates, a request with a 5 s timeout; vot-toolkit
0.9.0 has no setting or environment variable to turn it off). Offline it fails
and is ignored, so `vot` works, but behind a firewall that drops packets every
command waits those 5 s; this entry point runs the same command line with the
check replaced by "no update".
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence, Tuple

from configs import quiet

quiet.setup()


def _no_update_check() -> Tuple[bool, None]:
  return False, None


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Runs `vot` with `argv` (default: this command's arguments); returns its
  exit status (0: success; the toolkit exits 1 after logging an error)."""
  # The toolkit is the optional `vot` extra: imported only when the command runs.
  import vot  # pylint: disable=g-import-not-at-top
  from vot.utilities import cli as vot_cli  # pylint: disable=g-import-not-at-top

  vot.check_updates = _no_update_check
  vot_cli.check_updates = _no_update_check     # cli.py imported it by name
  if argv is not None:
    sys.argv = ["vot"] + list(argv)
  try:
    vot_cli.main()
  except SystemExit as e:                      # the toolkit always ends with exit()
    return 0 if e.code is None else int(e.code)
  return 0


if __name__ == "__main__":
  sys.exit(main())
