"""The local server when a version is bad: the serving version stays, failed loads are retried, as TF Serving does."""

import logging
import os
import shutil
import time

import numpy as np
import pytest

from support.beam import one_line

from serving.client import PredictClient
from serving.server.config import ModelEntry
from serving.server.engine import build_local_server
from serving.server.models import ModelManager
from serving.signature import UnfitModel

CROPS = np.zeros((4, 28, 28), np.uint8)
CROPS[:, 6:22, 13:15] = 255  # four 1s


@pytest.fixture
def base(models_dir, tmp_path):
    """A model base path holding version 1 (the shipped LeNet-5)."""
    shutil.copytree(models_dir / "lenet5" / "1", tmp_path / "lenet5" / "1")
    return tmp_path / "lenet5"


def _serving(base):
    """A started server over `base` (latest 1, polled every 0.1 s, TF Serving's retry defaults) and a client."""
    entries = [ModelEntry(name="lenet5", base_path=str(base), policy="latest", num_latest=1)]
    server = build_local_server(entries, batching=None, port=0, poll_s=0.1).start()
    return server, PredictClient(server.target, "lenet5", timeout_s=10)


def _version_served(client, wait_for=None, within_s=5.0) -> int:
    deadline = time.monotonic() + within_s
    while True:
        version = client.predict(CROPS).model_version
        if wait_for is None or version == wait_for or time.monotonic() > deadline:
            return version
        time.sleep(0.05)


@pytest.mark.slow
def test_a_corrupt_new_version_leaves_the_old_one_serving(base, caplog):
    server, client = _serving(base)
    try:
        shutil.copytree(base / "1", base / "2")
        (base / "2" / "saved_model.pb").write_bytes(b"not a SavedModel")
        with caplog.at_level(logging.ERROR, logger="formdigits.serve"):
            time.sleep(0.5)
            assert _version_served(client) == 1  # TF Serving's availability-preserving policy
        assert any("failed to load lenet5 version 2" in r.getMessage() for r in caplog.records)
    finally:
        server.stop(2)


@pytest.mark.slow
def test_a_half_copied_version_is_served_once_its_copy_completes(base):
    server, client = _serving(base)
    try:
        os.makedirs(base / "2")
        shutil.copy(base / "1" / "saved_model.pb", base / "2")  # the variables are not there yet
        time.sleep(0.5)
        assert _version_served(client) == 1
        shutil.copytree(base / "1" / "variables", base / "2" / "variables")
        shutil.copytree(base / "1" / "assets.extra", base / "2" / "assets.extra")
        # No waiting out the minute between retries: the files changed, so the next poll tries again.
        assert _version_served(client, wait_for=2) == 2
    finally:
        server.stop(2)


@pytest.mark.slow
def test_a_version_that_is_not_a_digit_classifier_is_refused_at_load(base, caplog):
    import keras

    from model_export.export import export_model

    three = keras.Sequential([keras.Input((28, 28, 1), dtype="uint8"), keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    server, client = _serving(base)
    try:
        with caplog.at_level(logging.ERROR, logger="formdigits.serve"):
            version, _ = export_model(three, base.parent, "lenet5", CROPS)
            assert version == 2
            time.sleep(0.5)
            assert _version_served(client) == 1
        message = next(r.getMessage() for r in caplog.records if "version 2" in r.getMessage())
        assert "model lenet5 version 2" in message and "[N, 3]" in message and "not [N, 10]" in message
    finally:
        server.stop(2)


def test_a_failed_load_is_retried_at_the_interval_then_given_up(tmp_path):
    """In-memory loaders: one that fails once, one that always fails."""
    os.makedirs(tmp_path / "m" / "1")
    (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"x")
    calls = []

    def fails_once(name, version, path):
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise OSError("transient read error")
        return object()

    entry = ModelEntry(name="m", base_path=str(tmp_path / "m"), policy="latest")
    manager = ModelManager([entry], loader=fails_once, load_retry_interval_s=0.2)
    manager.refresh()
    manager.refresh()  # within the interval: not tried again
    assert len(calls) == 1 and not manager.loaded_versions("m")
    time.sleep(0.25)
    manager.refresh()
    assert len(calls) == 2 and list(manager.loaded_versions("m")) == [1]

    tries = []

    def always_fails(name, version, path):
        tries.append(1)
        raise UnfitModel("model m version 1: not a digit classifier")

    manager = ModelManager([entry], loader=always_fails, load_retries=3, load_retry_interval_s=0.0)
    for _ in range(10):
        manager.refresh()
    assert len(tries) == 1 + 3  # the first load and three retries, then no more while the files stay
    assert manager.failed_loads("m") == {1: ("model m version 1: not a digit classifier", False)}


@pytest.mark.slow
def test_a_run_whose_only_version_fails_to_load_stops_at_once_in_one_line(tmp_path):
    """TF Serving would retry that version for five minutes; the run that started its own server says why now."""
    broken = tmp_path / "models" / "lenet5" / "1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    (tmp_path / "scan.png").write_bytes(b"")
    started = time.monotonic()
    rc, lines = one_line(["run", "--input", str(tmp_path / "scan.png"), "--output", str(tmp_path / "out"),
                          "--models-dir", str(tmp_path / "models")])
    assert rc == 2 and time.monotonic() - started < 60
    assert len(lines) == 1 and "model lenet5 version 1 failed to load" in lines[0], lines


def test_a_request_over_the_receive_cap_is_refused_and_the_server_goes_on(models_dir):
    import grpc

    entries = [ModelEntry(name="lenet5", base_path=str(models_dir / "lenet5"), policy="latest")]
    server = build_local_server(entries, batching=None, port=0, max_receive_bytes=1 << 20).start()
    try:
        client = PredictClient(server.target, "lenet5", timeout_s=10)
        with pytest.raises(grpc.RpcError) as info:
            client.predict(np.zeros((4000, 28, 28), np.uint8))  # 3.1 MB
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in info.value.details()
        assert client.predict(CROPS).outputs["probabilities"].shape == (4, 10)
    finally:
        server.stop(2)


@pytest.mark.slow
def test_the_embedded_server_dies_with_the_job_that_started_it_even_on_kill_9(models_dir):
    import signal
    import subprocess
    import sys

    import psutil

    job = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from serving.server.engine import ServerProcess\n"
        f"server = ServerProcess({str(models_dir)!r}).__enter__()\n"
        "print(server.proc.pid, flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    server_pid = int(job.stdout.readline())
    assert psutil.pid_exists(server_pid)
    job.send_signal(signal.SIGKILL)
    job.wait()
    deadline = time.monotonic() + 10
    while psutil.pid_exists(server_pid) and psutil.Process(server_pid).status() != psutil.STATUS_ZOMBIE \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = psutil.pid_exists(server_pid) and psutil.Process(server_pid).status() != psutil.STATUS_ZOMBIE
    assert not alive, "the model server outlived the job that started it"
