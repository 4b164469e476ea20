"""gRPC client for TF Serving's PredictionService and ModelService.

Used by the pipeline's inference stage; works the same against the real
`tensorflow_model_server` and against `formdigits serve`.

- One channel per process and target (`get_channel`): channels multiplex many
  calls and are expensive to open, so workers share them.
- `dns:///host:port` targets get round-robin load balancing over every address
  the name resolves to (TF Serving replicas behind a headless service).
- Every call has a deadline; TLS (a CA file) and an auth token are optional.
- `is_retriable` says which failures are worth retrying.
"""

from __future__ import annotations

import dataclasses
import threading

import grpc
import numpy as np

from serving.tensors import make_ndarray, make_tensor_proto

__all__ = [
    "UNREACHABLE_CODES",
    "RETRIABLE_CODES",
    "is_retriable",
    "ModelLoadFailed",
    "channel_options",
    "get_channel",
    "PredictResult",
    "PredictClient",
]

# Transient: the server is busy, restarting, or the network blinked.
RETRIABLE_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
})
# No answer at all: the server is down, restarting, or hangs. Worth waiting for, within limits.
UNREACHABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

_MAX_MESSAGE = -1  # unlimited; TF Serving allows large batches and the default 4 MB is too small


class ModelLoadFailed(RuntimeError):
    """Every version of the model failed to load on the server."""


def is_retriable(exc: BaseException) -> bool:
    """True for gRPC failures worth retrying (UNAVAILABLE, DEADLINE_EXCEEDED, ...)."""
    return isinstance(exc, grpc.RpcError) and exc.code() in RETRIABLE_CODES


def channel_options(target: str) -> list[tuple[str, object]]:
    options = [
        ("grpc.max_send_message_length", _MAX_MESSAGE),
        ("grpc.max_receive_message_length", _MAX_MESSAGE),
        # Keepalive finds a connection that died under a call in flight. Only then: a gRPC server by
        # default (TF Serving's too) takes pings on a connection with no call as abuse and closes it
        # with GOAWAY "too_many_pings"; an idle connection that died fails the next call, which is retried.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 0),
        # gRPC backs off reconnecting up to 120 s by default: a restarted server would sit unused that long.
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.min_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", 5_000),
    ]
    if target.startswith("dns:"):
        options.append(("grpc.lb_policy_name", "round_robin"))
    return options


_channels: dict[tuple, grpc.Channel] = {}
_channels_lock = threading.Lock()


def get_channel(target: str, ca_file: str | None = None, root_certificates: bytes | None = None) -> grpc.Channel:
    """The process's shared channel to `target` (created on first use); TLS with a CA file or PEM bytes."""
    if ca_file:
        with open(ca_file, "rb") as fh:
            root_certificates = fh.read()
    key = (target, root_certificates)
    with _channels_lock:
        channel = _channels.get(key)
        if channel is None:
            if root_certificates:
                credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
                channel = grpc.secure_channel(target, credentials, options=channel_options(target))
            else:
                channel = grpc.insecure_channel(target, options=channel_options(target))
            _channels[key] = channel
        return channel


@dataclasses.dataclass(frozen=True)
class PredictResult:
    """Outputs of one Predict call and the model version that produced them."""

    outputs: dict[str, np.ndarray]
    model_name: str
    model_version: int


