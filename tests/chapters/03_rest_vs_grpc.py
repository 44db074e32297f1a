"""Chapter 3's checks: what its executed solution must show (check), the answers its
graders must accept (CORRECT) or reject (WRONG), and the numbers its prose quotes (CLAIMS).

Each variant is the whole source of an exercise cell, kept as a student would write it.
"""

# ruff: noqa: E501

import json
from pathlib import Path


def check(results: dict, workdir: Path) -> None:
    """What the executed solution recorded (results.json) and left in its work folder."""
    # What was measured, not how fast: timings belong to the benchmark, not to tests.
    assert {row["protocol"] for row in results["single_instance_ms"]} == {"REST", "gRPC"}
    sizes = {
        (r["encoding"], r["batch size"]): r["bytes/instance"]
        for r in results["payload_bytes_per_instance"]
    }
    assert sizes[("photos json_row", 1)] > 3 * sizes[("photos protobuf", 1)]  # bytes, not time
    for sweep in ("digits_sweep", "photos_sweep", "concurrency"):
        assert results[sweep] and all(row["errors"] == 0 for row in results[sweep]), sweep
    protocols = {row["protocol"] for row in results["digits_sweep"]}
    assert protocols == {"REST row", "REST columnar", "REST gzip", "gRPC"}
    assert results["grpc_over_rest_at_largest_batch"] > 0
    server = results["server"]  # every figure names it
    assert server["backend"] in {"local", "docker", "binary", "remote"}, server
    assert server["description"].startswith(f"{server['backend']} backend: "), server
    # Where the time goes: every protocol at every batch size, each part measured, bytes sane.
    steps = results["time_breakdown"]
    assert {(r["protocol"], r["batch size"]) for r in steps} == {
        (p, b) for p in protocols for b in (1, 256, 1024)
    }, steps
    parts = ("encode ms", "transfer ms", "server ms", "decode ms", "total ms", "server share")
    for row in steps:
        assert row["errors"] == 0 and row["repeats"] >= 3, row
        assert all(row[part] >= 0 for part in parts), row
        assert row["request bytes"] > 0 and row["response bytes"] > 0, row
    request = {(r["protocol"], r["batch size"]): r["request bytes"] for r in steps}
    for size in (256, 1024):  # bytes, not time
        assert request[("REST gzip", size)] < request[("REST row", size)] / 2
        assert request[("gRPC", size)] < request[("REST row", size)] / 2
    # On a real network: loopback and at least one throttled link, every protocol, no failures.
    for key, sizes in (("link_sweep_digits", {1, 1024}), ("link_sweep_photos", {1})):
        rows = results[key]
        links = {row["link"] for row in rows}
        assert "loopback" in links and any("Mbit/s" in link for link in links), links
        assert {(r["link"], r["protocol"], r["batch size"]) for r in rows} >= {
            (link, p, b) for link in links for p in ("REST row", "REST gzip", "gRPC") for b in sizes
        }, key
        assert all(row["errors"] == 0 and row["requests"] >= 2 for row in rows), key
        sent = {(r["link"], r["protocol"]): r["bytes sent/instance"] for r in rows}
        assert sent[("loopback", "REST gzip")] < sent[("loopback", "REST row")], key
    assert len(results["link_ratios"]) >= 3 * 2, results["link_ratios"]
    # Compressed requests, as counted by netem.tap on their way to the server.
    wire = {
        (r["model"], r["request"]): r["bytes to the server"] for r in results["bytes_to_the_server"]
    }
    for api in ("REST", "gRPC"):
        assert wire[("digits", f"{api} gzip")] < wire[("digits", api)] / 2, wire
    # Parts timed inside their request: each part within its whole, shares never above 1.
    for name, requests in results["request_parts_photo"].items():
        assert len(requests) >= 3, name
        for parts in requests:
            pieces = parts["encode ms"] + parts["round trip ms"] + parts["decode ms"]
            assert abs(pieces - parts["whole ms"]) < 1e-6 * parts["whole ms"] + 1e-3, parts
    assert 0 < results["json_encode_share_of_rest_request"]["median"] <= 1
    for row in steps:  # every part with its spread over the repeats
        assert all(
            row["spread"][part]["q25"] <= row["spread"][part]["q75"] for part in row["spread"]
        )
    # The load generator's rows: every request answered, as many as asked for.
    for row in results["concurrency"]:
        assert row["errors"] == 0 and row["requests"] >= 390, row


