"""The Beam pipeline: scans -> pages -> digit crops -> TF Serving -> results tables.

    MatchFiles / MatchContinuously / Pub/Sub -> ReadMatches
      -> Read (pages)  -> Segment (fields, digit cuts) -> Normalise (28x28)
      -> RunInference(TFServingModelHandler) -> Assemble (per field) -> Write
    Every stage sends what it cannot handle to `rejects`, one row per element.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import time

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import RunInference

__all__ = ["RunConfig", "build_pipeline"]

log = logging.getLogger("formdigits.run")
# Rows per local write (Parquet shard + DuckDB transaction); bounds a worker's memory.
WRITE_BATCH_ROWS = 20000


@dataclasses.dataclass
class RunConfig:
    input: str | list                    # a glob, or (local streaming micro-batches) a list of files
    output: str                          # a directory, or bq:PROJECT:DATASET
    serving: str                         # host:port of TF Serving / formdigits serve
    run_id: str
    model: str = "lenet5"
    model_version: int | None = None
    model_label: str | None = None
    templates_dir: str | None = None
    review_threshold: float = 0.9
    min_batch_size: int = 16
    max_batch_size: int = 256
    streaming: bool = False
    poll_seconds: float = 2.0
    stop_after: float | None = None     # local streaming: stop after this many seconds
    window_seconds: float = 5.0
    input_subscription: str | None = None
    progress_dir: str | None = None

    @property
    def bigquery(self) -> tuple[str, str] | None:
        if self.output.startswith("bq:"):
            project, _, dataset = self.output[3:].partition(":")
            return project, dataset
        return None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _reject(source_uri: str, page, stage: str, exc: BaseException | str, error_type: str | None = None) -> dict:
    return {"source_uri": source_uri, "page": page, "stage": stage,
            "error_type": error_type or type(exc).__name__, "message": str(exc)[:2000], "processed_at": _now()}


class _Progress:
    """Counts pages in this worker process and leaves a small file the driver sums up."""

    def __init__(self, directory: str | None):
        self.directory = directory
        self.pages = 0
        self.last = 0.0

    def add(self, n: int = 1) -> None:
        self.pages += n
        now = time.monotonic()
        if self.directory and now - self.last > 1.0:
            self.last = now
            self.flush()

    def flush(self) -> None:
        if not self.directory:
            return
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, f"{os.getpid()}-{id(self):x}.json")
        with open(path + ".part", "w") as fh:
            json.dump({"pages": self.pages}, fh)
        os.replace(path + ".part", path)


class ReadPages(beam.DoFn):
    """ReadableFile -> (key, page image); unreadable files and pages -> rejects."""

    def __init__(self, progress_dir: str | None):
        self.progress_dir = progress_dir
        self.pages = Metrics.counter("formdigits", "pages")
        self.rejected = Metrics.counter("formdigits", "rejects")

    def setup(self):
        self.progress = _Progress(self.progress_dir)

    def process(self, readable):
        from pipeline.read import Page, ReadError, read_pages

        uri = readable.metadata.path
        try:
            data = readable.read()
            for item in read_pages(uri, data):
                if isinstance(item, Page):
                    self.pages.inc()
                    self.progress.add()
                    yield (uri, item.page), item.image
                else:
                    exc, page = item
                    self.rejected.inc()
                    yield beam.pvalue.TaggedOutput("rejects", _reject(uri, page, "read", exc))
        except (ReadError, OSError, ValueError, MemoryError) as exc:
            self.rejected.inc()
            yield beam.pvalue.TaggedOutput("rejects", _reject(uri, None, "read", exc))

    def teardown(self):
        self.progress.flush()


def _malloc_trim():
    """glibc's malloc_trim, or a no-op elsewhere."""
    import ctypes
    import ctypes.util

    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0)


class SegmentPage(beam.DoFn):
    """(key, page) -> FieldInfo (tag "fields") and (field key, DigitCut); failures -> rejects."""

    def __init__(self, templates: list | None):
        # Parsed in the driver and shipped with the DoFn: workers need no access to the templates' folder.
        self.templates = templates
        self.fields = Metrics.counter("formdigits", "fields")
        self.rejected = Metrics.counter("formdigits", "rejects")

    def setup(self):
        self.release_free_memory = _malloc_trim()

    def process(self, element):
        try:
            yield from self._segment(element)
        finally:
            # A page's buffers are megabytes; freed, glibc keeps them resident in its
            # heap, and a worker's memory grew with the pages it had read. Hand them back.
            self.release_free_memory()

    def _segment(self, element):
        import cv2

        from pipeline.assemble import FieldInfo
        from pipeline.lines import find_lines
        from pipeline.register import register_page
        from pipeline.segment import cut_fields
        from pipeline.types import SegmentError

        (uri, page), image = element
        try:
            if self.templates:
                upright, registration = register_page(image, self.templates)
                cuts = cut_fields(upright, registration)
            else:
                cuts = find_lines(image)
        except (SegmentError, ValueError, cv2.error) as exc:
            self.rejected.inc()
            yield beam.pvalue.TaggedOutput("rejects", _reject(uri, page, "segment", exc))
            return
        for cut in cuts:
            key = (uri, page, cut.field)
            self.fields.inc()
            yield beam.pvalue.TaggedOutput("fields", (key, FieldInfo(key, cut.template, cut.spec, cut.bbox,
                                                                     len(cut.digits), cut.struck)))
            for digit in cut.digits:
                yield key, digit


