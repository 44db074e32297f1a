"""The remote backend: models added to a TF Serving that runs already (as in docker compose),
removed on stop, and a clear fallback whenever that server cannot serve a request as asked."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from scalelab import serving

from .conftest import REMOTE_FLAGS, Models, remote_env


@pytest.fixture
def shared(remote_host, models: Models, tmp_path_factory) -> Iterator[Path]:
    """A folder the remote server sees, holding a fresh copy of half_plus_two; the environment
    names the remote server while the test runs."""
    host, root = remote_host
    folder = Path(tmp_path_factory.mktemp("remote-case", numbered=True))
    assert folder.is_relative_to(root)
    shutil.copytree(models.base("half_plus_two"), folder / "hpt")
    with remote_env(host, root):
        yield folder


def status_code(server: serving.Server, model: str) -> int:
    return requests.get(f"{server.rest_url}/v1/models/{model}", timeout=10).status_code


def test_start_adds_the_model_to_the_running_server_and_stop_removes_it(shared: Path, capsys):
    server = serving.start(shared / "hpt", "remote_hpt")
    assert server.backend == "remote"
    assert (
        "using the remote backend (the TF Serving at http://127.0.0.1:" in capsys.readouterr().out
    )
    answer = requests.post(
        f"{server.rest_url}/v1/models/remote_hpt:predict", json={"instances": [[2.0]]}, timeout=10
    )
    assert answer.json() == {"predictions": [[3.0]]}
    server.stop()
    assert requests.get(f"{server.rest_url}/v1/models/remote_hpt", timeout=10).json()[
        "model_version_status"
    ][0]["state"] in ("UNLOADING", "END")
    assert serving.start(shared / "hpt", "remote_hpt").backend == "remote"  # the name is free


def test_second_server_for_the_same_model_name_is_started_elsewhere_and_says_why(
    shared: Path, capsys
):
    with serving.start(shared / "hpt", "twice") as first:
        capsys.readouterr()
        with serving.start(
            shared / "hpt", "twice", extra_flags=["--max_num_load_retries=0"]
        ) as second:
            assert second.backend != "remote" and second.rest_url != first.rest_url
            assert "already serves a model named twice" in capsys.readouterr().out
        with pytest.raises(serving.ServerStartError, match="already serves a model named twice"):
            serving.start(shared / "hpt", "twice", backend="remote")


def test_flag_the_running_server_lacks_is_served_elsewhere(shared: Path, capsys):
    flags = ["--enable_batching", "--max_num_load_retries=0"]
    with serving.start(shared / "hpt", "batched", extra_flags=flags) as server:
        assert server.backend != "remote"
    assert "was not started with --enable_batching=true" in capsys.readouterr().out
    assert "--file_system_poll_wait_seconds=1" in REMOTE_FLAGS  # what the server has is fine
    with serving.start(shared / "hpt", "polled", extra_flags=REMOTE_FLAGS[:1]) as server:
        assert server.backend == "remote"


def test_base_path_outside_the_shared_folder_is_refused(shared: Path, models: Models, tmp_path):
    outside = Path("/dev/shm" if Path("/dev/shm").is_dir() else "/var/tmp") / tmp_path.name
    shutil.copytree(models.base("half_plus_two"), outside / "hpt")
    try:
        with pytest.raises(serving.ServerStartError, match="is outside"):
            serving.start(outside / "hpt", backend="remote")
    finally:
        shutil.rmtree(outside)


def test_models_of_a_process_that_died_are_taken_off_at_the_next_start(shared: Path):
    child = (
        "import os; from scalelab import serving; "
        f"s = serving.start({str(shared / 'hpt')!r}, 'orphan', backend='remote'); os._exit(0)"
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with serving.start(shared / "hpt", "survivor") as server:
        assert status_code(server, "survivor") == 200
        states = requests.get(f"{server.rest_url}/v1/models/orphan", timeout=10).json()
        assert states.get("model_version_status", [{}])[0].get("state") in (
            None,
            "UNLOADING",
            "END",
        )


def test_a_model_that_fails_to_load_is_a_start_error_and_leaves_the_server_as_it_was(
    shared: Path, models: Models
):
    shutil.copytree(models.staging / "corrupt", shared / "broken" / "1")
    with serving.start(shared / "hpt", "neighbour") as neighbour:
        with pytest.raises(serving.ServerStartError, match="refused the new model list"):
            serving.start(shared / "broken", backend="remote")
        assert status_code(neighbour, "neighbour") == 200
        with serving.start(shared / "hpt", "broken") as reused:  # the name was not kept
            assert reused.backend == "remote"
