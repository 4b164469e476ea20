"""The picture of a page beside its rows (pipeline/review/overlay.py) and `make demo`'s look at one scan."""

import cv2
import numpy as np

from pipeline.review.overlay import FLAGGED, SURE, FieldReading, draw_readings, page_readings


def test_fields_are_boxed_in_their_colour_beside_the_table():
    page = np.full((1000, 800), 235, np.uint8)
    readings = [FieldReading("account", "1234", 0.999, False, (100, 100, 300, 80)),
                FieldReading("amount", "", None, True, (100, 500, 300, 80))]
    picture = draw_readings(page, readings, height=500)
    assert picture.shape == (500, 400 + 500, 3)  # the page at half size, then the table
    assert tuple(picture[50, 100]) == SURE and tuple(picture[250, 100]) == FLAGGED  # the left edges of the boxes
    table = picture[:, 400:]
    assert (table == FLAGGED).all(axis=2).any() and (table < 100).all(axis=2).any()  # a flagged row, black text


def test_page_readings_are_the_pages_field_rows(batch_output):
    from pipeline.output.query import run_query

    _, rows = run_query(str(batch_output), "SELECT source_uri, page, count(*), sum(needs_review::int) FROM fields "
                                           "GROUP BY ALL ORDER BY 1, 2 LIMIT 1")
    uri, page, count, flagged = rows[0]
    readings = page_readings(str(batch_output), uri, page)
    assert len(readings) == count and sum(r.needs_review for r in readings) == flagged
    assert [r.box[1] for r in readings] == sorted(r.box[1] for r in readings)  # top to bottom
    assert page_readings(str(batch_output), uri + "' OR '1'='1", page) == []  # a key, not SQL


def test_the_demo_draws_a_small_page_and_prints_its_table(batch_output, tmp_path, capsys):
    from formdigits.demo import main

    out = tmp_path / "read.png"
    assert main(["--results", str(batch_output), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fields read" in printed and "confidence" in printed and printed.rstrip().endswith("rows)")
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[0] == 900
