"""Review: the queue, corrections beside a running job, the app's guards, the report and the export.

All over the results of a real run (`batch_output`, copied), through the real app (Flask's test client for
the HTTP rules; the browser test drives it over a socket).
"""

import csv
import json
import re
import shutil
import threading

import duckdb
import pyarrow.parquet as pq
import pytest

from formdigits.cli import main
from pipeline.output.store import Committer, commit_staged
from pipeline.output.write import stage_rows
from pipeline.review import queue
from pipeline.review.app import create_app
from pipeline.review.report import write_report
from support.beam import count, one_line
from support.rows import field_rows


@pytest.fixture
def review_db(batch_output, tmp_path):
    db = tmp_path / "results"
    db.mkdir()
    shutil.copy(batch_output / "results.duckdb", db / "results.duckdb")
    return str(db)


def test_queue_is_flagged_fields_least_confident_first_narrowed_by_filters(review_db):
    flagged = count(review_db, "SELECT coalesce(confidence, 2.0), source_uri, page, field FROM fields "
                               "WHERE needs_review ORDER BY ALL")
    walked, after = [], None
    while (item := queue.next_item(review_db, after=after)) is not None:
        walked.append(tuple(item["cursor"]))
        after = item["cursor"]
    assert walked == [tuple(r) for r in flagged]  # skipping walks the whole queue, in order, once
    assert queue.remaining(review_db) == len(flagged)
    census = queue.Filters(template="census_sheet", reason="low confidence")
    (expected,), = count(review_db, "SELECT count(*) FROM fields WHERE needs_review AND template = 'census_sheet' "
                                    "AND review_reason ILIKE '%low confidence%'")
    assert queue.remaining(review_db, census) == expected > 0
    assert queue.next_item(review_db, census)["template"] == "census_sheet"
    with pytest.raises(queue.ReviewError, match="unknown reason"):
        queue.remaining(review_db, queue.Filters(reason="bad"))


def test_an_item_carries_picture_digits_and_rule(review_db):
    item = queue.next_item(review_db)
    assert item["crop"]["src"].startswith("data:image/png;base64,")
    assert len(item["crop"]["boxes"]) == len(item["digits"]) == item["digit_count"]
    assert {"digit", "confidence", "second_digit", "second_confidence"} <= set(item["digits"][0])
    assert item["rule"]["min_length"] <= item["rule"]["max_length"] and "digit" in item["rule_text"]


def test_actions_become_corrections_and_the_final_value(review_db):
    a = queue.next_item(review_db)
    queue.record(review_db, a["key"], "accept", None, "ann")
    b = queue.next_item(review_db)
    queue.record(review_db, b["key"], "unreadable", None, "bob")
    c = queue.next_item(review_db)
    rule = c["rule"]
    too_long = "1" * (rule["max_length"] + 1)  # more digits than the field holds: refused, even confirmed
    with pytest.raises(queue.ReviewError, match=f"holds at most {rule['max_length']}"):
        queue.record(review_db, c["key"], "correct", too_long, "cy", confirmed=True)
    queue.record(review_db, c["key"], "correct", "1", "cy", confirmed=True)  # saved whatever the rule says
    queue.record(review_db, c["key"], "correct", "12", "cy", confirmed=True)  # a second look: the latest counts
    with pytest.raises(queue.ReviewError, match="0-9"):
        queue.record(review_db, c["key"], "correct", "12a", "cy")
    with pytest.raises(queue.ReviewError, match="no field"):
        queue.record(review_db, ["nope", 1, "x"], "accept", None, "cy")
    final = {tuple(r[:3]): r[3:] for r in count(review_db, """SELECT source_uri, page, field, value, review_status,
        reviewer FROM fields_reviewed WHERE review_status NOT IN ('pending', 'not flagged')""")}
    assert final == {tuple(a["key"]): (a["value"], "accept", "ann"), tuple(b["key"]): (None, "unreadable", "bob"),
                     tuple(c["key"]): ("12", "correct", "cy")}
    (n,), = count(review_db, "SELECT count(*) FROM corrections")
    assert n == 4  # every action kept
    assert queue.get_item(review_db, c["key"])["review"]["value"] == "12"


def test_corrections_while_a_run_commits(review_db):
    """A reviewer and the job's committer take turns on the database; neither loses a row."""
    for i in range(20):  # enough flagged fields to review whatever the model flagged in the run
        field, digits = field_rows("40719", source=f"file:///old{i}.png", sure=False)
        stage_rows(review_db, {"fields": [field], "digits": digits}, "r1")
    commit_staged(review_db)
    before = queue.remaining(review_db)
    committer = Committer(review_db, interval=0.05).__enter__()
    try:
        for i in range(20):
            field, digits = field_rows("40719", source=f"file:///new{i}.png")
            stage_rows(review_db, {"fields": [field], "digits": digits}, "r2")
            item = queue.next_item(review_db)
            queue.record(review_db, item["key"], "accept", None, "ann")
    finally:
        committer.close(export=False)
    commit_staged(review_db)
    (new,), = count(review_db, "SELECT count(*) FROM fields WHERE source_uri LIKE 'file:///new%'")
    (done,), = count(review_db, "SELECT count(*) FROM corrections")
    assert new == 20 and done == 20 and queue.remaining(review_db) == before - 20


