"""Several model servers on one base path, each exporting its Prometheus metrics: started and
stopped together, scraped, and asked which version answers."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import requests

from . import start
from .local.monitoring import DEFAULT_PATH
from .server import Server

POLL_FLAG = "--file_system_poll_wait_seconds=1"
_PREDICTIONS = re.compile(r"^:tensorflow:serving:request_latency_count\{(.*)\} (\S+)$")
_BUCKET = re.compile(r'^:tensorflow:serving:request_latency_bucket\{(.*),le="([^"]+)"\} (\S+)$')


def monitoring_flags(folder: str | Path) -> list[str]:
    """Flags that export TF Serving's Prometheus metrics at DEFAULT_PATH, and poll every second."""
    config = Path(folder) / "monitoring.config"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("prometheus_config { enable: true }\n")
    return [f"--monitoring_config_file={config}", POLL_FLAG]


@contextlib.contextmanager
def started(count: int, **start_args: Any) -> Iterator[list[Server]]:
    """`count` servers started by serving.start(**start_args), all stopped on leaving."""
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(start(**start_args)) for _ in range(count)]
        yield servers


def scrape(server: Server) -> str:
    """The server's Prometheus text."""
    answer = requests.get(f"{server.rest_url}{DEFAULT_PATH}", timeout=10)
    answer.raise_for_status()
    return answer.text


def latency_buckets(
    metrics_text: str, model: str = "digits", entrypoint: str = "GRPC"
) -> list[tuple[float, float]]:
    """(upper bound in ms, cumulative count) of the request latency histogram of `model`'s
    Predict calls through `entrypoint` (GRPC or REST), summed over the APIs."""
    counts: dict[float, float] = {}
    for line in metrics_text.splitlines():
        found = _BUCKET.match(line)
        if found and f'model_name="{model}"' in found[1] and f'"{entrypoint}"' in found[1]:
            bound = float(found[2]) / 1000  # microseconds; "+Inf" reads as inf
            counts[bound] = counts.get(bound, 0.0) + float(found[3])
    return sorted(counts.items())


def rest_predictions(metrics_text: str, model: str = "digits") -> float:
    """How many REST :predict requests for `model` a server answered, from its Prometheus text."""
    labels = (f'model_name="{model}"', 'API="predict"', 'entrypoint="REST"')
    return sum(
        float(found[2])
        for line in metrics_text.splitlines()
        if (found := _PREDICTIONS.match(line)) and all(label in found[1] for label in labels)
    )


def predict_request(model: str, images: np.ndarray, version: int | None = None) -> Any:
    """A PredictRequest for `images` (the input `images`), pinned to `version` if given."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
    return request


def answering_versions(
    servers: Sequence[Server],
    images: np.ndarray,
    seconds: float,
    pin: Callable[[], int | None] | None = None,
    model: str = "digits",
    interval: float = 0.02,
) -> list[dict[str, Any]]:
    """Ask every server in turn for `seconds`: one row per call with the time, the server, the
    version that answered (or the error). `pin()` gives the version to ask for, None the latest."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channels = [grpc.insecure_channel(server.grpc_target) for server in servers]
    stubs = [prediction_service_pb2_grpc.PredictionServiceStub(c) for c in channels]
    rows: list[dict[str, Any]] = []
    began = time.monotonic()
    try:
        while time.monotonic() - began < seconds:
            version = pin() if pin else None
            for index, stub in enumerate(stubs):
                row: dict[str, Any] = {"seconds": time.monotonic() - began, "replica": index}
                try:
                    answer = stub.Predict(predict_request(model, images, version), timeout=10)
                    row |= {"version": answer.model_spec.version.value, "error": ""}
                except grpc.RpcError as error:
                    row |= {"version": None, "error": error.code().name}
                rows.append(row)
            time.sleep(interval)
    finally:
        for channel in channels:
            channel.close()
    return rows


def mixed_window(rows: Sequence[dict[str, Any]]) -> float:
    """Seconds from the first answer by a newer version to the last by an older one (0: never
    mixed). Rows as answering_versions returns them."""
    answered = [row for row in rows if row["version"] is not None]
    versions = sorted({row["version"] for row in answered})
    if len(versions) < 2:
        return 0.0
    newest_first = min(r["seconds"] for r in answered if r["version"] == versions[-1])
    older_last = max(r["seconds"] for r in answered if r["version"] != versions[-1])
    return max(0.0, float(older_last - newest_first))


def calls_per_replica(
    servers: Sequence[Server],
    channel: Any,
    images: np.ndarray,
    calls: int,
    count: Callable[[str], float],
    model: str = "digits",
    settle: float = 2.0,
) -> list[float]:
    """Send `calls` Predict calls over one `channel`; the calls each server answered, as
    `count(its Prometheus text)` rose meanwhile. Warm-up calls come first, until every server has
    answered one or `settle` seconds have passed: a new channel connects to its addresses in the
    background, and a call made before a connection is up can only go to the servers already
    connected (a pick_first channel uses one address: it warms up for `settle` seconds)."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_request(model, images)
    baseline = [count(scrape(server)) for server in servers]
    deadline = time.monotonic() + settle
    while True:
        stub.Predict(request, timeout=10)
        answered = [count(scrape(s)) - b for s, b in zip(servers, baseline, strict=True)]
        if min(answered) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    before = [count(scrape(server)) for server in servers]
    for _ in range(calls):
        stub.Predict(request, timeout=10)
    return [count(scrape(server)) - b for server, b in zip(servers, before, strict=True)]


def kill_under_load(
    servers: Sequence[Server],
    options: Sequence[tuple[str, Any]],
    images: np.ndarray,
    seconds: float,
    kill_at: float,
    clients: int = 8,
    model: str = "digits",
) -> dict[str, Any]:
    """`clients` threads call Predict for `seconds` over one channel to every server (`ipv4:`
    target, channel `options`); the last server is killed after `kill_at` seconds. The calls
    answered and failed (by status code), and each failure's time."""
    import threading

    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    target = "ipv4:" + ",".join(server.grpc_target for server in servers)
    request = predict_request(model, images)
    answered, failed, lock = [0], [], threading.Lock()
    began = time.monotonic()
    with grpc.insecure_channel(target, options=list(options)) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def client() -> None:
            while time.monotonic() - began < seconds:
                try:
                    stub.Predict(request, timeout=10)
                    with lock:
                        answered[0] += 1
                except grpc.RpcError as error:
                    with lock:
                        failed.append((time.monotonic() - began, error.code().name))

        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for thread in threads:
            thread.start()
        time.sleep(kill_at)
        servers[-1].kill()
        for thread in threads:
            thread.join(seconds + 30)
    codes = sorted({code for _, code in failed})
    return {
        "answered": answered[0],
        "failed": len(failed),
        "failed by code": {code: sum(1 for _, c in failed if c == code) for code in codes},
        "failure times": [round(t, 3) for t, _ in failed],
    }
