"""The Beam pipeline: scans -> pages -> digit crops -> TF Serving -> results tables.

    MatchFiles / MatchContinuously / Pub/Sub -> Read (pages: regular files only, sizes checked first)
      -> Segment (a PageCut: fields and normalised crops)
      -> RunInference(TFServingModelHandler over pages) -> Assemble (per page) -> Write

A page is one element from segmentation to the write: nothing is shuffled
after the files are spread over the workers, so the stages fuse and a
worker's memory does not grow with the corpus. Every stage sends what it
cannot handle to `rejects`, one row per element; every element after the read
is a `{table: rows}` dict, written in one transaction per batch of pages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import logging

import apache_beam as beam
import cv2
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import RunInference

from pipeline.assembly.assemble import assemble_page, settle_alternatives
from pipeline.assembly.crops import crop_rows, object_name
from pipeline.defaults import DEFAULT_KEEP_CROPS
from pipeline.inference.infer import DeadLetter, InferenceFailed, TFServingModelHandler
from pipeline.job.config import RunConfig
from pipeline.job.progress import WorkerProgress
from pipeline.output.write import stage_rows, to_json_row
from pipeline.reading.dropout import as_grey
from pipeline.reading.read import Page, open_scan, read_pages, shown_uri
from pipeline.registration.register import register_scan
from pipeline.rows import Row, reject, utc_now
from pipeline.schema import TABLES, bigquery_schema
from pipeline.segmentation.lines import find_lines
from pipeline.segmentation.segment import cut_fields
from pipeline.templates.model import load_templates
from pipeline.types import PageCut

__all__ = ["build_pipeline", "SUMMARY_COUNTERS", "one_thread_per_process"]

log = logging.getLogger("formdigits.run")
# Beam counters (namespace "formdigits") of what a run writes: its summary, locally and on Dataflow.
SUMMARY_COUNTERS = ("pages", "fields", "digits", "needs_review", "rejects")
# Rows per staged batch (a Parquet file per table); bounds a worker's memory.
WRITE_BATCH_ROWS = 5000


def one_thread_per_process() -> None:
    """Turns off OpenCV's own thread pool in this worker process.

    Workers are processes, one a core; OpenCV's threads on top of them fight. Two processes taking the
    100-page bench corpus from files to crops ran 13.8 pages/s with them, 14.9 without.
    """
    cv2.setNumThreads(1)


class ReadPages(beam.DoFn):
    """FileMetadata -> (key, page image); a file or page that cannot or may not be read -> rejects.

    Any failure stays with its file (or page): one rejects row, and the run goes on.
    """

    def __init__(self, progress_dir: str | None, root: str | None, max_page_pixels: int):
        self.progress_dir = progress_dir
        self.root = root
        self.max_page_pixels = max_page_pixels
        self.pages = Metrics.counter("formdigits", "pages_read")

    def setup(self):
        one_thread_per_process()
        self.progress = WorkerProgress(self.progress_dir)

    def process(self, metadata):
        uri = shown_uri(metadata.path)  # opened by its real name, shown and keyed by a printable one
        try:
            with open_scan(metadata.path, self.root) as fh:
                for item in read_pages(uri, fh, self.max_page_pixels):
                    if isinstance(item, Page):
                        self.pages.inc()
                        self.progress.add()
                        yield (uri, item.page), item.image
                    else:
                        exc, page = item
                        yield beam.pvalue.TaggedOutput("rejects", reject(uri, page, "read", exc))
        except Exception as exc:  # noqa: BLE001 - whatever a hostile file does, it is that file's reject
            yield beam.pvalue.TaggedOutput("rejects", reject(uri, None, "read", exc))
        finally:
            self.progress.add_file()

    def teardown(self):
        self.progress.flush()


# A page's buffers are megabytes; freed, glibc keeps them in its heap and a worker's memory creeps up
# through its first pages. Trimming the heap hands them back; every few pages costs next to nothing.
TRIM_EVERY_PAGES = 16


def _heap_trimmer():
    """glibc's malloc_trim, or a no-op elsewhere."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return lambda: None
    return lambda: trim(0)


class SegmentPage(beam.DoFn):
    """(key, page) -> PageCut; a page that cannot be registered or cut -> rejects."""

    def __init__(self, templates: list | None, review_pictures: bool = True):
        # Parsed in the driver and shipped with the DoFn: workers need no access to the templates' folder.
        self.templates = templates
        self.review_pictures = review_pictures

    def setup(self):
        one_thread_per_process()
        self.trim_heap = _heap_trimmer()
        self.pages = 0

    def process(self, element):
        self.pages += 1
        if self.pages % TRIM_EVERY_PAGES == 0:
            self.trim_heap()
        (uri, page), image = element
        try:
            if self.templates:
                upright, registration = register_scan(image, self.templates)
                cuts = cut_fields(upright, registration, review=self.review_pictures)
            else:
                cuts = find_lines(as_grey(image), review=self.review_pictures)
        except Exception as exc:  # noqa: BLE001 - a page that breaks segmentation is that page's reject
            yield beam.pvalue.TaggedOutput("rejects", {"rejects": [reject(uri, page, "segment", exc)]})
            return
        # A digit whose crop has no ink left after cleaning is not the page's fault: its field is read
        # without it and flagged ("1 digit(s) unreadable"), and the page's other fields stand.
        yield PageCut(uri, page, cuts)


