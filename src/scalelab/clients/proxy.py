"""A slower network on one machine: a TCP proxy with a bandwidth limit and a delay.

`ThrottledLink(host, port, mbit_per_s=100, rtt_ms=20)` listens on 127.0.0.1 (a free port) and
forwards every connection to `host:port`, byte for byte, both ways. Each direction is a link of
its own, shared by all connections: bytes leave at most at `mbit_per_s` (a token bucket that
holds one chunk, so an idle link may send one chunk at once) and arrive `rtt_ms / 2` later. It
works below HTTP, so REST (HTTP/1.1) and gRPC (HTTP/2) go through it alike::

    with ThrottledLink("127.0.0.1", 8501, mbit_per_s=10, rtt_ms=40) as link:  # the REST port
        requests.post(f"{link.url}/v1/models/digits:predict", json=...)  # slow, like a WAN
    with ThrottledLink("127.0.0.1", 8500, mbit_per_s=10, rtt_ms=40) as link:  # the gRPC port
        grpc.insecure_channel(link.address)

`tap(address)` is the same proxy without limits: it counts the bytes that reach a server.

No root, no `tc netem`: it is the network a notebook can have. A proxy in Python adds a few
tens of microseconds per chunk, small next to the delays it emulates; `timing.measure_link`
measures the link it gets rather than trusting the numbers.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from typing import Self

from scalelab.processes.children import Stoppable

CHUNK = 16 * 1024  # bytes a link sends as one unit (one token-bucket refill)
# (arrival time, chunk), or None for the end of the stream
_Pipe = queue.Queue[tuple[float, bytes] | None]


class _Direction:
    """One direction of the link: a token bucket of `rate` bytes/s, then a fixed delay."""

    def __init__(self, bytes_per_s: float, delay_s: float, burst: int) -> None:
        self.bytes_per_s = bytes_per_s
        self.delay_s = delay_s
        self.burst_s = burst / bytes_per_s if bytes_per_s > 0 else 0.0
        self._free_at = 0.0  # when the bytes scheduled so far have left
        self._lock = threading.Lock()
        self.forwarded = 0

    def count(self, size: int) -> None:
        """Record `size` bytes delivered."""
        with self._lock:
            self.forwarded += size

    def schedule(self, size: int) -> float:
        """When `size` bytes read now arrive at the other end (time.monotonic seconds)."""
        now = time.monotonic()
        if self.bytes_per_s <= 0:
            return now + self.delay_s
        with self._lock:
            start = max(self._free_at, now - self.burst_s)  # a full bucket sends at once
            self._free_at = start + size / self.bytes_per_s
            return max(self._free_at, now) + self.delay_s


class _Connection:
    """One proxied TCP connection: a reader and a writer thread per direction."""

    def __init__(
        self, client: socket.socket, upstream: socket.socket, up: _Direction, down: _Direction
    ) -> None:
        self.sockets = (client, upstream)
        self.closed = self._closed = threading.Event()
        self._pending = 2  # directions still open
        self._lock = threading.Lock()
        for source, target, direction in ((client, upstream, up), (upstream, client, down)):
            pipe: _Pipe = queue.Queue(maxsize=256)  # 4 MB of chunks in flight at most
            for target_fn, args in (
                (self._read, (source, pipe, direction)),
                (self._write, (target, pipe, direction)),
            ):
                threading.Thread(target=target_fn, args=args, daemon=True).start()

    def _read(self, source: socket.socket, pipe: _Pipe, direction: _Direction) -> None:
        try:
            while not self._closed.is_set():
                data = source.recv(4 * CHUNK)
                if not data:
                    break
                for start in range(0, len(data), CHUNK):
                    piece = data[start : start + CHUNK]
                    self._put(pipe, (direction.schedule(len(piece)), piece))
        except OSError:
            pass
        self._put(pipe, None)

    def _put(self, pipe: _Pipe, item: tuple[float, bytes] | None) -> None:
        while not self._closed.is_set():
            try:
                pipe.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _write(self, target: socket.socket, pipe: _Pipe, direction: _Direction) -> None:
        try:
            while not self._closed.is_set():
                try:
                    item = pipe.get(timeout=0.2)
                except queue.Empty:
                    continue
                if item is None:
                    target.shutdown(socket.SHUT_WR)  # pass the end of the stream on
                    break
                arrive, data = item
                wait = arrive - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                target.sendall(data)
                direction.count(len(data))
        except OSError:
            self.close()
            return
        with self._lock:
            self._pending -= 1
            done = self._pending == 0
        if done:
            self.close()

    def close(self) -> None:
        """Tear both sockets down (wakes any thread blocked on them)."""
        self._closed.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class ThrottledLink(Stoppable):
    """A TCP proxy on 127.0.0.1 that forwards to target_host:target_port over a slower link.

    `mbit_per_s` limits each direction (0: no limit); `rtt_ms` is the round-trip delay added,
    half on the way there and half on the way back. Use it as a context manager, or call
    start() and stop(). `address` ("127.0.0.1:port", for gRPC) and `url` ("http://...", for
    REST) name the proxy; `bytes_up` and `bytes_down` count what it forwarded.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        mbit_per_s: float = 100.0,
        rtt_ms: float = 20.0,
        chunk: int = CHUNK,
    ) -> None:
        if mbit_per_s < 0 or rtt_ms < 0 or chunk < 1:
            raise ValueError("mbit_per_s and rtt_ms must be >= 0, chunk >= 1.")
        self.target = (target_host, int(target_port))
        self.mbit_per_s = mbit_per_s
        self.rtt_ms = rtt_ms
        rate = mbit_per_s * 1e6 / 8
        self._up = _Direction(rate, rtt_ms / 2000, chunk)
        self._down = _Direction(rate, rtt_ms / 2000, chunk)
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self._connections: list[_Connection] = []
        self._lock = threading.Lock()
        self.port = 0

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def address(self) -> str:
        """host:port of the proxy (a gRPC target)."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """http://host:port of the proxy (a REST base URL)."""
        return f"http://{self.address}"

    @property
    def bytes_up(self) -> int:
        """Bytes forwarded from clients to the target so far."""
        return self._up.forwarded

    @property
    def bytes_down(self) -> int:
        """Bytes forwarded from the target back to clients so far."""
        return self._down.forwarded

    def describe(self) -> str:
        """The link in words, e.g. '100 Mbit/s, 20 ms RTT'."""
        rate = f"{self.mbit_per_s:g} Mbit/s" if self.mbit_per_s else "unlimited bandwidth"
        return f"{rate}, {self.rtt_ms:g} ms RTT"

    def start(self) -> Self:
        """Listen on a free port and forward in background threads."""
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._accepting = threading.Thread(target=self._accept, name="throttled-link", daemon=True)
        self._accepting.start()
        return self

    def _accept(self) -> None:
        listener = self._listener
        while listener is not None and self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()  # the target refused: so does the link
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._connections = [c for c in self._connections if not c.closed.is_set()]
                self._connections.append(_Connection(client, upstream, self._up, self._down))

    def stop(self) -> None:
        """Stop listening and close every connection (safe to call twice)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._accepting is not None:
            self._accepting.join(timeout=5)
            self._accepting = None
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def __enter__(self) -> Self:
        return self.start()

    def __repr__(self) -> str:
        state = f"listening on {self.address}" if self._listener else "stopped"
        return f"<ThrottledLink {self.describe()} to {self.target[0]}:{self.target[1]}, {state}>"


def tap(address: str) -> ThrottledLink:
    """A link with no limit and no delay to `address` ("http://host:port" or "host:port").

    It forwards as fast as it can and counts the bytes each way (`bytes_up`, `bytes_down`):
    point a client at its `url` or `address` to see what arrives at the server.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    return ThrottledLink(
        parts.hostname or "127.0.0.1", int(parts.port or 0), mbit_per_s=0, rtt_ms=0
    )
