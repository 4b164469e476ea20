"""The Beam pipeline end to end: DirectRunner, the real local server, real DuckDB files."""

import json
import os
import shutil

import cv2
import numpy as np
import pytest

from corpus.evaluate import evaluate, load_results, load_truth
from support.beam import count, run


def test_batch_run_writes_all_three_tables(batch_output, scans, capsys):
    truth = load_truth(scans / "truth.jsonl")
    (fields,), = count(batch_output, "SELECT count(*) FROM fields")
    assert fields == len(truth)  # every field of every page, empty ones included
    (digits,), = count(batch_output, "SELECT count(*) FROM digits")
    assert digits > 0.9 * sum(len(t["value"]) for t in truth)
    (model, version), = count(batch_output, "SELECT DISTINCT model_name, model_version FROM digits")
    assert (model, version) == ("lenet5", 1)
    for table in ("fields", "digits"):
        assert any(n.endswith(".parquet") for n in os.listdir(batch_output / table))
    assert not os.listdir(batch_output / ".progress")  # progress counters are removed after the run
    report = evaluate(load_results(batch_output), truth)
    assert report["missing_fields"] == 0 and report["extra_fields"] == 0
    assert report["digit_accuracy"] > 0.6  # the test model trained for seconds; the real one is measured in bench
    row, = count(batch_output, "SELECT min(confidence) <= max(confidence), bool_or(needs_review) FROM fields")
    assert row == (True, True)


def test_confidence_and_review_columns_are_consistent(batch_output):
    rows = count(batch_output, """
        SELECT f.confidence, min(d.confidence), f.digit_count, count(d.position), f.needs_review, f.review_reason
        FROM fields f LEFT JOIN digits d USING (source_uri, page, field)
        GROUP BY f.source_uri, f.page, f.field, f.confidence, f.digit_count, f.needs_review, f.review_reason""")
    for conf, min_digit, digit_count, n, review, reason in rows:
        assert digit_count == n
        if n:
            assert abs(conf - min_digit) < 1e-9
        assert review == bool(reason)
        if conf is not None and conf < 0.9:
            assert review and "low confidence" in reason


def test_rerun_leaves_one_row_per_key(scans, server, tmp_path):
    for _ in range(2):
        run("--input", str(scans / "scan_00001*"), "--output", str(tmp_path), "--templates",
             str(scans / "templates"), "--serving", server.target, "--direct_running_mode=in_memory")
    (rows, keys), = count(tmp_path, "SELECT count(*), count(DISTINCT (source_uri, page, field)) FROM fields")
    assert rows == keys > 0
    (rows, keys), = count(tmp_path, "SELECT count(*), count(DISTINCT (source_uri, page, field, position)) FROM digits")
    assert rows == keys > 0
    (runs,), = count(tmp_path, "SELECT count(DISTINCT run_id) FROM fields")
    assert runs == 1  # the second run replaced the first one's rows


