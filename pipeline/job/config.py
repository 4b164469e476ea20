"""A run's settings, one frozen part a concern: what it reads, what it reads it with, who serves the model,
where the rows go. Built once from the flags (`formdigits run`); a step that needs another value (the
embedded server's address, a streaming micro-batch's files) makes a new config with `dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
import os

from pipeline.defaults import (DEFAULT_KEEP_CROPS, DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_PAGE_PIXELS,
                               DEFAULT_REVIEW_THRESHOLD, DEFAULT_SERVING_TIMEOUT_S)

__all__ = ["InputConfig", "ReadingConfig", "ServingConfig", "OutputConfig", "RunConfig"]


@dataclasses.dataclass(frozen=True)
class InputConfig:
    """The scans: a glob (or, for a local streaming micro-batch, the files), and how new ones arrive."""

    pattern: str | tuple[str, ...]
    root: str | None = None              # the folder the glob reads from: links out of it are not followed
    max_page_pixels: int = DEFAULT_MAX_PAGE_PIXELS
    streaming: bool = False
    subscription: str | None = None      # Dataflow streaming: GCS notifications on Pub/Sub
    poll_seconds: float = 2.0
    settle_seconds: float = 2.0          # local streaming: a file is read once it has stood still this long
    stop_after: float | None = None      # local streaming: stop after this many seconds
    window_seconds: float = 5.0

    @property
    def unbounded(self) -> bool:
        """Says whether new files keep coming: watched locally or named by notifications."""
        return self.streaming or bool(self.subscription)


@dataclasses.dataclass(frozen=True)
class ReadingConfig:
    """What a page is read with: its forms' templates, and when a field goes to a person."""

    templates_dir: str | None = None
    review_threshold: float = DEFAULT_REVIEW_THRESHOLD


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """Who reads the crops: TF Serving at `target` (empty until a local run starts its embedded server)."""

    target: str = ""
    model: str = "lenet5"
    model_version: int | None = None
    model_label: str | None = None
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE  # crops per Predict request: the server's max_batch_size
    timeout_s: float = DEFAULT_SERVING_TIMEOUT_S   # seconds without a server before the job stops
    ca_file: str | None = None           # PEM CA bundle when TF Serving serves TLS


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """Where the rows go: a directory (DuckDB + Parquet) or bq:PROJECT:DATASET, and which field pictures."""

    location: str
    keep_crops: str = DEFAULT_KEEP_CROPS  # none | flagged | all
    crops_location: str | None = None     # BigQuery output: where the pictures go as objects (gs://bucket/path)

    @property
    def bigquery(self) -> tuple[str, str] | None:
        if self.location.startswith("bq:"):
            project, _, dataset = self.location[3:].partition(":")
            return project, dataset
        return None


@dataclasses.dataclass(frozen=True)
class RunConfig:
    input: InputConfig
    output: OutputConfig
    run_id: str
    serving: ServingConfig = ServingConfig()
    reading: ReadingConfig = ReadingConfig()
    progress_dir: str | None = None      # a local run's: where its workers leave progress and why they stop

    def local_progress(self) -> "RunConfig":
        """Returns this config with its progress folder under the output directory, for a local run."""
        return dataclasses.replace(self, progress_dir=os.path.join(self.output.location, ".progress", self.run_id))