class AssemblePage(beam.DoFn):
    """PredictionResult(PageCut, PageReads) -> {"fields", "digits", "crops": rows}; a refused page -> rejects."""

    def __init__(self, review_threshold: float, run_id: str, target: str, keep_crops: str = DEFAULT_KEEP_CROPS):
        self.review_threshold = review_threshold
        self.run_id = run_id
        self.target = target
        self.keep_crops = keep_crops

    def process(self, result):
        page, reads = result.example, result.inference
        if isinstance(reads, InferenceFailed):
            yield {"rejects": [reject(page.source_uri, page.page, "infer",
                                       f"TF Serving at {self.target}: {reads.message}", reads.error_type)]}
            return
        now = utc_now()
        page = settle_alternatives(page)
        rows = assemble_page(page, review_threshold=self.review_threshold, run_id=self.run_id,
                             processed_at=now)
        rows["crops"] = crop_rows(page, rows["fields"], self.keep_crops, self.run_id, now)
        yield rows


class StoreCropObjects(beam.DoFn):
    """Dataflow: each kept crop's PNG becomes an object under `location`, its URI in the row instead.

    The object is named by the field's key: a re-run overwrites it, never adds a second.
    """

    def __init__(self, location: str):
        self.location = location

    def process(self, tables: dict[str, list[Row]]):
        if not tables.get("crops"):
            yield tables
            return
        rows = []
        for row in tables["crops"]:  # new rows: an element's input is not ours to change
            uri = object_name(self.location, row.source_uri, row.page, row.field)
            with FileSystems.create(uri, mime_type="image/png") as fh:
                fh.write(row.image)
            rows.append(dataclasses.replace(row, image=None, image_uri=uri))
        yield {**tables, "crops": rows}


def _failed_batch_to_rejects(failed, target: str):
    """A batch of pages RunInference gave up on: one rejects row per page, or the job stopped.

    The handler answers every gRPC refusal with its pages' InferenceFailed, so a dead letter
    (`DeadLetter`) is a stop (a server unreachable past --serving-timeout, a model that does not
    answer digit probabilities: no page's fault) or a fault of the code, which rejects its pages.
    """
    batch, failure = failed
    letter = DeadLetter.from_beam(failure)
    if letter.stops_the_job:
        raise letter.error(letter.message)
    return {"rejects": [reject(page.source_uri, page.page, "infer", f"TF Serving at {target}: {letter.message}",
                               letter.error_type) for page in batch]}


class CountRows(beam.DoFn):
    """Counts what is about to be written (Beam counters, namespace formdigits): the run's summary."""

    def __init__(self):
        self.counters = {name: Metrics.counter("formdigits", name) for name in SUMMARY_COUNTERS}

    def process(self, tables: dict[str, list[Row]]):
        if "fields" in tables:  # one assembled page
            self.counters["pages"].inc()
        for table in ("fields", "digits", "rejects"):
            if tables.get(table):
                self.counters[table].inc(len(tables[table]))
        review = sum(1 for row in tables.get("fields", ()) if row.needs_review)
        if review:
            self.counters["needs_review"].inc(review)
        yield tables


class WriteLocalRows(beam.DoFn):
    """{table: rows} per page -> staged Parquet batches for the driver's committer (`pipeline.output.store`).

    Written where they are made, without a shuffle first: the DirectRunner holds
    every shuffled collection in memory, which made memory grow with the corpus.
    A batch is cut between elements, so a page's rows are staged, and merged, together.
    """

    def __init__(self, output_dir: str, run_id: str, batch_rows: int = WRITE_BATCH_ROWS):
        self.output_dir = output_dir
        self.run_id = run_id
        self.batch_rows = batch_rows

    def start_bundle(self):
        self.buffer = {table: [] for table in TABLES}
        self.count = 0

    def process(self, element):
        for table, rows in element.items():
            self.buffer[table].extend(rows)
            self.count += len(rows)
        if self.count >= self.batch_rows:
            self._flush()

    def finish_bundle(self):
        self._flush()

    def _flush(self):
        if self.count:
            stage_rows(self.output_dir, self.buffer, self.run_id)
            self.start_bundle()  # an empty buffer again


