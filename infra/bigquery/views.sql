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

-- Review on BigQuery: people's answers (what `formdigits review` writes locally), and every field's final value.
-- Crops are objects under --crops-location; `crops.image_uri` names each.
CREATE TABLE IF NOT EXISTS `formdigits.corrections` (
  source_uri STRING NOT NULL, page INT64 NOT NULL, field STRING NOT NULL, value_read STRING,
  value_corrected STRING, action STRING NOT NULL, reviewer STRING NOT NULL, reviewed_at TIMESTAMP NOT NULL);

CREATE OR REPLACE VIEW `formdigits.fields_reviewed` AS
WITH latest AS (
  SELECT * FROM `formdigits.corrections`
  QUALIFY ROW_NUMBER() OVER (PARTITION BY source_uri, page, field ORDER BY reviewed_at DESC) = 1)
SELECT f.source_uri, f.page, f.template, f.field,
       IF(c.action IS NULL, f.value, c.value_corrected) AS value, f.value AS value_read, f.confidence,
       f.needs_review, f.review_reason,
       CASE WHEN c.action IS NOT NULL THEN c.action WHEN f.needs_review THEN 'pending' ELSE 'not flagged' END
         AS review_status,
       c.reviewer, c.reviewed_at, f.run_id, f.processed_at
FROM `formdigits.fields_latest` f LEFT JOIN latest c USING (source_uri, page, field);
