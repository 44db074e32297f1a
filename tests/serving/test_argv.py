"""`docker run` commands read for their meaning (scalelab.serving.argv): the forms Docker and
tensorflow/serving's entrypoint accept, and the mistakes Chapter 2's grader must catch."""

from __future__ import annotations

import pytest

from scalelab.serving import argv

BASE = "/data/models/digits"
GOOD = [
    # -p/-v/-e, the image's entrypoint script
    "docker run --rm -p 8500:8500 -p 8501:8501 -v /data/models/digits:/models/digits:ro "
    "-e MODEL_NAME=digits tensorflow/serving:2.20.0",
    # --publish=, --mount, flags after the image (the last of a name wins), docker.io prefix
    "docker run -d --publish=127.0.0.1:8501:8501 --publish 8500:8500 --mount "
    "type=bind,src=/data/models/digits,dst=/srv/d,readonly docker.io/tensorflow/serving "
    "--model_name=digits --model_base_path=/srv/d",
    # the parent folder mounted, MODEL_BASE_PATH moved, -it and --env=
    "docker container run -it -p8500:8500 -p 8501:8501/tcp -v /data/models:/m:ro,z "
    "--env=MODEL_NAME=digits -e MODEL_BASE_PATH=/m tensorflow/serving:latest",
    # --entrypoint and every flag, other container ports published
    "docker run --entrypoint tensorflow_model_server -p 8500:9000 -p 8501:9001 "
    "-v /data/models/digits:/models/digits:ro tensorflow/serving --port=9000 "
    "--rest_api_port=9001 --model_name=digits --model_base_path=/models/digits",
]


@pytest.mark.parametrize("command", GOOD)
def test_every_way_of_writing_the_command_is_understood(command: str) -> None:
    assert argv.problems(command, BASE, "digits") == []


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("docker run -p 8500:8500 -p 8501:8501 -v /data/models/digits:/models/digits "
         "-e MODEL_NAME=digits tensorflow/serving", "read-only"),
        ("docker run -p 8500:8501 -p 8501:8500 -v /data/models/digits:/models/digits:ro "
         "-e MODEL_NAME=digits tensorflow/serving", "REST: the server listens on 8501"),
        ("docker run -p 8500:8500 -p 8501:8501 -v /data/models/digits:/models/digits:ro "
         "tensorflow/serving", "named 'model'"),
        ("docker run -p 8500:8500 -p 8501:8501 -v /data/models/digits:/models/digits:ro "
         "-e MODEL_NAME=digits tensorflow/serving --model_base_path=/models/x",
         "is not a mounted folder"),
        ("docker run -p 8500:8500 -p 8501:8501 -v /data/other:/models/digits:ro "
         "-e MODEL_NAME=digits tensorflow/serving", "not the base path"),
        ("docker run -p 8500:8500 -p 8501:8501 -v /data/models/digits:/models/digits:ro "
         "-e MODEL_NAME=digits tensorflow/tensorflow", "not tensorflow/serving"),
        ("docker run --entrypoint tensorflow_model_server -p 8500:8500 -p 8501:8501 "
         "-v /data/models/digits:/models/digits:ro tensorflow/serving --model_name=digits "
         "--model_base_path=/models/digits", "no REST port"),
        ("docker -p 8500:8500 tensorflow/serving", "not a `docker run`"),
        ("docker run -p 8500:8500 --bogus tensorflow/serving", "unknown option --bogus"),
    ],
)  # fmt: skip
def test_mistakes_are_named(command: str, problem: str) -> None:
    found = argv.problems(command, BASE, "digits")
    assert any(problem in line for line in found), found


def test_host_ports_must_be_the_ones_asked_for() -> None:
    command = GOOD[0]
    found = argv.problems(command, BASE, "digits", rest_port=9501, grpc_port=9500)
    assert len(found) == 2 and all("publish it as 95" in line for line in found), found


def test_parse_keeps_what_docker_would_pass_on() -> None:
    run = argv.parse(GOOD[1])
    assert run.image == "docker.io/tensorflow/serving"
    assert run.publish == {8501: 8501, 8500: 8500}
    assert run.mounts == [argv.Mount("/data/models/digits", "/srv/d", True)]
    assert run.server_args == ["--model_name=digits", "--model_base_path=/srv/d"]
    assert run.server_flags()["model_base_path"] == "/srv/d"
