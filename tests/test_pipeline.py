"""The Beam pipeline end to end: DirectRunner, the real local server, real DuckDB files."""

import json
import os
import shutil
import subprocess
import sys
import time

import duckdb
import grpc
import numpy as np
import pytest

from formdigits.cli import main
from corpus.evaluate import evaluate, load_results, load_truth
from corpus.forms import synth_forms
from serving.server.config import BatchingOptions, ModelEntry
from serving.server.engine import build_local_server


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("scans")
    synth_forms(6, str(out), seed=36, workers=2)   # png, jpeg, tiff, pdf; all four templates
    return out


@pytest.fixture(scope="module")
def server(models_dir):
    entries = [ModelEntry(name="lenet5", base_path=str(models_dir / "lenet5"), policy="latest")]
    srv = build_local_server(entries, batching=BatchingOptions(max_batch_size=256, batch_timeout_micros=2000),
                             port=0).start()
    yield srv
    srv.stop(5)


def _run(*args, expect=0):
    rc = main(["run", *args])
    assert rc == expect
    return rc


def _count(db_dir, sql):
    con = duckdb.connect(str(db_dir / "results.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def batch_output(corpus, server, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    _run("--input", str(corpus / "scan_*"), "--output", str(out), "--templates", str(corpus / "templates"),
         "--serving", server.target)  # default runner options: DirectRunner, multi-processing, every core
    return out


def test_batch_run_writes_all_three_tables(batch_output, corpus, capsys):
    truth = load_truth(corpus / "truth.jsonl")
    (fields,), = _count(batch_output, "SELECT count(*) FROM fields")
    assert fields == len(truth)  # every field of every page, empty ones included
    (digits,), = _count(batch_output, "SELECT count(*) FROM digits")
    assert digits > 0.9 * sum(len(t["value"]) for t in truth)
    (model, version), = _count(batch_output, "SELECT DISTINCT model_name, model_version FROM digits")
    assert (model, version) == ("lenet5", 1)
    for table in ("fields", "digits"):
        assert any(n.endswith(".parquet") for n in os.listdir(batch_output / table))
    assert not os.listdir(batch_output / ".progress")  # progress counters are removed after the run
    report = evaluate(load_results(batch_output), truth)
    assert report["missing_fields"] == 0 and report["extra_fields"] == 0
    assert report["digit_accuracy"] > 0.6  # the test model trained for seconds; the real one is measured in bench
    row, = _count(batch_output, "SELECT min(confidence) <= max(confidence), bool_or(needs_review) FROM fields")
    assert row == (True, True)


def test_confidence_and_review_columns_are_consistent(batch_output):
    rows = _count(batch_output, """
        SELECT f.confidence, min(d.confidence), f.digit_count, count(d.position), f.needs_review, f.review_reason
        FROM fields f LEFT JOIN digits d USING (source_uri, page, field)
        GROUP BY f.source_uri, f.page, f.field, f.confidence, f.digit_count, f.needs_review, f.review_reason""")
    for conf, min_digit, count, n, review, reason in rows:
        assert count == n
        if n:
            assert abs(conf - min_digit) < 1e-9
        assert review == bool(reason)
        if conf is not None and conf < 0.9:
            assert review and "low confidence" in reason


def test_rerun_leaves_one_row_per_key(corpus, server, tmp_path):
    for _ in range(2):
        _run("--input", str(corpus / "scan_00001*"), "--output", str(tmp_path), "--templates",
             str(corpus / "templates"), "--serving", server.target, "--direct_running_mode=in_memory")
    (rows, keys), = _count(tmp_path, "SELECT count(*), count(DISTINCT (source_uri, page, field)) FROM fields")
    assert rows == keys > 0
    (rows, keys), = _count(tmp_path, "SELECT count(*), count(DISTINCT (source_uri, page, field, position)) FROM digits")
    assert rows == keys > 0
    (runs,), = _count(tmp_path, "SELECT count(DISTINCT run_id) FROM fields")
    assert runs == 1  # the second run replaced the first one's rows


def test_corrupt_and_empty_files_become_rejects(corpus, server, tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    shutil.copy(corpus / "scan_00001.png", scans / "good.png")
    (scans / "empty.png").write_bytes(b"")
    (scans / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(500))
    (scans / "notes.txt").write_text("not a scan")
    out = tmp_path / "out"
    _run("--input", str(scans / "*"), "--output", str(out), "--templates", str(corpus / "templates"),
         "--serving", server.target, "--direct_running_mode=in_memory")
    rejects = {os.path.basename(r[0]): r[1:] for r in
               _count(out, "SELECT source_uri, page, stage, error_type, message FROM rejects")}
    assert set(rejects) == {"empty.png", "corrupt.jpg", "notes.txt"}
    assert rejects["empty.png"] == (None, "read", "ReadError", "empty file")
    assert rejects["corrupt.jpg"][1] == "read" and "corrupt JPEG" in rejects["corrupt.jpg"][3]
    assert "not a PNG, JPEG, TIFF or PDF" in rejects["notes.txt"][3]
    (good,), = _count(out, "SELECT count(*) FROM fields WHERE source_uri LIKE '%good.png'")
    assert good > 0


def test_page_without_marks_is_rejected_at_segment(corpus, server, tmp_path):
    import cv2

    scans = tmp_path / "scans"
    scans.mkdir()
    cv2.imwrite(str(scans / "blank.png"), np.full((1100, 850), 245, np.uint8))
    _run("--input", str(scans / "*"), "--output", str(tmp_path / "out"), "--templates", str(corpus / "templates"),
         "--serving", server.target, "--direct_running_mode=in_memory")
    (stage, page, message), = _count(tmp_path / "out", "SELECT stage, page, message FROM rejects")
    assert stage == "segment" and page == 1 and "registration marks not found" in message


def test_without_templates_lines_become_fields(corpus, server, tmp_path):
    truth = [t for t in load_truth(corpus / "truth.jsonl") if t["template"] == "digit_lines"]
    if not truth:
        pytest.skip("corpus has no digit-lines page")
    source = truth[0]["source"]
    _run("--input", str(corpus / source), "--output", str(tmp_path), "--serving", server.target,
         "--direct_running_mode=in_memory")
    rows = _count(tmp_path, "SELECT field, digit_count, template FROM fields WHERE page = 1 ORDER BY field")
    assert len(rows) >= 5 and rows[0][0] == "line01" and rows[0][2] is None
    assert sum(r[1] for r in rows) > 0.7 * sum(len(t["value"]) for t in truth if t["page"] == 1)


def test_streaming_picks_up_new_files(corpus, models_dir, tmp_path):
    watched = tmp_path / "incoming"
    watched.mkdir()
    out = tmp_path / "out"
    log = open(tmp_path / "run.log", "w")  # a file, not a pipe nobody reads: a full pipe would block the job
    proc = subprocess.Popen(
        [sys.executable, "-m", "formdigits", "run", "--input", str(watched / "*"), "--output", str(out),
         "--templates", str(corpus / "templates"), "--models-dir", str(models_dir), "--streaming",
         "--poll-seconds", "1", "--stop-after", "240"],
        stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        shutil.copy(corpus / "scan_00001.png", watched / "first.png")
        seen = []
        while time.monotonic() < deadline and not seen:
            time.sleep(1)
            res = subprocess.run([sys.executable, "-m", "formdigits", "query", "--db", str(out), "--format", "csv",
                                  "SELECT DISTINCT source_uri FROM fields"], capture_output=True, text=True)
            seen = [l for l in res.stdout.splitlines()[1:] if "first.png" in l]
        assert seen, "a file added while the job runs reaches the table:\n" + (tmp_path / "run.log").read_text()[-3000:]
        shutil.copy(corpus / "scan_00002.jpg", watched / "second.jpg")
        while time.monotonic() < deadline + 30:
            time.sleep(1)
            res = subprocess.run([sys.executable, "-m", "formdigits", "query", "--db", str(out), "--format", "csv",
                                  "SELECT count(DISTINCT source_uri) FROM fields"], capture_output=True, text=True)
            if res.stdout.splitlines()[-1:] == ["2"]:
                break
        else:
            pytest.fail("the second file never arrived:\n" + (tmp_path / "run.log").read_text()[-3000:])
        proc.send_signal(2)  # Ctrl-C: stops cleanly
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert not [n for n in os.listdir(out / "fields") if n.endswith(".part")]


def test_dataflow_dry_run_translates_offline(corpus, tmp_path):
    job = tmp_path / "job.json"
    _run("--input", "gs://bucket/scans/*.pdf", "--output", "bq:proj:formdigits", "--serving",
         "dns:///tfserving:8500", "--templates", str(corpus / "templates"), "--dry-run", "--project", "proj",
         "--region", "europe-west1", "--temp-location", "gs://bucket/tmp", "--job-file", str(job))
    description = json.loads(job.read_text())
    text = json.dumps(description)
    assert "RunInference/BeamML_RunInference" in text
    assert "WriteToBigQuery_fields" in text and "WriteToBigQuery_rejects" in text
    assert description["job"]["name"]


def _one_line(args):
    res = subprocess.run([sys.executable, "-m", "formdigits", *args], capture_output=True, text=True, timeout=120)
    lines = [l for l in res.stderr.splitlines() if l.startswith("formdigits")]
    return res.returncode, lines


def test_missing_model_says_how_to_train(corpus, tmp_path):
    rc, lines = _one_line(["run", "--input", str(corpus / "scan_00001.png"), "--output", str(tmp_path / "o"),
                           "--models-dir", str(tmp_path / "no-models")])
    assert rc == 2 and len(lines) == 1 and "formdigits train" in lines[0]


def test_wrong_flags_fail_fast(tmp_path):
    rc, lines = _one_line(["run", "--input", str(tmp_path / "nothing*"), "--output", str(tmp_path)])
    assert rc == 2 and "matches no files" in lines[0]
    rc, lines = _one_line(["run", "--input", "gs://b/x", "--output", "bq:only-project", "--dry-run"])
    assert rc == 2 and "bq:PROJECT:DATASET" in lines[0]


def test_query_is_read_only_and_formats(batch_output):
    rc, lines = _one_line(["query", "--db", str(batch_output), "DROP TABLE fields"])
    assert rc == 2 and "read-only" in lines[0]
    res = subprocess.run([sys.executable, "-m", "formdigits", "query", "--db", str(batch_output), "--format", "json",
                          "SELECT field, value FROM fields ORDER BY source_uri, page, field LIMIT 3"],
                         capture_output=True, text=True, timeout=60)
    rows = json.loads(res.stdout)
    assert len(rows) == 3 and set(rows[0]) == {"field", "value"}
    res = subprocess.run([sys.executable, "-m", "formdigits", "query", "--db", str(batch_output),
                          "SELECT count(*) AS n FROM digits"], capture_output=True, text=True, timeout=60)
    assert res.stdout.splitlines()[0].strip() == "n" and res.stdout.strip().endswith("(1 row)")


# -- the inference handler's failure paths (faults a real server cannot be made to produce on demand) --------
class _RpcError(grpc.RpcError):
    def __init__(self, code, details="x"):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


class _Result:
    def __init__(self, n):
        self.outputs = {"probabilities": np.tile(np.eye(10, dtype=np.float32)[3], (n, 1))}
        self.model_name, self.model_version = "lenet5", 7


class FailsOnce:
    """A client whose first call finds the server restarting."""

    def __init__(self):
        self.calls = 0

    def predict(self, images):
        self.calls += 1
        if self.calls == 1:
            raise _RpcError(grpc.StatusCode.UNAVAILABLE, "connection reset")
        return _Result(len(images))


class RefusesDarkCrops:
    """A client whose server refuses any request containing an all-ink crop."""

    def predict(self, images):
        if (images.reshape(len(images), -1).min(axis=1) == 255).any():
            raise _RpcError(grpc.StatusCode.INVALID_ARGUMENT, "bad crop")
        return _Result(len(images))


def _pages(n, bad=()):
    """n one-field pages of two crops each; a page in `bad` holds an all-ink crop."""
    from pipeline.types import DigitCut, FieldCut, PageCut

    pages = []
    for i in range(n):
        crops = [np.full((28, 28), 255 if i in bad else 0, np.uint8), np.zeros((28, 28), np.uint8)]
        digits = [DigitCut(k, c, (k, 0, 1, 1), c) for k, c in enumerate(crops)]
        pages.append(PageCut("s.png", i + 1, [FieldCut("t", "f", None, (0, 0, 1, 1), digits)]))
    return pages


def test_handler_retries_a_transient_failure():
    from pipeline.infer import PageReads, TFServingModelHandler

    handler = TFServingModelHandler("127.0.0.1:1", num_retries=2)
    client = FailsOnce()
    results = list(handler.run_inference(_pages(3), client))
    assert client.calls == 2
    assert all(isinstance(r.inference, PageReads) and r.inference.model_versions == [7, 7] for r in results)


def test_handler_rejects_only_the_page_with_the_bad_crop():
    from pipeline.infer import InferenceFailed, PageReads, TFServingModelHandler

    handler = TFServingModelHandler("127.0.0.1:1", num_retries=0)
    results = list(handler.run_inference(_pages(4, bad={2}), RefusesDarkCrops()))
    assert [type(r.inference) for r in results] == [PageReads, PageReads, InferenceFailed, PageReads]
    assert results[2].inference.error_type == "INVALID_ARGUMENT"
    assert results[2].inference.message == "INVALID_ARGUMENT: bad crop"


def test_handler_batches_pages_by_crops_and_splits_requests(server):
    import weakref

    from pipeline.infer import TFServingModelHandler

    handler = TFServingModelHandler(server.target, max_batch_size=3)
    kwargs = handler.batch_elements_kwargs()
    assert kwargs["max_batch_size"] == 3 and kwargs["element_size_fn"](_pages(1)[0]) == 2
    client = handler.create_client()
    weakref.ref(client)  # RemoteModelHandler keeps the client by weak reference
    results = list(handler.run_inference(_pages(5), client))  # 10 crops: requests of 3, 3, 3, 1
    assert [r.example.page for r in results] == [1, 2, 3, 4, 5]
    assert all(r.inference.probabilities.shape == (2, 10) for r in results)


def test_writer_waits_for_a_reader(tmp_path):
    """A `formdigits query` holding the database must delay a write, not fail it."""
    import datetime

    from pipeline.write import write_local_batch

    row = {"source_uri": "a.png", "page": 1, "stage": "read", "error_type": "ReadError", "message": "empty file",
           "processed_at": datetime.datetime(2026, 1, 1)}
    write_local_batch(str(tmp_path), "rejects", [row], "r1")
    reader = subprocess.Popen(  # another process, as `formdigits query` is
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
         "print('open', flush=True); time.sleep(1.5); c.close()", str(tmp_path / "results.duckdb")],
        stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "open"
    started = time.monotonic()
    write_local_batch(str(tmp_path), "rejects", [dict(row, message="corrupt")], "r1")
    assert time.monotonic() - started >= 0.5 and reader.wait(timeout=10) == 0
    assert sorted(r[0] for r in _count(tmp_path, "SELECT message FROM rejects")) == ["corrupt", "empty file"]