def _source_of_cell_with(text):
    """The source of the solution's code cell that contains `text`."""
    notebook = Path(__file__).parents[2] / "solutions" / "03_rest_vs_grpc" / "03_rest_vs_grpc.ipynb"
    cells = json.loads(notebook.read_text())["cells"]
    return next(
        "".join(c["source"])
        for c in cells
        if c["cell_type"] == "code" and text in "".join(c["source"])
    )


# The variants are graded after the whole notebook ran, and its last cell stopped the server that
# Exercises 2 and 4 are graded against: start it again, as the notebook's own cell does, and stop it
# after.
BEFORE_VARIANTS = _source_of_cell_with("server = serving.start(")
AFTER_VARIANTS = "server.stop()"

# Exercise 2 is one cell with two functions: a wrong variant gets one of them wrong, the other right.
_REST_OK = """import gzip

import requests


def gzip_rest_predict(rest_url, model, images):
    body = gzip.compress(json.dumps({"instances": images.tolist()}).encode())
    answer = requests.post(
        f"{rest_url}/v1/models/{model}:predict",
        data=body,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()
"""

_GRPC_OK = """

def gzip_grpc_predict(target, model, images):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return stub.Predict(request, timeout=30, compression=grpc.Compression.Gzip)
"""


def _rest_wrong(
    body_line,
    headers="{'Content-Type': 'application/json', 'Content-Encoding': 'gzip'}",
    answer="answer.json()",
):
    """A gzip_rest_predict whose body, headers or answer differ from the right one."""
    return f"""import gzip
import zlib

import requests


def gzip_rest_predict(rest_url, model, images):
    data = json.dumps({{"instances": images.tolist()}}).encode()
    {body_line}
    answer = requests.post(
        f"{{rest_url}}/v1/models/{{model}}:predict", data=body, headers={headers}, timeout=30
    )
    answer.raise_for_status()
    return {answer}
"""


def _grpc_wrong(call_line, tensor="tf.make_tensor_proto(images)"):
    """A gzip_grpc_predict whose call or tensor differ from the right one."""
    return f"""

def gzip_grpc_predict(target, model, images):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs["images"].CopyFrom({tensor})
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        {call_line}
"""


_LOAD_SHARED_SESSION = """import threading

import requests


def load_test(url, body, clients, requests_per_client, timeout=10.0):
    session = requests.Session()  # one for every thread
    latencies, errors = [], []

    def client():
        for _ in range(requests_per_client):
            started = time.perf_counter()
            try:
                answer = session.post(url, data=body, timeout=timeout)
                answer.raise_for_status()
                latencies.append(time.perf_counter() - started)
            except requests.RequestException as error:
                errors.append(str(error))

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latencies": latencies, "errors": errors, "seconds": time.perf_counter() - began}
"""


def _load(
    request_lines,
    start_lines="thread.start()\n    for thread in threads:\n        thread.join()",
    scale="",
):
    """A thread-per-client load_test with one session per thread, but these request lines."""
    return f"""import threading

import requests


def load_test(url, body, clients, requests_per_client, timeout=10.0):
    latencies, errors = [], []

    def client():
        session = requests.Session()
        for _ in range(requests_per_client):
            started = time.perf_counter()
{request_lines}

    began = time.perf_counter()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        {start_lines}
    return {{"latencies": latencies, "errors": errors, "seconds": time.perf_counter() - began}}
"""


