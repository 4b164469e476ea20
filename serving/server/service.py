"""A local server speaking TF Serving's gRPC API over the same model directory.

TensorFlow Serving cannot be installed everywhere formdigits runs (no binary on
PyPI, no Docker on many laptops and CI machines), so this is the embedded
default. It implements `PredictionService.Predict`, `GetModelMetadata` and
`ModelService.GetModelStatus` with tensorflow-serving-api's generated
servicers, answers with TF Serving's status codes and messages, and answers
every other method UNIMPLEMENTED, so pointing a client at the real server later
changes nothing.
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures

import grpc
import numpy as np
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)
from tensorflow.core.framework import types_pb2

from serving.server.batching import BatchScheduler, BatchStats, QueueFull, TaskTooLarge
from serving.server.config import BatchingOptions
from serving.server.models import ModelManager, ServableNotFound, UnknownLabel
from serving.tensors import UnsupportedDtype, as_proto_field, as_tensor_content, make_ndarray

__all__ = ["LocalModelServer", "DEFAULT_SIGNATURE", "DEFAULT_MAX_RECEIVE_BYTES"]

log = logging.getLogger("formdigits.serve")

DEFAULT_SIGNATURE = "serving_default"
# 64 MiB: 85,000 crops in one request (a job sends 512); gRPC's own default of 4 MiB is too small for big batches.
DEFAULT_MAX_RECEIVE_BYTES = 64 << 20


class _RequestError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _resolve(manager: ModelManager, model_spec):
    if not model_spec.name:
        raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
    version = model_spec.version.value if model_spec.HasField("version") else None
    label = model_spec.version_label if model_spec.WhichOneof("version_choice") == "version_label" else None
    try:
        return manager.resolve(model_spec.name, version=version, label=label)
    except UnknownLabel as exc:
        raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
    except ServableNotFound as exc:
        raise _RequestError(grpc.StatusCode.NOT_FOUND, str(exc)) from None


def _dtype_name(enum: int) -> str:
    return types_pb2.DataType.Name(enum)[3:].lower()  # DT_UINT8 -> uint8, as TensorFlow prints it


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server: "LocalModelServer"):
        self.server = server

    def Predict(self, request, context):
        try:
            return self.server.predict(request)
        except _RequestError as exc:
            context.abort(exc.code, exc.message)

    def GetModelMetadata(self, request, context):
        try:
            servable = _resolve(self.server.manager, request.model_spec)
            if not request.metadata_field:
                raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                    "GetModelMetadataRequest must specify at least one metadata_field")
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
            for field in request.metadata_field:
                if field != "signature_def":
                    raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {field} is not supported")
                signature_map = get_model_metadata_pb2.SignatureDefMap()
                for key, sig in servable.signature_defs.items():
                    signature_map.signature_def[key].CopyFrom(sig)
                response.metadata["signature_def"].Pack(signature_map)
            return response
        except _RequestError as exc:
            context.abort(exc.code, exc.message)


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, server: "LocalModelServer"):
        self.server = server

    def GetModelStatus(self, request, context):
        spec = request.model_spec
        if not spec.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        manager = self.server.manager
        versions = manager.loaded_versions(spec.name)
        wanted = None
        if spec.WhichOneof("version_choice") == "version_label":
            labels = dict(manager.entries[spec.name].labels) if spec.name in manager.entries else {}
            if spec.version_label not in labels:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"Unrecognized servable version label: {spec.version_label}")
            wanted = labels[spec.version_label]
        elif spec.HasField("version"):
            wanted = spec.version.value
        failed = {v: f for v, f in manager.failed_loads(spec.name).items() if v not in versions}
        if not versions and not failed:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {spec.name}")
        if wanted is not None and wanted not in versions and wanted not in failed:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Could not find version {wanted} of model {spec.name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in sorted({*versions, *failed}, reverse=True):
            if wanted is not None and version != wanted:
                continue
            _add_status(response, version, failed.get(version))
        return response


def _add_status(response, version: int, failure: tuple[str, bool] | None) -> None:
    """One version's state as TF Serving reports it: a failed load is LOADING while retries remain, then END,
    with the load's error either way."""
    status = response.model_version_status.add()
    status.version = version
    states = get_model_status_pb2.ModelVersionStatus
    if failure is None:
        status.state = states.AVAILABLE
        status.status.error_code = 0
    else:
        reason, retrying = failure
        status.state = states.LOADING if retrying else states.END
        status.status.error_code = grpc.StatusCode.UNKNOWN.value[0]
        status.status.error_message = reason


