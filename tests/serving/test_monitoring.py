"""TF Serving's Prometheus endpoint (--monitoring_config_file): TF Serving's own test of it, its
text format (TF Serving's exporter test), and the request and load metrics it counts."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests

from scalelab import serving
from scalelab.serving.local import monitoring

from .conftest import NO_RETRIES, Models, backend_available

# tensorflow_serving/servables/tensorflow/testdata/monitoring_config.txt, as TF Serving tests it
MONITORING_CONFIG = """prometheus_config: {
  enable: true,
  path: "/monitoring/prometheus/metrics"
}
"""
METRICS = "/monitoring/prometheus/metrics"


@pytest.fixture(scope="module", params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def monitored(
    request: pytest.FixtureRequest, models: Models, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[serving.Server]:
    """half_plus_two on a server started with TF Serving's own monitoring test configuration."""
    reason = backend_available(request.param)
    if reason:
        pytest.skip(f"{request.param} backend: {reason}")
    folder = tmp_path_factory.mktemp("monitored")
    shutil.copytree(models.base("half_plus_two") / "1", folder / "hpt" / "1")
    config = folder / "monitoring_config.txt"
    config.write_text(MONITORING_CONFIG)
    flags = [f"--monitoring_config_file={config}", *NO_RETRIES]
    with serving.start(folder / "hpt", backend=request.param, extra_flags=flags) as server:
        yield server


def scrape(server: serving.Server) -> dict[str, float]:
    """Every sample line of the endpoint: `name{labels}` -> value."""
    text = requests.get(server.rest_url + METRICS, timeout=10).text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_prometheus_endpoint(monitored: serving.Server):
    """TF Serving's testPrometheusEndpoint (tensorflow_model_server_test.py), as it is there."""
    answer = requests.get(monitored.rest_url + METRICS, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/plain"
    assert "# TYPE" in answer.text


def test_requests_are_counted_by_model_and_status_and_timed_by_api_and_entrypoint(
    monitored: serving.Server,
):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    before = scrape(monitored)
    for x in (1.0, 2.0, 3.0):
        answer = requests.post(
            f"{monitored.rest_url}/v1/models/hpt:predict", json={"instances": [[x]]}, timeout=10
        )
        answer.raise_for_status()
    missing = requests.post(f"{monitored.rest_url}/v1/models/nope:predict", json={}, timeout=10)
    assert missing.status_code == 404
    with grpc.insecure_channel(monitored.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        call = predict_pb2.PredictRequest()
        call.model_spec.name = "hpt"
        call.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[1.0]], np.float32)))
        for _ in range(2):
            stub.Predict(call, timeout=10)
    after = scrape(monitored)

    def grew(sample: str) -> float:
        return after.get(sample, 0) - before.get(sample, 0)

    name = ":tensorflow:serving:"
    assert grew(f'{name}request_count{{model_name="hpt",status="OK"}}') == 5
    assert grew(f'{name}request_count{{model_name="nope",status="NOT_FOUND"}}') == 1
    assert (
        grew(f'{name}request_latency_count{{model_name="hpt",API="predict",entrypoint="REST"}}')
        == 3
    )
    assert (
        grew(f'{name}request_latency_count{{model_name="hpt",API="Predict",entrypoint="GRPC"}}')
        == 2
    )
    assert grew(f'{name}runtime_latency_count{{model_name="hpt",API="Predict",runtime="TF1"}}') == 5
    assert not [sample for sample in after if 'model_name="nope"' in sample and "latency" in sample]


