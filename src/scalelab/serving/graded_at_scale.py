"""The checks Chapter 7's graded tests use: a learner's readiness probe asked by a real server
before and after its model loses its only version."""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from typing import Any

import requests

from scalelab import savedmodel

from .graded import POLL, TestServers, available_versions


def _probe_port(container: Mapping[str, Any], port: object) -> int | None:
    """The container port a probe's `port` means (a number, or the name of a declared port)."""
    if isinstance(port, int):
        return port
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return int(declared.get("containerPort", 0))
    return None


def readiness_problems(
    tests: TestServers, container: Mapping[str, Any], model: str = "digits"
) -> list[str]:
    """What is wrong with `container`'s readinessProbe, asked of a real server of `model` (its
    REST API as port 8501) while version 1 is AVAILABLE, after version 2 replaced it, and after
    both are removed."""
    probe = container.get("readinessProbe")
    if not isinstance(probe, Mapping):
        return ["the container has no readinessProbe"]
    get = probe.get("httpGet")
    if not isinstance(get, Mapping):
        kinds = sorted(set(probe) & {"tcpSocket", "exec", "grpc"})
        return [f"the probe uses {kinds or 'nothing'}: ask TF Serving's REST API (httpGet)"]
    port = _probe_port(container, get.get("port"))
    if port != 8501:
        return [f"httpGet port {get.get('port')!r} is not the REST port 8501"]
    path = str(get.get("path", "/"))
    base = tests.base_with("readiness", {1: "digits_v1"}, model)
    server = tests.start(base, model, extra_flags=POLL)

    def ready(when: str) -> str | None:
        code = requests.get(f"{server.rest_url}{path}", timeout=10).status_code
        return None if 200 <= code < 400 else f"GET {path} answered {code} {when}"

    def serving(versions: set[int]) -> None:
        deadline = time.monotonic() + 30
        while available_versions(server.rest_url, model) != versions:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the tests' server did not come to serve {versions}")
            time.sleep(0.2)

    try:
        problems = [ready("while version 1 was AVAILABLE")]
        shutil.copytree(savedmodel.version_path(base, 1), base / ".incoming")
        (base / ".incoming").rename(savedmodel.version_path(base, 2))
        serving({2})  # the default policy serves the latest version only
        problems.append(ready("after version 2 replaced version 1"))
        shutil.rmtree(savedmodel.version_path(base, 1))
        shutil.rmtree(savedmodel.version_path(base, 2))
        serving(set())
        if ready("") is None:
            problems.append(f"GET {path} still answered OK with no version AVAILABLE")
        return [problem for problem in problems if problem]
    finally:
        server.stop()