# grade_id of the solution cell -> {short description: full replacement source of that cell}
CORRECT = {
    "ex_03_payload": {
        "signature name and version set too": """def payload_sizes(images):
    from tensorflow_serving.apis import predict_pb2

    values = images.tolist()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.model_spec.signature_name = "serving_default"
    request.model_spec.version.value = 1
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
    return {
        "json_row": len(json.dumps({"instances": values}).encode("utf-8")),
        "json_columnar": len(json.dumps({"inputs": {"images": values}}).encode("utf-8")),
        "protobuf": request.ByteSize(),
    }
""",
        "rest_grpc's clients build the bodies (compact JSON, serialized request)": """def payload_sizes(images):
    row = rest_grpc.RestClient("http://localhost:1", "digits")
    columnar = rest_grpc.RestClient("http://localhost:1", "digits", columnar=True)
    stub = rest_grpc.GrpcClient("localhost:1", "digits")  # never connects: body() only encodes
    try:
        protobuf = len(stub.body(images))
    finally:
        stub.close()
    return {
        "json_row": len(row.body(images)),
        "json_columnar": len(columnar.body(images)),
        "protobuf": protobuf,
    }
""",
        "TensorProto by hand (int_val, float_val), str lengths": """def payload_sizes(images):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
    from tensorflow_serving.apis import predict_pb2

    images = np.asarray(images)
    tensor = tensor_pb2.TensorProto(dtype=tf.as_dtype(images.dtype).as_datatype_enum)
    for n in images.shape:
        tensor.tensor_shape.dim.append(tensor_shape_pb2.TensorShapeProto.Dim(size=n))
    if images.dtype == np.float32:
        tensor.float_val.extend(images.ravel().tolist())
    else:
        tensor.int_val.extend(images.ravel().tolist())
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.inputs["images"].CopyFrom(tensor)
    values = images.tolist()
    return {
        "json_row": len(json.dumps({"instances": values})),
        "json_columnar": len(json.dumps({"inputs": {"images": values}})),
        "protobuf": request.ByteSize(),
    }
""",
    },
    "ex_03_sweep": {
        "functools.partial in a list comprehension": """import functools


def sweep_batch_sizes(client, images, batch_sizes, requests):
    return [
        driver.run_load(functools.partial(client.predict, images[:b]), requests=requests, instances=b)
        for b in batch_sizes
    ]
""",
        "senders built first by a factory, then run": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    def sender(batch):
        def send():
            return client.predict(batch)

        return send

    senders = [(b, sender(images[:b])) for b in batch_sizes]
    return [driver.run_load(send, requests=requests, instances=b) for b, send in senders]
""",
        "plain loop, lambda run at once, no warm-up": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    rows = []
    for b in batch_sizes:
        batch = np.ascontiguousarray(images[0:b])
        row = driver.run_load(lambda: client.predict(batch), requests=requests, instances=b, warmup=0)
        rows.append(row)
    return rows
""",
    },
    "ex_03_compress": {
        "a Session, compresslevel 9, the channel compresses": """import gzip

import grpc
import requests
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


def gzip_rest_predict(rest_url, model, images):
    with requests.Session() as session:
        answer = session.post(
            f"{rest_url}/v1/models/{model}:predict",
            data=gzip.compress(json.dumps({"instances": images.tolist()}).encode("utf-8"), 9),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
    answer.raise_for_status()
    return answer.json()


def gzip_grpc_predict(target, model, images):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
    channel = grpc.insecure_channel(target, compression=grpc.Compression.Gzip)
    try:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, 30)
    finally:
        channel.close()
""",
        "urllib and GzipFile; rest_grpc builds the PredictRequest, with_call": """import gzip
import io
import urllib.request

import grpc


def gzip_rest_predict(rest_url, model, images):
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as packed:
        packed.write(json.dumps({"instances": np.asarray(images).tolist()}).encode())
    request = urllib.request.Request(
        f"{rest_url}/v1/models/{model}:predict",
        data=buffer.getvalue(),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # raises on an HTTP error
        return json.loads(answer.read())


def gzip_grpc_predict(target, model, images):
    client = rest_grpc.GrpcClient(target, model)  # only for its channel and its request
    try:
        reply, _ = client.stub.Predict.with_call(
            client.request(images), timeout=30, compression=grpc.Compression.Gzip
        )
        return reply
    finally:
        client.close()
""",
        "as the solution, written out": _REST_OK + _GRPC_OK,
    },
    "ex_03_load": {
        "ThreadPoolExecutor, a session per client, results merged": """import concurrent.futures

import requests


def load_test(url, body, clients, requests_per_client, timeout=10.0):
    def client():
        latencies, errors = [], []
        session = requests.Session()
        for _ in range(requests_per_client):
            t0 = time.monotonic()
            try:
                r = session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=timeout)
                r.raise_for_status()
                latencies.append(time.monotonic() - t0)
            except Exception as e:
                errors.append(str(e))
        session.close()
        return latencies, errors

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        results = [f.result() for f in [pool.submit(client) for _ in range(clients)]]
    return {
        "latencies": [x for lat, _ in results for x in lat],
        "errors": [x for _, err in results for x in err],
        "seconds": time.monotonic() - start,
    }
""",
        "threading.local sessions, status read by hand, a queue of outcomes": """import queue
import threading

import requests


def load_test(url, body, clients, requests_per_client, timeout=10.0):
    local = threading.local()
    outcomes = queue.Queue()

    def one_request():
        if not hasattr(local, "session"):
            local.session = requests.Session()
        started = time.perf_counter()
        try:
            answer = local.session.post(url, data=body, timeout=(timeout, timeout))
        except requests.exceptions.RequestException as error:
            outcomes.put(("error", str(error)))
            return
        if 200 <= answer.status_code < 300:
            outcomes.put(("ok", time.perf_counter() - started))
        else:
            outcomes.put(("error", f"HTTP {answer.status_code}"))

    def client():
        for _ in range(requests_per_client):
            one_request()

    begin = time.perf_counter()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = {"latencies": [], "errors": [], "seconds": time.perf_counter() - begin}
    while not outcomes.empty():
        kind, value = outcomes.get()
        (result["latencies"] if kind == "ok" else result["errors"]).append(value)
    return result
""",
        "a Thread subclass per client, answer.ok, lists merged after join": """import threading

import requests


class Client(threading.Thread):
    def __init__(self, url, body, count, timeout):
        super().__init__()
        self.url, self.body, self.count, self.timeout = url, body, count, timeout
        self.latencies, self.errors = [], []

    def run(self):
        with requests.Session() as session:
            session.headers["Content-Type"] = "application/json"
            for _ in range(self.count):
                started = time.perf_counter()
                try:
                    answer = session.post(self.url, data=self.body, timeout=self.timeout)
                except (requests.ConnectionError, requests.Timeout) as error:
                    self.errors.append(error)
                    continue
                if answer.ok:
                    self.latencies.append(time.perf_counter() - started)
                else:
                    self.errors.append(answer.status_code)


def load_test(url, body, clients, requests_per_client, timeout=10.0):
    began = time.perf_counter()
    pool = [Client(url, body, requests_per_client, timeout) for _ in range(clients)]
    for client in pool:
        client.start()
    for client in pool:
        client.join()
    return {
        "latencies": [s for c in pool for s in c.latencies],
        "errors": [e for c in pool for e in c.errors],
        "seconds": time.perf_counter() - began,
    }
""",
    },
    "quiz_03_1": {
        "upper case": 'quiz_03_1 = "B"\n',
        "in parentheses, spaces": 'quiz_03_1 = " (b) "\n',
    },
    "quiz_03_2": {"upper case": 'quiz_03_2 = "C"\n', "in parentheses": 'quiz_03_2 = "(c)"\n'},
}

