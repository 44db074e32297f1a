"""Start a TF Serving model server: one that runs already (remote), the image (docker), the
binary, or our local stand-in.

    from scalelab import serving
    with serving.start("models/half_plus_two") as server:
        requests.post(f"{server.rest_url}/v1/models/half_plus_two:predict", json={...})

Importing this package never imports TensorFlow or the Docker SDK.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from pathlib import Path

from scalelab.processes.children import free_port, free_ports

from .backends import BACKENDS, Backend
from .docker import cleanup, docker_run_command
from .server import (
    Models,
    Request,
    Server,
    ServerStartError,
    resolve_models,
    wait_until_available,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "Server",
    "ServerStartError",
    "choose_backend",
    "cleanup",
    "docker_run_command",
    "free_port",
    "shared",
    "start",
]

BACKEND_ENV = "SCALELAB_SERVING_BACKEND"
_OWN_FLAGS = ("--port=", "--rest_api_port=", "--model_name=", "--model_base_path=")
# what Docker says when a port it is to publish is taken (by a process; by another container)
_PORT_TAKEN = ("address already in use", "port is already allocated")


def choose_backend(
    backend: str | None = None, *, models: Models | None = None, extra_flags: Sequence[str] = ()
) -> tuple[str, str]:
    """The backend to use and why: `backend`, else $SCALELAB_SERVING_BACKEND, else the first in
    BACKENDS that can serve `models` with `extra_flags`: remote (a running TF Serving named by
    the environment), docker (an engine answers), binary (on PATH), local."""
    if backend is None and os.environ.get(BACKEND_ENV):
        backend, reason = os.environ[BACKEND_ENV], f"set by {BACKEND_ENV}"
    else:
        reason = "set by backend="
    if backend is None:
        skipped: list[str] = []
        for name, candidate in BACKENDS.items():
            why_not = candidate.passed_over(models or [], extra_flags) or candidate.unavailable()
            if why_not is None:
                return name, "; ".join(filter(None, [*skipped, candidate.chosen()]))
            skipped.append(why_not)
    if backend not in BACKENDS:
        raise ValueError(
            f"Unknown serving backend {backend!r} ({reason}): use one of {tuple(BACKENDS)}."
        )
    why_not = BACKENDS[backend].unavailable()
    if why_not is not None:
        raise ServerStartError(f"Backend {backend} was {reason}, but {why_not}.")
    return backend, reason


def start(
    model_base_path: str | os.PathLike[str] | None = None,
    model_name: str | None = None,
    *,
    model_config_file: str | os.PathLike[str] | None = None,
    backend: str | None = None,
    rest_port: int | None = None,
    grpc_port: int | None = None,
    extra_flags: Sequence[str] = (),
    timeout: float = 60,
) -> Server:
    """Start a model server and return once every model has an AVAILABLE version.

    Serve one model (`model_base_path`, a folder of numbered versions; `model_name` defaults to
    the folder's name) or those of a text-format `model_config_file`. `extra_flags` are more
    tensorflow_model_server flags. Raises ServerStartError (with the server's last log lines)
    when the server fails or `timeout` seconds pass; the server is stopped in that case.
    With the remote backend, the models are added to a server that already runs.
    """
    models, config_file = resolve_models(model_base_path, model_name, model_config_file)
    for flag in extra_flags:
        if flag.startswith(_OWN_FLAGS) or flag.startswith("--model_config_file="):
            raise ValueError(f"{flag}: pass ports, model and config through start()'s arguments.")
    name, reason = choose_backend(backend, models=models, extra_flags=extra_flags)
    print(f"scalelab.serving: using the {name} backend ({reason}).")
    for attempt in range(3):
        spare = iter(free_ports(2))
        rest = rest_port or next(spare)
        grpc = grpc_port or next(port for port in spare if port != rest)
        request = Request(models, config_file, rest, grpc, tuple(extra_flags))
        try:
            server = BACKENDS[name].launch(request)
            break
        except ServerStartError as error:
            # a port found free can be taken before Docker binds it: choose others and retry
            ours = rest_port is None and grpc_port is None
            if not (ours and any(t in str(error) for t in _PORT_TAKEN) and attempt < 2):
                raise
    wait_until_available(server, timeout)
    return server


_SHARED: dict[tuple[str, str | None], Server] = {}


def shared(model_base_path: str | os.PathLike[str], model_name: str | None = None) -> Server:
    """A server for this model that later calls reuse while it runs (graded tests share one).

    It is started on first use with start()'s defaults and stopped when Python exits.
    """
    key = (str(Path(model_base_path).resolve()), model_name)
    server = _SHARED.get(key)
    if server is None or server.exit_code() is not None:
        server = _SHARED[key] = start(model_base_path, model_name)
        atexit.register(server.stop)
    return server
