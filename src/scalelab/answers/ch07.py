"""Chapter 7's reference answers (serving at scale): what its tests compare against, and what
later cells fall back to when an exercise is unanswered."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

OK_REQUESTS = ":tensorflow:serving:request_count"


def common_version(rest_urls: Sequence[str], model: str = "digits") -> int | None:
    """Exercise 1: the highest version AVAILABLE on every replica (from each one's REST status);
    None when no version is."""
    shared: set[int] | None = None
    for url in rest_urls:
        answer = requests.get(f"{url}/v1/models/{model}", timeout=10)
        answer.raise_for_status()
        available = {
            int(status["version"])
            for status in answer.json()["model_version_status"]
            if status["state"] == "AVAILABLE"
        }
        shared = available if shared is None else shared & available
    return max(shared) if shared else None


def balanced_channel(addresses: Sequence[str]) -> Any:
    """Exercise 4: one gRPC channel over every `host:port` in `addresses`, spreading its calls
    over them with gRPC's round_robin policy."""
    import grpc

    return grpc.insecure_channel(
        "ipv4:" + ",".join(addresses), options=[("grpc.lb_policy_name", "round_robin")]
    )


def ok_requests(metrics_text: str, model: str = "digits") -> float:
    """Exercise 2: the requests for `model` that a replica answered OK, from its Prometheus text."""
    total = 0.0
    for line in metrics_text.splitlines():
        if not line.startswith(OK_REQUESTS + "{"):
            continue
        labels, value = line.rsplit(" ", 1)
        if f'model_name="{model}"' in labels and 'status="OK"' in labels:
            total += float(value)
    return total


def quantile_from_buckets(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Exercise 3: Prometheus's histogram_quantile: the q-quantile of cumulative (upper bound,
    count) buckets, interpolated linearly inside its bucket (the first starts at 0; a quantile in
    the +Inf bucket is the highest finite bound); nan without observations."""
    total = buckets[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def write_locustfile(path: str | Path) -> Path:
    """Exercise 5: a locustfile whose users POST predict_body.json to the digits model with no
    wait between requests; written to `path`."""
    path = Path(path)
    path.write_text(
        "import json\n\n"
        "from locust import HttpUser, constant, task\n\n"
        'BODY = json.loads(open("predict_body.json").read())\n\n\n'
        "class DigitsUser(HttpUser):\n"
        '    """A client that asks for one prediction after another."""\n\n'
        "    wait_time = constant(0)\n\n"
        "    @task\n"
        "    def predict(self):\n"
        '        self.client.post("/v1/models/digits:predict", json=BODY)\n'
    )
    return path


def retry_service_config() -> dict[str, Any]:
    """Exercise 6: a gRPC service config that balances round robin and retries PredictionService
    calls failing UNAVAILABLE (4 attempts in all, exponential backoff from 50 ms to 1 s)."""
    return {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{"service": "tensorflow.serving.PredictionService"}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }


def desired_replicas(
    current: int,
    metric: float,
    target: float,
    min_replicas: int = 1,
    max_replicas: int = 10,
    tolerance: float = 0.1,
) -> int:
    """Exercise 7: the Horizontal Pod Autoscaler's rule: ceil(current * metric / target), unchanged
    while the ratio is within `tolerance` of 1, kept within [min_replicas, max_replicas]."""
    ratio = metric / target
    wanted = current if abs(ratio - 1) <= tolerance else math.ceil(current * ratio)
    return max(min_replicas, min(max_replicas, wanted))


def serving_container(model: str, image: str = "tensorflow/serving:2.20.0") -> dict[str, Any]:
    """Exercise 8: a Kubernetes container serving /models/<model>, with its two ports and a
    readiness probe that passes only while a version of the model is AVAILABLE."""
    return {
        "name": "serving",
        "image": image,
        "args": [f"--model_name={model}", f"--model_base_path=/models/{model}"],
        "ports": [
            {"name": "grpc", "containerPort": 8500},
            {"name": "http", "containerPort": 8501},
        ],
        "readinessProbe": {
            "httpGet": {"path": f"/v1/models/{model}/metadata", "port": 8501},
            "periodSeconds": 5,
        },
    }
