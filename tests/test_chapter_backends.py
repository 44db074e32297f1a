"""Chapters on the real-server paths: Chapter 2 on the docker backend and on the remote backend in
docker compose's topology (a TF Serving container and a lab sharing the notebooks folder at the
same path, no Docker engine inside the lab), Chapter 7's replicas as containers (killed with
`docker kill`). `make test-docker` runs these; they skip without an engine.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import papermill
import pytest
import requests
import yaml
from conftest import REPO
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


def test_chapter_7_replicas_run_and_grade_full_marks_as_docker_containers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record_property
):
    chapter_data("07_serving_at_scale").BEFORE_RUN()  # nginx, as where CI runs the chapter
    monkeypatch.setenv("SCALELAB_SERVING_BACKEND", "docker")
    used = run_and_grade(tmp_path, record_property, "07_serving_at_scale")
    assert set(used) == {"docker"}, used
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
