"""Server-side batching: many small concurrent requests become one model call.

Modelled on TF Serving's shared batch scheduler and its `BatchingParameters`:
a task waits at most `batch_timeout_micros` for others to join it, a batch
holds at most `max_batch_size` rows, at most `max_enqueued_batches` batches'
worth of rows may wait, and `num_batch_threads` batches run at once. Only tasks
that can be concatenated (same model version, dtypes and inner shapes) share a
batch.
"""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future
from typing import Callable, Hashable

import numpy as np

from serving.server.config import BatchingOptions

__all__ = ["BatchScheduler", "TaskTooLarge", "QueueFull", "BatchStats"]


class TaskTooLarge(ValueError):
    """A request has more rows than a batch may hold (TF Serving: INVALID_ARGUMENT)."""


class QueueFull(RuntimeError):
    """Too much work is waiting (TF Serving: UNAVAILABLE)."""


class BatchStats:
    """Counters that show batching at work."""

    def __init__(self):
        self._lock = threading.Lock()
        self.batches = 0
        self.tasks = 0
        self.rows = 0
        self.max_tasks_in_batch = 0

    def record(self, tasks: int, rows: int) -> None:
        with self._lock:
            self.batches += 1
            self.tasks += tasks
            self.rows += rows
            self.max_tasks_in_batch = max(self.max_tasks_in_batch, tasks)

    def snapshot(self) -> dict:
        with self._lock:
            return {"batches": self.batches, "tasks": self.tasks, "rows": self.rows,
                    "max_tasks_in_batch": self.max_tasks_in_batch}


class _Task:
    __slots__ = ("key", "inputs", "rows", "future", "enqueued")

    def __init__(self, key, inputs, rows):
        self.key, self.inputs, self.rows = key, inputs, rows
        self.future: Future = Future()
        self.enqueued = time.monotonic()


class BatchScheduler:
    """Queues tasks and runs them in batches on a few threads.

    Args:
        options: batch size, timeout, queue depth and thread count.
        run_batch: called with (key, inputs dict of concatenated arrays); returns
            a dict of output arrays whose first dimension matches the inputs'.
        stats: counters to update (shared across schedulers if given).
    """

    def __init__(self, options: BatchingOptions, run_batch: Callable[[Hashable, dict], dict],
                 stats: BatchStats | None = None, name: str = "batch"):
        self.options = options
        self._run_batch = run_batch
        self.stats = stats or BatchStats()
        self._queue: collections.deque[_Task] = collections.deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._forming = threading.Lock()  # one thread forms a batch while others run theirs
        self._stopped = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(max(1, options.num_batch_threads))]
        for t in self._threads:
            t.start()

    def submit(self, key: Hashable, inputs: dict[str, np.ndarray]) -> Future:
        rows = next(iter(inputs.values())).shape[0] if inputs else 0
        if rows > self.options.max_batch_size:
            raise TaskTooLarge(f"Task size {rows} is larger than maximum input batch size "
                               f"{self.options.max_batch_size}")
        task = _Task(key, inputs, rows)
        with self._cond:
            if self._stopped:
                raise QueueFull("The batch scheduler is shutting down")
            if self._queued_rows + rows > self.options.max_enqueued_batches * self.options.max_batch_size:
                raise QueueFull("The batch scheduling queue to which this task was submitted is full")
            self._queue.append(task)
            self._queued_rows += rows
            self._cond.notify_all()
        return task.future

    def _take_batch(self) -> list[_Task] | None:
        with self._forming, self._cond:
            while not self._queue:
                if self._stopped:
                    return None
                self._cond.wait()
            first = self._queue[0]
            deadline = first.enqueued + self.options.timeout_s
            while not self._stopped:
                ready = sum(t.rows for t in self._queue if t.key == first.key)
                remaining = deadline - time.monotonic()
                if ready >= self.options.max_batch_size or remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch, rows, keep = [], 0, collections.deque()
            while self._queue:
                task = self._queue.popleft()
                if task.key == first.key and rows + task.rows <= self.options.max_batch_size:
                    batch.append(task)
                    rows += task.rows
                else:
                    keep.append(task)
            self._queue = keep
            self._queued_rows -= rows
            return batch

    def _work(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            self._run(batch)

    def _run(self, batch: list[_Task]) -> None:
        try:
            if len(batch) == 1:
                inputs = batch[0].inputs
            else:
                inputs = {alias: np.concatenate([t.inputs[alias] for t in batch]) for alias in batch[0].inputs}
            outputs = self._run_batch(batch[0].key, inputs)
            self.stats.record(len(batch), sum(t.rows for t in batch))
            start = 0
            for task in batch:
                end = start + task.rows
                task.future.set_result({k: v[start:end] for k, v in outputs.items()})
                start = end
        except BaseException as exc:  # every waiting request learns about the failure
            for task in batch:
                if not task.future.done():
                    task.future.set_exception(exc)

    def stop(self) -> None:
        """Runs what is queued, then stops the threads."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=10)
        while self._queue:  # anything left after the threads ended
            self._run([self._queue.popleft()])
