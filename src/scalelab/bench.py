"""Measuring a model server: REST and gRPC clients, a bounded load driver, tidy result rows.

`python -m scalelab.bench rest-vs-grpc` runs the whole REST-vs-gRPC sweep on a local server: the
batch-size sweep, where the time of one request goes (client encode, transfer, server, decode)
and the same comparison through a throttled link (`scalelab.netem`, --mbit and --rtt);
`python -m scalelab.bench tflite` compares TFLite variants with the Keras model (`tflite_bench`),
`tuning` Keras Tuner's trials per minute (`tuning_bench`), `grading` autograding (`grading_bench`),
`memory` a chapter's peak memory (`memory_bench`).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from scalelab.gcpause import collector_paused

if TYPE_CHECKING:
    import grpc

Sent = tuple[int, int] | None  # (bytes sent, bytes received) of one request, when known
PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"


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
        with collector_paused():
            values = inputs.tolist()
            document = {"inputs": {input_name: values}} if self.columnar else {"instances": values}
            data = json.dumps(document, separators=(",", ":")).encode()
            del document, values
        return gzip.compress(data, compresslevel=1) if self.compress else data

    def predict(self, inputs: np.ndarray) -> tuple[int, int]:
        """Send one request; return (bytes sent, bytes received); raise on an HTTP error."""
        data = self.body(inputs)
        answer = self.session.post(self.url, data=data, headers=self.headers, timeout=120)
        answer.raise_for_status()
        return len(data), len(answer.content)

    def send(self, data: bytes) -> bytes:
        """POST an already encoded body; return the answer's bytes (raise on an HTTP error)."""
        answer = self.session.post(self.url, data=data, headers=self.headers, timeout=120)
        answer.raise_for_status()
        return answer.content

    @staticmethod
    def decode(content: bytes) -> dict[str, np.ndarray]:
        """An answer's JSON as arrays by output name, as a Python client would read it."""
        with collector_paused():
            document = json.loads(content)
            value = document["predictions"] if "predictions" in document else document["outputs"]
            if isinstance(value, dict):  # columnar, several outputs
                return {name: np.asarray(v) for name, v in value.items()}
            if value and isinstance(value[0], dict):  # row, several outputs: one object per item
                return {name: np.asarray([item[name] for item in value]) for name in value[0]}
            return {"output": np.asarray(value)}


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
        self._raw: grpc.UnaryUnaryMultiCallable[bytes, bytes] | None = None

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

    def body(self, inputs: np.ndarray) -> bytes:
        """The serialized PredictRequest, what goes on the wire."""
        return cast(bytes, self.request(inputs).SerializeToString())

    def send(self, data: bytes) -> bytes:
        """Call Predict with an already serialized request; return the serialized reply."""
        if self._raw is None:
            self._raw = self.channel.unary_unary(PREDICT_METHOD)  # bytes in, bytes out
        return self._raw(data, timeout=120)

    @staticmethod
    def decode(content: bytes) -> dict[str, np.ndarray]:
        """A serialized PredictResponse as arrays by output name."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        reply = predict_pb2.PredictResponse.FromString(content)
        return {name: tf.make_ndarray(proto) for name, proto in reply.outputs.items()}

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
    value: dict[str, float] = {
        r["protocol"]: r[column] for r in rows if r["batch size"] == batch_size
    }
    return value["gRPC"] / value["REST row"]


# --- many clients: the gRPC side of the load, summaries, and servers that misbehave -------


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


class ScriptedServer:
    """An HTTP/1.1 server on 127.0.0.1 that answers every request as scripted, and counts.

    `delay_s`: wait before each answer; `fail_every`: every k-th request answers 500;
    `stall`: read requests and never answer (until close()). `connections`, `requests` and
    `max_in_flight` (requests being answered at once) count what arrived. Use `url` as a base
    URL, and the server as a context manager.
    """

    ANSWER = b'{"predictions": [[0.5, 0.5]]}'

    def __init__(self, *, delay_s: float = 0.0, fail_every: int = 0, stall: bool = False) -> None:
        import socket

        self.delay_s, self.fail_every, self.stall = delay_s, fail_every, stall
        self.connections = self.requests = self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._open: list[Any] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True, name="scripted-server").start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: Any) -> None:
        try:
            for _ in _http_requests(connection):
                with self._lock:
                    self.requests += 1
                    number = self.requests
                    self._in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self._in_flight)
                if self.stall:
                    self._closed.wait()
                    return
                self._closed.wait(self.delay_s)
                with self._lock:
                    self._in_flight -= 1
                failed = self.fail_every and number % self.fail_every == 0
                status, body = (
                    (500, b'{"error": "scripted failure"}') if failed else (200, self.ANSWER)
                )
                connection.sendall(_http_answer(status, body))
        except OSError:
            return
        finally:
            connection.close()

    def close(self) -> None:
        """Stop listening and drop every connection (stalled requests end with an error)."""
        import socket

        self._closed.set()
        self._listener.close()
        with self._lock:
            connections, self._open = self._open, []
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def refused_url() -> str:
    """The URL of a port on 127.0.0.1 nothing listens on (a server that is down)."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- which server produced a measurement ---------------------------------------------------


