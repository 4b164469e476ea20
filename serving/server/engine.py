"""`formdigits serve`: run the local server, or the real tensorflow_model_server.

Both engines read the same files: the models directory, `models.config`,
`batching.config` and (for TF Serving) `monitoring.config`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

from google.protobuf import text_format

from serving.server.config import (BatchingOptions, ConfigError, ModelEntry, batching_options, load_batching_parameters,
                                   load_model_server_config, model_entries)

__all__ = ["is_loopback", "load_tls", "SERVING_DIR", "DEFAULT_BATCHING_CONFIG", "DEFAULT_MONITORING_CONFIG", "resolve_entries",
           "build_local_server", "run_local", "tfserving_command", "run_tfserving", "ServerProcess"]

SERVING_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the config files sit in serving/
DEFAULT_BATCHING_CONFIG = os.path.join(SERVING_DIR, "batching.config")
DEFAULT_MONITORING_CONFIG = os.path.join(SERVING_DIR, "monitoring.config")
TF_SERVING_BINARY = "tensorflow_model_server"

log = logging.getLogger("formdigits.serve")


def resolve_entries(models_dir: str | None, model_config: str | None) -> list[ModelEntry]:
    """Models to serve: those in `model_config`, else every model directory under `models_dir`.

    With both, the config's models are served from `models_dir/<name>`.
    """
    if model_config:
        return model_entries(load_model_server_config(model_config), models_dir)
    models_dir = models_dir or "models"
    if not os.path.isdir(models_dir):
        raise ConfigError(f"models directory {models_dir!r} does not exist; train a model first: "
                          f"formdigits train --export-dir {models_dir}")
    names = sorted(n for n in os.listdir(models_dir)
                   if os.path.isdir(os.path.join(models_dir, n)) and not n.startswith("."))
    if not names:
        raise ConfigError(f"no models under {models_dir!r}; train one: formdigits train --export-dir {models_dir}")
    # Like TF Serving's --model_base_path: serve the newest version of each model.
    return [ModelEntry(name=n, base_path=os.path.join(models_dir, n), policy="latest", num_latest=1) for n in names]


def load_batching(path: str | None) -> BatchingOptions | None:
    if not path or path == "none":
        return None
    return batching_options(load_batching_parameters(path))


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps a server on this machine (127.0.0.0/8, ::1, localhost)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_tls(cert_file: str | None, key_file: str | None) -> tuple[bytes, bytes] | None:
    """(key, certificate chain) PEM bytes for a TLS server, or None without a certificate."""
    if not cert_file and not key_file:
        return None
    if not (cert_file and key_file):
        raise ConfigError("TLS needs both --tls-cert and --tls-key")
    with open(key_file, "rb") as key, open(cert_file, "rb") as cert:
        return key.read(), cert.read()


def build_local_server(entries: list[ModelEntry], *, batching: BatchingOptions | None, host: str = "127.0.0.1",
                       port: int = 8500, tensor_content: bool = False, poll_s: float = 1.0, interceptors=(),
                       tls: tuple[bytes, bytes] | None = None, max_receive_bytes: int | None = None):
    from serving.server.models import ModelManager
    from serving.server.service import DEFAULT_MAX_RECEIVE_BYTES, LocalModelServer

    return LocalModelServer(ModelManager(entries, poll_s=poll_s), batching=batching, host=host, port=port,
                            tensor_content=tensor_content, interceptors=interceptors, tls=tls,
                            max_receive_bytes=max_receive_bytes or DEFAULT_MAX_RECEIVE_BYTES)


def run_local(entries: list[ModelEntry], *, batching: BatchingOptions | None, host: str, port: int,
              tensor_content: bool, poll_s: float = 1.0, grace_s: float = 30.0,
              tls: tuple[bytes, bytes] | None = None, max_receive_bytes: int | None = None,
              parent_pid: int | None = None) -> int:
    """Serves until SIGTERM or SIGINT (or, with `parent_pid`, until that process is gone), then finishes
    in-flight requests and exits."""
    server = build_local_server(entries, batching=batching, host=host, port=port, tensor_content=tensor_content,
                                poll_s=poll_s, tls=tls, max_receive_bytes=max_receive_bytes)
    stop = threading.Event()
    if parent_pid:
        threading.Thread(target=_stop_when_orphaned, args=(parent_pid, stop), daemon=True).start()

    def on_signal(signum, _frame):
        log.info("received %s: finishing in-flight requests", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    for entry in entries:
        if not server.manager.loaded_versions(entry.name):
            log.warning("model %s has no loadable version under %s yet; waiting for one", entry.name, entry.base_path)
    print(f"formdigits serve: listening on {server.target}", flush=True)
    stop.wait()
    server.stop(grace_s)
    return 0


def _stop_when_orphaned(parent_pid: int, stop: threading.Event) -> None:
    """Sets `stop` once `parent_pid` is no longer this process's parent: the job that started it died (kill -9
    included) and the server must not outlive it."""
    while not stop.wait(0.5):
        if os.getppid() != parent_pid:
            log.warning("the job that started this server (pid %d) is gone: stopping", parent_pid)
            stop.set()


def tfserving_command(entries: list[ModelEntry], *, port: int, rest_port: int, batching_config: str | None,
                      monitoring_config: str | None, config_dir: str, poll_s: int = 1,
                      tls: tuple[bytes, bytes] | None = None, max_receive_bytes: int | None = None) -> list[str]:
    """The tensorflow_model_server command line for the same models and configs."""
    binary = shutil.which(TF_SERVING_BINARY)
    if binary is None:
        raise ConfigError(f"{TF_SERVING_BINARY} is not on PATH; run it from the tensorflow/serving image "
                          "(see infra/tfserving) or use the built-in server (--engine local)")
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    for entry in entries:
        c = config.model_config_list.config.add(name=entry.name, base_path=os.path.abspath(entry.base_path),
                                                model_platform="tensorflow")
        if entry.policy == "all":
            c.model_version_policy.all.SetInParent()
        elif entry.policy == "specific":
            c.model_version_policy.specific.versions.extend(entry.specific)
        else:
            c.model_version_policy.latest.num_versions = entry.num_latest
        for label, version in entry.labels:
            c.version_labels[label] = version
    config_path = os.path.join(config_dir, "models.config")
    with open(config_path, "w") as fh:
        fh.write(text_format.MessageToString(config))
    cmd = [binary, f"--port={port}", f"--rest_api_port={rest_port}", f"--model_config_file={config_path}",
           f"--file_system_poll_wait_seconds={poll_s}"]
    if batching_config and batching_config != "none":
        cmd += ["--enable_batching", f"--batching_parameters_file={os.path.abspath(batching_config)}"]
    if monitoring_config:
        cmd.append(f"--monitoring_config_file={os.path.abspath(monitoring_config)}")
    if tls:
        cmd.append(f"--ssl_config_file={_write_ssl_config(tls, config_dir)}")
    if max_receive_bytes:
        cmd.append(f"--grpc_channel_arguments=grpc.max_receive_message_length={max_receive_bytes}")
    return cmd


def _write_ssl_config(tls: tuple[bytes, bytes], config_dir: str) -> str:
    """TF Serving's SSLConfig (text format) holding the server's key and certificate."""
    from tensorflow_serving.config import ssl_config_pb2

    key, cert = tls
    config = ssl_config_pb2.SSLConfig(server_key=key.decode(), server_cert=cert.decode(), client_verify=False)
    path = os.path.join(config_dir, "ssl.config")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        fh.write(text_format.MessageToString(config))
    return path


def run_tfserving(entries: list[ModelEntry], **kwargs) -> int:
    """Replaces this process with tensorflow_model_server (signals then go straight to it)."""
    config_dir = tempfile.mkdtemp(prefix="formdigits-tfserving-")
    cmd = tfserving_command(entries, config_dir=config_dir, **kwargs)
    print("formdigits serve: exec " + " ".join(cmd), flush=True)
    os.execv(cmd[0], cmd)
    return 1  # not reached


class ServerProcess:
    """The local server in a child process on a loopback port, free unless given (for jobs and benchmarks).

    Use as a context manager; `target` is `host:port` once started.
    """

    def __init__(self, models_dir: str, batching_config: str | None = None, port: int = 0):
        self.models_dir = models_dir
        self.batching_config = batching_config
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.target = ""

    def __enter__(self) -> "ServerProcess":
        cmd = [sys.executable, "-m", "serving.server", "--models-dir", self.models_dir, "--port", str(self.port),
               "--parent-pid", str(os.getpid())]
        if self.batching_config:
            cmd += ["--batching-config", self.batching_config]
        # Its own session: Ctrl-C in a terminal goes to the job's process group, and the job, not the
        # terminal, decides when the server stops (after the work in flight is written).
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), start_new_session=True)
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise ConfigError(f"the local model server did not start ({line.strip() or 'no output'}); "
                              f"try: formdigits serve --models-dir {self.models_dir}")
        self.target = line.strip().rsplit(" ", 1)[-1]
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # the server finishes in-flight requests on SIGTERM
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
