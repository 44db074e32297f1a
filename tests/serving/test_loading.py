"""How versions load, fail and unload, case by case as TF Serving does it (its sources:
file_system_storage_path_source, aspired_versions_manager, availability_preserving_policy,
tensorflow/cc/saved_model/loader). Each case runs on its own server per backend, with short
retry intervals; the remote backend is left out (its loading is whatever server runs)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from scalelab import serving

from .conftest import Models, backend_available, wait_for

POLL = "--file_system_poll_wait_seconds=1"


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker), "binary"])
def serve(
    request: pytest.FixtureRequest, models: Models, tmp_path: Path
) -> Iterator[Callable[..., tuple[serving.Server, Path]]]:
    """serve(retries, interval_seconds, model=...) -> (server, base path), version 1 served."""
    reason = backend_available(request.param)
    if reason:
        pytest.skip(f"{request.param} backend: {reason}")
    started: list[serving.Server] = []

    def start(
        retries: int = 0, interval: float = 0.5, model: str = "half_plus_two"
    ) -> tuple[serving.Server, Path]:
        base = tmp_path / "m"
        shutil.copytree(models.base(model) / "1", base / "1")
        flags = [
            POLL,
            f"--max_num_load_retries={retries}",
            f"--load_retry_interval_micros={int(interval * 1e6)}",
        ]
        server = serving.start(base, "m", backend=request.param, extra_flags=flags)
        started.append(server)
        return server, base

    yield start
    for server in started:
        server.stop()


def status(server: serving.Server) -> dict[int, dict]:
    """version -> {"state", "error_code", "error_message"} from the REST model status."""
    answer = requests.get(f"{server.rest_url}/v1/models/m", timeout=10)
    if answer.status_code == 404:
        return {}
    return {
        int(v["version"]): {"state": v["state"], **v.get("status", {})}
        for v in answer.json()["model_version_status"]
    }


def state(server: serving.Server, version: int) -> str | None:
    return status(server).get(version, {}).get("state")


def predict(server: serving.Server, x: float = 2.0) -> requests.Response:
    body = {"instances": [[x]]}
    return requests.post(f"{server.rest_url}/v1/models/m:predict", json=body, timeout=10)


def test_version_without_saved_model_pb_retries_then_ends_with_not_found_and_stays_failed(
    serve, models: Models
):
    server, base = serve(retries=2, interval=1.0)
    partial = base / "2"
    shutil.copytree(models.staging / "v2" / "variables", partial / "variables")
    wait_for(lambda: state(server, 2) == "LOADING", "version 2 LOADING while it is retried")
    assert predict(server).json() == {"predictions": [[3.0]]}, "version 1 serves meanwhile"
    wait_for(lambda: state(server, 2) == "END", "version 2 given up after its retries")
    failed = status(server)[2]
    assert failed["error_code"] == "NOT_FOUND", failed
    assert "saved_model.pb" in failed["error_message"] or ".pb or .pbtxt" in failed["error_message"]
    assert state(server, 1) == "AVAILABLE"
    shutil.copy(models.staging / "v2" / "saved_model.pb", partial)  # the copy completes...
    time.sleep(3)
    assert status(server)[2]["error_code"] == "NOT_FOUND", "...but a failed version is not retried"
    assert predict(server).json() == {"predictions": [[3.0]]}
    partial.rename(base.parent / "away")  # it leaves the aspired set...
    time.sleep(2.5)
    (base.parent / "away").rename(partial)  # ...and comes back: a new load
    wait_for(lambda: state(server, 2) == "AVAILABLE", "version 2 loaded on its return")
    assert predict(server).json() == {"predictions": [[4.0]]}


def test_version_without_variables_loads_then_every_prediction_fails(serve, models: Models):
    server, base = serve()
    (base / "2").mkdir()
    shutil.copy(models.staging / "v2" / "saved_model.pb", base / "2")
    wait_for(lambda: state(server, 2) == "AVAILABLE", "version 2 AVAILABLE without variables")
    wait_for(lambda: state(server, 1) == "END", "version 1 unloaded in its favour")
    answer = predict(server)
    assert answer.status_code == 400, answer.text
    assert "variable" in answer.json()["error"].lower(), answer.text


def test_truncated_variables_fail_to_restore_and_a_retry_after_the_copy_completes_succeeds(
    serve, models: Models
):
    server, base = serve(retries=20, interval=1.0)
    partial = base / "2"
    shutil.copytree(models.staging / "v2", partial)
    (data,) = (partial / "variables").glob("variables.data-*")
    complete = data.read_bytes()
    data.write_bytes(complete[: len(complete) // 2])
    wait_for(lambda: state(server, 2) == "LOADING", "version 2 retried")
    if server.backend != "remote":
        wait_for(lambda: "failed" in server.logs(), "a failed restore in the server's log")
    data.write_bytes(complete)
    wait_for(lambda: state(server, 2) == "AVAILABLE", "version 2 loaded by a later retry")
    assert predict(server).json() == {"predictions": [[4.0]]}


def test_missing_base_path_changes_nothing_and_removing_every_version_unloads_all(serve):
    server, base = serve()
    base.rename(base.parent / "gone")
    time.sleep(3)
    assert state(server, 1) == "AVAILABLE"
    assert predict(server).json() == {"predictions": [[3.0]]}
    (base.parent / "gone").rename(base)
    (base / "1").rename(base.parent / "retired-1")
    wait_for(lambda: state(server, 1) == "END", "version 1 unloaded with its folder gone")
    answer = predict(server)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"] == "Servable not found for request: Latest(m)"


def test_keras_model_in_a_tf_module_loads_but_its_variables_cannot_be_found(serve, models: Models):
    """Chapter 1's trap: a SavedModel tf.saved_model.load serves, TF Serving's loader cannot."""
    server, base = serve()
    (base / "1").rename(base.parent / "old-1")
    shutil.copytree(models.staging / "keras_in_module" / "1", base / ".incoming")
    (base / ".incoming").rename(base / "2")
    wait_for(lambda: state(server, 2) == "AVAILABLE", "version 2 loaded")
    answer = requests.post(
        f"{server.rest_url}/v1/models/m:predict", json={"instances": [[1.0] * 4]}, timeout=10
    )
    assert answer.status_code == 400, answer.text
    assert "Could not find variable" in answer.json()["error"]


def test_tf1_style_saved_model_loads_and_serves(serve, models: Models):
    server, base = serve()
    shutil.copytree(models.staging / "tf1" / "1", base / ".incoming")
    (base / ".incoming").rename(base / "2")
    wait_for(lambda: state(server, 2) == "AVAILABLE", "the TF1 SavedModel loaded")
    wait_for(lambda: state(server, 1) == "END", "version 1 unloaded: version 2 answers alone")
    assert predict(server).json() == {"predictions": [[3.0]]}  # y = 0.5 x + 2
    metadata = requests.get(f"{server.rest_url}/v1/models/m/versions/2/metadata", timeout=10)
    inputs = metadata.json()["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert inputs["inputs"]["x"]["name"] == "x:0"
