"""The binary backend: `tensorflow_model_server` from PATH, run as a subprocess."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

from .server import Models, ProcessServer, Request, Server, ServerStartError

BINARY = "tensorflow_model_server"


def find_binary() -> str | None:
    """The path of tensorflow_model_server, or None when it is not on PATH."""
    return shutil.which(BINARY)


def launch(request: Request) -> ProcessServer:
    """Start tensorflow_model_server; its INFO logs (loads, ports) go to Server.logs()."""
    path = find_binary()
    if path is None:
        raise ServerStartError(f"{BINARY} is not on PATH: install it, or use another backend.")
    argv = [path, *request.flags()]
    return ProcessServer(
        "binary", argv, dict(os.environ), request.rest_port, request.grpc_port, request.model_names
    )


def unavailable() -> str | None:
    """Why the binary backend cannot run here, or None when it can."""
    return None if find_binary() else f"{BINARY} is not on PATH"


def passed_over(models: Models, flags: Sequence[str]) -> str | None:
    """Never: the binary serves what TF Serving serves."""
    return None


def chosen() -> str:
    """Why start() picked the binary."""
    return f"{BINARY} is on PATH"


def describe(server: Server) -> str:
    """What serves: the binary's path."""
    return f"tensorflow_model_server ({find_binary() or 'on PATH'})"
