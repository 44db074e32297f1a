"""nginx as a child process: a reverse proxy in front of model servers, from an `http {}` body.

The caller writes what a practitioner writes, the `upstream` and `server` blocks (REST with
`proxy_pass`, gRPC with `listen ... http2` and `grpc_pass`); this module wraps them in a
complete configuration that keeps every file in a temporary folder (so it needs no root and
touches no system nginx), checks it with `nginx -t`, starts nginx in the foreground, waits
until every port it listens on answers, and stops it with its workers.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

from . import children

_LISTEN = re.compile(r"(?:^|[\s{;])listen\s+(?:(?:[\w.-]+|\[[0-9a-fA-F:]+\]):)?(\d+)\b")
_TEMPLATE = """worker_processes 1;
daemon off;
master_process on;
pid {folder}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
{http}
}}
"""


class NginxError(RuntimeError):
    """nginx is missing, refused the configuration, or did not start; the message says why."""


def binary() -> str:
    """The nginx program (PATH, then /usr/sbin), or NginxError saying how to install it."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise NginxError(
            "nginx is not installed: `sudo apt-get install nginx` (Debian, Ubuntu), "
            "`brew install nginx` (macOS)"
        )
    return found


def listen_ports(http: str) -> list[int]:
    """The ports an `http {}` body's `listen` directives name."""
    return [int(port) for port in _LISTEN.findall(http)]


class Nginx(children.Stoppable):
    """A running nginx: its configuration file, its ports and its log."""

    def __init__(self, http: str, timeout: float = 30) -> None:
        self.ports = listen_ports(http)
        if not self.ports:
            raise NginxError("the http {} body has no `listen` directive: nothing to proxy on")
        program = binary()
        self.folder = Path(tempfile.mkdtemp(prefix="scalelab-nginx-"))
        self.config = self.folder / "nginx.conf"
        self.command = [program, "-p", str(self.folder), "-c", str(self.config), "-e", "stderr"]
        self._write(http)
        self.process = children.start(
            self.command, self.folder / "nginx.log", os.environ, own_group=True
        )
        self._wait(timeout)

    def _write(self, http: str) -> None:
        """Write the configuration around `http` and have `nginx -t` check it."""
        self.config.write_text(_TEMPLATE.format(folder=self.folder, http=http))
        try:
            children.run([*self.command, "-t"], "nginx -t", timeout=30, error=NginxError, lines=8)
        except NginxError:
            if not hasattr(self, "process"):  # refused at start: nothing runs, nothing is kept
                shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(self.ports)
        while waiting:
            code = self.process.process.poll()
            if code is not None or time.monotonic() > deadline:
                self.stop()
                why = f"exited (code {code})" if code is not None else f"not up after {timeout} s"
                raise NginxError(f"nginx {why}. Its log:\n{self.process.tail()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", waiting[0])) == 0:
                    waiting.pop(0)
                    continue
            time.sleep(0.05)

    def log(self) -> str:
        """What nginx logged (warnings and errors)."""
        return self.process.output()

    def reload(self, http: str) -> None:
        """Replace the `http {}` body and have nginx reload it (SIGHUP: checked, then new
        workers take over and the old ones finish their requests)."""
        self._write(http)
        self.process.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        """Stop nginx and its workers, and remove its folder (safe to call twice)."""
        self.process.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def start(http: str, timeout: float = 30) -> Nginx:
    """Start nginx with this `http {}` body; returns once every port it listens on answers.
    For example `upstream rest { server 127.0.0.1:8601; server 127.0.0.1:8701; }` and
    `server { listen 127.0.0.1:8080; location / { proxy_pass http://rest; } }` send each REST
    request to port 8080 to the next replica in turn."""
    return Nginx(http, timeout)
