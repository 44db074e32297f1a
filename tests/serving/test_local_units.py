"""Unit tests of the local server's pieces that need no running server."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from scalelab.serving.local import model_server


@pytest.fixture(scope="module")
def local() -> Any:
    """The TensorFlow-backed modules, imported quietly."""
    from .conftest import _quiet_tensorflow

    _quiet_tensorflow()
    from tensorflow.core.framework import types_pb2

    from scalelab.serving.local import batching, rest, status, tensors

    return SimpleNamespace(
        batching=batching, rest=rest, status=status, tensors=tensors, types=types_pb2
    )


def test_flags_take_name_equals_value_and_bare_booleans():
    flags = model_server.parse_flags(
        [
            "--port=9000",
            "--model_name=m",
            "--enable_batching",
            "--allow_version_labels_for_unavailable_models=false",
        ]
    )
    assert flags["port"] == 9000 and flags["model_name"] == "m"
    assert flags["enable_batching"] is True
    assert flags["allow_version_labels_for_unavailable_models"] is False
    assert flags["rest_api_port"] == 0 and flags["file_system_poll_wait_seconds"] == 1


@pytest.mark.parametrize("flag", ["--grpc_socket_path=/tmp/s", "--ssl_config_file=s.txt"])
def test_tf_serving_flags_the_local_server_lacks_are_refused_by_name(flag):
    name = flag.split("=")[0]
    with pytest.raises(model_server.FlagError, match=f"{name} is a tensorflow_model_server flag"):
        model_server.parse_flags([flag])


@pytest.mark.parametrize("argv", [["--nope=1"], ["port=1"], ["--port"], ["--port=abc"]])
def test_unknown_or_malformed_flags_are_refused(argv):
    with pytest.raises(model_server.FlagError):
        model_server.parse_flags(argv)


def test_floats_are_written_like_tf_serving(local):
    values = np.array([0.1, 1.0, 1e7, 3e-5, np.nan, -np.inf, 0.1 + 2e-8], np.float32)
    text = local.tensors.outputs_to_json({"y": values}, row_format=False)
    assert text == '{"outputs": [0.1, 1.0, 1e+07, 3e-05, NaN, -Infinity, 0.100000016]}'
    doubles = local.tensors.outputs_to_json({"y": np.array([0.1, 1 / 3])}, row_format=False)
    assert doubles == '{"outputs": [0.1, 0.33333333333333331]}'


def test_row_answers_need_a_common_batch_size(local):
    outputs = {"a": np.zeros((2, 1), np.float32), "b": np.zeros((3,), np.float32)}
    with pytest.raises(local.status.ServingError, match="inconsistent batch size: 3 expecting: 2"):
        local.tensors.outputs_to_json(outputs, row_format=True)


def test_booleans_never_pass_as_numbers_even_on_the_fast_path(local):
    with pytest.raises(
        local.status.ServingError, match="Type: True is not of expected type: float"
    ):
        local.tensors.json_to_array([1.5, True], local.types.DT_FLOAT, may_hold_bools=True)


def test_batching_parameters_file_is_read_and_unsupported_fields_are_named(local):
    text = "max_batch_size { value: 16 } # comment\nbatch_timeout_micros { value: 100 }\n"
    params = local.batching.parse_batching_parameters(text)
    assert (params.max_batch_size, params.batch_timeout_micros) == (16, 100)
    with pytest.raises(local.status.ServingError, match="'allowed_batch_sizes' is not supported"):
        local.batching.parse_batching_parameters("allowed_batch_sizes: 8")


def test_batcher_merges_concurrent_requests_and_splits_the_answers(local):
    runs: list[int] = []

    def run(inputs: dict) -> dict:
        runs.append(len(inputs["x"]))
        time.sleep(0.02)
        return {"y": inputs["x"] * 2}

    params = local.batching.BatchingParameters(max_batch_size=8, batch_timeout_micros=50_000)
    batcher = local.batching.Batcher(run, params)
    answers: dict[int, np.ndarray] = {}

    def client(i: int) -> None:
        answers[i] = batcher.submit({"x": np.array([i, i], np.float32)})["y"]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batcher.close()
    assert all(list(answers[i]) == [2 * i, 2 * i] for i in range(8))
    assert sum(runs) == 16 and len(runs) < 8 and max(runs) <= 8


def test_rest_requests_slower_than_the_timeout_get_504(local):
    slow = SimpleNamespace(
        signature_defs={"serving_default": None},
        input_dtypes=lambda signature: {"x": local.types.DT_FLOAT},
        predict=lambda signature, inputs: time.sleep(0.5) or {},
    )
    api = local.rest.RestApi(SimpleNamespace(servable=lambda spec: slow), timeout_in_ms=50)
    status, body = api.handle("POST", "/v1/models/m:predict", b'{"instances": [[1.0]]}')
    api.close()
    assert status == 504 and b"rest_api_timeout_in_ms=50" in body