class NormaliseDigit(beam.DoFn):
    """(field key, DigitCut) -> DigitExample (28x28, the training normalisation); blank cuts -> rejects."""

    def process(self, element):
        from pipeline.infer import DigitExample

        key, digit = element
        if digit.crop is not None:
            yield DigitExample(key, digit.position, digit.crop, digit.bbox)
        else:
            uri, page, field = key
            yield beam.pvalue.TaggedOutput(
                "rejects", _reject(uri, page, "normalise", f"{field} position {digit.position}: crop has no ink"))


def _prediction_to_read(result):
    """PredictionResult -> (field key, ReadDigit) or a reject for a crop the model refused."""
    from pipeline.assemble import ReadDigit
    from pipeline.infer import InferenceFailed

    example, inference = result.example, result.inference
    if isinstance(inference, InferenceFailed):
        uri, page, field = example.key
        return beam.pvalue.TaggedOutput("rejects", _reject(
            uri, page, "infer", f"{field} position {example.position}: {inference.message}", inference.error_type))
    return example.key, ReadDigit(example.position, example.bbox, inference.probabilities, inference.model_name,
                                  inference.model_version)


def _failed_batch_to_rejects(failed):
    batch, exc = failed
    for example in batch:
        uri, page, field = example.key
        yield _reject(uri, page, "infer", f"{field} position {example.position}: {exc}")


class AssembleField(beam.DoFn):
    """(field key, {info, digits}) -> ("fields", row) and ("digits", row)."""

    def __init__(self, review_threshold: float, run_id: str):
        self.review_threshold = review_threshold
        self.run_id = run_id
        self.digits_counter = Metrics.counter("formdigits", "digits")
        self.review_counter = Metrics.counter("formdigits", "needs_review")

    def process(self, element):
        from pipeline.assemble import assemble_field

        key, grouped = element
        infos, digits = list(grouped["info"]), list(grouped["digits"])
        if not infos:  # digits whose field record was lost cannot be placed
            uri, page, field = key
            yield beam.pvalue.TaggedOutput("rejects", _reject(uri, page, "assemble", f"{field}: no field record",
                                                              "MissingField"))
            return
        field_row, digit_rows = assemble_field(infos[0], digits, review_threshold=self.review_threshold,
                                               run_id=self.run_id, processed_at=_now())
        self.digits_counter.inc(len(digit_rows))
        if field_row["needs_review"]:
            self.review_counter.inc()
        yield "fields", field_row
        for row in digit_rows:
            yield "digits", row


class WriteLocalRows(beam.DoFn):
    """("fields" | "digits" | "rejects", row) -> Parquet shards + DuckDB upserts, in batches of rows.

    Written where they are made, without a shuffle first: the DirectRunner holds
    every shuffled collection in memory, which made memory grow with the corpus.
    A field's row and its digits arrive together (AssembleField emits them in a
    run) and a batch is only cut before a field row, so they land in one transaction.
    """

    def __init__(self, output_dir: str, run_id: str, batch_rows: int = WRITE_BATCH_ROWS):
        self.output_dir = output_dir
        self.run_id = run_id
        self.batch_rows = batch_rows

    def start_bundle(self):
        self.buffer = {"fields": [], "digits": [], "rejects": []}
        self.count = 0

    def process(self, element):
        table, row = element
        if table != "digits" and self.count >= self.batch_rows:
            self._flush()
        self.buffer[table].append(row)
        self.count += 1

    def finish_bundle(self):
        self._flush()

    def _flush(self):
        from pipeline.write import write_local_tables

        if self.count:
            write_local_tables(self.output_dir, self.buffer, self.run_id)
            self.start_bundle()  # an empty buffer again