def test_a_histogram_has_every_bucket_cumulative_in_microseconds_then_sum_and_count(
    monitored: serving.Server,
):
    requests.get(f"{monitored.rest_url}/v1/models/hpt", timeout=10).raise_for_status()
    text = requests.get(monitored.rest_url + METRICS, timeout=10).text
    labels = 'model_name="hpt",API="",entrypoint="REST"'  # a GET: no verb
    prefix = f":tensorflow:serving:request_latency_bucket{{{labels},le="
    buckets = [line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix)]
    limits = [bucket.split('"')[1] for bucket in buckets]
    assert limits[:4] == ["10", "18", "32.4", "58.32"] and limits[19] == "708235"
    assert limits[20] == "1.27482e+06" and limits[-1] == "+Inf" and len(limits) == 34
    counts = [int(bucket.rsplit(" ", 1)[1]) for bucket in buckets]
    assert counts == sorted(counts) and counts[-1] >= 1
    count = re.search(rf"request_latency_count{{{re.escape(labels)}}} (\d+)", text)
    assert count and int(count.group(1)) == counts[-1]
    assert re.search(rf"request_latency_sum{{{re.escape(labels)}}} [0-9.e+]+\n", text)


def test_loads_are_counted_by_version_path(monitored: serving.Server):
    samples = scrape(monitored)
    loaded = [
        sample
        for sample in samples
        if sample.startswith(":tensorflow:cc:saved_model:load_attempt_count{")
        and sample.endswith('/hpt/1",status="success"}')
    ]
    assert len(loaded) == 1 and samples[loaded[0]] == 1
    assert any(s.startswith(":tensorflow:cc:saved_model:load_latency{") for s in samples)


def test_a_query_string_is_refused_and_other_paths_are_not_the_endpoint(monitored: serving.Server):
    refused = requests.get(f"{monitored.rest_url}{METRICS}?x=1", timeout=10)
    assert refused.status_code == 400 and refused.headers["Content-Type"] == "text/plain"
    assert refused.text == f"Unexpected path: {METRICS}?x=1. Should be {METRICS}"
    assert requests.get(f"{monitored.rest_url}{METRICS}/", timeout=10).status_code == 404
    assert requests.post(monitored.rest_url + METRICS, timeout=10).status_code == 200


def test_the_text_is_tf_servings_exporter_format():
    """prometheus_exporter_test.cc's histogram (Exponential(1, 2, 10); 2, 20 and 200 added),
    and a counter with a label value that needs escaping."""
    sampler = monitoring.Sampler(
        "/test/path/histogram", monitoring.exponential(1, 2, 10), "status", registered=False
    )
    for value in (2, 20, 200):
        sampler.add(value, "good")
    limits = ["1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "+Inf"]
    cumulative = [0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert sampler.lines() == [
        "# TYPE :test:path:histogram histogram",
        *(
            f':test:path:histogram_bucket{{status="good",le="{limit}"}} {count}'
            for limit, count in zip(limits, cumulative, strict=True)
        ),
        ':test:path:histogram_sum{status="good"} 222',
        ':test:path:histogram_count{status="good"} 3',
    ]
    counter = monitoring.Counter("/test/counter", "label name", registered=False)
    counter.increment('a "b" \\c', by=3)
    assert counter.lines() == [
        "# TYPE :test:counter counter",
        ':test:counter{label_name="a \\"b\\" \\\\c"} 3',
    ]
    silent = monitoring.Counter("/test/no/labels", registered=False)
    silent.increment()
    assert silent.lines() == ["# TYPE :test:no:labels counter", ":test:no:labels{} 1"]


def test_no_endpoint_unless_enabled_and_a_bad_file_stops_the_start(models: Models, tmp_path: Path):
    if reason := backend_available("local"):
        pytest.skip(reason)
    config = tmp_path / "monitoring.config"
    config.write_text("prometheus_config { enable: false }\n")
    flags = [f"--monitoring_config_file={config}", *NO_RETRIES]
    with serving.start(models.base("half_plus_two"), backend="local", extra_flags=flags) as server:
        assert requests.get(server.rest_url + METRICS, timeout=10).status_code == 404
    config.write_text("prometheus_config { enabled: true }\n")
    with pytest.raises(serving.ServerStartError, match="MonitoringConfig"):
        serving.start(models.base("half_plus_two"), backend="local", extra_flags=flags)