OK_LINES = """            try:
                answer = session.post(url, data=body, timeout=timeout)
                answer.raise_for_status()
                latencies.append(time.perf_counter() - started)
            except requests.RequestException as error:
                errors.append(str(error))"""

WRONG = {
    "ex_03_payload": {
        "protobuf text format (str of the request)": """def payload_sizes(images):
    from tensorflow_serving.apis import predict_pb2

    values = np.asarray(images).tolist()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.asarray(images)))
    return {
        "json_row": len(json.dumps({"instances": values})),
        "json_columnar": len(json.dumps({"inputs": {"images": values}})),
        "protobuf": len(str(request)),
    }
""",
        "digits cast to float32 (the model takes uint8)": """def payload_sizes(images):
    from tensorflow_serving.apis import predict_pb2

    values = np.asarray(images).tolist()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.asarray(images, dtype=np.float32)))
    return {
        "json_row": len(json.dumps({"instances": values})),
        "json_columnar": len(json.dumps({"inputs": {"images": values}})),
        "protobuf": request.ByteSize(),
    }
""",
        "tensor from the Python list (int32 digits)": """def payload_sizes(images):
    from tensorflow_serving.apis import predict_pb2

    values = np.asarray(images).tolist()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(values))
    return {
        "json_row": len(json.dumps({"instances": values})),
        "json_columnar": len(json.dumps({"inputs": {"images": values}})),
        "protobuf": request.ByteSize(),
    }
""",
        "a bare TensorProto, not the PredictRequest": """def payload_sizes(images):
    values = np.asarray(images).tolist()
    return {
        "json_row": len(json.dumps({"instances": values})),
        "json_columnar": len(json.dumps({"inputs": {"images": values}})),
        "protobuf": len(tf.make_tensor_proto(np.asarray(images)).SerializeToString()),
    }
""",
        "raw pixel bytes as the protobuf size": """def payload_sizes(images):
    values = np.asarray(images).tolist()
    return {
        "json_row": len(json.dumps({"instances": values})),
        "json_columnar": len(json.dumps({"inputs": {"images": values}})),
        "protobuf": np.asarray(images).nbytes,
    }
""",
        "sys.getsizeof of the bodies": """import sys


def payload_sizes(images):
    from tensorflow_serving.apis import predict_pb2

    values = np.asarray(images).tolist()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.asarray(images)))
    return {
        "json_row": sys.getsizeof(json.dumps({"instances": values}).encode()),
        "json_columnar": sys.getsizeof(json.dumps({"inputs": {"images": values}}).encode()),
        "protobuf": sys.getsizeof(request.SerializeToString()),
    }
""",
        "row and columnar swapped": """def payload_sizes(images):
    from tensorflow_serving.apis import predict_pb2

    values = np.asarray(images).tolist()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.asarray(images)))
    return {
        "json_row": len(json.dumps({"inputs": {"images": values}})),
        "json_columnar": len(json.dumps({"instances": values})),
        "protobuf": request.ByteSize(),
    }
""",
    },
    "ex_03_sweep": {
        "late-binding lambdas built before running": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    senders = [lambda: client.predict(images[:b]) for b in batch_sizes]
    return [
        driver.run_load(send, requests=requests, instances=b)
        for send, b in zip(senders, batch_sizes)
    ]
""",
        "run_load not told the batch size": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    return [
        driver.run_load(lambda b=b: client.predict(images[:b]), requests=requests)
        for b in batch_sizes
    ]
""",
        "the notebook's request count, not the argument": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    return [
        driver.run_load(lambda b=b: client.predict(images[:b]), requests=SIZES.requests, instances=b)
        for b in batch_sizes
    ]
""",
        "batch sizes sorted": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    return [
        driver.run_load(lambda b=b: client.predict(images[:b]), requests=requests, instances=b)
        for b in sorted(batch_sizes)
    ]
""",
        "every image in every request": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    return [
        driver.run_load(lambda: client.predict(images), requests=requests, instances=b)
        for b in batch_sizes
    ]
""",
        "the last b images": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    return [
        driver.run_load(lambda b=b: client.predict(images[-b:]), requests=requests, instances=b)
        for b in batch_sizes
    ]
""",
        "rows in a dict by batch size": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    return {
        b: driver.run_load(lambda b=b: client.predict(images[:b]), requests=requests, instances=b)
        for b in batch_sizes
    }
""",
    },
    "ex_03_compress": {
        "REST: gzip header, plain body": _rest_wrong("body = data") + _GRPC_OK,
        "REST: compressed body, no Content-Encoding": _rest_wrong(
            "body = gzip.compress(data)", headers="{'Content-Type': 'application/json'}"
        )
        + _GRPC_OK,
        "REST: not compressed at all": _rest_wrong(
            "body = data", headers="{'Content-Type': 'application/json'}"
        )
        + _GRPC_OK,
        "REST: zlib's format, not gzip's": _rest_wrong("body = zlib.compress(data)") + _GRPC_OK,
        "REST: the answer's text, not its JSON": _rest_wrong(
            "body = gzip.compress(data)", answer="answer.text"
        )
        + _GRPC_OK,
        "gRPC: not compressed": _REST_OK + _grpc_wrong("return stub.Predict(request, timeout=30)"),
        "gRPC: Compression.NoCompression": _REST_OK
        + _grpc_wrong(
            "return stub.Predict(request, timeout=30, compression=grpc.Compression.NoCompression)"
        ),
        "gRPC: images cast to float32": _REST_OK
        + _grpc_wrong(
            "return stub.Predict(request, timeout=30, compression=grpc.Compression.Gzip)",
            tensor="tf.make_tensor_proto(images.astype(np.float32))",
        ),
    },
    "ex_03_load": {
        "one requests.Session shared by every thread": _LOAD_SHARED_SESSION,
        "errors counted as latencies (no status check)": _load(
            """            try:
                session.post(url, data=body, timeout=timeout)
            except requests.RequestException as error:
                errors.append(str(error))
            latencies.append(time.perf_counter() - started)"""
        ),
        "a failed request in both lists": _load(
            """            try:
                session.post(url, data=body, timeout=timeout).raise_for_status()
            except requests.RequestException as error:
                errors.append(str(error))
            latencies.append(time.perf_counter() - started)"""
        ),
        "sequential: each thread joined before the next starts": _load(
            OK_LINES, start_lines="thread.start()\n        thread.join()"
        ),
        "no timeout on the requests": _load(OK_LINES.replace(", timeout=timeout", "")),
        "timeout only on joining the threads": _load(
            OK_LINES.replace(", timeout=timeout", ""),
            start_lines="thread.start()\n    for thread in threads:\n        thread.join(timeout)",
        ),
        "requests.post: a new connection for every request": _load(
            OK_LINES.replace("session.post(", "requests.post(")
        ),
        "latencies in milliseconds": _load(
            OK_LINES.replace(
                "time.perf_counter() - started", "1000 * (time.perf_counter() - started)"
            )
        ),
    },
    "quiz_03_1": {"a: gRPC always": 'quiz_03_1 = "a"\n', "d: gzip": 'quiz_03_1 = "(d)"\n'},
    "quiz_03_2": {"b: columnar": 'quiz_03_2 = "b"\n', "d: no difference": 'quiz_03_2 = "D"\n'},
}


def _json_over_protobuf(results, name):
    return [v for case, v in results["json_over_protobuf"].items() if case.startswith(name)]


def _bytes_per_photo(results, encoding):
    return next(
        r["bytes/instance"]
        for r in results["payload_bytes_per_instance"]
        if r["encoding"] == f"photos {encoding}" and r["batch size"] == 1
    )


def _single_rest_over_grpc(results):
    """REST's p50 over gRPC's for one digit per request on loopback (section 2)."""
    p50 = {row["protocol"]: row["p50 ms"] for row in results["single_instance_ms"]}
    return p50["REST"] / p50["gRPC"]


def _p50_gap_one_digit_through_links(results):
    """Slowest minus fastest p50 (ms) of the protocols, one digit per request, through a link."""
    gaps = []
    for link in {r["link"] for r in results["link_sweep_digits"]} - {"loopback"}:
        p50 = [
            r["p50 ms"]
            for r in results["link_sweep_digits"]
            if r["link"] == link and r["batch size"] == 1
        ]
        gaps.append(max(p50) - min(p50))
    return max(gaps)


def _to_the_server(results, model, request):
    return next(
        r["bytes to the server"]
        for r in results["bytes_to_the_server"]
        if r["model"] == model and r["request"] == request
    )


def _breakdown(results, protocol, size):
    return next(
        r
        for r in results["time_breakdown"]
        if r["protocol"] == protocol and r["batch size"] == size
    )


def _rest_q25_over_grpc_q75(results):
    """How far apart REST row's and gRPC's middle halves are at batch 256 and 1024 (> 1: apart)."""
    return min(
        _breakdown(results, "REST row", size)["spread"]["total ms"]["q25"]
        / _breakdown(results, "gRPC", size)["spread"]["total ms"]["q75"]
        for size in (256, 1024)
    )


def _digits_speedup(results, size):
    speed = {(r["protocol"], r["batch size"]): r["instances/s"] for r in results["digits_sweep"]}
    return speed[("gRPC", size)] / speed[("REST row", size)]


def _advantage_growth(results):
    sizes = sorted({r["batch size"] for r in results["digits_sweep"]})
    return _digits_speedup(results, sizes[-1]) / _digits_speedup(results, sizes[0])


def _spread_one_digit_through_links(results):
    """Slowest p50 over fastest p50 of the protocols, one digit per request, through a link."""
    spreads = []
    for link in {r["link"] for r in results["link_sweep_digits"]} - {"loopback"}:
        p50 = [
            r["p50 ms"]
            for r in results["link_sweep_digits"]
            if r["link"] == link and r["batch size"] == 1
        ]
        spreads.append(max(p50) / min(p50))
    return max(spreads)


def _gzip_share_of_grpc_beyond_one_digit(results):
    return max(
        ratios["REST gzip/REST row"] / ratios["gRPC/REST row"]
        for case, ratios in results["link_ratios"].items()
        if not case.startswith("digits, batch 1,")
    )


def _photo_gzip_over_protobuf(results):
    sent = {
        r["protocol"]: r["bytes sent/instance"]
        for r in results["link_sweep_photos"]
        if r["link"] == "loopback"
    }
    return sent["REST gzip"] / sent["gRPC"]


def _gzip_over_grpc_bytes_both_ways(results):
    """REST gzip's bytes sent and received over gRPC's, the smallest over both models."""
    ratios = []
    for key in ("link_sweep_digits", "link_sweep_photos"):
        largest = max(r["batch size"] for r in results[key])
        both = {
            r["protocol"]: r["bytes sent/instance"] + r["bytes received/instance"]
            for r in results[key]
            if r["link"] == "loopback" and r["batch size"] == largest
        }
        ratios.append(both["REST gzip"] / both["gRPC"])
    return min(ratios)


def _concurrency(results, column, protocol, clients):
    return next(
        r[column]
        for r in results["concurrency"]
        if r["protocol"] == protocol and r["clients"] == clients
    )


# exact text in a markdown cell -> (results.json -> number, low, high): the number the prose claims.
# Bytes are the same in every run. Timings are stated as comparisons within one run (a ratio of two
# medians measured side by side, or two middle halves that do not overlap), never as a bare time.
# Its claims compare latencies: tests that crowd the machine wait while it runs (conftest.measuring).
MEASURES_LATENCY = True

CLAIMS = {
    # section 2, loopback: 1.65x and 2.1x measured in fast runs; a ratio of two p50s of 100 requests
    "There gRPC's median single request is faster than REST's": (_single_rest_over_grpc, 1.1, 5.0),
    # section 3: bytes, the same in fast and full runs
    "JSON row is 2.5–4×": (lambda r: min(_json_over_protobuf(r, "digits")), 2.5, 4.0),
    "2.5–4× the protobuf": (lambda r: max(_json_over_protobuf(r, "digits")), 2.5, 4.0),
    "for the float images it is about 5×": (
        lambda r: min(_json_over_protobuf(r, "photos")),
        4.7,
        5.5,
    ),
    "about 5× at every batch size": (lambda r: max(_json_over_protobuf(r, "photos")), 4.7, 5.5),
    # what reaches the server through proxy.tap (bytes, HTTP headers and HTTP/2 frames included)
    "the digits' JSON (small integers as text) to about a fifth": (
        lambda r: _to_the_server(r, "digits", "REST gzip") / _to_the_server(r, "digits", "REST"),
        0.15,
        0.25,
    ),
    "protobuf to under half": (
        lambda r: _to_the_server(r, "digits", "gRPC gzip") / _to_the_server(r, "digits", "gRPC"),
        0.3,
        0.5,
    ),
    "their protobuf hardly\nshrinks": (
        lambda r: _to_the_server(r, "photos", "gRPC gzip") / _to_the_server(r, "photos", "gRPC"),
        0.85,
        1.01,
    ),
    "stays well above the protobuf": (
        lambda r: _to_the_server(r, "photos", "REST gzip") / _to_the_server(r, "photos", "gRPC"),
        2.0,
        3.0,
    ),
    # Parts timed inside the same requests as their whole: the median share of 5 requests (74%,
    # middle half 74-75%, in a fast run); never above 100% by construction.
    "takes the client alone most of a large REST request": (
        lambda r: r["json_encode_share_of_rest_request"]["median"],
        0.5,
        0.9,
    ),
    "hundreds of times longer than encoding the protobuf": (
        lambda r: r["json_encode_over_protobuf_encode"],
        100,
        1e4,
    ),
    # gRPC's lead at the largest batch over its lead at batch 1, in one sweep: "widens" is > 1
    # (2 or more on a quiet machine; 1.24 in a CI lane beside the Docker stage)
    "the gap widens with payload size": (_advantage_growth, 1.0, 100),
    "about 50 MB of JSON": (lambda r: 16 * _bytes_per_photo(r, "json_row") / 1e6, 45, 55),
    # section 5: each part's median and middle half over the repeats of one run
    # 7% in a fast run on an idle machine, 3% on a loaded one (where batch 256's transfer rose to 11 ms)
    "At batch 1024 the transfer is a small part of REST row's": (
        lambda r: (
            _breakdown(r, "REST row", 1024)["transfer ms"]
            / _breakdown(r, "REST row", 1024)["total ms"]
        ),
        0.0,
        0.3,
    ),
    "At batch 256 and 1024 REST row's and gRPC's\nmiddle halves are apart": (
        _rest_q25_over_grpc_q75,
        1.0,  # "apart" is exactly > 1; loaded CI runs gave 1.09 and 1.18, quiet ones 1.5 or more
        100,
    ),
    "at batch 1 both take a few milliseconds": (
        lambda r: max(_breakdown(r, p, 1)["total ms"] for p in ("REST row", "gRPC")),
        0.1,
        10.0,
    ),
    # section 6
    "the protocols come close together": (_spread_one_digit_through_links, 1.0, 1.5),
    "REST with compression\nstays behind gRPC on every link here": (
        _gzip_share_of_grpc_beyond_one_digit,
        0.0,
        0.9,
    ),
    # section 7: one Python server on 2 cores (the prose says what such a machine cannot show)
    "8 clients get nowhere near 8 times the requests/s of one": (
        lambda r: max(
            _concurrency(r, "requests/s", p, 8) / _concurrency(r, "requests/s", p, 1)
            for p in ("REST", "gRPC")
        ),
        0.0,
        4.0,
    ),
    "the p50 latency grows several-fold": (
        lambda r: min(
            _concurrency(r, "p50 ms", p, 8) / _concurrency(r, "p50 ms", p, 1)
            for p in ("REST", "gRPC")
        ),
        2.0,
        50,
    ),
    # The median of the three ratios: one point turned (0.76) once under CI's load.
    "gRPC serves more requests per second than REST at most numbers of clients": (
        lambda r: sorted(
            _concurrency(r, "requests/s", "gRPC", n) / _concurrency(r, "requests/s", "REST", n)
            for n in (1, 4, 8)
        )[1],
        1.0,
        20,
    ),
    # the model answer to Q3, and the summary: each names its link
    "the p50s were within a few milliseconds of each other": (
        _p50_gap_one_digit_through_links,
        0.0,
        5.0,
    ),
    "on loopback gRPC's p50 was below REST's": (_single_rest_over_grpc, 1.1, 5.0),
    "several times the instances/s at batch 256": (lambda r: _digits_speedup(r, 256), 2.0, 100),
    "about 5× the bytes for floats": (lambda r: max(_json_over_protobuf(r, "photos")), 4.7, 5.5),
    "still about 2.4× the protobuf": (_photo_gzip_over_protobuf, 2.2, 2.6),
    "about 3× (small integers)": (lambda r: r["json_over_protobuf"]["digits, batch 4"], 2.5, 4.0),
    "5× (floats)": (lambda r: r["json_over_protobuf"]["photos, batch 1"], 4.7, 5.5),
    "gRPC's advantage grows with the payload": (_advantage_growth, 1.0, 100),
    "gRPC still moves the fewest bytes, request and answer\n  together": (
        _gzip_over_grpc_bytes_both_ways,
        1.0,
        100,
    ),
    "On loopback, where only software counts, gRPC answered a single": (
        _single_rest_over_grpc,
        1.1,
        5.0,
    ),
    "there the protocols are close": (_spread_one_digit_through_links, 1.0, 1.5),
}