def test_corrupt_and_empty_files_become_rejects(scans, server, tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    shutil.copy(scans / "scan_00001.png", incoming / "good.png")
    (incoming / "empty.png").write_bytes(b"")
    (incoming / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(500))
    (incoming / "notes.txt").write_text("not a scan")
    out = tmp_path / "out"
    run("--input", str(incoming / "*"), "--output", str(out), "--templates", str(scans / "templates"),
         "--serving", server.target, "--direct_running_mode=in_memory")
    rejects = {os.path.basename(r[0]): r[1:] for r in
               count(out, "SELECT source_uri, page, stage, error_type, message FROM rejects")}
    assert set(rejects) == {"empty.png", "corrupt.jpg", "notes.txt"}
    assert rejects["empty.png"] == (None, "read", "ReadError", "empty file")
    assert rejects["corrupt.jpg"][1] == "read" and "corrupt JPEG" in rejects["corrupt.jpg"][3]
    assert "not a PNG, JPEG, TIFF or PDF" in rejects["notes.txt"][3]
    (good,), = count(out, "SELECT count(*) FROM fields WHERE source_uri LIKE '%good.png'")
    assert good > 0


def test_page_without_marks_is_rejected_at_segment(scans, server, tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    cv2.imwrite(str(incoming / "blank.png"), np.full((1100, 850), 245, np.uint8))
    run("--input", str(incoming / "*"), "--output", str(tmp_path / "out"), "--templates", str(scans / "templates"),
         "--serving", server.target, "--direct_running_mode=in_memory")
    (stage, page, message), = count(tmp_path / "out", "SELECT stage, page, message FROM rejects")
    assert stage == "segment" and page == 1 and "registration marks not found" in message


def test_without_templates_lines_become_fields(scans, server, tmp_path):
    truth = [t for t in load_truth(scans / "truth.jsonl") if t["template"] == "digit_lines"]
    if not truth:
        pytest.skip("scans has no digit-lines page")
    source = truth[0]["source"]
    run("--input", str(scans / source), "--output", str(tmp_path), "--serving", server.target,
         "--direct_running_mode=in_memory")
    rows = count(tmp_path, "SELECT field, digit_count, template FROM fields WHERE page = 1 ORDER BY field")
    assert len(rows) >= 5 and rows[0][0] == "line01" and rows[0][2] is None
    assert sum(r[1] for r in rows) > 0.7 * sum(len(t["value"]) for t in truth if t["page"] == 1)


# -- the inference handler's failure paths (faults a real server cannot be made to produce on demand) --------




def test_flagged_fields_keep_a_picture_with_their_digit_boxes(batch_output):
    """--keep-crops flagged (the default): one crops row per flagged field, a small PNG, one box per digit read."""
    flagged = set(count(batch_output, "SELECT source_uri, page, field FROM fields WHERE needs_review"))
    rows = count(batch_output, """
        SELECT c.source_uri, c.page, c.field, c.image, c.width, c.height, c.digit_boxes, f.digit_count
        FROM crops c JOIN fields f USING (source_uri, page, field)""")
    assert flagged and {r[:3] for r in rows} == flagged
    for *_, png, width, height, boxes, digit_count in rows:
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        assert image.shape == (height, width) and image.dtype == np.uint8
        assert len(png) < 20_000
        boxes = json.loads(boxes)
        assert len(boxes) == digit_count
        for b in boxes:
            x, y, w, h = b["box"]
            assert 0 <= x and 0 <= y and x + w <= width + 1 and y + h <= height + 1


def test_keep_crops_all_then_none_replaces_the_pages_crops(scans, server, tmp_path):
    args = ("--input", str(scans / "scan_00002*"), "--output", str(tmp_path), "--templates",
            str(scans / "templates"), "--serving", server.target, "--direct_running_mode=in_memory")
    run(*args, "--keep-crops", "all")
    (fields, crops, keys), = count(tmp_path, """
        SELECT (SELECT count(*) FROM fields), count(*), count(DISTINCT (source_uri, page, field)) FROM crops""")
    assert fields == crops == keys > 0
    run(*args, "--keep-crops", "none")
    (crops,), = count(tmp_path, "SELECT count(*) FROM crops")
    assert crops == 0


@pytest.mark.slow
def test_pages_of_a_form_without_its_template_become_rejects_not_invented_values(scans, server, tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(scans / "templates", templates)
    (templates / "invoice.json").unlink()
    out = tmp_path / "out"
    run("--input", str(scans / "scan_*"), "--templates", str(templates), "--output", str(out),
        "--serving", server.target)
    invoice_pages = {(r["source"].rsplit("/", 1)[-1], r["page"]) for r in load_truth(scans / "truth.jsonl")
                     if r["template"] == "invoice"}
    assert invoice_pages
    rejected = {(u.rsplit("/", 1)[-1], p) for u, p, m in count(out, "SELECT source_uri, page, message FROM rejects")
                if "is its template missing?" in m}
    read = {(u.rsplit("/", 1)[-1], p) for u, p in count(out, "SELECT DISTINCT source_uri, page FROM fields")}
    assert rejected == invoice_pages and not read & invoice_pages
