"""Dynamic batching (--enable_batching with a parameters file), and stopping a server cleanly."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from scalelab import serving

from .conftest import NO_RETRIES, Models, backend_available
from .test_start import needs_proc, processes_mentioning

MAX_BATCH = 8


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(
    scope="module", params=["local", pytest.param("docker", marks=pytest.mark.docker), "binary"]
)
def batching(
    request: pytest.FixtureRequest, models: Models, tmp_path_factory
) -> Iterator[serving.Server]:
    """A server with batching on: at most 8 rows a batch, waiting up to 5 ms to fill one."""
    reason = backend_available(request.param)
    if reason:
        pytest.skip(f"{request.param} backend: {reason}")
    folder = tmp_path_factory.mktemp("batching")
    shutil.copytree(models.base("half_plus_two") / "1", folder / "hpt" / "1")
    parameters = folder / "batching.config"
    parameters.write_text(
        f"max_batch_size {{ value: {MAX_BATCH} }}\nbatch_timeout_micros {{ value: 5000 }}\n"
        "max_enqueued_batches { value: 100 }\nnum_batch_threads { value: 2 }\n"
    )
    flags = ["--enable_batching", f"--batching_parameters_file={parameters}"]
    server = serving.start(folder / "hpt", backend=request.param, extra_flags=flags + NO_RETRIES)
    yield server
    server.stop()


def test_concurrent_requests_each_get_their_own_answer_when_batched(batching: serving.Server):
    answers: dict[int, list] = {}

    def client(worker: int) -> None:
        with requests.Session() as session:
            for i in range(15):
                x = float(worker * 100 + i)
                answer = session.post(
                    f"{batching.rest_url}/v1/models/hpt:predict", json={"instances": [[x], [x + 1]]}
                )
                answers[worker * 100 + i] = answer.json()["predictions"]

    threads = [threading.Thread(target=client, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 90
    assert all(rows == [[0.5 * x + 2], [0.5 * (x + 1) + 2]] for x, rows in answers.items())


def test_request_larger_than_max_batch_size_is_refused(batching: serving.Server):
    rows = [[1.0]] * (MAX_BATCH + 1)
    answer = requests.post(f"{batching.rest_url}/v1/models/hpt:predict", json={"instances": rows})
    assert answer.status_code == 400
    assert (
        answer.json()["error"]
        == f"Task size {MAX_BATCH + 1} is larger than maximum input batch size {MAX_BATCH}"
    )


def test_stopping_ends_the_server_and_frees_both_ports(batching: serving.Server):
    rest_port = int(batching.rest_url.rsplit(":", 1)[1])
    grpc_port = int(batching.grpc_target.rsplit(":", 1)[1])
    batching.stop()
    assert batching.exit_code() is not None
    assert port_is_free(rest_port) and port_is_free(grpc_port)
    if batching.backend == "local":
        assert batching.exit_code() == 0 and "Shutting down" in batching.logs()


@needs_proc
def test_batching_parameters_file_without_enable_batching_fails_start_up(
    models: Models, tmp_path: Path
):
    parameters = tmp_path / "batching.config"
    parameters.write_text("max_batch_size { value: 8 }\n")
    base = models.base("half_plus_two")
    with pytest.raises(
        serving.ServerStartError, match=r"without setting server_options\.enable_batching"
    ):
        serving.start(
            base, backend="local", extra_flags=[f"--batching_parameters_file={parameters}"]
        )
    assert processes_mentioning(f"--batching_parameters_file={parameters}") == []
