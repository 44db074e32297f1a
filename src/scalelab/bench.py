"""Measuring a model server: REST and gRPC clients, a bounded load driver, tidy result rows.

`python -m scalelab.bench rest-vs-grpc` runs the whole REST-vs-gRPC sweep on a local server;
`python -m scalelab.bench tflite` compares TFLite variants with the Keras model.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

Sent = tuple[int, int] | None  # (bytes sent, bytes received) of one request, when known


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


class RestClient:
    """Sends :predict requests with `requests` over one persistent session."""

    def __init__(
        self, rest_url: str, model: str, *, columnar: bool = False, compress: bool = False
    ) -> None:
        import requests

        self.url = f"{rest_url}/v1/models/{model}:predict"
        self.columnar = columnar
        self.compress = compress
        self.session = requests.Session()
        self.headers = {"Content-Type": "application/json"}
        if compress:
            self.headers["Content-Encoding"] = "gzip"

    def body(self, inputs: np.ndarray, input_name: str = "images") -> bytes:
        """The request body: row or columnar JSON, gzip-compressed if asked."""
        values = inputs.tolist()
        document = {"inputs": {input_name: values}} if self.columnar else {"instances": values}
        data = json.dumps(document, separators=(",", ":")).encode()
        return gzip.compress(data, compresslevel=1) if self.compress else data

    def predict(self, inputs: np.ndarray) -> tuple[int, int]:
        """Send one request; return (bytes sent, bytes received); raise on an HTTP error."""
        data = self.body(inputs)
        answer = self.session.post(self.url, data=data, headers=self.headers, timeout=120)
        answer.raise_for_status()
        return len(data), len(answer.content)


class GrpcClient:
    """Sends PredictRequests over one gRPC channel with `tensorflow-serving-api` stubs."""

    MAX_MESSAGE = 2**31 - 1  # lift the client's 4 MB default, as large batches need

    def __init__(self, target: str, model: str) -> None:
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        options = [
            ("grpc.max_send_message_length", self.MAX_MESSAGE),
            ("grpc.max_receive_message_length", self.MAX_MESSAGE),
        ]
        self.channel = grpc.insecure_channel(target, options=options)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model = model

    def request(self, inputs: np.ndarray, input_name: str = "images") -> Any:
        """The PredictRequest for `inputs`."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model
        request.inputs[input_name].CopyFrom(tf.make_tensor_proto(inputs))
        return request

    def predict(self, inputs: np.ndarray) -> tuple[int, int]:
        """Send one request; return (bytes sent, bytes received); raise on a gRPC error."""
        request = self.request(inputs)
        reply = self.stub.Predict(request, timeout=120)
        return request.ByteSize(), reply.ByteSize()

    def close(self) -> None:
        self.channel.close()