def build_pipeline(p: beam.Pipeline, cfg: RunConfig) -> dict:
    """Adds the whole flow to `p`; returns the main PCollections (for tests and metrics)."""
    from pipeline.infer import TFServingModelHandler

    if cfg.input_subscription:
        # Dataflow streaming: GCS object notifications on Pub/Sub name the new files.
        files = (p
                 | "ReadNotifications" >> beam.io.ReadFromPubSub(subscription=cfg.input_subscription,
                                                                with_attributes=True)
                 | "NotificationToPath" >> beam.Map(
                     lambda m: f"gs://{m.attributes['bucketId']}/{m.attributes['objectId']}")
                 | "MatchNew" >> fileio.MatchAll())
    elif cfg.streaming:
        files = p | "Watch" >> fileio.MatchContinuously(cfg.input, interval=cfg.poll_seconds,
                                                        has_deduplication=True,
                                                        start_timestamp=beam.utils.timestamp.Timestamp.now())
    elif isinstance(cfg.input, (list, tuple)):  # a micro-batch of files found by the local watcher
        files = p | "Files" >> beam.Create(list(cfg.input)) | "MatchNew" >> fileio.MatchAll()
    else:
        files = p | "Match" >> fileio.MatchFiles(cfg.input)
    # Spread the matched files over the workers: without the shuffle, one bundle (one worker)
    # would read and segment every file that one glob matched.
    files = files | "SpreadFiles" >> beam.Reshuffle() | "ReadMatches" >> fileio.ReadMatches()
    if cfg.streaming or cfg.input_subscription:
        files = files | "Window" >> beam.WindowInto(beam.window.FixedWindows(cfg.window_seconds))

    pages = files | "Read" >> beam.ParDo(ReadPages(cfg.progress_dir)).with_outputs("rejects", main="pages")
    from pipeline.templates import load_templates

    templates = list(load_templates(cfg.templates_dir).values()) if cfg.templates_dir else None
    segmented = (pages.pages
                 | "Segment" >> beam.ParDo(SegmentPage(templates)).with_outputs("fields", "rejects",
                                                                                        main="digits"))
    normalised = (segmented.digits
                  | "Normalise" >> beam.ParDo(NormaliseDigit()).with_outputs("rejects", main="examples"))
    handler = TFServingModelHandler(cfg.serving, cfg.model, version=cfg.model_version,
                                    version_label=cfg.model_label, min_batch_size=cfg.min_batch_size,
                                    max_batch_size=cfg.max_batch_size)
    inferred, failed = normalised.examples | "RunInference" >> RunInference(handler).with_exception_handling()
    reads = inferred | "ToDigits" >> beam.Map(_prediction_to_read).with_outputs("rejects", main="digits")
    assembled = ({"info": segmented.fields, "digits": reads.digits}
                 | "JoinFields" >> beam.CoGroupByKey()
                 | "Assemble" >> beam.ParDo(AssembleField(cfg.review_threshold, cfg.run_id))
                 .with_outputs("rejects", main="rows"))
    infer_failed = failed.failed_inferences | "FailedBatches" >> beam.FlatMap(_failed_batch_to_rejects)
    rejects = ((pages.rejects, segmented.rejects, normalised.rejects, reads.rejects, infer_failed, assembled.rejects)
               | "AllRejects" >> beam.Flatten())
    rows = ((assembled.rows, rejects | "TagRejects" >> beam.Map(lambda r: ("rejects", r)))
            | "AllRows" >> beam.Flatten())
    if cfg.bigquery:
        _write_bigquery(rows, cfg)
    else:
        rows | "WriteLocal" >> beam.ParDo(WriteLocalRows(cfg.output, cfg.run_id))
    return {"rows": rows, "rejects": rejects}


def _write_bigquery(rows, cfg: RunConfig) -> None:
    from pipeline.schema import bigquery_schema
    from pipeline.write import to_json_row

    project, dataset = cfg.bigquery
    method = (beam.io.WriteToBigQuery.Method.STORAGE_WRITE_API if cfg.streaming or cfg.input_subscription
              else beam.io.WriteToBigQuery.Method.FILE_LOADS)
    for table in ("fields", "digits", "rejects"):
        (rows
         | f"Select_{table}" >> beam.Filter(lambda tr, t=table: tr[0] == t)
         | f"ToJson_{table}" >> beam.Map(lambda tr: to_json_row(tr[1]))
         | f"WriteToBigQuery_{table}" >> beam.io.WriteToBigQuery(
             table=f"{project}:{dataset}.{table}", schema=bigquery_schema(table),
             create_disposition=beam.io.BigQueryDisposition.CREATE_IF_NEEDED,
             write_disposition=beam.io.BigQueryDisposition.WRITE_APPEND, method=method))
