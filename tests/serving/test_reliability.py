"""Reliability: version swaps under load, incomplete and corrupt versions, bad input."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest
import requests

from scalelab.serving import Server

from .conftest import Models, version_states, wait_for

SWAP_LOAD_SECONDS = 20  # upper bound for the load test


def expected_y(version: int, x: float) -> float:
    """What version `version` of the swapped models answers: y = 0.5 x + 1 + version."""
    return 0.5 * x + 1.0 + version


def test_version_swap_under_load_has_no_failed_requests(
    http, server: Server, served_models: Models
):
    """A new version loads before the old unloads; every answer comes from a served version."""
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from .conftest import _quiet_tensorflow

    tf = _quiet_tensorflow()
    stop = threading.Event()
    failures: list[str] = []
    rest_answers: list[float] = []
    grpc_answers: list[tuple[int, float]] = []

    def rest_client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                answer = session.post(
                    f"{server.rest_url}/v1/models/swap:predict", json={"instances": [[2.0]]}
                )
                if answer.status_code != 200:
                    failures.append(answer.text)
                else:
                    rest_answers.append(answer.json()["predictions"][0][0])

    def grpc_client() -> None:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "swap"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([[2.0]], dtype=tf.float32))
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not stop.is_set():
                try:
                    response = stub.Predict(request, timeout=10)
                except grpc.RpcError as error:
                    failures.append(f"{error.code()}: {error.details()}")
                    continue
                version = response.model_spec.version.value
                grpc_answers.append((version, response.outputs["y"].float_val[0]))

    clients = [threading.Thread(target=rest_client), threading.Thread(target=grpc_client)]
    for client in clients:
        client.start()
    try:
        time.sleep(0.3)
        served_models.move_in("v2", "swap", 2)
        wait_for(
            lambda: version_states(http, server, "swap") == {2: "AVAILABLE", 1: "END"},
            "version 2 AVAILABLE and version 1 unloaded",
            SWAP_LOAD_SECONDS,
        )
        time.sleep(0.3)
    finally:
        stop.set()
        for client in clients:
            client.join()
    assert failures == []
    assert {v for v, _ in grpc_answers} == {1, 2}
    assert all(y == expected_y(v, 2.0) for v, y in grpc_answers)
    assert set(rest_answers) == {expected_y(1, 2.0), expected_y(2, 2.0)}


def test_corrupt_version_is_reported_and_previous_keeps_serving(
    http, server: Server, served_models: Models
):
    served_models.move_in("corrupt", "corrupt", 2)

    def failed_status() -> Any:
        answer = http.get(f"{server.rest_url}/v1/models/corrupt").json()
        by_version = {v["version"]: v for v in answer["model_version_status"]}
        status = by_version.get("2", {}).get("status", {})
        return by_version if status.get("error_code", "OK") != "OK" else None

    by_version = wait_for(failed_status, "version 2 reported with an error")
    assert by_version["2"]["state"] == "END"
    assert by_version["2"]["status"]["error_message"]
    assert by_version["1"]["state"] == "AVAILABLE"
    answer = http.post(f"{server.rest_url}/v1/models/corrupt:predict", json={"instances": [[2.0]]})
    assert answer.json() == {"predictions": [[expected_y(1, 2.0)]]}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("half_plus_two:predict", b"{not json"),
        ("keras:predict", b'{"instances": [[1.0, 2.0]]}'),
        ("half_plus_two:predict", b'{"instances": [["one"]]}'),
        ("half_plus_two:predict", b'{"instances": [[1.0], [1.0, 2.0]]}'),
        ("half_plus_two:predict", b'{"signature_name": "nope", "instances": [[1.0]]}'),
        ("half_plus_two/versions/9:predict", b'{"instances": [[1.0]]}'),
        ("half_plus_two/labels/nope:predict", b'{"instances": [[1.0]]}'),
        ("nope:predict", b'{"instances": [[1.0]]}'),
        ("half_plus_two:predict", b"\xff\xfe"),
    ],
)
def test_bad_requests_get_json_errors_and_the_server_keeps_serving(http, server, path, body):
    answer = http.post(f"{server.rest_url}/v1/models/{path}", data=body)
    assert answer.status_code in (400, 404)
    assert answer.json()["error"]
    good = http.post(
        f"{server.rest_url}/v1/models/half_plus_two:predict", json={"instances": [[1.0]]}
    )
    assert good.json() == {"predictions": [[2.5]]}
