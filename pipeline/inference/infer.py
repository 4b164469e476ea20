"""Infer stage: a batch of pages' digit crops to TF Serving, through Beam's RemoteModelHandler.

Elements are whole pages (`PageCut`). Beam's BatchElements groups pages by how
many crops they hold, and each batch goes to the server in requests of at most
`max_batch_size` crops (the server's own batch size); the answers are split
back per page. The handler knows gRPC only through `serving.client` and pixels
only as the normalised 28x28 crops it forwards.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Iterable, Optional, Sequence

import grpc
import numpy as np
from apache_beam.ml.inference.base import PredictionResult, RemoteModelHandler

from pipeline.defaults import DEFAULT_MAX_BATCH_SIZE, DEFAULT_SERVING_TIMEOUT_S
from pipeline.job.progress import note_outage, note_stop
from pipeline.types import PageCut
from serving.client import UNREACHABLE_CODES, PredictClient, is_retriable
from serving.signature import UnfitModel, check_probabilities

__all__ = ["PageReads", "InferenceFailed", "ServingUnreachable", "UnfitModel", "TFServingModelHandler",
           "describe_failure", "DeadLetter", "STOPS_THE_JOB"]

class ServingUnreachable(RuntimeError):
    """TF Serving did not answer for longer than the job allows (--serving-timeout): the job stops."""


# No page's fault, so never a page's reject: the job stops with one line.
STOPS_THE_JOB = (ServingUnreachable, UnfitModel)
# A model version that went away (being replaced, or reloaded) is waited for like a server that went away.
_WAIT_CODES = UNREACHABLE_CODES | {grpc.StatusCode.NOT_FOUND}


class _NoMemoryProbeWarning(logging.Filter):
    """RunInference warns on every batch that it cannot read memory use here; people take it for a fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Resource module is not available")


# Installed wherever this module is imported: the driver, and each worker as it unpickles the handler.
# (RunInference logs it through the root logger.)
logging.getLogger().addFilter(_NoMemoryProbeWarning())


@dataclasses.dataclass
class PageReads:
    """The model's answer for one page's crops, row i for `PageCut.crops()[i]`."""

    probabilities: np.ndarray        # float32 [N, 10]
    model_name: str | None
    model_versions: list[int]        # per crop: a new version may come up between two requests


@dataclasses.dataclass
class InferenceFailed:
    """The server refused this page's request (e.g. INVALID_ARGUMENT); the other pages went through."""

    error_type: str                  # the gRPC status code's name, or the exception's type
    message: str


def _crop_count(page: PageCut) -> int:
    """A page's weight in a batch: its crops (at least 1, so empty pages still move)."""
    return max(1, page.crop_count())


