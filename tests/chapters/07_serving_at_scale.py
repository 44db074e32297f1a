"""Chapter 7's checks: what its executed solution must show (check), the answers its
graders must accept (CORRECT) or reject (WRONG), and the numbers its prose quotes (CLAIMS).

Each variant is the whole source of an exercise cell, written as a student would write it.
"""

# ruff: noqa: E501

import json
from pathlib import Path

from conftest import ensure_nginx

from scalelab.serving import autoscaling

BEFORE_RUN = ensure_nginx  # the chapter measures replicas behind nginx where it is installed


def check(results: dict, workdir: Path) -> None:
    """What the executed solution recorded (results.json) and left in its work folder."""
    # Unpinned calls met both versions; pinned calls too, but never at the same moment.
    assert results["unpinned_versions"] == [1, 2] and results["unpinned_errors"] == 0, results
    assert results["pinned_versions"] == [2, 3] and results["pinned_errors"] == 0, results
    rows = results["replica_rows"]
    assert [row["replica"] for row in rows] == [0, 1]
    assert all(row["OK requests"] > 0 and 0 < row["p50 ms"] <= row["p99 ms"] for row in rows), rows
    assert sorted(results["pick_first_calls"]) == [0, 20], results["pick_first_calls"]
    through = results["through_nginx"]  # None where nginx is not installed
    assert through is None or (sum(through) == 20 and min(through) >= 5), through
    loads = {row["setup"]: row for row in results["load_rows"]}  # Locust's runs
    assert set(loads) == {
        "1 replica, direct",
        "1 replica through nginx",
        "2 replicas through nginx",
    }
    for row in loads.values():
        assert row["failures"] == 0 and row["requests"] > 0, row
        assert sum(row["predictions per replica"]) >= row["requests"], row
        assert row["names"] == ["POST /v1/models/digits:predict"], row
    assert min(loads["2 replicas through nginx"]["predictions per replica"]) > 0
    assert [row["start-up"] for row in results["scaling_rows"]] == [
        "ready after 1 min",
        "ready after 5 min",
    ]
    failures = {row["client"]: row for row in results["failure_rows"]}
    assert set(failures) == {"round_robin, no retries", "round_robin and retries"}, failures
    assert all(row["answered"] > 0 for row in failures.values()), failures
    assert set(failures["round_robin, no retries"]["failed by code"]) <= {"UNAVAILABLE"}, failures
    local = results["vertex_local"]  # None without a Docker engine or the Vertex AI SDK
    assert local is None or (local["status"] == 200 and local["class"] == local["model"]), local
    assert results["replicas_stopped"] is True
    assert (workdir / "models" / "digits" / "0003" / "saved_model.pb").is_file()
    assert not list((workdir / "models" / "digits").glob(".incoming*")), "a staging folder left"


_NOTEBOOK = (
    Path(__file__).parents[2] / "solutions" / "07_serving_at_scale" / "07_serving_at_scale.ipynb"
)


def _code_with(text: str) -> str:
    """The source of the solution's code cell that contains `text`."""
    cells = json.loads(_NOTEBOOK.read_text())["cells"]
    return next(
        "".join(c["source"])
        for c in cells
        if c["cell_type"] == "code" and text in "".join(c["source"])
    )


# The variants are graded after the whole notebook ran, and its last cell stopped the replicas that
# Exercises 1 and 4 are graded against: start them again, as the notebook's own cell does.
BEFORE_VARIANTS = (
    _code_with("fleet = contextlib.ExitStack()")
    + "\naddresses = [server.grpc_target for server in servers]\n"
)
AFTER_VARIANTS = "fleet.close()"


def _common(body: str) -> str:
    return f'def common_version(rest_urls, model="digits"):\n{body}'


def _count(body: str) -> str:
    return f'def ok_requests(metrics_text, model="digits"):\n{body}'


def _quantile(body: str) -> str:
    return f"def quantile_from_buckets(q, buckets):\n{body}"


def _hpa(body: str) -> str:
    return f"def desired_replicas(current, metric, target, min_replicas=1, max_replicas=10, tolerance=0.1):\n{body}"


