"""`formdigits bench`: the benchmark suite.

Everything is measured side by side in one run on one machine and reported as
ratios, since absolute figures drift on shared machines:

- `bench.inference`: images/s through the gRPC server against the same SavedModel in-process;
- `bench.pipeline`: `formdigits run` against a bare decode + segment + normalise loop, its memory;
- `bench.tesseract`: Tesseract, the baseline users try first, on the same field images;
- `bench.suite`: runs them, checks the targets, writes `bench/results/*.json` and `.md`.
"""