def describe_server(server: Any) -> str:
    """What a serving.Server is, for figure titles: "local backend: scalelab stand-in (...)"."""
    from scalelab.serving import BACKENDS

    backend = getattr(server, "backend", "?")
    what = BACKENDS[backend].describe(server) if backend in BACKENDS else repr(server)
    return f"{backend} backend: {what}"


# --- where the time goes -------------------------------------------------------------------


def _http_requests(connection: Any) -> Iterator[dict[bytes, bytes]]:
    """The header fields (lower-case names) of each HTTP/1.1 request read from `connection`."""
    import socket

    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            data = connection.recv(65536)
            if not data:
                return
            buffer += data
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
        fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
        length = int(fields.get(b"content-length", b"0"))
        while len(buffer) < length:
            data = connection.recv(max(65536, length - len(buffer)))
            if not data:
                return
            buffer += data
        buffer = buffer[length:]
        yield fields


def _http_answer(status: int, body: bytes) -> bytes:
    """An HTTP/1.1 answer with a JSON body."""
    reason = {200: "OK", 500: "Internal Server Error"}.get(status, "Error")
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class _HttpSink:
    """A do-nothing HTTP/1.1 server on raw sockets: reads a request, answers N bytes.

    N is the request's X-Reply-Bytes header. Timing the same client against it, with the same
    request and answer sizes, gives what the client library and the wire cost without a model
    server (the "transfer" of time_breakdown).
    """

    def __init__(self) -> None:
        import socket

        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True, name="http-sink").start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    @staticmethod
    def _serve(connection: Any) -> None:
        try:
            for fields in _http_requests(connection):
                size = int(fields.get(b"x-reply-bytes", b"0"))
                connection.sendall(_http_answer(200, b" " * size))
        except OSError:
            return
        finally:
            connection.close()

    def close(self) -> None:
        self._listener.close()


class _GrpcSink:
    """A do-nothing gRPC server: Predict answers N bytes (N: the x-reply-bytes metadata)."""

    def __init__(self) -> None:
        from concurrent import futures

        import grpc

        def predict(request: bytes, context: Any) -> bytes:
            size = dict(context.invocation_metadata()).get("x-reply-bytes", "0")
            return b"\0" * int(size)

        handler = grpc.method_handlers_generic_handler(
            "tensorflow.serving.PredictionService",
            {"Predict": grpc.unary_unary_rpc_method_handler(predict)},  # bytes in, bytes out
        )
        options = [
            ("grpc.max_send_message_length", GrpcClient.MAX_MESSAGE),
            ("grpc.max_receive_message_length", GrpcClient.MAX_MESSAGE),
        ]
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=options)
        self._server.add_generic_rpc_handlers((handler,))
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.target = f"127.0.0.1:{port}"

    def close(self) -> None:
        self._server.stop(grace=None)


