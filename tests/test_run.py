"""`formdigits run` as a user types it: flags that fail fast, streaming, a Dataflow job translated offline."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from formdigits.cli import build_parser
from pipeline.defaults import DEFAULT_REVIEW_THRESHOLD
from pipeline.job.config import ReadingConfig
from support.beam import one_line, run


def test_the_command_lines_review_threshold_is_the_pipelines():
    # One source (pipeline.defaults): the CLI imports it without loading OpenCV.
    args = build_parser().parse_args(["run", "--input", "x", "--output", "y"])
    assert args.review_threshold == ReadingConfig.review_threshold == DEFAULT_REVIEW_THRESHOLD


@pytest.mark.slow
def test_streaming_picks_up_new_files(scans, models_dir, tmp_path):
    watched = tmp_path / "incoming"
    watched.mkdir()
    out = tmp_path / "out"
    log = open(tmp_path / "run.log", "w")  # a file, not a pipe nobody reads: a full pipe would block the job
    proc = subprocess.Popen(
        [sys.executable, "-m", "formdigits", "run", "--input", str(watched / "*"), "--output", str(out),
         "--templates", str(scans / "templates"), "--models-dir", str(models_dir), "--streaming",
         "--poll-seconds", "1", "--stop-after", "240"],
        stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        shutil.copy(scans / "scan_00001.png", watched / "first.png")
        seen = []
        while time.monotonic() < deadline and not seen:
            time.sleep(1)
            res = subprocess.run([sys.executable, "-m", "formdigits", "query", "--db", str(out), "--format", "csv",
                                  "SELECT DISTINCT source_uri FROM fields"], capture_output=True, text=True)
            seen = [l for l in res.stdout.splitlines()[1:] if "first.png" in l]
        assert seen, "a file added while the job runs reaches the table:\n" + (tmp_path / "run.log").read_text()[-3000:]
        shutil.copy(scans / "scan_00002.jpg", watched / "second.jpg")
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


@pytest.mark.slow
def test_dataflow_dry_run_translates_offline(scans, tmp_path):
    job = tmp_path / "job.json"
    run("--input", "gs://bucket/incoming/*.pdf", "--output", "bq:proj:formdigits", "--serving",
         "dns:///tfserving:8500", "--templates", str(scans / "templates"), "--dry-run", "--project", "proj",
         "--region", "europe-west1", "--temp-location", "gs://bucket/tmp", "--job-file", str(job))
    description = json.loads(job.read_text())
    text = json.dumps(description)
    assert "RunInference/BeamML_RunInference" in text
    assert "WriteToBigQuery_fields" in text and "WriteToBigQuery_rejects" in text
    assert "WriteToBigQuery_crops" in text and "StoreCrops" in text  # crop PNGs as objects, their URIs in BigQuery
    assert description["job"]["name"]


def test_missing_model_says_how_to_train(scans, tmp_path):
    rc, lines = one_line(["run", "--input", str(scans / "scan_00001.png"), "--output", str(tmp_path / "o"),
                           "--models-dir", str(tmp_path / "no-models")])
    assert rc == 2 and len(lines) == 1 and "formdigits train" in lines[0]


def test_wrong_flags_fail_fast(tmp_path):
    rc, lines = one_line(["run", "--input", str(tmp_path / "nothing*"), "--output", str(tmp_path)])
    assert rc == 2 and "matches no files" in lines[0]
    rc, lines = one_line(["run", "--input", "gs://b/x", "--output", "bq:only-project", "--dry-run"])
    assert rc == 2 and "bq:PROJECT:DATASET" in lines[0]
    rc, lines = one_line(["run", "--input", "gs://b/x", "--output", "bq:p:d", "--serving", "h:8500", "--dry-run",
                          "--project", "p", "--region", "r", "--temp-location", "gs://B/tmp"])
    assert rc == 2 and len(lines) == 1 and "'B' is not a Cloud Storage bucket name" in lines[0]
    rc, lines = one_line(["run", "--input", "gs://b/x", "--output", "bq:p:d", "--serving", "h:8500"])
    assert rc == 2 and "--crops-location gs://" in lines[0]


def test_the_progress_line_counts_files_to_their_total_and_says_the_time_left():
    from pipeline.job.progress import progress_line

    line = progress_line({"pages": 18, "files": 12}, 6.0, 40)
    assert line == "  12 of 40 files, 18 pages read, 3.0 pages/s, 6s, about 14s left"
    assert progress_line({"pages": 3, "files": 0}, 3.0, None) == "  3 pages read, 1.0 pages/s, 3s"



def test_streamings_progress_is_quiet_while_nothing_arrives_but_for_a_heartbeat(tmp_path, capsys):
    from pipeline.job.progress import ProgressPrinter, WorkerProgress

    printer = ProgressPrinter(str(tmp_path), interval=0.02, heartbeat=0.3)
    with printer:
        time.sleep(0.5)
        WorkerProgress(str(tmp_path)).add(2)  # something happens: a line at once
        time.sleep(0.1)
    printer.join(1)
    lines = capsys.readouterr().err.splitlines()
    assert 1 <= sum("nothing new" in line for line in lines) <= 2, lines
    assert sum("2 pages read" in line for line in lines) == 1, lines
