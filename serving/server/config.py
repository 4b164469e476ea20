"""TF Serving's config files, parsed the way `tensorflow_model_server` parses them.

- `models.config`: `ModelServerConfig` from tensorflow-serving-api's own
  `model_server_config_pb2`.
- `batching.config`: `BatchingParameters` and `monitoring.config`:
  `MonitoringConfig`. tensorflow-serving-api does not ship these two messages,
  so they are declared here with TF Serving's package, names and field numbers
  (tensorflow_serving/servables/tensorflow/session_bundle_config.proto and
  tensorflow_serving/config/monitoring_config.proto); protobuf's text_format then
  accepts and rejects exactly what the real server does.
"""

from __future__ import annotations

import dataclasses
import os

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf import wrappers_pb2  # noqa: F401  (registers google/protobuf/wrappers.proto)

__all__ = [
    "ConfigError",
    "ModelEntry",
    "BatchingOptions",
    "load_model_server_config",
    "model_entries",
    "load_batching_parameters",
    "batching_options",
    "load_monitoring_config",
    "BatchingParameters",
    "MonitoringConfig",
]


class ConfigError(ValueError):
    """A config file is missing or does not parse as TF Serving's format."""


def _build_messages():
    pool = descriptor_pool.Default()
    fdp = descriptor_pb2.FileDescriptorProto(
        name="formdigits/tf_serving_replica.proto", package="tensorflow.serving", syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"])
    F = descriptor_pb2.FieldDescriptorProto
    batching = fdp.message_type.add(name="BatchingParameters")
    for number, name, type_name in (
        (1, "max_batch_size", ".google.protobuf.Int64Value"),
        (2, "batch_timeout_micros", ".google.protobuf.Int64Value"),
        (3, "max_enqueued_batches", ".google.protobuf.Int64Value"),
        (4, "num_batch_threads", ".google.protobuf.Int64Value"),
        (5, "thread_pool_name", ".google.protobuf.StringValue"),
    ):
        batching.field.add(name=name, number=number, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                           type_name=type_name)
    batching.field.add(name="allowed_batch_sizes", number=6, label=F.LABEL_REPEATED, type=F.TYPE_INT64)
    batching.field.add(name="pad_variable_length_inputs", number=7, label=F.LABEL_OPTIONAL, type=F.TYPE_BOOL)

    prometheus = fdp.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_BOOL)
    prometheus.field.add(name="path", number=2, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
    monitoring = fdp.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                         type_name=".tensorflow.serving.PrometheusConfig")
    try:
        pool.FindFileByName(fdp.name)
    except KeyError:
        pool.Add(fdp)
    get = message_factory.GetMessageClass
    return (get(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")),
            get(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")))


BatchingParameters, MonitoringConfig = _build_messages()


def _parse(path: str | os.PathLike, message, what: str):
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {os.fspath(path)!r}: {exc.strerror}") from exc
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise ConfigError(f"{os.fspath(path)} is not a valid {what}: {exc}") from exc


def load_model_server_config(path: str | os.PathLike):
    """Parses a text-format `ModelServerConfig` with TF Serving's own proto."""
    from tensorflow_serving.config import model_server_config_pb2

    config = _parse(path, model_server_config_pb2.ModelServerConfig(), "ModelServerConfig")
    if config.WhichOneof("config") != "model_config_list":
        raise ConfigError(f"{os.fspath(path)}: only model_config_list is supported")
    names = [c.name for c in config.model_config_list.config]
    if len(set(names)) != len(names):
        raise ConfigError(f"{os.fspath(path)}: model names must be unique, got {names}")
    return config


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """What the local server needs from one `ModelConfig`."""

    name: str
    base_path: str
    policy: str                      # "latest", "all" or "specific"
    num_latest: int = 1              # for "latest"
    specific: tuple[int, ...] = ()   # for "specific"
    labels: tuple[tuple[str, int], ...] = ()


def model_entries(config, models_dir: str | None = None) -> list[ModelEntry]:
    """Turns a `ModelServerConfig` into entries; `models_dir` overrides base paths with DIR/<name>."""
    entries = []
    for c in config.model_config_list.config:
        if not c.name:
            raise ConfigError("every model config needs a name")
        policy = c.model_version_policy.WhichOneof("policy_choice") or "latest"
        base = os.path.join(models_dir, c.name) if models_dir else c.base_path
        entries.append(ModelEntry(
            name=c.name, base_path=base, policy=policy,
            num_latest=max(1, c.model_version_policy.latest.num_versions) if policy == "latest" else 1,
            specific=tuple(c.model_version_policy.specific.versions) if policy == "specific" else (),
            labels=tuple(sorted(c.version_labels.items())),
        ))
    return entries


def load_batching_parameters(path: str | os.PathLike):
    """Parses TF Serving's `--batching_parameters_file`."""
    params = _parse(path, BatchingParameters(), "BatchingParameters")
    sizes = list(params.allowed_batch_sizes)
    if sizes and (sizes != sorted(sizes) or sizes[-1] != params.max_batch_size.value):
        raise ConfigError(f"{os.fspath(path)}: allowed_batch_sizes must increase and end at max_batch_size")
    return params


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """Server-side batching settings with TF Serving's defaults."""

    max_batch_size: int = 1000          # TF Serving's default
    batch_timeout_micros: int = 0       # TF Serving's default
    max_enqueued_batches: int = 100     # TF Serving's default
    num_batch_threads: int = 4

    @property
    def timeout_s(self) -> float:
        return self.batch_timeout_micros / 1e6


def batching_options(params=None) -> BatchingOptions:
    if params is None:
        return BatchingOptions()
    default = BatchingOptions()

    def pick(field, fallback):
        return getattr(params, field).value if params.HasField(field) else fallback
    return BatchingOptions(
        max_batch_size=pick("max_batch_size", default.max_batch_size),
        batch_timeout_micros=pick("batch_timeout_micros", default.batch_timeout_micros),
        max_enqueued_batches=pick("max_enqueued_batches", default.max_enqueued_batches),
        num_batch_threads=pick("num_batch_threads", default.num_batch_threads),
    )


def load_monitoring_config(path: str | os.PathLike):
    """Parses TF Serving's `--monitoring_config_file`."""
    return _parse(path, MonitoringConfig(), "MonitoringConfig")
