-- formdigits writes append-only tables on BigQuery (WriteToBigQuery, WRITE_APPEND); a re-run of the same
-- scans appends newer rows. These views keep one row per key, the newest, like the local DuckDB tables.
-- bq query --use_legacy_sql=false --project_id=$PROJECT < infra/bigquery/views.sql   (replace `formdigits`)
CREATE OR REPLACE VIEW `formdigits.fields_latest` AS
SELECT * FROM `formdigits.fields`
QUALIFY ROW_NUMBER() OVER (PARTITION BY source_uri, page, field ORDER BY processed_at DESC) = 1;

CREATE OR REPLACE VIEW `formdigits.digits_latest` AS
SELECT d.* FROM `formdigits.digits` d
JOIN `formdigits.fields_latest` f USING (source_uri, page, field)
WHERE d.position < f.digit_count
QUALIFY ROW_NUMBER() OVER (PARTITION BY d.source_uri, d.page, d.field, d.position ORDER BY f.processed_at DESC) = 1;

CREATE OR REPLACE VIEW `formdigits.review_queue` AS
SELECT source_uri, page, template, field, value, confidence, review_reason, processed_at
FROM `formdigits.fields_latest` WHERE needs_review ORDER BY confidence;
