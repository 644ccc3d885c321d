"""Models (Re3, the RL agent), their geometry, tracking and export.

Importing the package keeps TensorFlow's start-up lines off the console
(configs.quiet.setup_library); RE3_VERBOSE=1 shows everything.
"""

from configs import quiet as _quiet

_quiet.setup_library()
