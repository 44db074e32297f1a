"""scalelab.serving.vertex: why Vertex AI's local endpoint cannot run, and its container removed
whatever happens in the block (the real endpoint runs in Chapter 7 under make test-docker)."""

from __future__ import annotations

import importlib.util
from typing import ClassVar

import pytest

from scalelab.serving import docker, vertex


def test_unavailable_says_how_to_install_the_sdk_when_it_is_missing(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert "pip install 'google-cloud-aiplatform[prediction]'" in str(vertex.unavailable())


def test_unavailable_names_the_missing_docker_engine(monkeypatch):
    pytest.importorskip("google.cloud.aiplatform")
    monkeypatch.setattr(docker, "unavailable", lambda: "no engine answers at unix:///x")
    assert (
        vertex.unavailable() == "no Docker engine for its container: no engine answers at unix:///x"
    )


class FakeContainer:
    removed: ClassVar[list[bool]] = []

    def remove(self, force: bool = False) -> None:
        self.removed.append(force)


class FakeEndpoint:
    def __init__(self, fail: bool) -> None:
        self.container: FakeContainer | None = None
        self.fail = fail

    def serve(self) -> None:
        self.container = FakeContainer()
        if self.fail:
            raise RuntimeError("health check timed out")


class FakeLocalModel:
    def __init__(self, fail: bool = False) -> None:
        self.endpoint = FakeEndpoint(fail)

    def deploy_to_local_endpoint(self, artifact_uri: str, container_ready_timeout: int):
        assert artifact_uri == "/models/digits" and container_ready_timeout == 120
        return self.endpoint


@pytest.mark.parametrize("fail_in", ["block", "serve"])
def test_the_container_is_removed_with_force_when_the_block_or_the_start_fails(fail_in):
    pytest.importorskip("google.cloud.aiplatform")
    FakeContainer.removed.clear()
    model = FakeLocalModel(fail=fail_in == "serve")
    with pytest.raises(RuntimeError), vertex.local_endpoint(model, "/models/digits"):
        raise RuntimeError("the cell failed")
    assert FakeContainer.removed == [True]
    assert model.endpoint.container is None  # the SDK's own stop() (and __del__) do nothing
