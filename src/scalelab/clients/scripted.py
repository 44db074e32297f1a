"""Servers that misbehave on cue, for testing a load generator: slow, failing, stalled, down."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import suppress
from typing import Any


class LoopbackServer:
    """An HTTP/1.1 server on raw sockets on 127.0.0.1 (a free port, `url`): a thread per
    connection, each handled by serve(connection)."""

    def __init__(self, name: str) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True, name=name).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.accepted(connection)
            threading.Thread(target=self.serve, args=(connection,), daemon=True).start()

    def accepted(self, connection: Any) -> None:
        """Note a new connection (nothing, unless a subclass counts them)."""

    def serve(self, connection: Any) -> None:
        """Read the connection's requests and answer them."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop listening."""
        self._listener.close()


class ScriptedServer(LoopbackServer):
    """An HTTP/1.1 server on 127.0.0.1 that answers every request as scripted, and counts.

    `delay_s`: wait before each answer; `fail_every`: every k-th request answers 500;
    `stall`: read requests and never answer (until close()). `connections`, `requests` and
    `max_in_flight` (requests being answered at once) count what arrived. Use `url` as a base
    URL, and the server as a context manager.
    """

    ANSWER = b'{"predictions": [[0.5, 0.5]]}'

    def __init__(self, *, delay_s: float = 0.0, fail_every: int = 0, stall: bool = False) -> None:
        self.delay_s, self.fail_every, self.stall = delay_s, fail_every, stall
        self.connections = self.requests = self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._open: list[Any] = []
        super().__init__("scripted-server")

    def accepted(self, connection: Any) -> None:
        with self._lock:
            self.connections += 1
            self._open.append(connection)

    def serve(self, connection: Any) -> None:
        try:
            for _ in http_requests(connection):
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
                connection.sendall(http_answer(status, body))
        except OSError:
            return
        finally:
            connection.close()

    def close(self) -> None:
        """Stop listening and drop every connection (stalled requests end with an error)."""
        self._closed.set()
        super().close()
        with self._lock:
            connections, self._open = self._open, []
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def refused_url() -> str:
    """The URL of a port on 127.0.0.1 nothing listens on (a server that is down)."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def http_requests(connection: Any) -> Iterator[dict[bytes, bytes]]:
    """The header fields (lower-case names) of each HTTP/1.1 request read from `connection`."""
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


def http_answer(status: int, body: bytes) -> bytes:
    """An HTTP/1.1 answer with a JSON body."""
    reason = {200: "OK", 500: "Internal Server Error"}.get(status, "Error")
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
