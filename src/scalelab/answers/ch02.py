"""Chapter 2's reference answers: REST request bodies and answers, a gRPC client, an atomic
deploy and a rollback, and the version-state helpers they wait with."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

from scalelab import savedmodel


def versions(rest_url: str, model_name: str = "digits") -> dict[int, str]:
    """{version: state} of a served model, from its REST status (raises on an HTTP error)."""
    answer = requests.get(f"{rest_url}/v1/models/{model_name}", timeout=10)
    answer.raise_for_status()
    return {int(v["version"]): v["state"] for v in answer.json()["model_version_status"]}


def wait_for_version(
    rest_url: str, version: int, model_name: str = "digits", timeout: float = 60
) -> float:
    """Wait until the server reports `version` AVAILABLE; return the seconds waited
    (TimeoutError when `timeout` seconds pass first)."""
    started = time.perf_counter()
    while versions(rest_url, model_name).get(version) != "AVAILABLE":
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"version {version} of {model_name} not AVAILABLE after {timeout} s")
        time.sleep(0.1)
    return time.perf_counter() - started


def rest_request_body(images: Any, signature_name: str = "serving_default") -> dict[str, Any]:
    """Exercise 1: the JSON body (as a dict) of a row-format :predict request for `images`."""
    return {"signature_name": signature_name, "instances": np.asarray(images).tolist()}


def class_ids_from_response(answer: dict[str, Any]) -> np.ndarray:
    """Exercise 2: predicted class ids (int64) from a decoded :predict answer, row or columnar."""
    if "predictions" in answer:
        return np.array([p["class_id"] for p in answer["predictions"]], dtype=np.int64)
    return np.asarray(answer["outputs"]["class_id"], dtype=np.int64)


def grpc_predict(
    target: str, model_name: str, images: Any, version: int | None = None
) -> tuple[np.ndarray, int]:
    """Exercise 3: (probabilities, version that answered) for `images`, over gRPC."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        if version is not None:
            request.model_spec.version.value = version
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.asarray(images, dtype=np.uint8)))
        reply = stub.Predict(request, timeout=10.0)
    return tf.make_ndarray(reply.outputs["probabilities"]), reply.model_spec.version.value


def deploy_version(
    export_dir: str | Path,
    base_path: str | Path,
    version: int,
    rest_url: str,
    model_name: str = "digits",
    timeout: float = 60,
) -> float:
    """Exercise 4: copy export_dir in as `version` atomically (copy to a name that is not a
    number, then rename); wait until it is AVAILABLE; return the seconds waited."""
    target = savedmodel.version_path(base_path, version)
    staging = Path(base_path) / f".incoming-{target.name}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(export_dir, staging)
    staging.rename(target)
    return wait_for_version(rest_url, version, model_name, timeout)


def retired_path(base_path: str | Path, version: int, model_name: str = "digits") -> Path:
    """Where roll_back keeps a retired version: <parent of base_path>/retired/<model>-<version>."""
    return Path(base_path).parent / "retired" / f"{model_name}-{version}"


def roll_back(
    base_path: str | Path,
    version: int,
    rest_url: str,
    model_name: str = "digits",
    timeout: float = 60,
) -> int:
    """Exercise 5: move `version` out of base_path (to retired_path); wait until it no longer
    serves and another version does; return the highest AVAILABLE version."""
    retired = retired_path(base_path, version, model_name)
    retired.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(retired, ignore_errors=True)
    savedmodel.version_path(base_path, version).rename(retired)
    started = time.perf_counter()
    while True:
        states = versions(rest_url, model_name)
        available = [v for v, state in states.items() if state == "AVAILABLE"]
        if available and version not in available:
            return max(available)
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"version {version} of {model_name} still serving after {timeout} s")
        time.sleep(0.1)
