"""formdigits: read handwritten digits off scanned paper forms, at scale.

The command line lives here (`formdigits.cli`); the product is the Beam
pipeline in `pipeline/`, serving in `serving/`, training in `model_export/`,
test data and scoring in `corpus/`, the benchmark suite in `bench/`.
"""

__version__ = "0.2.0"