def _container(
    probe: str,
    ports: str = '[{"name": "grpc", "containerPort": 8500}, {"name": "http", "containerPort": 8501}]',
) -> str:
    return f"""def serving_container(model, image="tensorflow/serving:2.20.0"):
    return {{
        "name": "serving",
        "image": image,
        "args": [f"--model_name={{model}}", f"--model_base_path=/models/{{model}}"],
        "ports": {ports},
        "readinessProbe": {probe},
    }}
"""


CORRECT = {
    "ex_07_retry": {
        "methodConfig for every method, the deprecated policy field, numbers as floats": """def retry_service_config():
    return {
        "loadBalancingPolicy": "round_robin",
        "methodConfig": [
            {
                "name": [{"service": "tensorflow.serving.PredictionService"}],
                "timeout": "10s",
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2.0,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
""",
        "built from json text, with retry throttling": """def retry_service_config():
    return json.loads(
        \'{"loadBalancingConfig": [{"round_robin": {}}],\'
        \' "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},\'
        \' "methodConfig": [{"name": [{"service": "tensorflow.serving.PredictionService", "method": "Predict"}],\'
        \' "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.05s", "maxBackoff": "1s",\'
        \' "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}\'
    )
""",
    },
    "ex_07_locust": {
        "FastHttpUser, the body read in on_start, a named request": """%%writefile locustfile.py
import json

from locust import FastHttpUser, constant, task


class Predicting(FastHttpUser):
    wait_time = constant(0)

    def on_start(self):
        with open("predict_body.json") as body:
            self.body = json.load(body)

    @task
    def predict(self):
        self.client.post("/v1/models/digits:predict", json=self.body, name="predict")
""",
        "columnar inputs, the answer checked with catch_response": """%%writefile locustfile.py
import json

from locust import HttpUser, constant, task

with open("predict_body.json") as file:
    IMAGES = json.load(file)["instances"]


class DigitsUser(HttpUser):
    wait_time = constant(0)

    @task(1)
    def predict(self):
        with self.client.post(
            "/v1/models/digits:predict", json={"inputs": IMAGES}, catch_response=True
        ) as answer:
            if "outputs" not in answer.json():
                answer.failure("no outputs")
""",
    },
    "quiz_07_1": {"upper case": 'quiz_07_1 = "B"\n', "in parentheses": 'quiz_07_1 = "(b)"\n'},
    "quiz_07_2": {"with spaces": 'quiz_07_2 = " c "\n'},
    "quiz_07_3": {"upper case in parentheses": 'quiz_07_3 = "(B)"\n'},
    "ex_07_common": {
        "a Session, versions per replica, then a set intersection": _common("""    import functools

    with requests.Session() as http:
        per_replica = []
        for url in rest_urls:
            statuses = http.get(f"{url}/v1/models/{model}", timeout=5).json()["model_version_status"]
            per_replica.append({int(s["version"]) for s in statuses if s["state"] == "AVAILABLE"})
    everywhere = functools.reduce(set.intersection, per_replica)
    return max(everywhere, default=None)
"""),
        "candidates from the first replica, checked on the others, newest first": _common("""    def available(url):
        answer = requests.get(url + "/v1/models/" + model)
        answer.raise_for_status()
        return [int(s["version"]) for s in answer.json()["model_version_status"] if s["state"] == "AVAILABLE"]

    lists = [available(url) for url in rest_urls]
    for version in sorted(lists[0], reverse=True):
        if all(version in other for other in lists[1:]):
            return version
    return None
"""),
    },
    "ex_07_count": {
        "a regular expression over the whole text": """import re


def ok_requests(metrics_text, model="digits"):
    pattern = re.compile(r"^:tensorflow:serving:request_count\\{(?P<labels>[^}]*)\\} (?P<value>\\S+)$", re.M)
    total = 0
    for found in pattern.finditer(metrics_text):
        labels = dict(re.findall(r'(\\w+)="([^"]*)"', found["labels"]))
        if labels.get("model_name") == model and labels.get("status") == "OK":
            total += float(found["value"])
    return total
""",
        "split name, labels and value by hand, int values": _count("""    total = 0
    for line in metrics_text.strip().split("\\n"):
        if line.startswith("#") or "{" not in line:
            continue
        name, rest = line.split("{", 1)
        labels, value = rest.rsplit("} ", 1)
        pairs = dict(pair.split("=", 1) for pair in labels.split(","))
        if name == ":tensorflow:serving:request_count" and pairs.get("model_name") == f'"{model}"' and pairs.get("status") == '"OK"':
            total += int(float(value))
    return total
"""),
    },
    "ex_07_quantile": {
        "bisect for the bucket": """import bisect
import math


def quantile_from_buckets(q, buckets):
    counts = [count for _, count in buckets]
    if not counts or counts[-1] == 0:
        return float("nan")
    rank = q * counts[-1]
    k = bisect.bisect_left(counts, rank)
    if k == len(buckets) - 1:
        return buckets[-2][0]
    start, below = (buckets[k - 1][0], counts[k - 1]) if k > 0 else (0, 0)
    return start + (buckets[k][0] - start) * (rank - below) / (counts[k] - below)
""",
        "pairs walked with zip, the previous bucket prepended": _quantile("""    total = buckets[-1][1]
    if not total:
        return math.nan
    rank = q * total
    edges = [(0.0, 0.0), *buckets]
    for (low, below), (high, count) in zip(edges, edges[1:]):
        if count >= rank:
            return low if high == math.inf else low + (high - low) * (rank - below) / (count - below)
"""),
    },
    "ex_07_balance": {
        "a service config with loadBalancingConfig": """import json


def balanced_channel(addresses):
    config = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
    return grpc.insecure_channel("ipv4:" + ",".join(addresses), options=[("grpc.service_config", config)])
""",
        "the target built in a loop, the option in a tuple": """def balanced_channel(addresses):
    target = "ipv4:"
    for i, address in enumerate(addresses):
        target += ("," if i else "") + address
    options = (("grpc.lb_policy_name", "round_robin"), ("grpc.enable_retries", 1))
    return grpc.insecure_channel(target, options=options)
""",
    },
    "ex_07_hpa": {
        "ceiling by integer division, clamp first written out": _hpa("""    ratio = metric / target
    if abs(ratio - 1) <= tolerance:
        desired = current
    else:
        desired = -(-current * metric // target)
    if desired < min_replicas:
        desired = min_replicas
    if desired > max_replicas:
        desired = max_replicas
    return int(desired)
"""),
        "numpy's ceil and clip": _hpa("""    if abs(metric / target - 1) > tolerance:
        current = int(np.ceil(current * metric / target))
    return int(np.clip(current, min_replicas, max_replicas))
"""),
    },
    "ex_07_probe": {
        "the port by its name, more probe settings, a liveness probe too": """def serving_container(model, image="tensorflow/serving:2.20.0"):
    return {
        "name": "serving",
        "image": image,
        "args": ["--model_name=" + model, "--model_base_path=/models/" + model, "--port=8500", "--rest_api_port=8501"],
        "ports": [{"name": "grpc", "containerPort": 8500, "protocol": "TCP"}, {"name": "http", "containerPort": 8501}],
        "readinessProbe": {
            "httpGet": {"path": "/v1/models/" + model + "/metadata", "port": "http"},
            "initialDelaySeconds": 2,
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {"httpGet": {"path": "/v1/models/" + model, "port": "http"}},
    }
""",
        "the solution's container, resources added": _container(
            '{"httpGet": {"path": f"/v1/models/{model}/metadata", "port": 8501}}'
        ).replace(
            '"readinessProbe"',
            '"resources": {"requests": {"cpu": "1", "memory": "1Gi"}},\n        "readinessProbe"',
        ),
    },
}