def _files(p: beam.Pipeline, cfg: RunConfig):
    """The input files' metadata: matched once, watched, or named by GCS notifications."""
    if cfg.input.subscription:
        # Dataflow streaming: GCS object notifications on Pub/Sub name the new files; an object is read
        # once its notification says it is finalised (completely written), never before.
        return (p
                | "ReadNotifications" >> beam.io.ReadFromPubSub(subscription=cfg.input.subscription,
                                                               with_attributes=True)
                | "Finalised" >> beam.Filter(lambda m: m.attributes.get("eventType") == "OBJECT_FINALIZE")
                | "NotificationToPath" >> beam.Map(
                    lambda m: f"gs://{m.attributes['bucketId']}/{m.attributes['objectId']}")
                | "MatchNew" >> fileio.MatchAll())
    if cfg.input.streaming:
        return p | "Watch" >> fileio.MatchContinuously(cfg.input.pattern, interval=cfg.input.poll_seconds,
                                                       has_deduplication=True,
                                                       start_timestamp=beam.utils.timestamp.Timestamp.now())
    if isinstance(cfg.input.pattern, (list, tuple)):  # a micro-batch of files found by the local watcher
        return p | "Files" >> beam.Create(list(cfg.input.pattern)) | "MatchNew" >> fileio.MatchAll()
    return p | "Match" >> fileio.MatchFiles(cfg.input.pattern)


def build_pipeline(p: beam.Pipeline, cfg: RunConfig) -> None:
    """Adds the whole flow to `p`: files in, rows written (locally, or to BigQuery)."""
    # Spread the matched files over the workers: without the shuffle, one bundle (one worker)
    # would read and segment every file that one glob matched.
    files = _files(p, cfg) | "SpreadFiles" >> beam.Reshuffle()
    if cfg.input.unbounded:
        files = files | "Window" >> beam.WindowInto(beam.window.FixedWindows(cfg.input.window_seconds))
    read = ReadPages(cfg.progress_dir, cfg.input.root, cfg.input.max_page_pixels)
    pages = files | "Read" >> beam.ParDo(read).with_outputs("rejects", main="pages")
    templates = list(load_templates(cfg.reading.templates_dir).values()) if cfg.reading.templates_dir else None
    segment = SegmentPage(templates, review_pictures=cfg.output.keep_crops != "none")
    cut = pages.pages | "Segment" >> beam.ParDo(segment).with_outputs("rejects", main="pages")
    serving = cfg.serving
    handler = TFServingModelHandler(serving.target, serving.model, version=serving.model_version,
                                    version_label=serving.model_label, max_batch_size=serving.max_batch_size,
                                    serving_timeout_s=serving.timeout_s, progress_dir=cfg.progress_dir,
                                    ca_file=serving.ca_file)
    inferred, failed = cut.pages | "RunInference" >> RunInference(handler).with_exception_handling()
    assembled = inferred | "Assemble" >> beam.ParDo(AssemblePage(cfg.reading.review_threshold, cfg.run_id,
                                                                  serving.target, cfg.output.keep_crops))
    infer_failed = failed.failed_inferences | "FailedBatches" >> beam.Map(_failed_batch_to_rejects, serving.target)
    read_rejects = pages.rejects | "ReadRejects" >> beam.Map(lambda row: {"rejects": [row]})
    branches = {"Pages": assembled, "ReadRejects": read_rejects, "SegmentRejects": cut.rejects,
                "InferRejects": infer_failed}
    if cfg.output.bigquery:
        if cfg.output.keep_crops != "none":
            branches["Pages"] = assembled | "StoreCrops" >> beam.ParDo(StoreCropObjects(cfg.output.crops_location))
        rows = tuple(branches.values()) | "AllRows" >> beam.Flatten() | "Count" >> beam.ParDo(CountRows())
        _write_bigquery(rows, cfg)
        return
    # Locally each branch gets its own writer: the DirectRunner materialises a Flatten's inputs in the
    # driver and writes them in a stage of their own, so every row of the run would wait there.
    for name, branch in branches.items():
        (branch
         | f"Count{name}" >> beam.ParDo(CountRows())
         | f"Write{name}" >> beam.ParDo(WriteLocalRows(cfg.output.location, cfg.run_id)))


def _write_bigquery(rows, cfg: RunConfig) -> None:
    project, dataset = cfg.output.bigquery
    method = (beam.io.WriteToBigQuery.Method.STORAGE_WRITE_API if cfg.input.unbounded
              else beam.io.WriteToBigQuery.Method.FILE_LOADS)
    for table in TABLES:
        (rows
         | f"ToJson_{table}" >> beam.FlatMap(lambda tables, t=table: [to_json_row(r) for r in tables.get(t, [])])
         | f"WriteToBigQuery_{table}" >> beam.io.WriteToBigQuery(
             table=f"{project}:{dataset}.{table}", schema=bigquery_schema(table),
             create_disposition=beam.io.BigQueryDisposition.CREATE_IF_NEEDED,
             write_disposition=beam.io.BigQueryDisposition.WRITE_APPEND, method=method))
