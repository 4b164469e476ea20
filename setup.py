# Dataflow stages the project with `--setup_file ./setup.py`; everything else is in pyproject.toml.
from setuptools import setup

setup()