class LocalModelServer:
    """The embedded TF Serving stand-in.

    Args:
        manager: loads and finds model versions.
        batching: server-side batching options, or None to run each request alone.
        host, port: where to listen; port 0 picks a free one.
        tensor_content: answer with `tensor_content` (TF Serving's
            `--enable_serialization_as_tensor_content`); otherwise typed `*_val` fields.
        max_workers: RPCs handled at once; more wait in line, up to `max_workers` more, then
            RESOURCE_EXHAUSTED. With the receive cap this bounds the memory requests can hold.
        max_receive_bytes: the largest request accepted (TF Serving's `grpc.max_receive_message_length`
            channel argument); a larger one is answered RESOURCE_EXHAUSTED before it is read whole.
        interceptors: grpc.ServerInterceptor objects (e.g. an auth check).
        tls: (private key PEM, certificate chain PEM) to serve TLS; None serves plaintext.
    """

    def __init__(self, manager: ModelManager, batching: BatchingOptions | None = None, host: str = "127.0.0.1",
                 port: int = 8500, tensor_content: bool = False, max_workers: int = 16, interceptors=(),
                 tls: tuple[bytes, bytes] | None = None, max_receive_bytes: int = DEFAULT_MAX_RECEIVE_BYTES):
        self.manager = manager
        self.batching = batching
        self.tensor_content = tensor_content
        self.stats = BatchStats()
        self._schedulers: dict[tuple[str, str], BatchScheduler] = {}
        self._schedulers_lock = threading.Lock()
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
            interceptors=list(interceptors), maximum_concurrent_rpcs=2 * max_workers,
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", max_receive_bytes),
                     ("grpc.so_reuseport", 0)])
        self.max_receive_bytes = max_receive_bytes
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionService(self), self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(self), self._grpc)
        self.host = host
        if tls:
            key, cert = tls
            self.port = self._grpc.add_secure_port(f"{host}:{port}", grpc.ssl_server_credentials([(key, cert)]))
        else:
            self.port = self._grpc.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"cannot listen on {host}:{port} (in use?)")

    @property
    def target(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def start(self) -> "LocalModelServer":
        self.manager.start()
        self._grpc.start()
        log.info("serving gRPC on %s (requests up to %d MiB; batching %s)", self.target,
                 self.max_receive_bytes >> 20,
                 f"max {self.batching.max_batch_size}, timeout {self.batching.batch_timeout_micros}us"
                 if self.batching else "off")
        return self

    def stop(self, grace_s: float = 30.0) -> None:
        """Stops accepting calls, lets in-flight ones finish (up to `grace_s`), then shuts down."""
        self._grpc.stop(grace_s).wait()
        with self._schedulers_lock:
            schedulers = list(self._schedulers.values())
        for scheduler in schedulers:
            scheduler.stop()
        self.manager.stop()
        log.info("server stopped")

    def wait(self) -> None:
        self._grpc.wait_for_termination()

    # -- Predict --------------------------------------------------------------
    def predict(self, request):
        servable = _resolve(self.manager, request.model_spec)
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = servable.signature_defs.get(signature_name)
        if signature is None:
            raise _RequestError(grpc.StatusCode.FAILED_PRECONDITION,
                                f'Serving signature key "{signature_name}" not found.')
        self._check_inputs(signature, request)
        inputs = {}
        for position, (alias, proto) in enumerate(sorted(request.inputs.items())):
            try:
                array = make_ndarray(proto)
            except (UnsupportedDtype, ValueError):
                raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"tensor parsing error: {alias}") from None
            expected = signature.inputs[alias].dtype
            if proto.dtype != expected:
                raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"Expects arg[{position}] to be {_dtype_name(expected)} but "
                                    f"{_dtype_name(proto.dtype)} is provided")
            inputs[alias] = array
        outputs_wanted = self._check_outputs(signature, request)

        outputs = self._run(servable, signature_name, inputs)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature_name
        encode = as_tensor_content if self.tensor_content else as_proto_field
        for alias in outputs_wanted:
            response.outputs[alias].CopyFrom(encode(outputs[alias]))
        return response

    @staticmethod
    def _check_inputs(signature, request) -> None:
        sent, expected = set(request.inputs), set(signature.inputs)
        if len(sent) != len(expected):
            raise _RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input size does not match signature: {len(sent)}!={len(expected)} "
                f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
                f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
                f"Missing but required: {{{','.join(sorted(expected - sent))}}}.")
        for alias in sorted(sent):
            if alias not in expected:
                raise _RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input tensor alias not found in signature: {alias}. "
                    f"Inputs expected to be in the set {{{','.join(sorted(expected))}}}.")

    @staticmethod
    def _check_outputs(signature, request) -> list[str]:
        wanted, seen = [], set()
        for alias in request.output_filter:
            if alias not in signature.outputs:
                raise _RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"output tensor alias not found in signature: {alias} "
                    f"Outputs expected to be in the set {{{','.join(sorted(signature.outputs))}}}.")
            if alias in seen:
                raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"duplicate output tensor alias: {alias}")
            seen.add(alias)
            wanted.append(alias)
        return wanted or sorted(signature.outputs)

    def _scheduler(self, model: str, signature: str) -> BatchScheduler:
        with self._schedulers_lock:
            scheduler = self._schedulers.get((model, signature))
            if scheduler is None:
                scheduler = BatchScheduler(self.batching, self._run_batch, stats=self.stats,
                                           name=f"batch-{model}-{signature}")
                self._schedulers[(model, signature)] = scheduler
            return scheduler

    def _run(self, servable, signature_name: str, inputs: dict) -> dict:
        if self.batching is None:
            self.stats.record(1, next(iter(inputs.values())).shape[0])
            return self._call(servable, signature_name, inputs)
        # Only requests for the same version with the same dtypes and inner shapes can share a batch.
        key = (servable, signature_name,
               tuple((a, x.dtype.str, x.shape[1:]) for a, x in sorted(inputs.items())))
        try:
            future = self._scheduler(servable.name, signature_name).submit(key, inputs)
        except TaskTooLarge as exc:
            raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        except QueueFull as exc:
            raise _RequestError(grpc.StatusCode.UNAVAILABLE, str(exc)) from None
        return future.result()

    def _run_batch(self, key, inputs: dict) -> dict:
        servable, signature_name, _ = key
        return self._call(servable, signature_name, inputs)

    @staticmethod
    def _call(servable, signature_name: str, inputs: dict) -> dict:
        import tensorflow as tf

        function = servable.functions[signature_name]
        try:
            result = function(**{alias: tf.constant(x) for alias, x in inputs.items()})
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT, message.splitlines()[0]) from None
        return {alias: np.asarray(t) for alias, t in result.items()}
