"""The inference handler: pages' crops to TF Serving in batches, retries, and what it does with a refusal.

The failure paths use in-memory fakes (faults a real server cannot be made to
produce on demand); the batching runs against the real local server.
"""

import weakref

import grpc
import numpy as np
import pytest

from pipeline.inference.infer import InferenceFailed, PageReads, TFServingModelHandler, UnfitModel
from pipeline.types import DigitCut, FieldCut, PageCut


class _RpcError(grpc.RpcError):
    def __init__(self, code, details="x"):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


class _Result:
    def __init__(self, n, classes=10):
        self.outputs = {"probabilities": np.tile(np.eye(classes, dtype=np.float32)[2], (n, 1))}
        self.model_name, self.model_version = "lenet5", 7


class _Client:
    """What the handler needs of a PredictClient besides predict: the model's name and its signature check."""

    model_name = "lenet5"

    def check_signature(self, version=None):
        return version


class FailsOnce(_Client):
    """A client whose first call finds the server restarting."""

    def __init__(self):
        self.calls = 0

    def predict(self, images):
        self.calls += 1
        if self.calls == 1:
            raise _RpcError(grpc.StatusCode.UNAVAILABLE, "connection reset")
        return _Result(len(images))


class RefusesDarkCrops(_Client):
    """A client whose server refuses any request containing an all-ink crop."""

    def predict(self, images):
        if (images.reshape(len(images), -1).min(axis=1) == 255).any():
            raise _RpcError(grpc.StatusCode.INVALID_ARGUMENT, "bad crop")
        return _Result(len(images))


def _pages(n, bad=()):
    """n one-field pages of two crops each; a page in `bad` holds an all-ink crop."""
    pages = []
    for i in range(n):
        crops = [np.full((28, 28), 255 if i in bad else 0, np.uint8), np.zeros((28, 28), np.uint8)]
        digits = [DigitCut(k, c, (k, 0, 1, 1), c) for k, c in enumerate(crops)]
        pages.append(PageCut("s.png", i + 1, [FieldCut("t", "f", None, (0, 0, 1, 1), digits)]))
    return pages


def test_handler_retries_a_transient_failure():
    handler = TFServingModelHandler("127.0.0.1:1", num_retries=2)
    client = FailsOnce()
    results = list(handler.run_inference(_pages(3), client))
    assert client.calls == 2
    assert all(isinstance(r.inference, PageReads) and r.inference.model_versions == [7, 7] for r in results)


def test_handler_rejects_only_the_page_with_the_bad_crop():
    handler = TFServingModelHandler("127.0.0.1:1", num_retries=0)
    results = list(handler.run_inference(_pages(4, bad={2}), RefusesDarkCrops()))
    assert [type(r.inference) for r in results] == [PageReads, PageReads, InferenceFailed, PageReads]
    assert results[2].inference.error_type == "INVALID_ARGUMENT"
    assert results[2].inference.message == "INVALID_ARGUMENT: bad crop"


def test_handler_batches_pages_by_crops_and_splits_requests(server):
    handler = TFServingModelHandler(server.target, max_batch_size=3)
    kwargs = handler.batch_elements_kwargs()
    assert kwargs["max_batch_size"] == 3 and kwargs["element_size_fn"](_pages(1)[0]) == 2
    client = handler.create_client()
    weakref.ref(client)  # RemoteModelHandler keeps the client by weak reference
    sent = []

    class Recording:
        """The real client, each request's size noted."""

        def predict(self, crops):
            sent.append(len(crops))
            return client.predict(crops)

        def __getattr__(self, name):
            return getattr(client, name)

    results = list(handler.run_inference(_pages(5), Recording()))  # 10 crops: requests of 3, 3, 3, 1
    assert sent == [3, 3, 3, 1]
    assert [r.example.page for r in results] == [1, 2, 3, 4, 5]
    assert all(r.inference.probabilities.shape == (2, 10) for r in results)


def test_a_batch_is_measured_by_the_crops_it_sends_not_by_pickling_it():
    pages = _pages(3)
    assert TFServingModelHandler("localhost:1").get_num_bytes(pages) == sum(p.crops().nbytes for p in pages) == 4704


class AnswersThreeClasses(_Client):
    """A server whose model answers [N, 3]: what TF Serving serves when handed the wrong export."""

    def predict(self, images):
        return _Result(len(images), classes=3)


class LosesTheModelTwice(_Client):
    """A server swapping versions: NOT_FOUND twice, then the answer."""

    def __init__(self):
        self.calls = 0

    def predict(self, images):
        self.calls += 1
        if self.calls <= 2:
            raise _RpcError(grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(lenet5)")
        return _Result(len(images))


def test_an_answer_that_is_not_ten_probabilities_stops_the_job_not_a_page():
    handler = TFServingModelHandler("127.0.0.1:1", num_retries=0)
    with pytest.raises(UnfitModel, match=r"model lenet5 version 7 at 127.0.0.1:1 answered probabilities of shape "
                                         r"\[4, 3\] for 4 crops, not \[4, 10\]"):
        list(handler.run_inference(_pages(2), AnswersThreeClasses()))


def test_a_model_not_found_mid_run_is_waited_for_and_its_pages_read():
    handler = TFServingModelHandler("127.0.0.1:1", num_retries=0, serving_timeout_s=30)
    client = LosesTheModelTwice()
    results = list(handler.run_inference(_pages(2), client))
    assert client.calls == 3 and all(isinstance(r.inference, PageReads) for r in results)


class BusyThenFree(_Client):
    """A server that answers RESOURCE_EXHAUSTED `busy` times, then reads."""

    def __init__(self, busy):
        self.calls, self.busy = 0, busy

    def predict(self, images):
        self.calls += 1
        if self.calls <= self.busy:
            raise _RpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full")
        return _Result(len(images))


def test_a_busy_server_is_asked_again_by_the_handlers_one_policy_then_its_pages_are_refused():
    handler = TFServingModelHandler("127.0.0.1:1", num_retries=2)
    assert handler.num_retries == 0 and handler.busy_retries == 2  # Beam's retries are off: one policy
    client = BusyThenFree(busy=2)
    assert all(isinstance(r.inference, PageReads) for r in handler.run_inference(_pages(2), client))
    assert client.calls == 3
    client = BusyThenFree(busy=99)
    results = list(handler.run_inference(_pages(2), client))  # no exception, no dead letter: typed per page
    assert [r.inference.error_type for r in results] == ["RESOURCE_EXHAUSTED"] * 2
    assert client.calls == 3 + 2 * 3  # the batch three times, then each page three times


def test_a_dead_letter_is_a_typed_record_and_only_a_stop_stops_the_job():
    from pipeline.inference.infer import DeadLetter, ServingUnreachable

    stop = DeadLetter.from_beam((ServingUnreachable, "ServingUnreachable('x')",
                                 ["Traceback ...", "ServingUnreachable: TF Serving at h:1: unreachable for 120 s"]))
    assert stop.stops_the_job and stop.message == "TF Serving at h:1: unreachable for 120 s"
    fault = DeadLetter.from_beam((KeyError, "KeyError('f')", ["KeyError: 'f'"]))
    assert not fault.stops_the_job and (fault.error_type, fault.message) == ("KeyError", "'f'")