def test_the_app_guards_its_door(review_db):
    client = create_app(review_db).test_client()
    assert client.get("/api/next").status_code == 200
    assert client.get("/api/next", headers={"Host": "evil.example:8080"}).status_code == 403
    item = client.get("/api/next").get_json()["item"]
    while item["rule"]["min_length"] < 2:  # a field a one-digit answer is too short for
        item = queue.next_item(review_db, after=item["cursor"])
    form = client.post("/api/review", data={"key": "x"})  # what a page elsewhere can send without asking
    assert form.status_code == 415
    body = {"key": item["key"], "action": "correct", "value": "1", "after": item["cursor"]}
    refused = client.post("/api/review", json=body)
    assert refused.status_code == 409 and refused.get_json()["needs_confirmation"]
    too_long = "1" * (item["rule"]["max_length"] + 1)  # longer than the field allows: not even confirmed
    refused = client.post("/api/review", json={**body, "value": too_long, "confirm": True})
    assert refused.status_code == 400 and "holds at most" in refused.get_json()["error"]
    huge = client.post("/api/review", json={**body, "value": "1" * 52_000_000})
    assert huge.status_code == 413 and "over 8192 bytes" in huge.get_json()["error"]
    saved = client.post("/api/review", json={**body, "confirm": True}).get_json()
    assert saved["saved"]["value_corrected"] == "1" and saved["item"]["key"] != item["key"]
    page = client.get("/")
    assert page.status_code == 200 and b"<script>" in page.data and "Content-Security-Policy" in page.headers

    guarded = create_app(review_db, token="s3cret").test_client()
    assert guarded.get("/api/next", headers={"Host": "10.0.0.5:8080"}).status_code == 401
    ok = guarded.get("/api/next", headers={"Host": "10.0.0.5:8080", "X-Formdigits-Token": "s3cret"})
    assert ok.status_code == 200
    assert guarded.get("/?token=s3cret", headers={"Host": "10.0.0.5:8080"}).status_code == 200
    assert guarded.get("/?token=wrong").status_code == 401


def test_review_flags_fail_fast(tmp_path):
    rc, lines = one_line(["review", "--db", str(tmp_path), "--host", "0.0.0.0"])
    assert rc == 2 and "--token" in lines[0]
    rc, lines = one_line(["review", "--db", str(tmp_path)])
    assert rc == 2 and "no results database" in lines[0]
    rc, lines = one_line(["export", "--db", str(tmp_path), "--out", "x.json"])
    assert rc == 2 and "FILE.csv or FILE.parquet" in lines[0]


def test_report_is_one_offline_file(review_db, tmp_path):
    out = tmp_path / "report.html"
    summary = write_report(review_db, str(out), max_crops=5)
    text = out.read_text()
    (pages, flagged), = count(review_db, "SELECT count(DISTINCT (source_uri, page)), count(*) FILTER "
                                         "(WHERE needs_review) FROM fields")
    assert summary["pages"] == pages and summary["flagged"] == flagged and summary["crops_shown"] == 5
    assert text.count("data:image/png;base64,") == 5
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # nothing fetched from elsewhere
    assert "<svg" in text and "Rejects by stage and reason" in text and "census_sheet" in text
    (low,), = count(review_db, "SELECT count(*) FILTER (WHERE confidence < 0.95) FROM fields")
    assert "below 0.95, the\ndefault review threshold" in text and f"{low} fields are below it" in text  # the run's


def test_export_writes_final_values(review_db, tmp_path, capsys):
    item = queue.next_item(review_db)
    queue.record(review_db, item["key"], "correct", "55", "ann", confirmed=True)
    assert main(["export", "--db", review_db, "--out", str(tmp_path / "final.csv")]) == 0
    assert main(["export", "--db", review_db, "--out", str(tmp_path / "final.parquet")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "final.csv")))
    (fields,), = count(review_db, "SELECT count(*) FROM fields")
    assert len(rows) == fields == pq.read_table(tmp_path / "final.parquet").num_rows
    mine = [r for r in rows if [r["source_uri"], int(r["page"]), r["field"]] == item["key"]]
    assert mine[0]["value"] == "55" and mine[0]["review_status"] == "correct"


def test_query_sees_corrections_and_the_view(review_db, capsys):
    item = queue.next_item(review_db)
    queue.record(review_db, item["key"], "accept", None, "ann")
    assert main(["query", "--db", review_db, "SELECT action, reviewer FROM corrections"]) == 0
    assert "accept" in capsys.readouterr().out
    assert main(["query", "--db", review_db, "SELECT count(*) AS n FROM fields_reviewed"]) == 0
    with duckdb.connect(f"{review_db}/results.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM fields_reviewed").fetchone()[0] > 0


