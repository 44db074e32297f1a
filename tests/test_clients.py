"""scalelab.clients: the throttled link, the clients, the load driver's and timing's helpers:
bytes and order, never time.

How fast the link is (1 MB at 8 Mbit/s takes about a second) is measured by the benchmark
(`timing.measure_link`, printed by `scalelab bench rest-vs-grpc`), not asserted here.
"""

from __future__ import annotations

import os
import socket
import threading
from types import SimpleNamespace

import pytest

from scalelab.clients import driver, proxy, rest_grpc, scripted, timing
from scalelab.clients.proxy import ThrottledLink


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
    http_sink, grpc_sink = timing._HttpSink(), timing._GrpcSink()
    try:
        with (
            ThrottledLink(*timing._host_port(http_sink.url), mbit_per_s=100, rtt_ms=2) as rest,
            ThrottledLink(*timing._host_port(grpc_sink.target), mbit_per_s=100, rtt_ms=2) as rpc,
        ):
            client = rest_grpc.RestClient(rest.url, "m")
            send = timing._sink_sender(client, b'{"instances": [1]}' * 1000, 12345)
            assert len(send()) == 12345 and len(send()) == 12345  # one kept-alive connection
            grpc_client = rest_grpc.GrpcClient(rpc.address, "m")
            assert len(timing._sink_sender(grpc_client, b"\x0a" * 5000, 777)()) == 777
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
    assert timing._host_port("http://127.0.0.1:8501") == ("127.0.0.1", 8501)
    assert timing._host_port("serving:8500") == ("serving", 8500)


def test_servers_are_described_by_backend():
    local = rest_grpc.describe_server(SimpleNamespace(backend="local"))
    assert local.startswith("local backend: scalelab stand-in (Python, TensorFlow ")
    docker = SimpleNamespace(
        backend="docker",
        container=SimpleNamespace(attrs={"Config": {"Image": "tensorflow/serving:2.20.0"}}),
    )
    assert rest_grpc.describe_server(docker) == (
        "docker backend: TF Serving in Docker, image tensorflow/serving:2.20.0"
    )
    remote = SimpleNamespace(backend="remote", rest_url="http://serving:8501", grpc_target="s:1")
    assert "http://serving:8501" in rest_grpc.describe_server(remote)


def test_link_ratios_read_rows():
    rows = [
        {"link": "l", "protocol": p, "batch size": 8, "instances/s": v}
        for p, v in (("REST row", 10.0), ("REST gzip", 15.0), ("gRPC", 40.0))
    ]
    assert timing.link_ratios(rows, "l", 8) == {"gRPC/REST row": 4.0, "REST gzip/REST row": 1.5}


def test_a_tap_counts_what_reaches_the_target(echo):
    with ThrottledLink("127.0.0.1", echo.port, mbit_per_s=0, rtt_ms=0) as link:
        assert exchange(link.port, b"x" * 1000) == b"x" * 1000
    with proxy.tap(f"http://127.0.0.1:{echo.port}") as tapped:
        assert tapped.target == ("127.0.0.1", echo.port) and tapped.describe().startswith(
            "unlimited"
        )
        assert exchange(tapped.port, b"y" * 5000) == b"y" * 5000
    assert tapped.bytes_up == tapped.bytes_down == 5000
    assert proxy.tap(f"127.0.0.1:{echo.port}").target == ("127.0.0.1", echo.port)


def _post_many(url: str, clients: int, each: int, shared: bool = False) -> list[int]:
    """Status codes of `each` POSTs from `clients` threads, a session per thread unless shared."""
    import requests

    codes: list[int] = []
    common = requests.Session()

    def client() -> None:
        session = common if shared else requests.Session()
        for _ in range(each):
            codes.append(session.post(url, data=b"{}", timeout=10).status_code)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return codes


def test_scripted_server_fails_every_kth_request_and_counts():
    with scripted.ScriptedServer(delay_s=0.05, fail_every=3) as server:
        codes = _post_many(server.url, clients=3, each=3)
    assert sorted(codes) == [200] * 6 + [500] * 3
    assert server.requests == 9 and server.connections == 3
    assert 2 <= server.max_in_flight <= 3  # three clients waiting 50 ms each overlap


def test_sessions_by_thread_sees_a_shared_session():
    with scripted.ScriptedServer(delay_s=0.05) as server:  # the threads overlap, so ids differ
        with driver.sessions_by_thread() as own:
            _post_many(server.url, clients=3, each=2)
        with driver.sessions_by_thread() as shared:
            _post_many(server.url, clients=3, each=2, shared=True)
    assert len(own) == 3 and all(len(threads) == 1 for threads in own.values())
    assert len(shared) == 1 and len(next(iter(shared.values()))) >= 2
    import requests

    assert (
        requests.Session.send.__name__ == "send" and "bench" not in requests.Session.send.__module__
    )


def test_call_within_fails_a_call_that_hangs_and_a_stalled_server_ends_it():
    import requests

    with scripted.ScriptedServer(stall=True) as server:
        with pytest.raises(AssertionError, match=r"did not return within 0\.5 s"):
            driver.call_within(0.5, requests.post, server.url, data=b"{}")
        with pytest.raises(requests.Timeout):
            driver.call_within(10, requests.post, server.url, data=b"{}", timeout=0.2)
    assert driver.call_within(5, sum, [1, 2]) == 3
    with pytest.raises(requests.ConnectionError):
        requests.post(scripted.refused_url(), data=b"{}", timeout=5)


def test_spread_and_load_summary():
    assert driver.spread([1.0, 2.0, 3.0, 4.0, 100.0]) == {
        "median": 3.0,
        "q25": 2.0,
        "q75": 4.0,
        "min": 1.0,
        "max": 100.0,
    }
    assert all(v != v for v in driver.spread([]).values())  # NaN when nothing was measured
    row = driver.load_summary({"latencies": [0.001, 0.003], "errors": ["x"], "seconds": 0.5}, 2, 4)
    assert row["requests"] == 2 and row["errors"] == 1 and row["p50 ms"] == 2.0
    assert row["requests/s"] == 4.0 and row["instances/s"] == 16.0 and row["clients"] == 2


class _FakeClient:
    """Stands in for RestClient/GrpcClient: encodes, sends and decodes bytes."""

    def body(self, batch):
        return bytes(len(batch))

    def send(self, body):
        return body + b"!"

    @staticmethod
    def decode(content):
        return {"output": content}


def test_request_parts_add_up_to_their_whole():
    rows = timing.request_parts(_FakeClient(), [1, 2, 3], repeats=4)
    assert len(rows) == 4
    for row in rows:
        parts = row["encode ms"] + row["round trip ms"] + row["decode ms"]
        assert abs(parts - row["whole ms"]) < 1e-9 and row["whole ms"] >= row["encode ms"] >= 0
