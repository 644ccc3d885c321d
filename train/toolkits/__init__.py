"""The official toolkits drive Re3Tracker.

  vot_toolkit     the VOT toolkit (`vot-toolkit`, the `vot` extra): a tracker for
                  a trackers.ini (python or traxpython protocol, rectangle region)
                  and the workspace writer `python -m train.toolkits.vot_workspace`
  vot_cli         the toolkit's `vot` command without its internet update check
  got10k_toolkit  the GOT-10k toolkit (`got10k`, the `got10k` extra): a
                  got10k.trackers.Tracker around Re3Tracker and its OTB experiment
                  on local sequences without any download

README.md "Official toolkits" has the commands.
"""
