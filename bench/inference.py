"""Inference throughput: the gRPC server against the same SavedModel in-process.

Both sides are measured in one run on the same machine, so the ratios hold on
a noisy, shared machine where absolute figures drift. The server runs in its
own process (as in production), started by `ServerProcess` on a free
loopback port; clients are threads of this process.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from serving.client import PredictClient
from serving.server.engine import ServerProcess
from serving.server.models import versions_on_disk

__all__ = ["bench_inference"]


def _rate(fn, batch: int, seconds: float, min_calls: int = 3) -> float:
    """Images per second of `fn()` (one call = `batch` images), after one warm-up call."""
    fn()
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls * batch / (time.perf_counter() - start)


def _in_process(path: str, images: np.ndarray, batch_sizes, seconds: float, log) -> dict[int, float]:
    """Images/s of the SavedModel's serving_default called in this process."""
    import tensorflow as tf  # only this part of the suite runs TensorFlow in the benchmark's own process

    signature = tf.saved_model.load(path).signatures["serving_default"]
    rates = {}
    for b in batch_sizes:
        x = tf.constant(images[:b])
        rates[b] = _rate(lambda: signature(images=x)["probabilities"].numpy(), b, seconds)
        log(f"  in-process  batch {b:>4}: {rates[b]:>9,.0f} images/s")
    return rates


def bench_inference(models_dir: str, model: str = "lenet5", batch_sizes=(1, 16, 64, 256), clients=(1, 4),
                    seconds: float = 2.0, log=print) -> dict:
    """Measures images/s in-process and through gRPC.

    Returns:
        A dict with per-batch-size figures and the ratios
        `grpc_vs_inprocess_ratio` (largest batch) and
        `batched_vs_unbatched_speedup` (largest batch vs batch 1, through gRPC).
    """
    versions = versions_on_disk(os.path.join(models_dir, model))
    if not versions:
        raise FileNotFoundError(f"no {model} under {models_dir}; train one: formdigits train --export-dir {models_dir}")
    path = os.path.join(models_dir, model, str(versions[-1]))
    images = np.random.default_rng(0).integers(0, 256, size=(max(batch_sizes), 28, 28, 1), dtype=np.uint8)
    in_process = _in_process(path, images, batch_sizes, seconds, log)
    with ServerProcess(models_dir) as server:
        client = PredictClient(server.target, model, timeout_s=60)
        client.wait_until_available(60)
        grpc_rates = {}
        for b in batch_sizes:
            grpc_rates[b] = _rate(lambda: client.predict(images[:b]), b, seconds)
            log(f"  gRPC        batch {b:>4}: {grpc_rates[b]:>9,.0f} images/s  "
                f"({grpc_rates[b] / in_process[b]:.2f}x in-process)")
        concurrent = {}
        b = 64 if 64 in batch_sizes else batch_sizes[-1]
        for n in clients:
            concurrent[n] = _concurrent_rate(client, images[:b], n, seconds)
            log(f"  gRPC {n} clients batch {b:>4}: {concurrent[n]:>9,.0f} images/s")
    big, small = max(batch_sizes), min(batch_sizes)
    return {
        "model": model,
        "model_path": path,
        "inprocess_images_per_s": {str(k): round(v, 1) for k, v in in_process.items()},
        "grpc_images_per_s": {str(k): round(v, 1) for k, v in grpc_rates.items()},
        "grpc_concurrent_clients_images_per_s": {str(k): round(v, 1) for k, v in concurrent.items()},
        "concurrent_batch_size": b,
        "grpc_vs_inprocess_ratio": round(grpc_rates[big] / in_process[big], 3),
        "batched_vs_unbatched_speedup": round(grpc_rates[big] / grpc_rates[small], 1),
    }


def _concurrent_rate(client, batch: np.ndarray, n: int, seconds: float) -> float:
    counts = [0] * n
    stop = threading.Event()

    def run(i):
        while not stop.is_set():
            client.predict(batch)
            counts[i] += 1

    client.predict(batch)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) * len(batch) / (time.perf_counter() - start)
