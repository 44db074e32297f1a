"""Vertex AI's local endpoint (`google-cloud-aiplatform`'s `LocalModel.deploy_to_local_endpoint`)
for a learner's `LocalModel`: started, and its container removed after, also when a cell fails.

The SDK runs the serving container in the Docker engine of DOCKER_HOST with the artifact folder
mounted at AIP_STORAGE_URI, waits for its health route, and sends `predict` to its predict route:
what Vertex AI does with an uploaded model, on this machine and without a cloud account.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import docker

INSTALL = "pip install 'google-cloud-aiplatform[prediction]'"


def unavailable() -> str | None:
    """Why the local endpoint cannot run here (no SDK, no Docker engine), or None."""
    try:
        if importlib.util.find_spec("google.cloud.aiplatform") is None:
            return f"the Vertex AI SDK is not installed ({INSTALL})"
    except ModuleNotFoundError:  # no google.cloud namespace at all
        return f"the Vertex AI SDK is not installed ({INSTALL})"
    why = docker.unavailable()
    return f"no Docker engine for its container: {why}" if why else None


@contextlib.contextmanager
def local_endpoint(
    local_model: Any, artifact_uri: str | Path, timeout: float = 120
) -> Iterator[Any]:
    """`local_model` served from `artifact_uri` by a local endpoint, until the block ends; its
    container is then removed (the SDK only stops it, and waits ten seconds for TF Serving,
    which ignores SIGTERM)."""
    from google.cloud import aiplatform

    aiplatform.init(project="local")  # no cloud project: spares the SDK a credentials lookup
    endpoint = local_model.deploy_to_local_endpoint(
        artifact_uri=str(artifact_uri), container_ready_timeout=int(timeout)
    )
    try:
        endpoint.serve()
        yield endpoint
    finally:
        container, endpoint.container = endpoint.container, None  # the SDK's stop() skips it
        if container is not None:
            container.remove(force=True)