STEP_COLUMNS = ("encode ms", "transfer ms", "server ms", "decode ms")


def _median_ms(run: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The median time of `repeats` calls in ms, and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times)), result


def _clients(
    rest_url: str, grpc_target: str, model: str, names: Sequence[str]
) -> dict[str, RestClient | GrpcClient]:
    """The four ways to send a predict request, by name."""
    make: dict[str, Callable[[], RestClient | GrpcClient]] = {
        "REST row": lambda: RestClient(rest_url, model),
        "REST columnar": lambda: RestClient(rest_url, model, columnar=True),
        "REST gzip": lambda: RestClient(rest_url, model, compress=True),
        "gRPC": lambda: GrpcClient(grpc_target, model),
    }
    return {name: make[name]() for name in names}


def _sink_sender(sink: Any, body: bytes, reply_bytes: int) -> Callable[[], bytes]:
    """A call that sends `body` to a sink (REST or gRPC client) and gets `reply_bytes` back."""
    if isinstance(sink, GrpcClient):
        sink.send(b"")  # opens the channel and creates the raw method
        raw = sink._raw
        assert raw is not None  # send() created it
        metadata = (("x-reply-bytes", str(reply_bytes)),)
        return lambda: raw(body, metadata=metadata, timeout=120)
    headers = {**sink.headers, "X-Reply-Bytes": str(reply_bytes)}
    return lambda: sink.session.post(sink.url, data=body, headers=headers, timeout=120).content


def request_parts(
    client: RestClient | GrpcClient, batch: np.ndarray, repeats: int
) -> list[dict[str, float]]:
    """Time `repeats` whole requests of `batch` and their parts, each part inside its request.

    One row per request (after one unmeasured): "encode ms" (arrays to body), "round trip ms"
    (send the body, get the answer), "decode ms" (answer to arrays) and "whole ms", their sum,
    so a part is never timed in other conditions than its whole.
    """
    client.decode(client.send(client.body(batch)))  # warms the connection and the server up
    return [_one_request(client, batch) for _ in range(repeats)]


