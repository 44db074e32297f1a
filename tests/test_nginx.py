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
ONE = np.array([[1.0]], np.float32)  # one instance for the half-plus-two model


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[serving.Server]]:
    """Two stand-in servers watching one base path, each exporting its Prometheus metrics."""
    ensure_nginx()
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("replicas")

    class HalfPlusTwo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32)])
        def serve(self, images):  # the input's name: replicas.predict_request's
            return {"y": images * 0.5 + 2.0}

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
    from tensorflow_serving.apis import prediction_service_pb2_grpc

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
            call = replicas_module.predict_request("hpt", ONE)
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


def test_a_grpc_channel_over_both_addresses_uses_one_unless_it_balances_round_robin(replicas):
    target = "ipv4:" + ",".join(server.grpc_target for server in replicas)
    counts = []
    # pick_first (gRPC's default) uses one address: one warm-up call. round_robin connects to
    # each address in the background: warm-up calls until both answered (under load: seconds).
    for options, settle in [([], 0), ([("grpc.lb_policy_name", "round_robin")], 10)]:
        with grpc.insecure_channel(target, options=options) as channel:
            counts.append(
                replicas_module.calls_per_replica(
                    replicas, channel, ONE, REQUESTS, lambda text: ok_requests(text, "hpt"),
                    model="hpt", settle=settle,
                )
            )  # fmt: skip
    first, balanced = counts
    assert sorted(first) == [0, REQUESTS], first
    assert sum(balanced) == REQUESTS and min(balanced) >= REQUESTS / 4, balanced