def rest_vs_grpc(
    rest_url: str,
    grpc_target: str,
    model: str,
    images: np.ndarray,
    batch_sizes: Sequence[int] = (1, 16, 64, 256, 1024),
    requests: int = 100,
) -> list[dict[str, Any]]:
    """Throughput and latency of each protocol at each batch size, one row per measurement."""
    protocols: dict[str, Any] = {
        "REST row": RestClient(rest_url, model),
        "REST columnar": RestClient(rest_url, model, columnar=True),
        "REST gzip": RestClient(rest_url, model, compress=True),
        "gRPC": GrpcClient(grpc_target, model),
    }
    rows = []
    for batch_size in batch_sizes:
        batch = np.resize(images, (batch_size, *images.shape[1:]))
        count = max(10, requests // max(1, batch_size // 64))
        for name, client in protocols.items():
            send = lambda c=client, b=batch: c.predict(b)  # noqa: E731
            row = run_load(send, requests=count, instances=batch_size)
            rows.append({"protocol": name, **row})
    return rows


def ratio(rows: Sequence[dict[str, Any]], batch_size: int, column: str = "instances/s") -> float:
    """gRPC's `column` divided by REST row's at `batch_size`, from rest_vs_grpc()'s rows."""
    value = {r["protocol"]: r[column] for r in rows if r["batch size"] == batch_size}
    return value["gRPC"] / value["REST row"]


def tflite_vs_keras() -> list[str]:
    """Size, accuracy and latency of int8 TFLite (PTQ and QAT) against float, in one run."""
    import tempfile
    from pathlib import Path

    import tensorflow as tf

    from scalelab import data, models, tflite

    digits = data.load("digits")
    x_train, x_test = data.scale(digits.x_train), data.scale(digits.x_test)
    model, _ = models.train_classifier(digits, epochs=20, hidden=256, depth=2)
    with tempfile.TemporaryDirectory() as scratch:
        model.export(Path(scratch), verbose=False)
        variants = {}
        for mode in ("float", "int8"):
            converter = tf.lite.TFLiteConverter.from_saved_model(scratch)
            if mode == "int8":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.representative_dataset = lambda: ([x[None]] for x in x_train[:200])
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.inference_input_type = converter.inference_output_type = tf.int8
            with tflite.native_stderr_silenced():
                variants[mode] = converter.convert()
    one = x_test[:1]
    runner = tflite.interpreter(variants["int8"])
    keras_ms = 1000 * tflite.seconds(lambda: model.predict(one, verbose=0), 20)
    lite_ms = 1000 * tflite.seconds(lambda: tflite.predict(runner, one), 200)
    qat = tflite.quantization_aware(epochs=6)
    drop = {k: 100 * (qat["float_accuracy"] - qat[f"{k}_int8_accuracy"]) for k in ("ptq", "qat")}
    kb = {mode: len(model_bytes) / 1024 for mode, model_bytes in variants.items()}
    return [
        f"size float {kb['float']:.1f} KB, int8 {kb['int8']:.1f} KB",
        f"single sample: Keras predict {keras_ms:.2f} ms, TFLite int8 interpreter {lite_ms:.4f} ms",
        f"accuracy ({qat['keras']}): float {qat['float_accuracy']:.4f}, "
        f"PTQ int8 {qat['ptq_int8_accuracy']:.4f}, QAT int8 {qat['qat_int8_accuracy']:.4f}",
        f"size ratio int8/float: {kb['int8'] / kb['float']:.2f}",
        f"accuracy drop vs float: PTQ int8 {drop['ptq']:+.2f} points, "
        f"QAT int8 {drop['qat']:+.2f} points",
        f"latency ratio Keras predict / TFLite: {keras_ms / lite_ms:.0f}x",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m scalelab.bench rest-vs-grpc|tflite`: one benchmark, printed as a table."""
    parser = argparse.ArgumentParser(prog="python -m scalelab.bench", description=__doc__)
    parser.add_argument("benchmark", choices=["rest-vs-grpc", "tflite"])
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement")
    parser.add_argument("--backend", default=None, help="docker, binary or local (default: auto)")
    args = parser.parse_args(argv)

    import tempfile
    from pathlib import Path

    from scalelab import course

    course.quiet_tensorflow()  # before anything imports TensorFlow
    if args.benchmark == "tflite":
        print("\n".join(tflite_vs_keras()))
        return 0
    from scalelab import data, models, plots, savedmodel, serving

    digits = data.load("digits")
    model, _ = models.train_classifier(digits, epochs=2)
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "digits"
        savedmodel.export_classifier(model, base / "0001", digits.class_names)
        with serving.start(base, "digits", backend=args.backend) as server:
            rest = RestClient(server.rest_url, "digits")
            grpc_client = GrpcClient(server.grpc_target, "digits")
            one = digits.x_test[:1]
            single = [
                {"protocol": "REST row", **run_load(lambda: rest.predict(one), requests=500)},
                {"protocol": "gRPC", **run_load(lambda: grpc_client.predict(one), requests=500)},
            ]
            single = [  # the first runs warmed the server up; measure again
                {"protocol": "REST row", **run_load(lambda: rest.predict(one), requests=500)},
                {"protocol": "gRPC", **run_load(lambda: grpc_client.predict(one), requests=500)},
            ]
            rows = rest_vs_grpc(
                server.rest_url, server.grpc_target, "digits", digits.x_test,
                requests=args.requests,
            )  # fmt: skip
    columns = ["protocol", "batch size", "p50 ms", "p99 ms", "instances/s", "bytes sent/instance"]
    print(f"backend: {server.backend}; model: digits (8x8 uint8 images)")
    print(plots.table([{c: r[c] for c in columns} for r in single + rows]))
    largest = max(r["batch size"] for r in rows)
    print(f"single instance p50: REST {single[0]['p50 ms']} ms, gRPC {single[1]['p50 ms']} ms")
    if 256 in {r["batch size"] for r in rows} and largest != 256:
        print(f"gRPC/REST throughput ratio at batch 256: {ratio(rows, 256):.2f}")
    print(f"gRPC/REST throughput ratio at batch {largest}: {ratio(rows, largest):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
