"""The local backend: our TF Serving stand-in, run as `scalelab serve` in a subprocess.

Modules: `model_server` (flags, start-up), `manager` (versions, policy, watching), `servable` (one
loaded SavedModel), `tensors` (wire formats), `rest`, `grpc`, `batching`, `status` (error codes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from scalelab.processes.children import python

from ..server import Models, ProcessServer, Request, Server

PARENT_PID_ENV = "SCALELAB_SERVING_PARENT_PID"


def launch(request: Request) -> ProcessServer:
    """Start the local server with tensorflow_model_server's flags; it exits when we do."""
    source_root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ)
    env.update(
        TF_CPP_MIN_LOG_LEVEL=env.get("TF_CPP_MIN_LOG_LEVEL", "3"),
        GRPC_VERBOSITY=env.get("GRPC_VERBOSITY", "ERROR"),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p),
    )
    env[PARENT_PID_ENV] = str(os.getpid())
    argv = python("scalelab", ["serve", *request.flags()])
    return ProcessServer(
        "local", argv, env, request.rest_port, request.grpc_port, request.model_names
    )


def unavailable() -> str | None:
    """Never: the stand-in runs wherever this library does."""
    return None


def passed_over(models: Models, flags: Sequence[str]) -> str | None:
    """Never: the stand-in is the last resort."""
    return None


def chosen() -> str:
    """Nothing to add: start() says why it passed the others over."""
    return ""


def describe(server: Server) -> str:
    """What serves: the stand-in and the TensorFlow it runs."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        tf_version = version("tensorflow")
    except PackageNotFoundError:
        tf_version = "?"
    return f"scalelab stand-in (Python, TensorFlow {tf_version})"
