"""A local run's Beam worker processes: stop the run in one line when one of them dies.

Beam's DirectRunner in multi_processing mode starts one `sdk_worker_main` subprocess per worker and
waits on each bundle's control future. When a worker is killed (the OOM killer, kill -9), the thread
that started it raises "Worker subprocess exited with return code -9" and ends, but nothing fails the
bundle the worker held: the driver waits for it for ever. `stop_on_dead_worker` hears that thread's
exception, interrupts the main thread with a signal, and raises `WorkerDied`; the run's own clean-up
then commits the whole pages already staged. The runner's threads that still wait on the dead worker
cannot be joined, so the command that catches `WorkerDied` ends its process with `os._exit`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import psutil

__all__ = ["WorkerDied", "stop_on_dead_worker", "worker_processes"]

# Beam's own words, from local_job_service.SubprocessSdkWorker.run.
_WORKER_EXITED = "Worker subprocess exited with return code"
_WAKE_SIGNAL = signal.SIGUSR1
# Workers inherit the driver's environment: this marks them as ours even once a killed `sh -c` wrapper
# has left its worker to init.
_DRIVER_MARK = "FORMDIGITS_DRIVER_PID"


class WorkerDied(Exception):
    """A Beam worker process ended in the middle of a run."""


def worker_processes() -> list[psutil.Process]:
    """Returns the Beam SDK worker processes this process started (not the embedded model server)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any("sdk_worker_main" in part for part in process.info["cmdline"] or ()) \
                    and process.environ().get(_DRIVER_MARK) == str(os.getpid()):
                found.append(process)
    return found


@contextlib.contextmanager
def stop_on_dead_worker(poll_s: float = 0.5):
    """Makes a Beam worker that dies within this block raise `WorkerDied` in the main thread.

    Outside the main thread (where no signal handler can be set) the block runs unwatched.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    earlier_mark = os.environ.get(_DRIVER_MARK)
    os.environ[_DRIVER_MARK] = str(os.getpid())
    earlier_hook = threading.excepthook
    watch = _Watch(threading.get_ident(), poll_s, earlier_hook)
    earlier_handler = signal.signal(_WAKE_SIGNAL, watch.raise_in_main)
    threading.excepthook = watch.hear_worker_exit
    watch.start()
    try:
        yield
    finally:
        watch.stop()
        if watch.died:
            _stop_workers()
        signal.signal(_WAKE_SIGNAL, earlier_handler)
        threading.excepthook = earlier_hook
        if earlier_mark is None:
            os.environ.pop(_DRIVER_MARK, None)
        else:
            os.environ[_DRIVER_MARK] = earlier_mark


class _Watch(threading.Thread):
    """Once a worker has died, signals the main thread until it leaves the block: a Beam frame that
    swallowed one raise gets another."""

    def __init__(self, main_ident: int, poll_s: float, earlier_hook):
        super().__init__(daemon=True, name="worker-watch")
        self.main_ident, self.poll_s, self.earlier_hook = main_ident, poll_s, earlier_hook
        self.died: list[str] = []
        self.stopping = threading.Event()

    def hear_worker_exit(self, args) -> None:
        if _WORKER_EXITED not in str(args.exc_value):
            self.earlier_hook(args)
        elif not self.died:
            self.died.append(str(args.exc_value).replace(_WORKER_EXITED, "exit code").strip())

    def raise_in_main(self, signum, frame) -> None:
        if self.died and not self.stopping.is_set():
            raise WorkerDied(f"a Beam worker process died ({self.died[0]})")

    def run(self) -> None:
        while not self.stopping.wait(self.poll_s):
            if self.died:
                signal.pthread_kill(self.main_ident, _WAKE_SIGNAL)  # wakes the main thread from its wait

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def _stop_workers(wait_s: float = 5.0) -> None:
    """Kills the workers still alive, so that their runner threads end and say nothing more."""
    workers = worker_processes()
    for worker in workers:
        with contextlib.suppress(psutil.Error):
            worker.kill()
    psutil.wait_procs(workers, timeout=wait_s)
    deadline = time.monotonic() + wait_s
    for thread in threading.enumerate():
        if thread.name == "run_worker":
            thread.join(max(0.0, deadline - time.monotonic()))