class PredictClient:
    """Calls one model on a TF Serving endpoint.

    Args:
        target: `host:port`, or `dns:///host:port` to balance over replicas.
        model_name: the served model, e.g. "lenet5".
        signature_name: defaults to TF Serving's `serving_default`.
        version: a specific version number, or None for the newest.
        version_label: a label from models.config (e.g. "stable"); not with `version`.
        timeout_s: deadline of every call.
        ca_file: PEM CA bundle for a TLS endpoint (or `root_certificates`, its bytes).
        auth_token: sent as `authorization: Bearer <token>` metadata.
    """

    def __init__(self, target: str, model_name: str, *, signature_name: str = "serving_default",
                 version: int | None = None, version_label: str | None = None, timeout_s: float = 30.0,
                 ca_file: str | None = None, auth_token: str | None = None, root_certificates: bytes | None = None):
        if version is not None and version_label:
            raise ValueError("give a model version or a version label, not both")
        from tensorflow_serving.apis import (model_service_pb2_grpc,
                                             prediction_service_pb2_grpc)

        self.target = target
        self.model_name = model_name
        self.signature_name = signature_name
        self.version = version
        self.version_label = version_label
        self.timeout_s = timeout_s
        self.channel = get_channel(target, ca_file, root_certificates)
        self._predict_stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self._model_stub = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self._metadata = (("authorization", f"Bearer {auth_token}"),) if auth_token else None

    def _model_spec(self, spec, signature: bool = True):
        spec.name = self.model_name
        if signature:
            spec.signature_name = self.signature_name
        if self.version is not None:
            spec.version.value = self.version
        elif self.version_label:
            spec.version_label = self.version_label
        return spec

    def predict_tensors(self, inputs: dict[str, np.ndarray], output_filter=()) -> PredictResult:
        """One Predict call with the given input tensors (sent as tensor_content)."""
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._model_spec(request.model_spec)
        for alias, array in inputs.items():
            request.inputs[alias].CopyFrom(make_tensor_proto(array))
        request.output_filter.extend(output_filter)
        response = self._predict_stub.Predict(request, timeout=self.timeout_s, metadata=self._metadata)
        return PredictResult(
            outputs={alias: make_ndarray(t) for alias, t in response.outputs.items()},
            model_name=response.model_spec.name,
            model_version=response.model_spec.version.value,
        )

    def predict(self, images: np.ndarray) -> PredictResult:
        """Classifies MNIST-normalised crops: uint8 [N, 28, 28] or [N, 28, 28, 1]."""
        images = np.asarray(images, np.uint8)
        if images.ndim == 3:
            images = images[..., None]
        return self.predict_tensors({"images": images}, output_filter=("probabilities",))

    def model_status(self):
        """`ModelService.GetModelStatus` for this model (and version or label, if set)."""
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._model_spec(request.model_spec, signature=False)
        return self._model_stub.GetModelStatus(request, timeout=self.timeout_s, metadata=self._metadata)

    def metadata(self, version: int | None = None):
        """`PredictionService.GetModelMetadata` (the signature_def map), of `version` if given."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._model_spec(request.model_spec, signature=False)
        if version is not None:
            request.model_spec.version.value = version
        return self._predict_stub.GetModelMetadata(request, timeout=self.timeout_s, metadata=self._metadata)

    def check_signature(self, version: int | None = None) -> int:
        """Checks the served signature answers [N, 10] probabilities; returns the version checked.

        Raises:
            serving.signature.UnfitModel: it does not (the message names the model and version).
            grpc.RpcError: the server's own refusal (NOT_FOUND for an unknown model or version).
        """
        from tensorflow_serving.apis import get_model_metadata_pb2

        from serving.signature import UnfitModel, check_signature

        response = self.metadata(version)
        served = response.model_spec.version.value
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        where = f"model {self.model_name} version {served} at {self.target}"
        if self.signature_name not in signatures.signature_def:
            raise UnfitModel(f"{where} has no {self.signature_name} signature")
        check_signature(signatures.signature_def[self.signature_name], where)
        return served

    def wait_until_available(self, timeout_s: float = 60.0, poll_s: float = 0.2,
                             give_up_on_failed_load: bool = False) -> int:
        """Blocks until the model has an AVAILABLE version; returns it.

        With `give_up_on_failed_load`, raises ModelLoadFailed as soon as every version the server reports
        has failed to load (TF Serving would retry those for minutes; a job that started the server itself
        has nothing else to wait for).
        """
        import time

        from tensorflow_serving.apis import get_model_status_pb2

        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                status = self.model_status()
                for v in status.model_version_status:
                    if v.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE:
                        return v.version
                failed = [v for v in status.model_version_status if v.status.error_code != 0]
                if give_up_on_failed_load and failed and len(failed) == len(status.model_version_status):
                    raise ModelLoadFailed(f"model {self.model_name} version {failed[0].version} failed to load: "
                                          f"{failed[0].status.error_message}")
            except grpc.RpcError as exc:
                last = exc
            time.sleep(poll_s)
        raise TimeoutError(f"model {self.model_name!r} not available at {self.target} after {timeout_s}s"
                           + (f": {last.details()}" if isinstance(last, grpc.RpcError) else ""))
