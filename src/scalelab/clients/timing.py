"""Where a predict request's time goes (encode, transfer, server, decode), and how protocols fare
through a throttled link: timed from the client, so any TF Serving can be measured."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from scalelab.clients.driver import run_load, spread
from scalelab.clients.proxy import ThrottledLink
from scalelab.clients.rest_grpc import GrpcClient, RestClient, by_name
from scalelab.clients.scripted import LoopbackServer, http_answer, http_requests


class _HttpSink(LoopbackServer):
    """A do-nothing HTTP/1.1 server on raw sockets: reads a request, answers N bytes.

    N is the request's X-Reply-Bytes header. Timing the same client against it, with the same
    request and answer sizes, gives what the client library and the wire cost without a model
    server (the "transfer" of time_breakdown).
    """

    def __init__(self) -> None:
        super().__init__("http-sink")

    def serve(self, connection: Any) -> None:
        try:
            for fields in http_requests(connection):
                size = int(fields.get(b"x-reply-bytes", b"0"))
                connection.sendall(http_answer(200, b" " * size))
        except OSError:
            return
        finally:
            connection.close()


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
    clients = by_name(rest_url, grpc_target, model, protocols)
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
    through a proxy.ThrottledLink of that bandwidth and round-trip time, one per server port.
    Each row carries "link" (LOOPBACK or e.g. "100 Mbit/s, 20 ms RTT").
    """
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
            clients = by_name(rest_at, grpc_at, model, protocols)
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