WRONG = {
    "ex_07_retry": {
        "INVALID_ARGUMENT retried too": """def retry_service_config():
    return {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [{"name": [{"service": "tensorflow.serving.PredictionService"}],
                          "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.05s", "maxBackoff": "1s",
                                          "backoffMultiplier": 2,
                                          "retryableStatusCodes": ["UNAVAILABLE", "INVALID_ARGUMENT"]}}],
    }
""",
        "a method of another service": """def retry_service_config():
    return {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [{"name": [{"service": "tensorflow.serving.ModelService"}],
                          "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.05s", "maxBackoff": "1s",
                                          "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}],
    }
""",
        "one attempt in all": """def retry_service_config():
    return {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [{"name": [{"service": "tensorflow.serving.PredictionService"}],
                          "retryPolicy": {"maxAttempts": 1, "initialBackoff": "0.05s", "maxBackoff": "1s",
                                          "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}],
    }
""",
        "retries without round robin": """def retry_service_config():
    return {
        "methodConfig": [{"name": [{"service": "tensorflow.serving.PredictionService"}],
                          "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.05s", "maxBackoff": "1s",
                                          "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}],
    }
""",
    },
    "ex_07_locust": {
        "the model's status, not a prediction": """%%writefile locustfile.py
import json

from locust import HttpUser, constant, task


class DigitsUser(HttpUser):
    wait_time = constant(0)

    @task
    def status(self):
        self.client.get("/v1/models/digits")
""",
        "no @task: Locust has nothing to run": """%%writefile locustfile.py
import json

from locust import HttpUser, constant

BODY = json.loads(open("predict_body.json").read())


class DigitsUser(HttpUser):
    wait_time = constant(0)

    def predict(self):
        self.client.post("/v1/models/digits:predict", json=BODY)
""",
        "a second's wait between requests": """%%writefile locustfile.py
import json

from locust import HttpUser, between, task

BODY = json.loads(open("predict_body.json").read())


class DigitsUser(HttpUser):
    wait_time = between(1, 2)

    @task
    def predict(self):
        self.client.post("/v1/models/digits:predict", json=BODY)
""",
        "the body sent as text with the wrong verb": """%%writefile locustfile.py
from locust import HttpUser, constant, task

BODY = open("predict_body.json").read()


class DigitsUser(HttpUser):
    wait_time = constant(0)

    @task
    def predict(self):
        self.client.put("/v1/models/digits:predict", data=BODY)
""",
    },
    "quiz_07_1": {"restart each": 'quiz_07_1 = "a"\n', "two letters": 'quiz_07_1 = "b, d"\n'},
    "quiz_07_2": {"a real reason": 'quiz_07_2 = "a"\n'},
    "quiz_07_3": {"spread evenly": 'quiz_07_3 = "a"\n', "a number": "quiz_07_3 = 2\n"},
    "ex_07_common": {
        "the highest version any replica serves": _common("""    found = []
    for url in rest_urls:
        for s in requests.get(f"{url}/v1/models/{model}").json()["model_version_status"]:
            if s["state"] == "AVAILABLE":
                found.append(int(s["version"]))
    return max(found) if found else None
"""),
        "the lowest of each replica's newest version": _common("""    newest = []
    for url in rest_urls:
        statuses = requests.get(f"{url}/v1/models/{model}").json()["model_version_status"]
        newest.append(max(int(s["version"]) for s in statuses if s["state"] == "AVAILABLE"))
    return min(newest)
"""),
        "asks the first replica only": _common("""    statuses = requests.get(f"{rest_urls[0]}/v1/models/{model}").json()["model_version_status"]
    return max(int(s["version"]) for s in statuses if s["state"] == "AVAILABLE")
"""),
        "the version as a string": _common("""    shared = None
    for url in rest_urls:
        statuses = requests.get(f"{url}/v1/models/{model}").json()["model_version_status"]
        mine = {s["version"] for s in statuses if s["state"] == "AVAILABLE"}
        shared = mine if shared is None else shared & mine
    return max(shared, key=int) if shared else None
"""),
    },
    "ex_07_count": {
        "every status counted": _count("""    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(":tensorflow:serving:request_count{") and f'model_name="{model}"' in line:
            total += float(line.split()[-1])
    return total
"""),
        "any metric whose name contains request_count": _count("""    total = 0.0
    for line in metrics_text.splitlines():
        if "request_count" in line and f'"{model}"' in line and '"OK"' in line and not line.startswith("#"):
            total += float(line.split()[-1])
    return total
"""),
        "the model's name as a prefix": _count("""    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(":tensorflow:serving:request_count{") and f'model_name="{model}' in line and 'status="OK"' in line:
            total += float(line.split()[-1])
    return total
"""),
    },
    "ex_07_quantile": {
        "the bucket's upper bound, no interpolation": _quantile("""    total = buckets[-1][1]
    if total == 0:
        return math.nan
    for upper, count in buckets:
        if count >= q * total:
            return upper if upper != math.inf else buckets[-2][0]
"""),
        "the first bucket starts at its own bound": _quantile("""    total = buckets[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    lower, below = buckets[0][0], 0
    for upper, count in buckets:
        if count >= rank:
            if upper == math.inf:
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
"""),
        "infinity in the +Inf bucket": _quantile("""    total = buckets[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == math.inf:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
"""),
    },
    "ex_07_balance": {
        "gRPC's default policy (pick_first)": """def balanced_channel(addresses):
    return grpc.insecure_channel("ipv4:" + ",".join(addresses))
""",
        "the first address only": """def balanced_channel(addresses):
    return grpc.insecure_channel(addresses[0], options=[("grpc.lb_policy_name", "round_robin")])
""",
    },
    "ex_07_hpa": {
        "no tolerance": _hpa("""    return max(min_replicas, min(max_replicas, math.ceil(current * metric / target)))
"""),
        "rounded, not ceiled": _hpa("""    ratio = metric / target
    wanted = current if abs(ratio - 1) <= tolerance else round(current * ratio)
    return max(min_replicas, min(max_replicas, wanted))
"""),
        "no bounds": _hpa("""    ratio = metric / target
    return current if abs(ratio - 1) <= tolerance else math.ceil(current * ratio)
"""),
    },
    "ex_07_probe": {
        "a TCP probe: the port opens before the model loads": _container(
            '{"tcpSocket": {"port": 8501}}'
        ),
        "the model's status, which answers 200 without a version": _container(
            '{"httpGet": {"path": f"/v1/models/{model}", "port": 8501}}'
        ),
        "the metadata of version 1: unready after a rollout": _container(
            '{"httpGet": {"path": f"/v1/models/{model}/versions/1/metadata", "port": 8501}}'
        ),
        "the gRPC port": _container(
            '{"httpGet": {"path": f"/v1/models/{model}/metadata", "port": 8500}}'
        ),
        "ports without names": _container(
            '{"httpGet": {"path": f"/v1/models/{model}/metadata", "port": 8501}}',
            '[{"containerPort": 8500}, {"containerPort": 8501}]',
        ),
    },
}


