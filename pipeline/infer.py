"""Infer stage: digit crops to TF Serving in batches, through Beam's RemoteModelHandler.

The handler knows gRPC only through `serving.client`; it never sees pixels
beyond the normalised 28x28 crops it forwards.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from apache_beam.ml.inference.base import PredictionResult, RemoteModelHandler

from serving.client import PredictClient, is_retriable

__all__ = ["DigitExample", "DigitPrediction", "InferenceFailed", "TFServingModelHandler"]


@dataclasses.dataclass
class DigitExample:
    """One normalised digit on its way to the model."""

    key: tuple                       # (source_uri, page, field)
    position: int
    image: np.ndarray                # uint8 [28, 28], 0 = paper
    bbox: tuple[int, int, int, int]


@dataclasses.dataclass
class DigitPrediction:
    probabilities: np.ndarray        # float32 [10]
    model_name: str
    model_version: int


@dataclasses.dataclass
class InferenceFailed:
    """The model refused this one crop (e.g. INVALID_ARGUMENT); the rest of its batch went through."""

    error_type: str
    message: str


class TFServingModelHandler(RemoteModelHandler[DigitExample, PredictionResult, PredictClient]):
    """Calls TF Serving's Predict (or the local server) with batches of digit crops.

    Args:
        target: `host:port` or `dns:///host:port`.
        model_name: served model name.
        version / version_label: pin a version or a label from models.config.
        min_batch_size / max_batch_size: Beam's BatchElements bounds; keep the
            maximum within the server's max_batch_size.
        timeout_s: deadline per Predict call.
        num_retries: retries of a retriable failure (UNAVAILABLE, DEADLINE_EXCEEDED...).
        ca_file / auth_token: TLS and auth for a remote endpoint.
    """

    def __init__(self, target: str, model_name: str = "lenet5", *, version: int | None = None,
                 version_label: str | None = None, min_batch_size: int = 16, max_batch_size: int = 256,
                 timeout_s: float = 30.0, num_retries: int = 5, throttle_delay_secs: int = 5,
                 ca_file: str | None = None, auth_token: str | None = None):
        super().__init__(namespace="formdigits", num_retries=num_retries, throttle_delay_secs=throttle_delay_secs,
                         retry_filter=is_retriable)
        # What each worker's PredictClient is built from (the client validates them).
        self._client_args = dict(target=target, model_name=model_name, version=version, version_label=version_label,
                                 timeout_s=timeout_s, ca_file=ca_file, auth_token=auth_token)
        # RemoteModelHandler does not call ModelHandler.__init__, so batching is set here.
        self._batching_kwargs = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}

    def batch_elements_kwargs(self):
        return self._batching_kwargs

    def create_client(self) -> PredictClient:
        # A PredictClient (not a tuple) so the base class can hold it by weak reference;
        # it shares the process's one channel to the target.
        return PredictClient(**self._client_args)

    def request(self, batch: Sequence[DigitExample], model: PredictClient,
                inference_args: Optional[dict[str, Any]] = None) -> Iterable[PredictionResult]:
        images = np.stack([e.image for e in batch])
        try:
            return self._predict(batch, images, model)
        except Exception as exc:
            if is_retriable(exc) or len(batch) == 1:
                raise  # the base class retries, then the batch fails as a whole
            # A request-level refusal: find the crop(s) responsible, keep the others.
            results = []
            for example, image in zip(batch, images):
                try:
                    results.extend(self._predict([example], image[None], model))
                except Exception as one:  # noqa: BLE001 - reported per element
                    if is_retriable(one):
                        raise
                    results.append(PredictionResult(example, InferenceFailed(type(one).__name__, _describe(one))))
            return results

    @staticmethod
    def _predict(batch, images: np.ndarray, model: PredictClient) -> list[PredictionResult]:
        result = model.predict(images)
        probabilities = result.outputs["probabilities"]
        return [PredictionResult(example, DigitPrediction(probabilities[i], result.model_name, result.model_version))
                for i, example in enumerate(batch)]

    def get_metrics_namespace(self) -> str:
        return "formdigits"


def _describe(exc: Exception) -> str:
    details = getattr(exc, "details", None)
    code = getattr(exc, "code", None)
    if callable(details) and callable(code):
        return f"{code().name}: {details()}"
    return str(exc)
