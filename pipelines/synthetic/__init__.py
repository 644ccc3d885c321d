"""Generated training data: the Re3 occluded-track simulator and moving MNIST.

Everything here is a pure function of a seed (see `rng.track_rng`), so the
Beam jobs built on it write the same bytes on every run and every runner.
"""