def _minutes_over(results, label):
    return next(r for r in results["scaling_rows"] if r["start-up"] == label)[
        "minutes over capacity"
    ]


def _flash_rise(_results):
    """The made-up day's load five minutes into the flash crowd over the minute before it."""
    day = autoscaling.day_of_traffic(1.0)
    return day[19 * 60 + 4] / day[18 * 60 + 59]


def _load(results, setup):
    return next(row for row in results["load_rows"] if row["setup"] == setup)


def _even(results):
    served = _load(results, "2 replicas through nginx")["predictions per replica"]
    return min(served) / max(served)


def _two_over_one(results):
    two, one = (
        _load(results, f"{n} through nginx")["requests/s"] for n in ("2 replicas", "1 replica")
    )
    return two / one


# exact text in a markdown cell -> (results.json -> number, low, high): the number the prose claims.
CLAIMS = {
    "to a poll interval plus a load": (lambda r: r["unpinned_window_s"], 0.0, 3.0),
    "Pinned, the switch happens once, for every replica at the same moment": (
        lambda r: r["pinned_window_s"],
        0.0,
        0.0,
    ),
    "and no call fails": (lambda r: r["pinned_errors"], 0, 0),
    "so their counts are nearly equal": (
        lambda r: abs(r["replica_rows"][0]["OK requests"] - r["replica_rows"][1]["OK requests"]),
        0,
        10,
    ),
    "all its calls reach one replica": (lambda r: max(r["pick_first_calls"]) / 20, 1.0, 1.0),
    "the predictions spread evenly over both replicas": (_even, 0.8, 1.0),
    "The throughput did **not** double": (_two_over_one, 0.0, 1.9),
    "The load more than doubles within\nfive minutes": (_flash_rise, 2.0, 3.0),
    "With one-minute start-ups the 30% headroom absorbs the climb": (
        lambda r: _minutes_over(r, "ready after 1 min"),
        0,
        0,
    ),
    "runs beyond the ready capacity for several minutes": (
        lambda r: _minutes_over(r, "ready after 5 min"),
        3,
        30,
    ),
    "one-minute start-ups not at all": (lambda r: _minutes_over(r, "ready after 1 min"), 0, 0),
    "With the retry policy, those same calls were sent again": (
        lambda r: next(x for x in r["failure_rows"] if x["client"] == "round_robin and retries")[
            "failed"
        ],
        0,
        0,
    ),
}
