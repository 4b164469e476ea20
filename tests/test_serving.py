"""The local PredictionService/ModelService: real gRPC server on loopback, real SavedModel."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2, predict_pb2,
                                     prediction_service_pb2_grpc)

from corpus.handwriting import HELDOUT_STREAM, generate
from serving.client import PredictClient, get_channel, is_retriable
from serving.server.config import BatchingOptions, ModelEntry
from serving.server.engine import build_local_server
from serving.tensors import make_tensor_proto


@pytest.fixture(scope="module")
def crops():
    return generate(64, seed=21, stream=HELDOUT_STREAM, workers=1)


@pytest.fixture(scope="module")
def served(models_dir, tmp_path_factory):
    """A server over a copy of the trained model, with labels as models.config has them."""
    root = tmp_path_factory.mktemp("served")
    shutil.copytree(models_dir / "lenet5" / "1", root / "lenet5" / "1")
    entries = [ModelEntry(name="lenet5", base_path=str(root / "lenet5"), policy="latest", num_latest=2,
                          labels=(("canary", 2), ("stable", 1)))]
    server = build_local_server(entries, batching=BatchingOptions(max_batch_size=256, batch_timeout_micros=5000),
                                port=0, poll_s=0.2).start()
    yield server
    server.stop(5)


def _expect(code, fn):
    with pytest.raises(grpc.RpcError) as info:
        fn()
    assert info.value.code() == code, info.value.details()
    return info.value.details()


def test_predict_serving_default_matches_in_process_model(served, lenet_v1, crops):
    import tensorflow as tf

    images, labels = crops
    result = PredictClient(served.target, "lenet5").predict(images)
    probabilities = result.outputs["probabilities"]
    assert result.model_name == "lenet5" and result.model_version == 1
    assert probabilities.shape == (64, 10) and probabilities.dtype == np.float32
    local = tf.saved_model.load(str(lenet_v1)).signatures["serving_default"](images=tf.constant(images[..., None]))
    assert np.allclose(probabilities, local["probabilities"].numpy(), atol=1e-6)


def test_predict_images_with_only_the_generated_stub(served, crops):
    """TF Serving's MNIST tutorial client, unchanged: tf.make_tensor_proto, float [1,784], scores.float_val."""
    import tensorflow as tf

    images, labels = crops
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(served.target))
    correct = 0
    for image, label in zip(images[:20], labels[:20]):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "lenet5"
        request.model_spec.signature_name = "predict_images"
        request.inputs["images"].CopyFrom(tf.make_tensor_proto((image / 255.0).reshape(1, 784), dtype=tf.float32))
        response = stub.Predict(request, 10.0)
        scores = np.array(response.outputs["scores"].float_val)
        assert scores.shape == (10,) and abs(scores.sum() - 1) < 1e-4
        assert response.model_spec.signature_name == "predict_images"
        correct += int(scores.argmax() == label)
    assert correct >= 15


def test_response_echoes_model_spec_and_defaults_signature(served, crops):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(get_channel(served.target))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lenet5"  # no signature, no version
    request.inputs["images"].CopyFrom(make_tensor_proto(crops[0][:3, ..., None]))
    response = stub.Predict(request, 10.0)
    assert response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value == 1
    assert set(response.outputs) == {"probabilities", "classes"}
    # TF Serving's default: typed fields, not tensor_content.
    assert len(response.outputs["probabilities"].float_val) == 30 and not response.outputs["probabilities"].tensor_content
    assert list(response.outputs["classes"].int64_val) == list(np.argmax(
        np.array(response.outputs["probabilities"].float_val).reshape(3, 10), axis=1))


def test_error_codes_and_messages(served, crops):
    one = crops[0][:1]
    target = served.target
    assert _expect(grpc.StatusCode.NOT_FOUND, lambda: PredictClient(target, "nope").predict(one)) == \
        "Servable not found for request: Latest(nope)"
    assert _expect(grpc.StatusCode.NOT_FOUND, lambda: PredictClient(target, "lenet5", version=3).predict(one)) == \
        "Servable not found for request: Specific(lenet5, 3)"
    assert _expect(grpc.StatusCode.INVALID_ARGUMENT, lambda: PredictClient(target, "").predict(one)) == \
        "ModelSpec has no name specified."
    assert _expect(grpc.StatusCode.FAILED_PRECONDITION,
                   lambda: PredictClient(target, "lenet5", signature_name="x").predict(one)) == \
        'Serving signature key "x" not found.'
    assert _expect(grpc.StatusCode.INVALID_ARGUMENT,
                   lambda: PredictClient(target, "lenet5", version_label="beta").predict(one)) == \
        "Unrecognized servable version label: beta"
    client = PredictClient(target, "lenet5")
    assert _expect(grpc.StatusCode.INVALID_ARGUMENT, lambda: client.predict_tensors({"pixels": one[..., None]})) == \
        "input tensor alias not found in signature: pixels. Inputs expected to be in the set {images}."
    assert "Missing but required: {images}" in _expect(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: client.predict_tensors({}))
    assert _expect(grpc.StatusCode.INVALID_ARGUMENT,
                   lambda: client.predict_tensors({"images": one[..., None].astype(np.float32)})) == \
        "Expects arg[0] to be uint8 but float is provided"
    assert _expect(grpc.StatusCode.INVALID_ARGUMENT,
                   lambda: client.predict_tensors({"images": one[..., None]}, output_filter=("logits",))).startswith(
        "output tensor alias not found in signature: logits")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(get_channel(target))
    _expect(grpc.StatusCode.UNIMPLEMENTED, lambda: stub.Classify(classification_pb2.ClassificationRequest(), 5.0))