@pytest.mark.slow
def test_train_learns_from_reviewed_digits_and_counts_them(review_db, tmp_path):
    """Corrected and accepted fields whose crop has one box per digit join the training set; the card says so."""
    from model_export.corrections import REPEATS, reviewed_digits

    used, walked, after = [], 0, None
    while len(used) < 3 and (item := queue.next_item(review_db, after=after)) is not None:
        after, walked = item["cursor"], walked + 1
        if item["digit_count"] and item["crop"] and len(item["crop"]["boxes"]) == item["digit_count"]:
            queue.record(review_db, item["key"], "correct", "9" * item["digit_count"], "ann", confirmed=True)
            used.append(item)
    short = queue.next_item(review_db, after=after)
    queue.record(review_db, short["key"], "correct", "1" * (short["digit_count"] + 1), "ann", confirmed=True)
    found = reviewed_digits(review_db)
    digits = sum(i["digit_count"] for i in used)
    assert found.x.shape == (digits, 28, 28) and set(found.y.tolist()) == {9}
    assert found.stats["corrected_fields"] == len(used) and found.stats["left_out"]["digit count differs"] == 1
    assert found.x.reshape(digits, -1).max(axis=1).min() > 100  # every cut holds ink

    models = tmp_path / "models"
    assert main(["train", "--data", "synthetic", "--samples", "600", "--form-crops", "0", "--heldout-samples", "200",
                 "--epochs", "1", "--export-dir", str(models), "--corrections", review_db]) == 0
    card = json.loads((models / "lenet5" / "1" / "assets.extra" / "model_card.json").read_text())
    assert card["corrections"]["digits"] == digits and card["corrections"]["corrected_fields"] == len(used)
    assert {"name": "reviewed_corrections", "samples": digits * REPEATS}.items() <= \
        [s for s in card["sources"] if s["name"] == "reviewed_corrections"][0].items()


def test_the_review_command_serves_until_stopped(review_db, tmp_path):
    """`formdigits review` as a user starts it: it prints its address, answers there, and stops on SIGTERM."""
    import signal
    import time
    import urllib.request

    from support.beam import start

    log = tmp_path / "review.log"
    proc = start(["review", "--db", review_db, "--port", "0"], log)
    try:
        deadline = time.monotonic() + 60
        while "http://" not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        address = re.search(r"http://127\.0\.0\.1:\d+/", log.read_text()).group(0)
        answer = json.loads(urllib.request.urlopen(address + "api/next", timeout=10).read())
        assert answer["item"]["needs_review"] and answer["remaining"] > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    assert "stopped" in log.read_text()


def test_export_wide_is_a_row_a_page_and_says_what_is_pending(review_db, tmp_path, capsys):
    item = queue.next_item(review_db)
    queue.record(review_db, item["key"], "correct", "55", "ann", confirmed=True)
    (pages,), = count(review_db, "SELECT count(DISTINCT (source_uri, page)) FROM fields")
    (pending,), = count(review_db, "SELECT count(*) FROM fields_reviewed WHERE review_status = 'pending'")
    assert main(["export", "--db", review_db, "--out", str(tmp_path / "wide.csv"), "--wide"]) == 0
    said = capsys.readouterr().out
    assert f"{pages} pages" in said and f"{pending} still pending review" in said
    rows = list(csv.DictReader(open(tmp_path / "wide.csv")))
    assert len(rows) == pages and "fields_pending_review" in rows[0]
    source, page, field = item["key"]
    mine = [r for r in rows if (r["source_uri"], int(r["page"])) == (source, page)]
    assert mine[0][field] == "55"
    assert sum(int(r["fields_pending_review"]) for r in rows) == pending
    assert main(["export", "--db", review_db, "--out", str(tmp_path / "final.csv"), "--require-reviewed"]) == 2
    assert f"{pending} of" in capsys.readouterr().err and not (tmp_path / "final.csv").exists()


def test_reviewed_fields_can_be_found_by_file_and_reopened(review_db):
    item = queue.next_item(review_db)
    queue.record(review_db, item["key"], "correct", "55", "ann", confirmed=True)
    source = item["key"][0].rsplit("/", 1)[-1]
    reviewed = queue.Filters.from_mapping({"status": "reviewed", "source": source})
    assert queue.next_item(review_db, reviewed)["key"] == item["key"]
    assert queue.remaining(review_db, reviewed) == 1
    assert queue.next_item(review_db, queue.Filters(status="reviewed", source="no-such-file")) is None
    pending = queue.next_item(review_db, queue.Filters(source=source))
    assert pending is None or pending["key"] != item["key"]  # no longer in the queue to review
    with pytest.raises(queue.ReviewError, match="unknown status"):
        queue.next_item(review_db, queue.Filters(status="done"))
