"""Helpers the tests share.

    beam.py     run `formdigits run` in-process or as a subprocess, count a table's rows, read one-line errors
    drawing.py  fields drawn by hand for the segmentation tests: boxes, writers, masks
    rows.py     table rows as the stages build them, for the store, review and write tests
"""