class TFServingModelHandler(RemoteModelHandler[PageCut, PredictionResult, PredictClient]):
    """Reads pages' digit crops with TF Serving's Predict (or the local server).

    Args:
        target: `host:port` or `dns:///host:port`.
        model_name: served model name.
        version / version_label: pin a version or a label from models.config.
        max_batch_size: crops per Predict request, and about how many crops a
            batch of pages holds; keep it within the server's max_batch_size.
        timeout_s: deadline per Predict call.
        serving_timeout_s: how long to wait, retrying, while the server cannot be
            reached at all; past it, `ServingUnreachable` stops the job.
        progress_dir: where the run's progress line learns of an outage.
        num_retries: how often a busy server (RESOURCE_EXHAUSTED, ABORTED) is asked again before the
            request's pages are refused. The handler's own policy (`_predict`) is the only one: Beam's
            retries are off, so no failure is tried at two levels.
        ca_file / auth_token: TLS and auth for a remote endpoint.
    """

    def __init__(self, target: str, model_name: str = "lenet5", *, version: int | None = None,
                 version_label: str | None = None, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 timeout_s: float = 30.0,
                 num_retries: int = 5, throttle_delay_secs: int = 5, ca_file: str | None = None,
                 auth_token: str | None = None, serving_timeout_s: float = DEFAULT_SERVING_TIMEOUT_S,
                 progress_dir: str | None = None):
        super().__init__(namespace="formdigits", num_retries=0, throttle_delay_secs=throttle_delay_secs)
        self.busy_retries = num_retries
        self.target = target
        self.max_batch_size = max_batch_size
        self.serving_timeout_s = serving_timeout_s
        self.progress_dir = progress_dir
        # What each worker's PredictClient is built from (the client validates them). The CA is read here,
        # in the driver, and travels with the handler: workers need no copy of the file.
        root_certificates = None
        if ca_file:
            with open(ca_file, "rb") as fh:
                root_certificates = fh.read()
        self._client_args = dict(target=target, model_name=model_name, version=version, version_label=version_label,
                                 timeout_s=timeout_s, root_certificates=root_certificates, auth_token=auth_token)
        # RemoteModelHandler does not call ModelHandler.__init__, so batching is set here.
        self._batching_kwargs = {"min_batch_size": 1, "max_batch_size": max_batch_size,
                                 "element_size_fn": _crop_count}
        self._checked_versions: set[int] = set()  # per worker process: each version's signature, checked once
        # When this worker's calls began to find no server (monotonic seconds); None while they work.
        self._down_since: float | None = None

    def batch_elements_kwargs(self):
        return self._batching_kwargs

    def create_client(self) -> PredictClient:
        # A PredictClient (not a tuple) so the base class can hold it by weak reference;
        # it shares the process's one channel to the target.
        return PredictClient(**self._client_args)

    def request(self, batch: Sequence[PageCut], model: PredictClient,
                inference_args: Optional[dict[str, Any]] = None) -> Iterable[PredictionResult]:
        crops = [page.crops() for page in batch]
        try:
            return self._read_pages(batch, crops, model)
        except STOPS_THE_JOB as exc:
            note_stop(self.progress_dir, type(exc).__name__, str(exc))  # the driver reads why, not Beam's text
            raise
        except grpc.RpcError as exc:
            if len(batch) == 1:
                return [PredictionResult(batch[0], InferenceFailed(*describe_failure(exc)))]
            # A request-level refusal: find the page(s) responsible, keep the others.
            results = []
            for page, page_crops in zip(batch, crops):
                try:
                    results.extend(self._read_pages([page], [page_crops], model))
                except grpc.RpcError as one:
                    results.append(PredictionResult(page, InferenceFailed(*describe_failure(one))))
            return results

    def _read_pages(self, pages: Sequence[PageCut], crops: list[np.ndarray],
                    model: PredictClient) -> list[PredictionResult]:
        flat = np.concatenate(crops) if crops else np.zeros((0, 28, 28), np.uint8)
        probabilities, versions, name = [], [], None
        for start in range(0, len(flat), self.max_batch_size):
            sent = flat[start:start + self.max_batch_size]
            result = self._predict(model, sent)
            chunk = result.outputs.get("probabilities", np.zeros((0, 0), np.float32))
            where = f"model {result.model_name} version {result.model_version} at {self.target}"
            if result.model_version not in self._checked_versions:
                model.check_signature(result.model_version)
                self._checked_versions.add(result.model_version)
            check_probabilities(chunk, len(sent), where)
            probabilities.append(chunk)
            versions += [result.model_version] * len(chunk)
            name = result.model_name
        probabilities = np.concatenate(probabilities) if probabilities else np.zeros((0, 10), np.float32)
        out, start = [], 0
        for page, page_crops in zip(pages, crops):
            end = start + len(page_crops)
            reads = PageReads(probabilities[start:end], name, versions[start:end])
            # The page's digits carry their own answers from here on: assembly pairs nothing by position.
            out.append(PredictionResult(page.read_by(reads.probabilities, name, reads.model_versions), reads))
            start = end
        return out

    def _predict(self, model: PredictClient, crops: np.ndarray):
        """One Predict call under the handler's one retry policy.

        While the server cannot be reached, or does not find the model (a version being replaced; the job
        checked the model at start), waits and tries again (backoff up to 5 s), up to `serving_timeout_s`
        from the first call that found no answer; then raises ServingUnreachable, which stops the job. A busy
        server (RESOURCE_EXHAUSTED, ABORTED) is asked again up to `busy_retries` times. Anything else, and a
        server still busy, is raised for `request` to turn into its pages' InferenceFailed.
        """
        delay, busy = 0.25, 0
        while True:
            try:
                result = model.predict(crops)
            except grpc.RpcError as exc:
                if exc.code() in _WAIT_CODES:
                    self._wait_for_server(model, exc, delay)
                elif is_retriable(exc) and busy < self.busy_retries:
                    busy += 1
                    time.sleep(delay)
                else:
                    raise
                delay = min(2 * delay, 5.0)
                continue
            if self._down_since is not None:
                self._down_since = None
                note_outage(self.progress_dir, self.target, None)
            return result

    def _wait_for_server(self, model: PredictClient, exc: grpc.RpcError, delay: float) -> None:
        """Sleeps before the next try while the server is away; past `serving_timeout_s`, ServingUnreachable."""
        if self._down_since is None:
            self._down_since = time.monotonic()
        down = time.monotonic() - self._down_since
        if down >= self.serving_timeout_s:
            what = f"model {model.model_name} not found" if exc.code() == grpc.StatusCode.NOT_FOUND else "unreachable"
            raise ServingUnreachable(f"TF Serving at {self.target}: {what} for {down:.0f} s "
                                     f"({exc.code().name})") from None
        note_outage(self.progress_dir, self.target, down)
        time.sleep(min(delay, self.serving_timeout_s - down))

    def get_num_bytes(self, batch: Sequence[PageCut]) -> int:
        """Counts the bytes of crops the batch sends. (Beam's default pickles the whole batch, review pictures and all,
        only to measure it: about 1% of a worker's time.)"""
        return sum(page.crop_count() for page in batch) * 28 * 28

    def get_metrics_namespace(self) -> str:
        return "formdigits"


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """A batch RunInference gave up on: what it raised. The handler turns every gRPC refusal into its pages'
    InferenceFailed, so what is left here is a stop (`STOPS_THE_JOB`) or a fault of the code."""

    error: type | str
    message: str

    @property
    def stops_the_job(self) -> bool:
        return isinstance(self.error, type) and issubclass(self.error, STOPS_THE_JOB)

    @property
    def error_type(self) -> str:
        return getattr(self.error, "__name__", str(self.error))

    @classmethod
    def from_beam(cls, failure) -> "DeadLetter":
        """Builds the record from RunInference's (exception class, its repr, traceback lines)."""
        kind, text, lines = failure
        last = lines[-1].strip() if lines else text
        return cls(kind, last.split(": ", 1)[-1])


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """Returns (error type, message) of a failed call: the gRPC status code and details where there are some."""
    details = getattr(exc, "details", None)
    code = getattr(exc, "code", None)
    if callable(details) and callable(code):
        return code().name, f"{code().name}: {details()}"
    return type(exc).__name__, str(exc)
