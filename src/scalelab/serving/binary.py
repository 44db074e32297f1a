"""The binary backend: `tensorflow_model_server` from PATH, run as a subprocess."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from .server import Models, ProcessServer, ServerStartError, model_flags

BINARY = "tensorflow_model_server"


def find_binary() -> str | None:
    """The path of tensorflow_model_server, or None when it is not on PATH."""
    return shutil.which(BINARY)


def binary_command(
    models: Models,
    config_file: Path | None,
    rest_port: int = 8501,
    grpc_port: int = 8500,
    extra_flags: Sequence[str] = (),
) -> list[str]:
    """The tensorflow_model_server command line for these models and ports."""
    flags = [f"--port={grpc_port}", f"--rest_api_port={rest_port}"]
    return [BINARY, *flags, *model_flags(models, config_file), *extra_flags]


def launch(
    models: Models,
    config_file: Path | None,
    rest_port: int,
    grpc_port: int,
    extra_flags: Sequence[str] = (),
) -> ProcessServer:
    """Start tensorflow_model_server; its INFO logs (loads, ports) go to Server.logs()."""
    path = find_binary()
    if path is None:
        raise ServerStartError(f"{BINARY} is not on PATH: install it, or use another backend.")
    argv = binary_command(models, config_file, rest_port, grpc_port, extra_flags)
    argv[0] = path
    names = [name for name, _ in models]
    return ProcessServer("binary", argv, dict(os.environ), rest_port, grpc_port, names)
