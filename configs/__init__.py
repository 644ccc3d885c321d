"""Configuration dataclasses and their YAML files.

The YAML files in this folder are the user-facing configurations; the Python
modules define the dataclasses they are loaded into (`configs.base` holds the
strict loader every config uses).
"""