def test_version_labels(served, crops):
    result = PredictClient(served.target, "lenet5", version_label="stable").predict(crops[0][:2])
    assert result.model_version == 1
    # canary -> version 2, which does not exist yet.
    assert _expect(grpc.StatusCode.NOT_FOUND,
                   lambda: PredictClient(served.target, "lenet5", version_label="canary").predict(crops[0][:2])) == \
        "Servable not found for request: Specific(lenet5, 2)"


def test_model_status_and_metadata(served):
    status = PredictClient(served.target, "lenet5").model_status()
    assert [(v.version, v.state) for v in status.model_version_status] == \
        [(1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
    assert _expect(grpc.StatusCode.NOT_FOUND, lambda: PredictClient(served.target, "nope").model_status()) == \
        "Could not find any versions of model nope"

    metadata = PredictClient(served.target, "lenet5").metadata()
    assert metadata.model_spec.name == "lenet5" and metadata.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    metadata.metadata["signature_def"].Unpack(signatures)
    default = signatures.signature_def["serving_default"]
    assert default.method_name == "tensorflow/serving/predict"
    assert default.inputs["images"].dtype == 4  # DT_UINT8
    assert [d.size for d in default.inputs["images"].tensor_shape.dim] == [-1, 28, 28, 1]
    assert set(signatures.signature_def) == {"serving_default", "predict_images"}


def test_concurrent_small_requests_are_batched(served, crops):
    images = crops[0]
    before = served.stats.snapshot()
    barrier = threading.Barrier(16)
    results, errors = [], []

    def one(i):
        barrier.wait()
        try:
            results.append(PredictClient(served.target, "lenet5").predict(images[i:i + 1]).outputs["probabilities"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = served.stats.snapshot()
    assert not errors and len(results) == 16
    tasks, batches = after["tasks"] - before["tasks"], after["batches"] - before["batches"]
    assert tasks == 16 and batches < 16, after
    assert after["max_tasks_in_batch"] > 1


def test_request_larger_than_max_batch_is_rejected(served):
    big = np.zeros((257, 28, 28), np.uint8)
    assert _expect(grpc.StatusCode.INVALID_ARGUMENT, lambda: PredictClient(served.target, "lenet5").predict(big)) == \
        "Task size 257 is larger than maximum input batch size 256"


@pytest.mark.slow
def test_large_messages_pass(models_dir):
    """A 9.4 MB request: above gRPC's default 4 MB receive limit."""
    entries = [ModelEntry(name="lenet5", base_path=str(models_dir / "lenet5"), policy="latest")]
    server = build_local_server(entries, batching=None, port=0, tensor_content=True).start()
    try:
        images = np.zeros((12000, 28, 28), np.uint8)
        images[:, 8:20, 13:15] = 255
        result = PredictClient(server.target, "lenet5").predict(images)
        assert result.outputs["probabilities"].shape == (12000, 10)
    finally:
        server.stop(5)


def test_new_version_is_picked_up_without_failed_requests(models_dir, tmp_path, crops):
    shutil.copytree(models_dir / "lenet5" / "1", tmp_path / "lenet5" / "1")
    entries = [ModelEntry(name="lenet5", base_path=str(tmp_path / "lenet5"), policy="latest", num_latest=1)]
    server = build_local_server(entries, batching=BatchingOptions(max_batch_size=64, batch_timeout_micros=1000),
                                port=0, poll_s=1.0).start()
    client = PredictClient(server.target, "lenet5", timeout_s=10)
    seen, failures, stop = [], [], threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                seen.append((time.monotonic(), client.predict(crops[0][:4]).model_version))
            except grpc.RpcError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.5)
        # Publish version 2 the way the exporter does: write aside, rename in.
        shutil.copytree(models_dir / "lenet5" / "1", tmp_path / "lenet5" / ".staging")
        dropped = time.monotonic()
        os.rename(tmp_path / "lenet5" / ".staging", tmp_path / "lenet5" / "2")
        deadline = dropped + 5.0
        while time.monotonic() < deadline and not any(v == 2 for _, v in seen):
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.stop(5)
    first_v2 = min(t for t, v in seen if v == 2)
    assert first_v2 - dropped < 5.0
    assert not failures, failures[:3]
    assert {v for t, v in seen if t > first_v2 + 0.2} == {2}  # version 1 unloaded (latest 1)


@pytest.mark.slow
def test_sigterm_finishes_in_flight_requests(models_dir, tmp_path, crops):
    # A long batch timeout keeps requests in flight while the signal arrives.
    batching = tmp_path / "batching.config"
    batching.write_text("max_batch_size { value: 64 }\nbatch_timeout_micros { value: 1500000 }\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "formdigits", "serve", "--models-dir", str(models_dir), "--port", "0",
         "--batching-config", str(batching)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on" in line, proc.stderr.read()
        target = line.strip().rsplit(" ", 1)[-1]
        client = PredictClient(target, "lenet5", timeout_s=20)
        results, errors = [], []

        def call(i):
            try:
                results.append(client.predict(crops[0][i:i + 1]).model_version)
            except grpc.RpcError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # requests are now waiting in the batch queue
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=30)
        assert proc.wait(timeout=30) == 0
        assert not errors and results == [1, 1, 1, 1]
        assert "received SIGTERM" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_client_error_classification(served):
    def code_of(fn):
        with pytest.raises(grpc.RpcError) as info:
            fn()
        return info.value

    not_found = code_of(lambda: PredictClient(served.target, "nope").predict(np.zeros((1, 28, 28), np.uint8)))
    assert not is_retriable(not_found)
    # Nothing listens on this port: UNAVAILABLE, worth retrying.
    with socket_port() as port:
        pass
    unavailable = code_of(lambda: PredictClient(f"127.0.0.1:{port}", "lenet5", timeout_s=2).predict(
        np.zeros((1, 28, 28), np.uint8)))
    assert unavailable.code() == grpc.StatusCode.UNAVAILABLE and is_retriable(unavailable)
    assert not is_retriable(ValueError("not grpc"))


class socket_port:
    """A free loopback port, closed again on exit."""

    def __enter__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc):
        self.sock.close()


def test_dns_target_with_round_robin(served, crops):
    """`dns:///host:port` resolves every address and balances over them (replicas behind one name)."""
    from serving.client import channel_options

    target = f"dns:///localhost:{served.port}"
    assert ("grpc.lb_policy_name", "round_robin") in channel_options(target)
    result = PredictClient(target, "lenet5", timeout_s=10).predict(crops[0][:2])
    assert result.outputs["probabilities"].shape == (2, 10)


def test_auth_token_is_sent_as_metadata(models_dir, crops):
    """The bearer token travels as gRPC metadata (what an auth proxy in front of TF Serving checks)."""
    seen = []

    class Recorder(grpc.ServerInterceptor):
        def intercept_service(self, continuation, details):
            seen.append(dict(details.invocation_metadata).get("authorization"))
            return continuation(details)

    entries = [ModelEntry(name="lenet5", base_path=str(models_dir / "lenet5"), policy="latest")]
    server = build_local_server(entries, batching=None, port=0, interceptors=[Recorder()]).start()
    try:
        PredictClient(server.target, "lenet5", auth_token="s3cret").predict(crops[0][:1])
    finally:
        server.stop(5)
    assert seen == ["Bearer s3cret"]


@pytest.mark.slow
def test_an_idle_channel_is_not_sent_away_for_pinging(served):
    """A gRPC server by default (TF Serving's too) takes keepalive pings on a connection with no call in
    flight as abuse and, after two, closes it with GOAWAY "too_many_pings": the client must not send them.
    Keepalive here pings 60 times sooner than `channel_options` says, to see in seconds what takes minutes."""
    from tensorflow_serving.apis import model_service_pb2_grpc

    from serving.client import channel_options

    options = dict(channel_options(served.target)) | {"grpc.keepalive_time_ms": 500}
    channel = grpc.insecure_channel(served.target, options=list(options.items()))
    states = []
    channel.subscribe(states.append, try_to_connect=False)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "lenet5"
    model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
    time.sleep(5)  # idle: with pings, the server closes the connection after 3 s
    channel.unsubscribe(states.append)
    channel.close()
    assert states[-1] == grpc.ChannelConnectivity.READY, states
