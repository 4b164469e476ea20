"""The production Beam stages, one sub-package a stage, in the order a page goes through them.

    reading/       files -> pages: read.py (PNG, JPEG, TIFF, PDF; sizes checked first), dropout.py (colour)
    registration/  page -> which template, which way up, where: register.py (marks, confirmation),
                   features.py (matching a form's own print against its blank)
    segmentation/  registered page -> fields -> MNIST-like digit crops: segment.py (template fields),
                   lines.py (no template), guides.py, blobs.py, split.py, touching.py, strikeout.py, normalize.py,
                   field_pictures.py
    inference/     pages' crops -> TF Serving over gRPC: infer.py (the RemoteModelHandler)
    assembly/      predictions -> `fields`, `digits` and `crops` rows: assemble.py (rules, review flags),
                   crops.py (the kept field pictures as rows, their object names)
    output/        rows -> tables: write.py (staging shards), store.py (DuckDB + Parquet), query.py
    job/           the job that runs the stages: config.py, beam_pipeline.py (graph, DoFns, BigQuery), run.py,
                   streaming.py, dataflow.py, loopback.py, progress.py, workers.py
    templates/     form templates: model.py (data, I/O, drawing the blank), lint.py, propose.py
    review/        after a run: the review app, corrections, report, export

The shared core every stage may import: `types.py` (what travels between stages), `schema.py` (the
tables' columns), `rows.py` (a typed row per table, and `reject`), `defaults.py` (defaults and choices
the CLI shows), `ink.py` (ink strength). A stage imports the core, the templates and the public names
of the stages before it, never another package's private names; no module knows both pixels and gRPC
(segmentation has no gRPC, inference no OpenCV). tests/test_layout.py holds these rules.
"""
