"""Measuring requests: a steady background load, recorded request by request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Sample:
    """One request: when it started (s since the load began), how long it took, what it returned."""

    start: float
    latency: float
    result: Any = None
    error: str | None = None


@contextmanager
def background_load(
    send: Callable[[], Any], *, interval: float = 0.01, max_requests: int = 10_000
) -> Iterator[list[Sample]]:
    """Call `send()` every `interval` seconds in a thread while the block runs; yield the samples.

    A failed call is recorded with its error, not raised, so the load survives what it observes.
    """
    samples: list[Sample] = []
    stop = threading.Event()
    origin = time.perf_counter()

    def loop() -> None:
        while not stop.is_set() and len(samples) < max_requests:
            started = time.perf_counter()
            try:
                result, error = send(), None
            except Exception as exc:  # recorded, and shown in the results
                result, error = None, f"{type(exc).__name__}: {exc}"
            samples.append(Sample(started - origin, time.perf_counter() - started, result, error))
            stop.wait(interval)

    thread = threading.Thread(target=loop, name="background-load", daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(timeout=30)


def percentile_ms(latencies: Sequence[float], q: float) -> float:
    """The q-th percentile of latencies given in seconds, in milliseconds."""
    return (
        float(np.percentile(np.asarray(latencies) * 1000.0, q)) if len(latencies) else float("nan")
    )


def concurrent_requests(
    send: Callable[[], Any], *, clients: int = 8, requests: int = 200, timeout: float = 120
) -> dict[str, float]:
    """Send `requests` calls from `clients` threads at once; return throughput and latency."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    remaining = iter(range(requests))

    def client() -> None:
        while True:
            with lock:
                if next(remaining, None) is None:
                    return
            started = time.perf_counter()
            try:
                send()
            except Exception as exc:  # counted, not raised: a benchmark reports its failures
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    seconds = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": requests,
        "errors": len(errors),
        "requests/s": round(len(latencies) / seconds, 1),
        "p50 ms": round(percentile_ms(latencies, 50), 2),
        "p99 ms": round(percentile_ms(latencies, 99), 2),
    }
