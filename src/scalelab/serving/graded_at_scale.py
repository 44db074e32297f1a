"""The checks Chapter 7's graded tests use: a learner's readiness probe asked by a real server
as its model's versions come and go; a learner's gRPC retry policy against a server that fails on
cue."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator, Mapping
from concurrent import futures
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


@contextlib.contextmanager
def flaky_predictions(fail_with: str) -> Iterator[tuple[str, list[int]]]:
    """A gRPC PredictionService on a free port whose Predict fails every first attempt with the
    status `fail_with` and answers a retried attempt (gRPC marks it with the metadata
    grpc-previous-rpc-attempts). Yields its target and the attempts each call took so far."""
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    attempts: list[int] = []
    code = grpc.StatusCode[fail_with]

    class Flaky(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
        def Predict(self, request: Any, context: Any) -> Any:
            previous = dict(context.invocation_metadata()).get("grpc-previous-rpc-attempts")
            if previous is None:
                attempts.append(1)
                context.abort(code, f"{fail_with} on a first attempt, on purpose")
            attempts[-1] = int(str(previous)) + 1
            return predict_pb2.PredictResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Flaky(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", attempts
    finally:
        server.stop(grace=None)


def retry_problems(config: Mapping[str, Any]) -> list[str]:
    """What is wrong with a gRPC service config's retry policy for Predict: calls whose first
    attempt fails UNAVAILABLE must succeed on a retry; INVALID_ARGUMENT must not be retried."""
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    options = [("grpc.service_config", json.dumps(config))]
    problems = []
    for fail_with, retried in (("UNAVAILABLE", True), ("INVALID_ARGUMENT", False)):
        with (
            flaky_predictions(fail_with) as (target, attempts),
            grpc.insecure_channel(target, options=options) as channel,
        ):
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            outcomes = []
            for _ in range(5):
                try:
                    stub.Predict(predict_pb2.PredictRequest(), timeout=10)
                    outcomes.append("OK")
                except grpc.RpcError as error:
                    outcomes.append(error.code().name)
        if retried and outcomes != ["OK"] * 5:
            problems.append(f"calls failing once with UNAVAILABLE ended {outcomes}: not retried")
        if not retried and any(n > 1 for n in attempts):
            problems.append(f"INVALID_ARGUMENT was retried ({attempts} attempts): a bad request")
    return problems
