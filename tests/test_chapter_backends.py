"""Chapters on the real-server paths: Chapter 2 on the docker backend and on the remote backend in
docker compose's topology (a TF Serving container and a lab sharing the notebooks folder at the
same path, no Docker engine inside the lab), Chapter 7's replicas as containers (killed with
`docker kill`) with Vertex AI's local endpoint, and docker-compose.yml's replicas profile (two
servers behind nginx). `make test-docker` runs these; they skip without an engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import papermill
import pytest
import requests
import yaml
from conftest import REPO, apt_install
from test_chapters import chapter_data

from scalelab import grading, serving
from scalelab.serving import docker as docker_backend

CHAPTER = "02_tf_serving"
DOCKER_MISSING = docker_backend.unavailable()
pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(DOCKER_MISSING is not None, reason=f"docker backend: {DOCKER_MISSING}"),
]


def compose_service(name: str) -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][name]


@pytest.fixture
def compose_like(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """docker-compose.yml's serving service (its own flags, an empty model list) in a container,
    and this process set up like its lab service, sharing `tmp_path` with it at the same path."""
    flags = [
        flag
        for flag in compose_service("serving")["command"]
        if not flag.startswith(("--port=", "--rest_api_port=", "--model_config_file="))
    ]
    config = tmp_path / "models.config"
    config.write_text((REPO / "compose" / "serving" / "models.config").read_text())
    host = serving.start(model_config_file=config, backend="docker", extra_flags=flags)
    lab = compose_service("lab")["environment"]
    assert lab["SCALELAB_SERVING_REMOTE_FLAGS"].split() == flags, "lab and server disagree"
    monkeypatch.setenv("SCALELAB_SERVING_REMOTE_REST", host.rest_url)
    monkeypatch.setenv("SCALELAB_SERVING_REMOTE_GRPC", host.grpc_target)
    monkeypatch.setenv("SCALELAB_SERVING_REMOTE_ROOT", str(tmp_path))
    monkeypatch.setenv("SCALELAB_SERVING_REMOTE_FLAGS", lab["SCALELAB_SERVING_REMOTE_FLAGS"])
    (tmp_path / ".tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / ".tmp"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # none inside the lab
    monkeypatch.delenv("SCALELAB_SERVING_BACKEND", raising=False)
    try:
        yield tmp_path
    finally:
        host.stop()


def backends_used(notebook: Path) -> Counter:
    """How many servers each backend started, from the notebook's printed choices."""
    text = "".join(
        "".join(output.get("text", ""))
        for cell in json.loads(notebook.read_text())["cells"]
        for output in cell.get("outputs", [])
    )
    return Counter(re.findall(r"scalelab\.serving: using the (\w+) backend", text))


def run_and_grade(workdir: Path, record_property, chapter: str = CHAPTER) -> Counter:
    """Execute the solution in fast mode (checked like CI's run), then the nbgrader round trip."""
    executed = workdir / "executed" / f"{chapter}.ipynb"
    executed.parent.mkdir(parents=True)
    papermill.execute_notebook(
        REPO / "solutions" / chapter / f"{chapter}.ipynb",
        executed,
        parameters={"FAST": True},
        cwd=executed.parent,
        kernel_name="python3",
        progress_bar=False,
    )
    results = json.loads((executed.parent / "results.json").read_text())
    chapter_data(chapter).check(results, executed.parent)
    scores = grading.roundtrip(REPO, chapter, workdir / "grading")
    for case, score in sorted(scores.items()):
        record_property(
            "summary",
            f"{chapter} on {os.environ.get('SCALELAB_SERVING_BACKEND', 'remote')}, {case}: {score}",
        )
    assert scores["solution"].points == scores["solution"].max_points > 0
    assert scores["untouched"].points == 0
    return backends_used(executed)


def test_chapter_2_runs_and_grades_full_marks_on_the_docker_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record_property
):
    monkeypatch.setenv("SCALELAB_SERVING_BACKEND", "docker")
    used = run_and_grade(tmp_path, record_property)
    assert set(used) == {"docker"}, used
    assert docker_containers_of(os.getpid()) == []


def test_chapter_7_runs_replicas_and_vertex_ais_local_endpoint_as_containers_and_grades_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record_property
):
    chapter_data("07_serving_at_scale").BEFORE_RUN()  # nginx, as where CI runs the chapter
    monkeypatch.setenv("SCALELAB_SERVING_BACKEND", "docker")
    used = run_and_grade(tmp_path, record_property, "07_serving_at_scale")
    assert set(used) == {"docker"}, used
    results = json.loads((tmp_path / "executed" / "results.json").read_text())
    assert results["vertex_local"] is not None, "Vertex AI's local endpoint did not run"
    assert docker_containers_of(os.getpid()) == []


def test_chapter_2_runs_and_grades_full_marks_on_the_remote_backend_as_in_compose(
    compose_like: Path, record_property
):
    used = run_and_grade(compose_like, record_property)
    record_property("summary", f"{CHAPTER} in compose's topology, servers by backend: {dict(used)}")
    assert used["remote"] >= 1, used  # the chapter's own server is the compose TF Serving
    assert set(used) <= {"remote", "local"}, used


def docker_containers_of(pid: int) -> list:
    with docker_backend._client() as client:
        label = f"{docker_backend.OWNER_LABEL}={pid}"
        return client.containers.list(all=True, filters={"label": label})


