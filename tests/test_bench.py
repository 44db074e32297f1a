"""scalelab.netem's throttled link and scalelab.bench's helpers: bytes and order, never time.

How fast the link is (1 MB at 8 Mbit/s takes about a second) is measured by the benchmark
(`bench.measure_link`, printed by `python -m scalelab.bench rest-vs-grpc`), not asserted here.
"""

from __future__ import annotations

import os
import socket
import threading
from types import SimpleNamespace

import pytest

from scalelab import bench
from scalelab.netem import ThrottledLink


class EchoServer:
    """Echoes every byte back; closes its side when the client closes its own."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(connection,), daemon=True).start()

    def _echo(self, connection: socket.socket) -> None:
        with connection:
            while data := connection.recv(65536):
                self.received.append(data)
                connection.sendall(data)
            connection.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def echo():
    server = EchoServer()
    yield server
    server.close()


def exchange(port: int, payload: bytes, piece: int = 50_000) -> bytes:
    """Send payload through localhost:port in pieces, half-close, and read until the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        answer = bytearray()

        def read() -> None:
            while data := client.recv(65536):
                answer.extend(data)

        reader = threading.Thread(target=read)
        reader.start()
        for start in range(0, len(payload), piece):
            client.sendall(payload[start : start + piece])
        client.shutdown(socket.SHUT_WR)
        reader.join(timeout=60)
        assert not reader.is_alive(), "the link did not pass the end of the stream on"
        return bytes(answer)


def test_bytes_arrive_intact_both_ways(echo):
    payload = os.urandom(1_000_000)
    with ThrottledLink("127.0.0.1", echo.port, mbit_per_s=400, rtt_ms=2) as link:
        assert exchange(link.port, payload) == payload
        assert link.bytes_up == link.bytes_down == len(payload)
    assert b"".join(echo.received) == payload  # the target saw exactly what was sent


def test_many_connections_keep_their_own_order(echo):
    messages = {n: b"".join(b"%d:%06d;" % (n, i) for i in range(3000)) for n in range(4)}
    answers: dict[int, bytes] = {}
    with ThrottledLink("127.0.0.1", echo.port, mbit_per_s=0, rtt_ms=1) as link:
        threads = [
            threading.Thread(
                target=lambda n=n: answers.__setitem__(n, exchange(link.port, messages[n], 777))
            )
            for n in messages
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert answers == messages


def test_a_refused_target_closes_the_client_connection():
    unused = socket.create_server(("127.0.0.1", 0))
    port = unused.getsockname()[1]
    unused.close()  # nothing listens there now
    with (
        ThrottledLink("127.0.0.1", port) as link,
        socket.create_connection(("127.0.0.1", link.port), timeout=10) as client,
    ):
        assert client.recv(10) == b""


def test_stop_closes_open_connections(echo):
    link = ThrottledLink("127.0.0.1", echo.port, rtt_ms=1).start()
    client = socket.create_connection(("127.0.0.1", link.port), timeout=10)
    client.sendall(b"ping")
    assert client.recv(4) == b"ping"
    link.stop()
    assert client.recv(10) == b""
    client.close()
    link.stop()  # twice is fine


def test_http_and_grpc_go_through_the_link():
    http_sink, grpc_sink = bench._HttpSink(), bench._GrpcSink()
    try:
        with (
            ThrottledLink(*bench._host_port(http_sink.url), mbit_per_s=100, rtt_ms=2) as rest,
            ThrottledLink(*bench._host_port(grpc_sink.target), mbit_per_s=100, rtt_ms=2) as rpc,
        ):
            client = bench.RestClient(rest.url, "m")
            send = bench._sink_sender(client, b'{"instances": [1]}' * 1000, 12345)
            assert len(send()) == 12345 and len(send()) == 12345  # one kept-alive connection
            grpc_client = bench.GrpcClient(rpc.address, "m")
            assert len(bench._sink_sender(grpc_client, b"\x0a" * 5000, 777)()) == 777
            grpc_client.close()
            assert rest.bytes_up > 2 * 18000 and rpc.bytes_up > 5000
    finally:
        http_sink.close()
        grpc_sink.close()


def test_links_describe_themselves():
    link = ThrottledLink("127.0.0.1", 1, mbit_per_s=100, rtt_ms=20)
    assert link.describe() == "100 Mbit/s, 20 ms RTT"
    with pytest.raises(ValueError):
        ThrottledLink("127.0.0.1", 1, mbit_per_s=-1)


def test_host_port_reads_urls_and_grpc_targets():
    assert bench._host_port("http://127.0.0.1:8501") == ("127.0.0.1", 8501)
    assert bench._host_port("serving:8500") == ("serving", 8500)


def test_servers_are_described_by_backend():
    local = bench.describe_server(SimpleNamespace(backend="local"))
    assert local.startswith("local backend: scalelab stand-in (Python, TensorFlow ")
    docker = SimpleNamespace(
        backend="docker",
        container=SimpleNamespace(attrs={"Config": {"Image": "tensorflow/serving:2.20.0"}}),
    )
    assert bench.describe_server(docker) == (
        "docker backend: TF Serving in Docker, image tensorflow/serving:2.20.0"
    )
    remote = SimpleNamespace(backend="remote", rest_url="http://serving:8501", grpc_target="s:1")
    assert "http://serving:8501" in bench.describe_server(remote)


def test_link_ratios_read_rows():
    rows = [
        {"link": "l", "protocol": p, "batch size": 8, "instances/s": v}
        for p, v in (("REST row", 10.0), ("REST gzip", 15.0), ("gRPC", 40.0))
    ]
    assert bench.link_ratios(rows, "l", 8) == {"gRPC/REST row": 4.0, "REST gzip/REST row": 1.5}
