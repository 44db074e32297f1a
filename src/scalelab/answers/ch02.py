"""Chapter 2's reference answers: the `docker run` command, REST request bodies and answers, a
gRPC client, an atomic deploy and a rollback, a model config with version labels, a batching
parameters file, warm-up requests, and the version-state helpers they wait with."""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
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
    """Exercise 2: the JSON body (as a dict) of a row-format :predict request for `images`."""
    return {"signature_name": signature_name, "instances": np.asarray(images).tolist()}


def class_ids_from_response(answer: dict[str, Any]) -> np.ndarray:
    """Exercise 3: predicted class ids (int64) from a decoded :predict answer, row or columnar."""
    if "predictions" in answer:
        return np.array([p["class_id"] for p in answer["predictions"]], dtype=np.int64)
    return np.asarray(answer["outputs"]["class_id"], dtype=np.int64)


def grpc_predict(
    target: str, model_name: str, images: Any, version: int | None = None
) -> tuple[np.ndarray, int]:
    """Exercise 4: (probabilities, version that answered) for `images`, over gRPC."""
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
    """Exercise 5: copy export_dir in as `version` atomically (copy to a name that is not a
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
    """Exercise 6: move `version` out of base_path (to retired_path); wait until it no longer
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


def docker_run_argv(
    base_path: str | Path, model_name: str, rest_port: int = 8501, grpc_port: int = 8500
) -> list[str]:
    """Exercise 1: the `docker run` argv serving base_path's versions as `model_name` with the
    tensorflow/serving image: ports published, the folder mounted read-only at /models/<name>."""
    return [
        "docker",
        "run",
        "--rm",
        "-p",
        f"{grpc_port}:8500",
        "-p",
        f"{rest_port}:8501",
        "-v",
        f"{Path(base_path).resolve()}:/models/{model_name}:ro",
        "-e",
        f"MODEL_NAME={model_name}",
        "tensorflow/serving:2.20.0",
    ]


def model_config_text(
    base_path: str | Path,
    versions: Sequence[int],
    labels: Mapping[str, int],
    model_name: str = "digits",
) -> str:
    """Exercise 7: a text-format ModelServerConfig serving these `versions` of one model (a
    `specific` version policy), with these version labels."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(
        name=model_name, base_path=str(Path(base_path).resolve()), model_platform="tensorflow"
    )
    model.model_version_policy.specific.versions.extend(versions)
    for label, version in labels.items():
        model.version_labels[label] = version
    return text_format.MessageToString(config)


def batching_parameters_text(
    max_batch_size: int,
    batch_timeout_micros: int,
    num_batch_threads: int,
    max_enqueued_batches: int,
) -> str:
    """Exercise 8: a text-format BatchingParameters file (each field an Int64Value wrapper)."""
    return (
        f"max_batch_size {{ value: {max_batch_size} }}\n"
        f"batch_timeout_micros {{ value: {batch_timeout_micros} }}\n"
        f"num_batch_threads {{ value: {num_batch_threads} }}\n"
        f"max_enqueued_batches {{ value: {max_enqueued_batches} }}\n"
    )


def write_warmup_requests(export_dir: str | Path, images: Any, model_name: str = "digits") -> Path:
    """Exercise 9: write <export_dir>/assets.extra/tf_serving_warmup_requests, a TFRecord file of
    one PredictionLog per image (a Predict request of a batch of one; at most 1000 records)."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(export_dir) / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image in np.asarray(images, dtype=np.uint8)[:1000]:
            log = prediction_log_pb2.PredictionLog()
            request = log.predict_log.request
            request.model_spec.name = model_name
            request.model_spec.signature_name = "serving_default"
            request.inputs["images"].CopyFrom(tf.make_tensor_proto(image[np.newaxis]))
            writer.write(log.SerializeToString())
    return path
