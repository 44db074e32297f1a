"""Chapter 3's reference answers (REST vs gRPC): what its tests compare against, and what later
cells fall back to when an exercise is unanswered."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from scalelab.clients import driver

Row = dict[str, Any]


def predict_request(images: np.ndarray, model: str = "digits", input_name: str = "images") -> Any:
    """The smallest PredictRequest carrying `images`: model name and one input, nothing else."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs[input_name].CopyFrom(tf.make_tensor_proto(np.asarray(images)))
    return request


def payload_sizes(images: np.ndarray) -> dict[str, int]:
    """Request body bytes of `images` as row JSON, columnar JSON (default separators), protobuf."""
    values = np.asarray(images).tolist()
    row = json.dumps({"instances": values}).encode("utf-8")
    columnar = json.dumps({"inputs": {"images": values}}).encode("utf-8")
    return {
        "json_row": len(row),
        "json_columnar": len(columnar),
        "protobuf": predict_request(images).ByteSize(),
    }


def sweep_batch_sizes(
    client: Any, images: np.ndarray, batch_sizes: Sequence[int], requests: int
) -> list[Row]:
    """One driver.run_load row per batch size, in order, each request sending the first b images."""

    def sender(batch: np.ndarray) -> Callable[[], Any]:
        return lambda: client.predict(batch)

    return [
        driver.run_load(sender(images[:size]), requests=requests, instances=size)
        for size in batch_sizes
    ]


def gzip_rest_predict(rest_url: str, model: str, images: np.ndarray) -> Any:
    """POST `images` as row JSON, gzip-compressed (Content-Encoding: gzip); the answer's JSON."""
    import gzip

    import requests

    body = gzip.compress(json.dumps({"instances": np.asarray(images).tolist()}).encode())
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    answer = requests.post(
        f"{rest_url}/v1/models/{model}:predict", data=body, headers=headers, timeout=30
    )
    answer.raise_for_status()
    return answer.json()


def gzip_grpc_predict(target: str, model: str, images: np.ndarray) -> Any:
    """Call Predict with `images`, the request compressed with gzip; the PredictResponse."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return stub.Predict(
            predict_request(images, model), timeout=30, compression=grpc.Compression.Gzip
        )


def load_test(
    url: str, body: bytes, clients: int, requests_per_client: int, timeout: float = 10.0
) -> dict[str, Any]:
    """POST `body` to `url` from `clients` threads, `requests_per_client` times each.

    Each thread keeps its own requests.Session (one connection); every request has a `timeout`.
    Returns {"latencies": [seconds of each answered request], "errors": [each failure, as text],
    "seconds": wall-clock time of the whole load}: a failure is an error, never a latency.
    """
    import threading
    import time

    import requests

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    headers = {"Content-Type": "application/json"}

    def client() -> None:
        with requests.Session() as session:
            for _ in range(requests_per_client):
                started = time.perf_counter()
                try:
                    answer = session.post(url, data=body, headers=headers, timeout=timeout)
                    answer.raise_for_status()
                except requests.RequestException as error:
                    with lock:
                        errors.append(f"{type(error).__name__}: {error}")
                    continue
                took = time.perf_counter() - started
                with lock:
                    latencies.append(took)

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latencies": latencies, "errors": errors, "seconds": time.perf_counter() - began}
