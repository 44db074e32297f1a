"""nginx in front of two model-server replicas (scalelab.processes.nginx): REST and gRPC calls
spread over both, counted by each replica's own Prometheus metrics, until a reload leaves one; a
refused configuration says why; nothing is left running. And without a proxy: a gRPC channel
over both replicas' addresses sends every call to one of them unless it balances itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import psutil
import pytest
import requests
from conftest import ensure_nginx

from scalelab import serving
from scalelab.answers.ch07 import ok_requests
from scalelab.processes import children, nginx
from scalelab.serving import replicas as replicas_module

REQUESTS = 20


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[serving.Server]]:
    """Two stand-in servers watching one base path, each exporting its Prometheus metrics."""
    ensure_nginx()
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("replicas")

    class HalfPlusTwo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32)])
        def serve(self, x):
            return {"y": x * 0.5 + 2.0}

    model = HalfPlusTwo()
    tf.saved_model.save(
        model, str(folder / "hpt" / "1"), signatures={"serving_default": model.serve}
    )
    flags = replicas_module.monitoring_flags(folder)
    with (
        serving.start(folder / "hpt", backend="local", extra_flags=flags) as first,
        serving.start(folder / "hpt", backend="local", extra_flags=flags) as second,
    ):
        yield [first, second]


def served(replicas: list[serving.Server]) -> list[float]:
    """Each replica's count of requests answered OK, from its own metrics."""
    return [ok_requests(replicas_module.scrape(server), "hpt") for server in replicas]


def proxy_block(replicas: list[serving.Server], rest_port: int, grpc_port: int) -> str:
    """REST through proxy_pass, gRPC through grpc_pass, each over both replicas in turn."""
    rest = "".join(f"server {s.rest_url.removeprefix('http://')}; " for s in replicas)
    grpc_servers = "".join(f"server {s.grpc_target}; " for s in replicas)
    return f"""
    upstream rest {{ {rest}}}
    upstream grpc_replicas {{ {grpc_servers}}}
    server {{ listen 127.0.0.1:{rest_port}; location / {{ proxy_pass http://rest; }} }}
    server {{
        listen 127.0.0.1:{grpc_port} http2;
        location / {{ grpc_pass grpc://grpc_replicas; }}
    }}
"""


def only_first_answers(replicas: list[serving.Server], rest_port: int) -> bool:
    """Whether four new connections through nginx all reached the first replica."""
    before = served(replicas)
    for _ in range(4):
        requests.post(
            f"http://127.0.0.1:{rest_port}/v1/models/hpt:predict",
            json={"instances": [[1.0]]},
            headers={"Connection": "close"},
            timeout=10,
        ).raise_for_status()
    after = served(replicas)
    return after[0] - before[0] == 4 and after[1] == before[1]


def test_rest_and_grpc_calls_through_nginx_reach_both_replicas_in_turn_until_a_reload(replicas):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    rest_port, grpc_port = children.free_ports(2)
    with nginx.start(proxy_block(replicas, rest_port, grpc_port)) as proxy:
        before = served(replicas)
        with requests.Session() as http:  # one keep-alive connection to nginx
            for x in range(REQUESTS):
                answer = http.post(
                    f"http://127.0.0.1:{rest_port}/v1/models/hpt:predict",
                    json={"instances": [[float(x)]]},
                    timeout=10,
                )
                assert answer.json() == {"predictions": [[x * 0.5 + 2.0]]}
        after_rest = served(replicas)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:  # one HTTP/2 connection
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            call = predict_pb2.PredictRequest()
            call.model_spec.name = "hpt"
            call.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[1.0]], np.float32)))
            for _ in range(REQUESTS):
                assert stub.Predict(call, timeout=10).outputs["y"].float_val == [2.5]
        after_grpc = served(replicas)
        proxy.reload(proxy_block(replicas[:1], rest_port, grpc_port))  # the second one leaves
        deadline = time.monotonic() + 20
        while not only_first_answers(replicas, rest_port):
            assert time.monotonic() < deadline, "nginx kept sending requests to the second replica"
        pids = [p.pid for p in psutil.Process(proxy.process.process.pid).children(recursive=True)]
    by_rest = [a - b for a, b in zip(after_rest, before, strict=True)]
    by_grpc = [a - b for a, b in zip(after_grpc, after_rest, strict=True)]
    assert sum(by_rest) == REQUESTS and min(by_rest) >= REQUESTS / 4, by_rest
    assert sum(by_grpc) == REQUESTS and min(by_grpc) >= REQUESTS / 4, by_grpc
    assert pids and not [pid for pid in pids if psutil.pid_exists(pid)], "nginx workers left"
    assert not Path(proxy.folder).exists()


def test_a_configuration_nginx_refuses_is_an_error_that_quotes_nginx(tmp_path: Path):
    ensure_nginx()
    with pytest.raises(nginx.NginxError, match=r"unknown directive \"proxy_pas\""):
        nginx.start("server { listen 127.0.0.1:1; location / { proxy_pas http://x; } }")
    with pytest.raises(nginx.NginxError, match="no `listen` directive"):
        nginx.start("upstream rest { server 127.0.0.1:1; }")


def calls_per_replica(
    replicas: list[serving.Server], options: list[tuple[str, str]], calls: int
) -> list[float]:
    """How many of `calls` Predict calls over one channel to both replicas' addresses each one
    answered, counted once the channel is connected to every address its policy uses: a
    round_robin channel connects to each in the background (under load, after its first calls),
    so calls go on until each has answered one (pick_first uses one address: one call)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    call = predict_pb2.PredictRequest()
    call.model_spec.name = "hpt"
    call.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[1.0]], np.float32)))
    target = "ipv4:" + ",".join(server.grpc_target for server in replicas)
    with grpc.insecure_channel(target, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        start = served(replicas)
        stub.Predict(call, timeout=10)
        deadline = time.monotonic() + 10
        while options and time.monotonic() < deadline:
            if min(a - b for a, b in zip(served(replicas), start, strict=True)) >= 1:
                break
            stub.Predict(call, timeout=10)
        before = served(replicas)
        for _ in range(calls):
            stub.Predict(call, timeout=10)
        return [a - b for a, b in zip(served(replicas), before, strict=True)]


def test_a_grpc_channel_over_both_addresses_uses_one_unless_it_balances_round_robin(replicas):
    first = calls_per_replica(replicas, [], REQUESTS)  # gRPC's default policy, pick_first
    balanced = calls_per_replica(replicas, [("grpc.lb_policy_name", "round_robin")], REQUESTS)
    assert sorted(first) == [0, REQUESTS], first
    assert sum(balanced) == REQUESTS and min(balanced) >= REQUESTS / 4, balanced
