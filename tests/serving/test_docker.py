"""The docker backend against a real engine: containers are named, owned, stopped gracefully,
swept when their owner dies, and their failures are clear (`make test-docker` runs these)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from scalelab import serving
from scalelab.processes.children import free_ports
from scalelab.serving import Request
from scalelab.serving import docker as docker_backend

from .conftest import Models, backend_available, wait_for

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        backend_available("docker") is not None,
        reason=f"docker backend: {backend_available('docker')}",
    ),
]


def own_containers(pid: int | None = None) -> list:
    """scalelab's serving containers (of one owner), running or not."""
    label = docker_backend.OWNER_LABEL + (f"={pid}" if pid else "")
    with docker_backend._client() as client:
        return client.containers.list(all=True, filters={"label": label})


def test_container_is_named_and_labelled_with_its_owner_and_removed_on_stop(models: Models):
    with serving.start(models.base("half_plus_two"), backend="docker") as server:
        (container,) = own_containers(os.getpid())
        assert container.name.startswith(f"scalelab-serving-{os.getpid()}-")
        assert server.container.id == container.id
    assert own_containers(os.getpid()) == []


def test_stop_shuts_the_server_down_gracefully_instead_of_killing_it(models: Models):
    server = serving.start(models.base("half_plus_two"), backend="docker")
    container = server.container
    container.stop(timeout=30)  # what stop() does, without removing, to read the exit code
    container.reload()
    assert container.attrs["State"]["ExitCode"] != 137, "SIGTERM was ignored: killed after 30 s"
    server.stop()


def test_container_removed_from_outside_is_a_clear_start_error(models: Models):
    rest_port, grpc_port = free_ports(2)
    request = Request([("half_plus_two", models.base("half_plus_two"))], None, rest_port, grpc_port)
    server = docker_backend.launch(request)
    server.container.remove(force=True)
    with pytest.raises(serving.ServerStartError, match=r"exited \(code -1\)") as failure:
        serving.server.wait_until_available(server, 30)
    assert "was removed" in str(failure.value)
    server.stop()


def test_containers_of_a_process_that_died_are_swept_at_the_next_start(models: Models):
    child = (
        "import os; from scalelab import serving; "
        f"s = serving.start({str(models.base('half_plus_two'))!r}, backend='docker'); "
        "print(os.getpid(), flush=True); os._exit(0)"
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    child_pid = int(done.stdout.split()[-1])
    assert own_containers(child_pid), "the child's container should outlive it"
    with serving.start(models.base("half_plus_two"), backend="docker"):
        assert own_containers(child_pid) == []


def test_missing_image_says_how_to_get_it(models: Models, monkeypatch):
    monkeypatch.setenv(docker_backend.IMAGE_ENV, "scalelab/no-such-image:0")
    with pytest.raises(serving.ServerStartError, match="Could not pull scalelab/no-such-image:0"):
        serving.start(models.base("half_plus_two"), backend="docker")
    assert own_containers(os.getpid()) == []


def test_config_file_replaced_atomically_is_reloaded_inside_the_container(
    models: Models, tmp_path: Path
):
    for name in ("half_plus_two", "keras"):  # under the config file's folder, which is mounted
        shutil.copytree(models.base(name), tmp_path / name)
    config = tmp_path / "models.config"
    entry = 'config {{ name: "{0}" base_path: "{1}" model_platform: "tensorflow" }}'
    one = entry.format("half_plus_two", tmp_path / "half_plus_two")
    config.write_text(f"model_config_list {{ {one} }}\n")
    flags = ["--model_config_file_poll_wait_seconds=1"]
    with serving.start(model_config_file=config, backend="docker", extra_flags=flags) as server:
        two = entry.format("keras", tmp_path / "keras")
        replacement = tmp_path / ".models.config.new"
        replacement.write_text(f"model_config_list {{ {one} {two} }}\n")
        replacement.rename(config)  # a new inode: a single-file bind mount would never see it

        def keras_available() -> bool:
            answer = requests.get(f"{server.rest_url}/v1/models/keras", timeout=5)
            return answer.ok and answer.json()["model_version_status"][0]["state"] == "AVAILABLE"

        wait_for(keras_available, "the model added by the replaced config file", seconds=60)
