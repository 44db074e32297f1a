"""The local backend: our TF Serving stand-in, run as `python -m scalelab.serving` in a subprocess.

Modules: `cli` (flags, start-up), `manager` (versions, policy, watching), `servable` (one loaded
SavedModel), `tensors` (wire formats), `rest`, `grpc`, `batching`, `status` (error codes).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..server import Models, ProcessServer, model_flags

PARENT_PID_ENV = "SCALELAB_SERVING_PARENT_PID"


def launch(
    models: Models,
    config_file: Path | None,
    rest_port: int,
    grpc_port: int,
    extra_flags: Sequence[str] = (),
) -> ProcessServer:
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
    flags = [f"--port={grpc_port}", f"--rest_api_port={rest_port}"]
    flags += model_flags(models, config_file) + list(extra_flags)
    argv = [sys.executable, "-m", "scalelab.serving", *flags]
    return ProcessServer("local", argv, env, rest_port, grpc_port, [name for name, _ in models])
