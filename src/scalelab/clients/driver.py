"""The load driver: many threads sending requests, latencies and failures summed up as rows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalelab.clients.rest_grpc import Sent


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
    """The q-th percentile of latencies given in seconds, in milliseconds (NaN if none)."""
    if not len(latencies):
        return float("nan")
    return float(np.percentile(np.asarray(latencies) * 1000.0, q))


def run_load(
    send: Callable[[], Sent],
    *,
    requests: int = 100,
    seconds: float = 30.0,
    clients: int = 1,
    warmup: int = 2,
    instances: int = 1,
    progress: bool | None = None,
) -> dict[str, float]:
    """Call `send()` from `clients` threads until `requests` calls or `seconds` pass; summarise.

    The first `warmup` calls are discarded. Failures are counted, not raised. `instances` is
    the batch size of each call, for instances/s and bytes per instance.
    """
    if requests < 1 or seconds <= 0 or clients < 1:
        raise ValueError("requests and clients must be at least 1, and seconds positive.")
    for _ in range(warmup):
        try:
            send()
        except Exception:  # a failing server shows up in the measured calls
            break
    latencies: list[float] = []
    traffic = [0, 0]
    errors: list[str] = []
    lock = threading.Lock()
    issued = 0
    show = requests >= 2000 if progress is None else progress
    bar = _progress_bar(requests) if show else None
    started = time.perf_counter()
    deadline = started + seconds

    def client() -> None:
        nonlocal issued
        while True:
            with lock:
                if issued >= requests or time.perf_counter() > deadline:
                    return
                issued += 1
            begin = time.perf_counter()
            try:
                sizes = send()
            except Exception as exc:  # counted, not raised: a benchmark reports its failures
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            took = time.perf_counter() - begin
            with lock:
                latencies.append(took)
                if sizes:
                    traffic[0] += sizes[0]
                    traffic[1] += sizes[1]
                if bar is not None:
                    bar.update()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    elapsed = time.perf_counter() - started
    if bar is not None:
        bar.close()
    done = len(latencies)
    per_instance = max(done * instances, 1)
    return {
        "clients": clients,
        "batch size": instances,
        "requests": done,
        "errors": len(errors),
        "p50 ms": round(percentile_ms(latencies, 50), 3),
        "p90 ms": round(percentile_ms(latencies, 90), 3),
        "p99 ms": round(percentile_ms(latencies, 99), 3),
        "mean ms": round(float(np.mean(latencies)) * 1000, 3) if done else float("nan"),
        "requests/s": round(done / elapsed, 1),
        "instances/s": round(done * instances / elapsed, 1),
        "bytes sent/instance": round(traffic[0] / per_instance, 1),
        "bytes received/instance": round(traffic[1] / per_instance, 1),
    }


def _progress_bar(total: int) -> Any:
    """A tqdm bar for long runs (plain text outside notebooks)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="req", leave=False)


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, min and max of `values` (NaN if none): what repeats support."""
    if not len(values):
        nan = float("nan")
        return {"median": nan, "q25": nan, "q75": nan, "min": nan, "max": nan}
    q25, median, q75 = (float(v) for v in np.percentile(np.asarray(values, float), [25, 50, 75]))
    return {
        "median": median,
        "q25": q25,
        "q75": q75,
        "min": float(np.min(values)),
        "max": float(np.max(values)),
    }


def load_summary(result: dict[str, Any], clients: int, instances: int = 1) -> dict[str, Any]:
    """A load generator's {"latencies", "errors", "seconds"} as one row, like run_load's."""
    latencies, seconds = list(result["latencies"]), max(float(result["seconds"]), 1e-9)
    return {
        "clients": clients,
        "batch size": instances,
        "requests": len(latencies),
        "errors": len(result["errors"]),
        "p50 ms": round(percentile_ms(latencies, 50), 3),
        "p90 ms": round(percentile_ms(latencies, 90), 3),
        "p99 ms": round(percentile_ms(latencies, 99), 3),
        "requests/s": round(len(latencies) / seconds, 1),
        "instances/s": round(len(latencies) * instances / seconds, 1),
    }


def grpc_load(
    target: str, request: Any, clients: int, requests_per_client: int, timeout: float = 10.0
) -> dict[str, Any]:
    """The gRPC load generator: `clients` threads share one channel (channels are thread-safe).

    Each thread calls Predict `requests_per_client` times with a deadline of `timeout` seconds;
    returns {"latencies": [s of each answered call], "errors": [each failure], "seconds": wall}.
    """
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def client() -> None:
            for _ in range(requests_per_client):
                started = time.perf_counter()
                try:
                    stub.Predict(request, timeout=timeout)
                except grpc.RpcError as error:
                    with lock:
                        errors.append(f"{error.code().name}: {error.details()}")
                    continue
                with lock:
                    latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - began
    return {"latencies": latencies, "errors": errors, "seconds": seconds}


@contextmanager
def sessions_by_thread() -> Iterator[dict[int, set[int]]]:
    """While the block runs, note which threads send through each requests.Session.

    Yields {id(session): {thread ids}}; the sessions are kept alive until the block ends, so an
    id is never reused for another session in the meantime. A thread's id may be reused once the
    thread has ended: only threads that overlap in time are sure to count apart.
    """
    import requests

    seen: dict[int, set[int]] = {}
    alive: list[Any] = []
    lock = threading.Lock()
    original = requests.Session.send

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        with lock:
            if id(self) not in seen:
                alive.append(self)
            seen.setdefault(id(self), set()).add(threading.get_ident())
        return original(self, request, **kwargs)

    setattr(requests.Session, "send", send)  # noqa: B010
    try:
        yield seen
    finally:
        setattr(requests.Session, "send", original)  # noqa: B010
        alive.clear()


def call_within(seconds: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)`, or AssertionError if it has not returned after `seconds`.

    The call runs in a daemon thread, so a call that hangs (a request without a timeout to a
    server that never answers) fails the test that made it instead of hanging the notebook.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True, name="call-within")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        name = getattr(fn, "__name__", repr(fn))
        raise AssertionError(
            f"{name} did not return within {seconds:g} s: does every request have a timeout?"
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
