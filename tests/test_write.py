"""The write stage, worker side: staged batches for the local store, rows for BigQuery on Dataflow."""

import datetime
import json
import os

import pyarrow.parquet as pq
import pytest

from pipeline import schema
from pipeline.job.beam_pipeline import StoreCropObjects
from pipeline.output.write import STAGING, remove_partial_files, stage_rows, staged_batches, to_json_row
from pipeline.schema import bigquery_schema
from support.rows import crop_row, field_rows, reject_row


def test_a_batch_is_staged_whole_as_one_directory(tmp_path):
    field, digits = field_rows("40719")
    batch = stage_rows(str(tmp_path), {"fields": [field], "digits": digits, "rejects": []}, "r1")
    assert staged_batches(str(tmp_path)) == [batch]
    assert sorted(os.listdir(batch)) == ["digits.parquet", "fields.parquet"]
    assert pq.read_table(os.path.join(batch, "digits.parquet")).num_rows == 5
    assert pq.read_schema(os.path.join(batch, "fields.parquet")).names == schema.column_names("fields")
    assert stage_rows(str(tmp_path), {"fields": [], "rejects": []}, "r1") is None


def test_a_half_written_batch_is_never_seen_and_is_cleared(tmp_path):
    (tmp_path / STAGING / "r1-abc.part").mkdir(parents=True)
    (tmp_path / STAGING / "r1-abc.part" / "fields.parquet").write_bytes(b"PAR1")
    assert staged_batches(str(tmp_path)) == []
    remove_partial_files(str(tmp_path))
    assert os.listdir(tmp_path / STAGING) == []


def test_crops_go_to_objects_named_by_key_for_bigquery(tmp_path):
    """On Dataflow a crop's PNG is an object (here a local path: Beam's FileSystems), its URI in the row."""
    store = StoreCropObjects(str(tmp_path / "crops"))
    png = crop_row().image
    for _ in range(2):  # a re-run writes the same object again, not a second one
        (tables,) = list(store.process({"crops": [crop_row()]}))
    row = tables["crops"][0]
    assert row.image is None and row.image_uri.endswith("/p0001/amount.png")
    assert open(row.image_uri, "rb").read() == png and png.startswith(b"\x89PNG")
    assert sum(len(files) for _, _, files in os.walk(tmp_path / "crops")) == 1


@pytest.mark.parametrize("table", sorted(schema.TABLES))
def test_rows_for_bigquery_match_its_schema(table, tmp_path):
    field, digits = field_rows("40719")
    (crops,) = list(StoreCropObjects(str(tmp_path)).process({"crops": [crop_row()]}))
    row = to_json_row({"fields": field, "digits": digits[0], "rejects": reject_row("gs://b/x.png", None),
                       "crops": crops["crops"][0]}[table])
    json.dumps(row)  # what the BigQuery client sends: plain JSON, no numpy scalars or datetimes
    columns = bigquery_schema(table)["fields"]
    assert [c["name"] for c in columns] == list(row)
    kinds = {"STRING": str, "INT64": int, "FLOAT64": float, "BOOL": bool, "TIMESTAMP": str}
    for column in columns:
        value = row[column["name"]]
        if value is None:
            assert column["mode"] == "NULLABLE", column
        else:
            assert type(value) is kinds[column["type"]], (column, value)
            if column["type"] == "TIMESTAMP":
                datetime.datetime.fromisoformat(value)


def test_the_staging_writer_refuses_a_row_that_is_not_its_tables_row_type(tmp_path):
    from pipeline.output.write import RowShapeError, stage_rows
    from pipeline.rows import as_dict, reject

    good = reject("file:///a.png", None, "read", ValueError("not an image"))
    assert good.message == "not an image" and good.error_type == "ValueError"
    assert stage_rows(str(tmp_path), {"rejects": [good]}, "run1")
    typo = {**{k: v for k, v in as_dict(good).items() if k != "message"}, "mesage": "typo"}
    with pytest.raises(RowShapeError, match="rejects rows are RejectRows .* not dict"):
        stage_rows(str(tmp_path), {"rejects": [typo]}, "run1")
    with pytest.raises(TypeError):  # the row type itself has no such column
        type(good)(**typo)
    before = os.listdir(tmp_path / STAGING)
    with pytest.raises(RowShapeError):
        stage_rows(str(tmp_path), {"rejects": [good], "fields": [good]}, "run1")
    assert os.listdir(tmp_path / STAGING) == before  # refused before anything was written
