"""Chapter 3's reference answers (REST vs gRPC): what its tests compare against, and what later
cells fall back to when an exercise is unanswered."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from scalelab import bench

Row = dict[str, Any]


def percentiles_ms(
    latencies: Sequence[float], qs: Iterable[float] = (50, 90, 99)
) -> dict[float, float]:
    """{q: q-th percentile in ms} of latencies in seconds, interpolated linearly (NumPy's way)."""
    return {q: bench.percentile_ms(latencies, q) for q in qs}


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
    """One bench.run_load row per batch size, in order, each request sending the first b images."""

    def sender(batch: np.ndarray) -> Callable[[], Any]:
        return lambda: client.predict(batch)

    return [
        bench.run_load(sender(images[:size]), requests=requests, instances=size)
        for size in batch_sizes
    ]


def first_batch_size_above(rows: Sequence[Row], ratio: float) -> int | None:
    """Smallest batch size where gRPC's instances/s over REST row's exceeds `ratio`, else None."""
    speed = {(r["protocol"], r["batch size"]): r["instances/s"] for r in rows}
    sizes: set[int] = {r["batch size"] for r in rows}
    for size in sorted(sizes):
        grpc_speed, rest_speed = speed.get(("gRPC", size)), speed.get(("REST row", size))
        if grpc_speed is not None and rest_speed and grpc_speed / rest_speed > ratio:
            return size
    return None