def time_breakdown(
    rest_url: str,
    grpc_target: str,
    model: str,
    images: np.ndarray,
    batch_sizes: Sequence[int] = (1, 256, 1024),
    repeats: int = 10,
    protocols: Sequence[str] = ("REST row", "REST columnar", "REST gzip", "gRPC"),
) -> list[dict[str, Any]]:
    """Where a predict request's time goes, per protocol and batch size, on any TF Serving.

    Timed on the client, so it works against a real TF Serving too. Each repeat is one whole
    request split into *encode* (arrays to the request body), the *round trip* with that body and
    *decode* (the answer to arrays), followed at once by the same body sent by the same client to
    a do-nothing server on this machine that answers as many bytes: *transfer* (client library,
    HTTP or gRPC framing, the wire). *server* = round trip - transfer: what the model server
    spends (parsing, inference, writing the answer). The repeats go round every (protocol, batch
    size) in turn, so a busy moment of the machine falls on all of them alike rather than on one.
    One row per (protocol, batch size): the median of each part over `repeats` requests (fewer
    for big batches), and under "spread" each part's quartiles and range over them, so what is
    printed keeps to what they support.
    """
    clients = _clients(rest_url, grpc_target, model, protocols)
    http_sink, grpc_sink = _HttpSink(), _GrpcSink()
    sinks: dict[str, Any] = {}
    parts_of = ("encode ms", "transfer ms", "server ms", "decode ms", "total ms")
    cells: dict[tuple[int, str], dict[str, Any]] = {}
    try:
        for name, client in clients.items():
            if isinstance(client, GrpcClient):
                sinks[name] = GrpcClient(grpc_sink.target, model)
            else:
                sinks[name] = RestClient(
                    http_sink.url, model, columnar=client.columnar, compress=client.compress
                )
        for batch_size in batch_sizes:  # warm every connection, server path and sink up
            batch = np.resize(images, (batch_size, *images.shape[1:]))
            for name, client in clients.items():
                body, answer, errors = client.body(batch), b"", 0
                try:
                    answer = client.send(body)
                except Exception:  # counted, as run_load does: a benchmark reports failures
                    errors += 1
                send = _sink_sender(sinks[name], body, len(answer))
                send()
                cells[(batch_size, name)] = {
                    "batch": batch,
                    "body": body,
                    "answer": answer,
                    "errors": errors,
                    "send": send,
                    "reps": 0 if errors else max(5, repeats // max(1, batch_size // 256)),
                    "parts": {part: [] for part in parts_of},
                }
        for turn in range(max(cell["reps"] for cell in cells.values())):
            for (_, name), cell in cells.items():
                if turn >= cell["reps"]:
                    continue
                request = _one_request(clients[name], cell["batch"])
                started = time.perf_counter()
                cell["send"]()
                transfer = 1000 * (time.perf_counter() - started)
                parts = cell["parts"]
                parts["encode ms"].append(request["encode ms"])
                parts["transfer ms"].append(transfer)
                parts["server ms"].append(request["round trip ms"] - transfer)
                parts["decode ms"].append(request["decode ms"])
                parts["total ms"].append(request["whole ms"])
    finally:
        for client in [*clients.values(), *sinks.values()]:
            if isinstance(client, GrpcClient):
                client.close()
        http_sink.close()
        grpc_sink.close()
    rows = []
    for (batch_size, name), cell in cells.items():
        median = {part: spread(values)["median"] for part, values in cell["parts"].items()}
        total, server = median["total ms"], max(median["server ms"], 0.0)
        rows.append(
            {
                "protocol": name,
                "batch size": batch_size,
                **{part: round(median[part], 3) for part in STEP_COLUMNS},
                "server ms": round(server, 3),
                "total ms": round(total, 3),
                "server share": round(server / total, 3) if total > 0 else 0.0,
                "request bytes": len(cell["body"]),
                "response bytes": len(cell["answer"]),
                "repeats": cell["reps"],
                "errors": cell["errors"],
                "spread": {
                    part: {k: round(v, 3) for k, v in spread(values).items()}
                    for part, values in cell["parts"].items()
                },
            }
        )
    return rows


def _one_request(client: RestClient | GrpcClient, batch: np.ndarray) -> dict[str, float]:
    """One request of `batch`, timed part by part: encode, round trip, decode, whole (ms)."""
    began = time.perf_counter()
    body = client.body(batch)
    encoded = time.perf_counter()
    answer = client.send(body)
    answered = time.perf_counter()
    client.decode(answer)
    done = time.perf_counter()
    return {
        "encode ms": 1000 * (encoded - began),
        "round trip ms": 1000 * (answered - encoded),
        "decode ms": 1000 * (done - answered),
        "whole ms": 1000 * (done - began),
    }


# --- through a slower network --------------------------------------------------------------


def _host_port(address: str) -> tuple[str, int]:
    """("host", port) of "http://host:port" or "host:port"."""
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    return parts.hostname or "127.0.0.1", int(parts.port or 0)


LOOPBACK = "loopback"


def through_links(
    rest_url: str,
    grpc_target: str,
    model: str,
    images: np.ndarray,
    links: Sequence[tuple[float, float] | None] = (None, (100.0, 20.0)),
    batch_sizes: Sequence[int] = (1, 256, 1024),
    requests: int = 20,
    protocols: Sequence[str] = ("REST row", "REST gzip", "gRPC"),
    warmup: int = 2,
) -> list[dict[str, Any]]:
    """run_load() rows per link, protocol and batch size; a link is (Mbit/s, RTT ms) or None.

    None is the direct connection (loopback when the server runs here); a pair sends everything
    through a netem.ThrottledLink of that bandwidth and round-trip time, one per server port.
    Each row carries "link" (LOOPBACK or e.g. "100 Mbit/s, 20 ms RTT").
    """
    from scalelab.netem import ThrottledLink

    rows = []
    for link in links:
        proxies: list[ThrottledLink] = []
        if link is None:
            label, rest_at, grpc_at = LOOPBACK, rest_url, grpc_target
        else:
            mbit, rtt = link
            rest_link = ThrottledLink(*_host_port(rest_url), mbit_per_s=mbit, rtt_ms=rtt).start()
            grpc_link = ThrottledLink(*_host_port(grpc_target), mbit_per_s=mbit, rtt_ms=rtt)
            proxies = [rest_link, grpc_link.start()]
            label, rest_at, grpc_at = rest_link.describe(), rest_link.url, grpc_link.address
        try:
            clients = _clients(rest_at, grpc_at, model, protocols)
            for batch_size in batch_sizes:
                batch = np.resize(images, (batch_size, *images.shape[1:]))
                count = max(min(5, requests), requests // max(1, batch_size // 256))
                for name, client in clients.items():
                    send = lambda c=client, b=batch: c.predict(b)  # noqa: E731
                    row = run_load(send, requests=count, instances=batch_size, warmup=warmup)
                    rows.append({"link": label, "protocol": name, **row})
            for client in clients.values():
                if isinstance(client, GrpcClient):
                    client.close()
        finally:
            for proxy in proxies:
                proxy.stop()
    return rows


def link_ratios(
    rows: Sequence[dict[str, Any]], link: str, batch_size: int, column: str = "instances/s"
) -> dict[str, float]:
    """gRPC/REST row and REST gzip/REST row ratios of `column` for one link and batch size."""
    value = {
        r["protocol"]: r[column]
        for r in rows
        if r["link"] == link and r["batch size"] == batch_size
    }
    ratios = {"gRPC/REST row": value["gRPC"] / value["REST row"]}
    if "REST gzip" in value:
        ratios["REST gzip/REST row"] = value["REST gzip"] / value["REST row"]
    return ratios


def measure_link(mbit_per_s: float, rtt_ms: float, megabytes: float = 1.0) -> dict[str, float]:
    """Time a small request and a `megabytes` upload through a ThrottledLink to a local sink.

    Returns the measured round trip (ms), upload seconds and effective Mbit/s: what the link
    gives, next to what it was asked for.
    """
    import requests as http

    from scalelab.netem import ThrottledLink

    sink = _HttpSink()
    payload = b"x" * int(megabytes * 1e6)
    try:
        with ThrottledLink(*_host_port(sink.url), mbit_per_s=mbit_per_s, rtt_ms=rtt_ms) as link:
            session = http.Session()
            session.post(link.url, data=b"{}", timeout=60)
            small_ms, _ = _median_ms(lambda: session.post(link.url, data=b"{}", timeout=60), 5)
            started = time.perf_counter()
            session.post(link.url, data=payload, timeout=600)
            seconds = time.perf_counter() - started
            session.close()
    finally:
        sink.close()
    return {
        "rtt ms": round(small_ms, 2),
        "upload s": round(seconds, 3),
        "Mbit/s": round(len(payload) * 8 / 1e6 / max(seconds - small_ms / 1000, 1e-9), 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m scalelab.bench rest-vs-grpc|tflite|tuning|grading|memory`: one benchmark."""
    parser = argparse.ArgumentParser(prog="python -m scalelab.bench", description=__doc__)
    benchmarks = ["rest-vs-grpc", "tflite", "tuning", "grading", "memory"]
    parser.add_argument("benchmark", choices=benchmarks)
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement")
    parser.add_argument("--backend", default=None, help="docker, binary or local (default: auto)")
    parser.add_argument("--mbit", type=float, default=100.0, help="throttled link: Mbit/s")
    parser.add_argument("--rtt", type=float, default=20.0, help="throttled link: RTT in ms")
    parser.add_argument("--trials", type=int, default=12, help="tuning: trials per search")
    parser.add_argument("--submissions", type=int, default=30, help="grading: per chapter")
    parser.add_argument("--chapters", nargs="*", help="grading, memory: chapters (default: all)")
    parser.add_argument("--full", action="store_true", help="memory: learner mode, not fast mode")
    parser.add_argument("--workers", type=int, default=2, help="grading: parallel notebooks")
    args = parser.parse_args(argv)

    import tempfile
    from pathlib import Path

    from scalelab import course

    course.quiet_tensorflow()  # before anything imports TensorFlow
    if args.benchmark == "tflite":
        from scalelab import tflite_bench

        print("\n".join(tflite_bench.tflite_vs_keras()))
        return 0
    if args.benchmark == "grading":
        from scalelab import grading, grading_bench

        root = grading.find_course_root()
        chapters = args.chapters or grading.chapters(root)
        workers = (1, args.workers)
        print(
            "\n".join(grading_bench.grading_throughput(root, chapters, args.submissions, workers))
        )
        return 0
    if args.benchmark == "memory":
        from scalelab import grading, memory_bench

        root = grading.find_course_root()
        for chapter in args.chapters or grading.chapters(root):
            print("\n".join(memory_bench.peak_memory(root, chapter, fast=not args.full)))
        return 0
    if args.benchmark == "tuning":
        from scalelab import tuning_bench

        print("\n".join(tuning_bench.tuning_speedup(args.trials)))
        return 0
    from scalelab import data, models, plots, savedmodel, serving

    digits = data.load("digits")
    model, _ = models.train_classifier(digits, epochs=2)
    link = (args.mbit, args.rtt)
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
            sizes = sorted({1, 256, max(r["batch size"] for r in rows)})
            steps = time_breakdown(
                server.rest_url, server.grpc_target, "digits", digits.x_test, sizes
            )
            measured = measure_link(*link)
            linked = through_links(
                server.rest_url, server.grpc_target, "digits", digits.x_test,
                links=[link], batch_sizes=sizes, requests=40,
            )  # fmt: skip
            source = describe_server(server)
    columns = ["protocol", "batch size", "p50 ms", "p99 ms", "instances/s", "bytes sent/instance"]
    print(f"server: {source}; model: digits (8x8 uint8 images)")
    print(plots.table([{c: r[c] for c in columns} for r in single + rows]))
    print("\nwhere the time of one request goes (medians, ms; server = round trip - transfer):")
    columns = ["protocol", "batch size", *STEP_COLUMNS, "total ms", "request bytes"]
    print(plots.table([{c: r[c] for c in columns} for r in steps]))
    for row in steps:
        if row["protocol"] == "REST row":
            print(
                f"server share of REST row latency at batch {row['batch size']}: "
                f"{100 * row['server share']:.0f}% ({row['server ms']:.2f} of "
                f"{row['total ms']:.2f} ms)"
            )
    label = linked[0]["link"]
    print(
        f"\nthrottled link asked: {label}; measured: {measured['rtt ms']} ms for a small "
        f"request, {measured['Mbit/s']} Mbit/s for a 1 MB upload"
    )
    largest = max(r["batch size"] for r in rows)
    print(f"single instance p50: REST {single[0]['p50 ms']} ms, gRPC {single[1]['p50 ms']} ms")
    for size in sizes[1:]:
        loop = f"loopback {ratio(rows, size):.2f}"
        through = link_ratios(linked, label, size)
        print(
            f"batch {size}: gRPC/REST throughput {loop}, {label} "
            f"{through['gRPC/REST row']:.2f}; REST gzip/REST row on the link "
            f"{through['REST gzip/REST row']:.2f}"
        )
    if 256 in {r["batch size"] for r in rows} and largest != 256:
        print(f"gRPC/REST throughput ratio at batch 256: {ratio(rows, 256):.2f}")
    print(f"gRPC/REST throughput ratio at batch {largest}: {ratio(rows, largest):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
