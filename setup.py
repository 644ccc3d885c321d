"""Shim for tools that want a setup.py (Beam's --setup_file ships the package
to Dataflow/Flink/Spark workers with it); the metadata lives in setup.cfg."""

import setuptools

setuptools.setup()