def test_the_learners_docker_run_command_runs_in_the_engine(tmp_path: Path):
    """Exercise 1's answer, run for real as its test cell runs it: the reference command serves
    and answers; a read-write mount is caught by its meaning and by the running container."""
    from scalelab import data, models, savedmodel
    from scalelab.answers import ch02
    from scalelab.serving import argv, graded

    digits = data.load("digits")
    model, _ = models.train_classifier(digits, epochs=1, hidden=8)
    base = tmp_path / "served" / "digits"
    savedmodel.export_classifier(model, base / "1", digits.class_names)

    def answers(server: serving.Server) -> None:
        body = {"instances": digits.x_test[:2].tolist()}
        answer = requests.post(f"{server.rest_url}/v1/models/digits:predict", json=body, timeout=30)
        assert answer.ok and len(answer.json()["predictions"]) == 2, answer.text

    assert argv.problems(ch02.docker_run_argv(base, "digits"), base, "digits") == []
    assert graded.run_docker_answer(ch02.docker_run_argv, base, answers) == []

    def read_write(base_path, model_name, rest_port=8501, grpc_port=8500):
        command = ch02.docker_run_argv(base_path, model_name, rest_port, grpc_port)
        return [part.removesuffix(":ro") for part in command]

    assert any("read-only" in p for p in argv.problems(read_write(base, "digits"), base, "digits"))
    ran = graded.run_docker_answer(read_write, base, answers)
    assert ran and "mounted read-write" in ran[0], ran
    assert docker_containers_of(os.getpid()) == []


def compose_program() -> list[str]:
    """docker compose (the plugin) or docker-compose (Debian's package, installed if missing)."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose") or apt_install("docker-compose"):
        return ["docker-compose"]
    pytest.skip("no docker compose: apt-get install docker-compose")


@pytest.fixture
def replicas_profile(tmp_path: Path) -> Iterator[tuple[list[str], Path]]:
    """`docker compose --profile replicas` on this repository's docker-compose.yml, with its
    notebooks volume on a folder of `tmp_path` (given back with the command), taken down after."""
    if not os.environ.get("SCALELAB_NGINX_IMAGE"):
        pytest.skip("SCALELAB_NGINX_IMAGE is not set: tests/docker/build_nginx_image.sh builds one")
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    bind = {"type": "none", "o": "bind", "device": str(notebooks)}
    override = tmp_path / "volume.yml"
    override.write_text(yaml.safe_dump({"volumes": {"notebooks": {"driver_opts": bind}}}))
    compose = [
        *compose_program(),
        *("-p", f"scalelab-replicas-{os.getpid()}", "--profile", "replicas"),
        *("-f", str(REPO / "docker-compose.yml"), "-f", str(override)),
    ]
    try:
        yield compose, notebooks
    finally:
        logs = subprocess.run([*compose, "logs", "--no-color"], capture_output=True, text=True)
        print(logs.stdout[-4000:])
        subprocess.run([*compose, "down", "-v", "--timeout", "5"], capture_output=True, check=True)


def wait_until_serving(rest_url: str, version: int, timeout: float = 180) -> None:
    """Return once the server at `rest_url` reports `version` of digits AVAILABLE."""
    from scalelab.serving import graded

    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.RequestException):
            if version in graded.available_versions(rest_url):
                return
        assert time.monotonic() < deadline, f"{rest_url}: no version {version} in {timeout} s"
        time.sleep(1)


def test_composes_replicas_profile_spreads_rest_and_grpc_over_both_and_rolls_a_new_version(
    replicas_profile: tuple[list[str], Path], record_property
):
    import grpc

    from scalelab import data, models, savedmodel
    from scalelab.serving import replicas

    compose, notebooks = replicas_profile
    digits = data.load("digits")
    model, _ = models.train_classifier(digits, epochs=1, hidden=8)
    base = notebooks / "07_serving_at_scale" / "models" / "digits"  # where Chapter 7 exports
    savedmodel.export_classifier(model, base / "1", digits.class_names)
    up = subprocess.run([*compose, "up", "-d", "balancer"], capture_output=True, text=True)
    assert up.returncode == 0, up.stderr
    ports = [
        subprocess.run(
            [*compose, "port", name, "8501"], capture_output=True, text=True, check=True
        ).stdout.strip()
        for name in ("replica-1", "replica-2")
    ]
    servers = [SimpleNamespace(rest_url=f"http://{port}") for port in ports]
    for server in servers:
        wait_until_serving(server.rest_url, 1)
    balancer = "http://127.0.0.1:8601"
    wait_until_serving(balancer, 1, timeout=30)

    body = {"instances": digits.x_test[:1].tolist()}
    before = [replicas.rest_predictions(replicas.scrape(s)) for s in servers]
    for _ in range(10):
        requests.post(
            f"{balancer}/v1/models/digits:predict", json=body, timeout=30
        ).raise_for_status()
    rest = [
        replicas.rest_predictions(replicas.scrape(s)) - b
        for s, b in zip(servers, before, strict=True)
    ]

    def grpc_calls(text: str) -> float:
        buckets = replicas.latency_buckets(text, entrypoint="GRPC")
        return buckets[-1][1] if buckets else 0.0  # the +Inf bucket counts every call

    with grpc.insecure_channel("127.0.0.1:8600") as channel:  # one connection, to nginx
        spread = replicas.calls_per_replica(servers, channel, digits.x_test[:1], 10, grpc_calls)
    record_property("summary", f"compose replicas profile: REST {rest}, gRPC {spread}")
    assert rest == [5, 5], rest  # nginx's round robin, request by request
    assert spread == [5, 5], spread  # and call by call over one gRPC connection

    staging = base / ".incoming-2"
    savedmodel.export_classifier(model, staging, digits.class_names)
    staging.rename(base / "2")  # published atomically, as Chapter 7 teaches
    for server in servers:
        wait_until_serving(server.rest_url, 2, timeout=60)
