"""Chapter 2's checks: what its executed solution must show (check), the answers its
graders must accept (CORRECT) or reject (WRONG), and the numbers its prose quotes (CLAIMS)."""

from pathlib import Path


def check(results: dict, workdir: Path) -> None:
    """What the executed solution recorded (results.json) and left in its work folder."""
    naive = results["naive_copy"]  # the trap, as TF Serving springs it: loaded without variables
    assert naive["states"] == {"2": "AVAILABLE", "1": "END"}, naive
    assert naive["failed"] > 0 and "variable" in naive["error"].lower(), naive
    swap = results["hot_swap"]
    assert swap["failed"] == 0 and swap["requests"] > 50, swap
    assert 0 < results["canary_share"] < 0.3
    for states in results["two_servers"].values():
        assert states["3"] == "AVAILABLE", results["two_servers"]
    assert [row["errors"] for row in results["batching"]] == [0, 0]
    assert (workdir / "models" / "digits" / "0003" / "saved_model.pb").is_file()
    assert (workdir / "models" / "retired" / "digits-2" / "saved_model.pb").is_file()
    assert min(results["accuracies"].values()) > 0.85, results["accuracies"]  # both answer well
    assert results["promoted_labels"] == {"stable": 2, "canary": 2}  # moved by editing labels
    assert results["labels_after_refused_move"] == {"stable": 2, "canary": 2}  # refused: kept
    starts = results["first_request_ms"]
    assert [len(starts[kind]) for kind in ("no warm-up", "warm-up")] == [3, 3], starts
    warm = workdir / "exports" / "warm" / "digits" / "0001" / "assets.extra"
    assert (warm / "tf_serving_warmup_requests").is_file()


# grade_id of the solution cell -> {short description: full replacement source of that cell}
CORRECT = {
    "ex_02_docker": {
        "--publish= and --mount, flags after the image, no tag": """\
def docker_run_argv(base_path, model_name, rest_port=8501, grpc_port=8500):
    source = os.path.abspath(base_path)
    return [
        "docker", "run", "--detach",
        f"--publish={rest_port}:8501", f"--publish={grpc_port}:8500",
        "--mount", f"type=bind,source={source},target=/srv/{model_name},readonly",
        "tensorflow/serving",
        f"--model_name={model_name}", f"--model_base_path=/srv/{model_name}",
    ]
""",
        "shlex.split of one line, ports on 127.0.0.1, --init": """\
def docker_run_argv(base_path, model_name, rest_port=8501, grpc_port=8500):
    volume = shlex.quote(f"{Path(base_path).resolve()}:/models/{model_name}:ro")
    return shlex.split(
        f"docker run --rm --init -p 127.0.0.1:{grpc_port}:8500 -p 127.0.0.1:{rest_port}:8501 "
        f"-v {volume} --env MODEL_NAME={model_name} tensorflow/serving:2.20.0"
    )
""",
        "--entrypoint tensorflow_model_server and every flag": """\
def docker_run_argv(base_path, model_name, rest_port=8501, grpc_port=8500):
    inside = f"/models/{model_name}"
    return [
        "docker", "container", "run", "--rm", "--entrypoint", "tensorflow_model_server",
        "-p", f"{grpc_port}:8500", "-p", f"{rest_port}:8501",
        "-v", f"{Path(base_path).resolve()}:{inside}:ro",
        "tensorflow/serving:2.20.0",
        "--port=8500", "--rest_api_port=8501",
        f"--model_name={model_name}", f"--model_base_path={inside}",
    ]
""",
    },
    "ex_02_config": {
        "an f-string of the text format": """\
def model_config_text(base_path, versions, labels, model_name="digits"):
    listed = " ".join(f"versions: {v}" for v in versions)
    named = "\\n".join(
        f'    version_labels {{ key: "{label}" value: {v} }}' for label, v in labels.items()
    )
    return f\"\"\"model_config_list {{
  config {{
    name: "{model_name}"
    base_path: "{Path(base_path).resolve()}"
    model_platform: "tensorflow"
    model_version_policy {{ specific {{ {listed} }} }}
{named}
  }}
}}
\"\"\"
""",
        "the message built field by field, str() of it": """\
def model_config_text(base_path, versions, labels, model_name="digits"):
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = os.path.abspath(base_path)
    model.model_platform = "tensorflow"
    for version in versions:
        model.model_version_policy.specific.versions.append(int(version))
    model.version_labels.update(labels)
    return str(config)
""",
        "one line, map entries in angle brackets": """\
def model_config_text(base_path, versions, labels, model_name="digits"):
    policy = "".join(f" versions: {v}" for v in versions)
    entries = "".join(f' version_labels < key: "{k}" value: {v} >' for k, v in labels.items())
    where = Path(base_path).resolve()
    return (
        f'model_config_list {{ config {{ name: "{model_name}" base_path: "{where}" '
        f'model_platform: "tensorflow" model_version_policy {{ specific {{{policy} }} }}'
        f"{entries} }} }}"
    )
""",
    },
    "ex_02_batching": {
        "colons before the braces, a comment": """\
def batching_parameters_text(
    max_batch_size, batch_timeout_micros, num_batch_threads, max_enqueued_batches
):
    lines = [
        "# tensorflow.serving.BatchingParameters",
        f"max_batch_size: {{ value: {max_batch_size} }}",
        f"batch_timeout_micros: {{ value: {batch_timeout_micros} }}",
        f"num_batch_threads: {{ value: {num_batch_threads} }}",
        f"max_enqueued_batches: {{ value: {max_enqueued_batches} }}",
    ]
    return "\\n".join(lines)
""",
        "a loop over the fields, angle brackets": """\
def batching_parameters_text(
    max_batch_size, batch_timeout_micros, num_batch_threads, max_enqueued_batches
):
    fields = dict(
        max_enqueued_batches=max_enqueued_batches,
        num_batch_threads=num_batch_threads,
        batch_timeout_micros=batch_timeout_micros,
        max_batch_size=max_batch_size,
    )
    return "".join(f"{name} < value: {int(value)} >\\n" for name, value in fields.items())
""",
    },
    "ex_02_warmup": {
        "message constructors, os.makedirs, a counter": """\
def write_warmup_requests(export_dir, images, model_name="digits"):
    import os

    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    folder = os.path.join(export_dir, "assets.extra")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "tf_serving_warmup_requests")
    with tf.io.TFRecordWriter(path) as writer:
        for count, image in enumerate(images):
            if count == 1000:
                break
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name="serving_default"),
                inputs={"images": tf.make_tensor_proto(image.reshape(1, 8, 8), dtype=tf.uint8)},
            )
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path
""",
        "itertools.islice, expand_dims, no signature name (the default)": """\
def write_warmup_requests(export_dir, images, model_name="digits"):
    import itertools

    path = Path(export_dir, "assets.extra", "tf_serving_warmup_requests")
    path.parent.mkdir(exist_ok=True)
    writer = tf.io.TFRecordWriter(str(path))
    for image in itertools.islice(images, 1000):
        log = prediction_log_pb2.PredictionLog()
        log.predict_log.request.model_spec.name = model_name
        batch = np.expand_dims(np.asarray(image, np.uint8), 0)
        log.predict_log.request.inputs["images"].CopyFrom(tf.make_tensor_proto(batch))
        writer.write(log.SerializeToString())
    writer.close()
    return str(path)
""",
    },
    "ex_02_request_body": {
        "one tolist per image": """\
def rest_request_body(images, signature_name="serving_default"):
    return {"signature_name": signature_name, "instances": [image.tolist() for image in images]}
""",
        "named input per instance": """\
def rest_request_body(images, signature_name="serving_default"):
    rows = [{"images": image.tolist()} for image in np.asarray(images)]
    return {"signature_name": signature_name, "instances": rows}
""",
        "int() per pixel, signature only when not the default": """\
def rest_request_body(images, signature_name="serving_default"):
    body = {"instances": [[[int(p) for p in line] for line in image] for image in images]}
    if signature_name != "serving_default":
        body["signature_name"] = signature_name
    return body
""",
        "astype(int) then tolist": """\
def rest_request_body(images, signature_name="serving_default"):
    instances = np.asarray(images).astype(int).tolist()
    return dict(signature_name=signature_name, instances=instances)
""",
    },
    "ex_02_parse": {
        "try row, fall back to columnar on KeyError": """\
def class_ids_from_response(answer):
    try:
        ids = [prediction["class_id"] for prediction in answer["predictions"]]
    except KeyError:
        ids = answer["outputs"]["class_id"]
    return np.array(ids).astype(np.int64)
""",
        "np.fromiter and .get": """\
def class_ids_from_response(answer):
    rows = answer.get("predictions")
    if rows is not None:
        return np.fromiter((row["class_id"] for row in rows), dtype=np.int64, count=len(rows))
    return np.array(answer.get("outputs")["class_id"], dtype="int64")
""",
        "argmax of the probabilities": """\
def class_ids_from_response(answer):
    if "outputs" in answer:
        probabilities = answer["outputs"]["probabilities"]
    else:
        probabilities = [p["probabilities"] for p in answer["predictions"]]
    return np.argmax(np.asarray(probabilities), axis=-1).astype(np.int64)
""",
    },
    "ex_02_grpc": {
        "open channel, dtype given to make_tensor_proto, int()": """\
def grpc_predict(target, model_name, images, version=None):
    channel = grpc.insecure_channel(target)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "serving_default"
    if version:
        request.model_spec.version.value = int(version)
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images, dtype=tf.uint8))
    reply = stub.Predict(request, 10.0)
    channel.close()
    return tf.make_ndarray(reply.outputs["probabilities"]), int(reply.model_spec.version.value)
""",
        "TensorProto by hand, float_val read back": """\
def grpc_predict(target, model_name, images, version=None):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    images = np.asarray(images, dtype=np.uint8)
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=n) for n in images.shape]
    )
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_UINT8, tensor_shape=shape, tensor_content=images.tobytes()
    )
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["images"].CopyFrom(tensor)
    with grpc.insecure_channel(target) as channel:
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request)
    out = reply.outputs["probabilities"]
    values = np.array(out.float_val, dtype=np.float32) if out.float_val else tf.make_ndarray(out)
    shape = [d.size for d in out.tensor_shape.dim]
    return values.reshape(shape), reply.model_spec.version.value
""",
        "rest_grpc.GrpcClient's request": """\
def grpc_predict(target, model_name, images, version=None):
    client = rest_grpc.GrpcClient(target, model_name)
    request = client.request(np.asarray(images, dtype=np.uint8))
    if version is not None:
        request.model_spec.version.value = version
    try:
        reply = client.stub.Predict(request, timeout=10)
    finally:
        client.close()
    return tf.make_ndarray(reply.outputs["probabilities"]), reply.model_spec.version.value
""",
    },
    "ex_02_deploy": {
        "os.replace from a staging folder that is not a number": """\
import os


def deploy_version(export_dir, base_path, version, rest_url, model_name="digits", timeout=60):
    target = savedmodel.version_path(base_path, version)
    staging = Path(base_path) / f"incoming-{version}"
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(export_dir, staging)
    os.replace(staging, target)
    deadline = time.monotonic() + timeout
    while True:
        if versions(rest_url, model_name).get(version) == "AVAILABLE":
            return timeout - (deadline - time.monotonic())
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{model_name} version {version} is not AVAILABLE")
        time.sleep(0.05)
""",
        "tempfile.mkdtemp(dir=base_path), then rename": """\
import os
import tempfile


def deploy_version(export_dir, base_path, version, rest_url, model_name="digits", timeout=60):
    staging = tempfile.mkdtemp(prefix=".deploy-", dir=base_path)
    shutil.copytree(export_dir, staging, dirs_exist_ok=True)
    os.chmod(staging, 0o755)
    os.rename(staging, savedmodel.version_path(base_path, version))
    start = time.time()
    while versions(rest_url, model_name).get(version) != "AVAILABLE":
        if time.time() - start > timeout:
            raise TimeoutError(f"gave up on version {version} after {timeout} s")
        time.sleep(0.2)
    return time.time() - start
""",
        "staging folder next to base_path, shutil.move (same filesystem)": """\
def deploy_version(export_dir, base_path, version, rest_url, model_name="digits", timeout=60):
    base_path = Path(base_path)
    staging = base_path.parent / f".{base_path.name}-staging" / str(version)
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(export_dir, staging)
    shutil.move(staging, savedmodel.version_path(base_path, version))
    staging.parent.rmdir()
    began = time.perf_counter()
    for _ in range(int(timeout / 0.1) + 1):
        if versions(rest_url, model_name).get(version) == "AVAILABLE":
            return time.perf_counter() - began
        time.sleep(0.1)
    raise TimeoutError(f"version {version} not AVAILABLE within {timeout} s")
""",
        "cp -r in a subprocess, then Path.rename, status read with requests": """\
import subprocess


def deploy_version(export_dir, base_path, version, rest_url, model_name="digits", timeout=60):
    target = savedmodel.version_path(base_path, version)
    staging = target.with_name(target.name + ".tmp")
    subprocess.run(["rm", "-rf", str(staging)], check=True)
    subprocess.run(["cp", "-r", str(export_dir), str(staging)], check=True)
    staging.rename(target)
    t0 = time.perf_counter()
    while True:
        status = requests.get(f"{rest_url}/v1/models/{model_name}", timeout=5).json()
        states = {int(v["version"]): v["state"] for v in status["model_version_status"]}
        if states.get(version) == "AVAILABLE":
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(version)
        time.sleep(0.1)
""",
    },
    "ex_02_rollback": {
        "delete the folder": """\
def roll_back(base_path, version, rest_url, model_name="digits", timeout=60):
    shutil.rmtree(savedmodel.version_path(base_path, version))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = versions(rest_url, model_name)
        serving_now = sorted(v for v, s in states.items() if s == "AVAILABLE")
        if serving_now and version not in serving_now:
            return serving_now[-1]
        time.sleep(0.1)
    raise TimeoutError(f"version {version} still AVAILABLE")
""",
        "shutil.move to a folder in the temporary directory": """\
import tempfile


def roll_back(base_path, version, rest_url, model_name="digits", timeout=60):
    keep = Path(tempfile.mkdtemp(prefix=f"{model_name}-retired-"))
    shutil.move(str(savedmodel.version_path(base_path, version)), str(keep))
    started = time.time()
    while time.time() - started < timeout:
        states = versions(rest_url, model_name)
        if states.get(version) != "AVAILABLE" and "AVAILABLE" in states.values():
            return max(v for v, s in states.items() if s == "AVAILABLE")
        time.sleep(0.25)
    raise TimeoutError("rollback did not finish")
""",
        "rename next to base_path, wait for UNLOADING or END": """\
def roll_back(base_path, version, rest_url, model_name="digits", timeout=60):
    folder = savedmodel.version_path(base_path, version)
    folder.rename(Path(base_path).parent / f"{model_name}-{folder.name}-retired")
    t0 = time.perf_counter()
    while versions(rest_url, model_name).get(version) not in ("UNLOADING", "END", None):
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(version)
        time.sleep(0.1)
    while True:
        available = [v for v, s in versions(rest_url, model_name).items() if s == "AVAILABLE"]
        if available:
            return max(available)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(version)
        time.sleep(0.1)
""",
    },
    "quiz_02_1": {
        "upper case": 'quiz_02_1 = "B"\n',
        "in parentheses, spaces": 'quiz_02_1 = " (b) "\n',
    },
    "quiz_02_2": {"upper case": 'quiz_02_2 = "C"\n', "with parenthesis": 'quiz_02_2 = "(c)"\n'},
    "quiz_02_3": {"upper case": 'quiz_02_3 = "B"\n', "trailing space": 'quiz_02_3 = "b "\n'},
}

WRONG = {
    "ex_02_docker": {
        "mount not read-only": """\
def docker_run_argv(base_path, model_name, rest_port=8501, grpc_port=8500):
    return [
        "docker", "run", "--rm", "-p", f"{grpc_port}:8500", "-p", f"{rest_port}:8501",
        "-v", f"{Path(base_path).resolve()}:/models/{model_name}",
        "-e", f"MODEL_NAME={model_name}", "tensorflow/serving:2.20.0",
    ]
""",
        "container ports swapped": """\
def docker_run_argv(base_path, model_name, rest_port=8501, grpc_port=8500):
    return [
        "docker", "run", "--rm", "-p", f"{grpc_port}:8501", "-p", f"{rest_port}:8500",
        "-v", f"{Path(base_path).resolve()}:/models/{model_name}:ro",
        "-e", f"MODEL_NAME={model_name}", "tensorflow/serving:2.20.0",
    ]
""",
        "no model name: the image serves 'model'": """\
def docker_run_argv(base_path, model_name, rest_port=8501, grpc_port=8500):
    return [
        "docker", "run", "--rm", "-p", f"{grpc_port}:8500", "-p", f"{rest_port}:8501",
        "-v", f"{Path(base_path).resolve()}:/models/{model_name}:ro", "tensorflow/serving:2.20.0",
    ]
""",
        "base path not where the folder is mounted": """\
def docker_run_argv(base_path, model_name, rest_port=8501, grpc_port=8500):
    return [
        "docker", "run", "--rm", "-p", f"{grpc_port}:8500", "-p", f"{rest_port}:8501",
        "-v", f"{Path(base_path).resolve()}:/models/{model_name}:ro",
        "tensorflow/serving:2.20.0",
        f"--model_name={model_name}", f"--model_base_path=/models/{model_name}/1",
    ]
""",
        "fixed host ports, whatever is asked": """\
def docker_run_argv(base_path, model_name, rest_port=8501, grpc_port=8500):
    return [
        "docker", "run", "--rm", "-p", "8500:8500", "-p", "8501:8501",
        "-v", f"{Path(base_path).resolve()}:/models/{model_name}:ro",
        "-e", f"MODEL_NAME={model_name}", "tensorflow/serving:2.20.0",
    ]
""",
        "one string, not a list": """\
def docker_run_argv(base_path, model_name, rest_port=8501, grpc_port=8500):
    return (
        f"docker run --rm -p {grpc_port}:8500 -p {rest_port}:8501 "
        f"-v {Path(base_path).resolve()}:/models/{model_name}:ro "
        f"-e MODEL_NAME={model_name} tensorflow/serving:2.20.0"
    )
""",
    },
    "ex_02_config": {
        "latest policy instead of specific versions": """\
def model_config_text(base_path, versions, labels, model_name="digits"):
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(
        name=model_name, base_path=str(Path(base_path).resolve()), model_platform="tensorflow"
    )
    model.model_version_policy.latest.num_versions = len(versions)
    model.version_labels.update(labels)
    return text_format.MessageToString(config)
""",
        "labels written as a plain map (not text format)": """\
def model_config_text(base_path, versions, labels, model_name="digits"):
    listed = " ".join(f"versions: {v}" for v in versions)
    named = " ".join(f"{label}: {v}" for label, v in labels.items())
    return (
        f'model_config_list {{ config {{ name: "{model_name}" base_path: "{base_path}" '
        f'model_platform: "tensorflow" model_version_policy {{ specific {{ {listed} }} }} '
        f"version_labels {{ {named} }} }} }}"
    )
""",
        "no model_platform": """\
def model_config_text(base_path, versions, labels, model_name="digits"):
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(name=model_name, base_path=str(base_path))
    model.model_version_policy.specific.versions.extend(versions)
    model.version_labels.update(labels)
    return text_format.MessageToString(config)
""",
        "labels hard-coded": """\
def model_config_text(base_path, versions, labels, model_name="digits"):
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(
        name=model_name, base_path=str(Path(base_path).resolve()), model_platform="tensorflow"
    )
    model.model_version_policy.specific.versions.extend(versions)
    model.version_labels.update({"stable": 1, "canary": 2})
    return text_format.MessageToString(config)
""",
        "labels swapped (label per version number)": """\
def model_config_text(base_path, versions, labels, model_name="digits"):
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(
        name=model_name, base_path=str(Path(base_path).resolve()), model_platform="tensorflow"
    )
    model.model_version_policy.specific.versions.extend(versions)
    for label, version in zip(labels, sorted(versions, reverse=True)):
        model.version_labels[label] = version
    return text_format.MessageToString(config)
""",
    },
    "ex_02_batching": {
        "plain numbers, not wrapped values": """\
def batching_parameters_text(
    max_batch_size, batch_timeout_micros, num_batch_threads, max_enqueued_batches
):
    return (
        f"max_batch_size: {max_batch_size}\\n"
        f"batch_timeout_micros: {batch_timeout_micros}\\n"
        f"num_batch_threads: {num_batch_threads}\\n"
        f"max_enqueued_batches: {max_enqueued_batches}\\n"
    )
""",
        "JSON": """\
def batching_parameters_text(
    max_batch_size, batch_timeout_micros, num_batch_threads, max_enqueued_batches
):
    import json

    return json.dumps(
        {
            "max_batch_size": max_batch_size,
            "batch_timeout_micros": batch_timeout_micros,
            "num_batch_threads": num_batch_threads,
            "max_enqueued_batches": max_enqueued_batches,
        }
    )
""",
        "timeout converted to milliseconds": """\
def batching_parameters_text(
    max_batch_size, batch_timeout_micros, num_batch_threads, max_enqueued_batches
):
    return (
        f"max_batch_size {{ value: {max_batch_size} }}\\n"
        f"batch_timeout_micros {{ value: {batch_timeout_micros // 1000} }}\\n"
        f"num_batch_threads {{ value: {num_batch_threads} }}\\n"
        f"max_enqueued_batches {{ value: {max_enqueued_batches} }}\\n"
    )
""",
        "threads and queue swapped": """\
def batching_parameters_text(
    max_batch_size, batch_timeout_micros, num_batch_threads, max_enqueued_batches
):
    return (
        f"max_batch_size {{ value: {max_batch_size} }}\\n"
        f"batch_timeout_micros {{ value: {batch_timeout_micros} }}\\n"
        f"num_batch_threads {{ value: {max_enqueued_batches} }}\\n"
        f"max_enqueued_batches {{ value: {num_batch_threads} }}\\n"
    )
""",
    },
    "ex_02_warmup": {
        "GZIP-compressed TFRecord file": """\
def write_warmup_requests(export_dir, images, model_name="digits"):
    path = Path(export_dir) / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for image in np.asarray(images, dtype=np.uint8)[:1000]:
            log = prediction_log_pb2.PredictionLog()
            log.predict_log.request.model_spec.name = model_name
            log.predict_log.request.inputs["images"].CopyFrom(tf.make_tensor_proto(image[None]))
            writer.write(log.SerializeToString())
    return path
""",
        "PredictRequest records, not PredictionLog": """\
def write_warmup_requests(export_dir, images, model_name="digits"):
    path = Path(export_dir) / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image in np.asarray(images, dtype=np.uint8)[:1000]:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.inputs["images"].CopyFrom(tf.make_tensor_proto(image[None]))
            writer.write(request.SerializeToString())
    return path
""",
        "one record holding every image": """\
def write_warmup_requests(export_dir, images, model_name="digits"):
    path = Path(export_dir) / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        log = prediction_log_pb2.PredictionLog()
        log.predict_log.request.model_spec.name = model_name
        batch = np.asarray(images, dtype=np.uint8)[:1000]
        log.predict_log.request.inputs["images"].CopyFrom(tf.make_tensor_proto(batch))
        writer.write(log.SerializeToString())
    return path
""",
        "no limit of 1000 records": """\
def write_warmup_requests(export_dir, images, model_name="digits"):
    path = Path(export_dir) / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image in np.asarray(images, dtype=np.uint8):
            log = prediction_log_pb2.PredictionLog()
            log.predict_log.request.model_spec.name = model_name
            log.predict_log.request.inputs["images"].CopyFrom(tf.make_tensor_proto(image[None]))
            writer.write(log.SerializeToString())
    return path
""",
        "float32 pixels scaled to [0, 1]": """\
def write_warmup_requests(export_dir, images, model_name="digits"):
    path = Path(export_dir) / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image in np.asarray(images)[:1000]:
            log = prediction_log_pb2.PredictionLog()
            pixels = (image[None] / 255.0).astype(np.float32)
            log.predict_log.request.inputs["images"].CopyFrom(tf.make_tensor_proto(pixels))
            writer.write(log.SerializeToString())
    return path
""",
        "written to assets/, not assets.extra/": """\
def write_warmup_requests(export_dir, images, model_name="digits"):
    path = Path(export_dir) / "assets" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image in np.asarray(images, dtype=np.uint8)[:1000]:
            log = prediction_log_pb2.PredictionLog()
            log.predict_log.request.model_spec.name = model_name
            log.predict_log.request.inputs["images"].CopyFrom(tf.make_tensor_proto(image[None]))
            writer.write(log.SerializeToString())
    return path
""",
    },
    "ex_02_request_body": {
        "columnar inputs instead of rows": """\
def rest_request_body(images, signature_name="serving_default"):
    return {"signature_name": signature_name, "inputs": {"images": np.asarray(images).tolist()}}
""",
        "pixels scaled to floats in [0, 1]": """\
def rest_request_body(images, signature_name="serving_default"):
    return {"signature_name": signature_name, "instances": (np.asarray(images) / 255.0).tolist()}
""",
        "NumPy array left in the body": """\
def rest_request_body(images, signature_name="serving_default"):
    return {"signature_name": signature_name, "instances": np.asarray(images)}
""",
        "signature name hard-coded": """\
def rest_request_body(images, signature_name="serving_default"):
    return {"signature_name": "serving_default", "instances": np.asarray(images).tolist()}
""",
        "images flattened to 64 values": """\
def rest_request_body(images, signature_name="serving_default"):
    flat = np.asarray(images).reshape(len(images), -1)
    return {"signature_name": signature_name, "instances": flat.tolist()}
""",
    },
    "ex_02_parse": {
        "row format only": """\
def class_ids_from_response(answer):
    return np.array([p["class_id"] for p in answer["predictions"]], dtype=np.int64)
""",
        "columnar format only": """\
def class_ids_from_response(answer):
    return np.asarray(answer["outputs"]["class_id"], dtype=np.int64)
""",
        "a list, not an array": """\
def class_ids_from_response(answer):
    if "predictions" in answer:
        return [p["class_id"] for p in answer["predictions"]]
    return list(answer["outputs"]["class_id"])
""",
        "int32 instead of int64": """\
def class_ids_from_response(answer):
    if "predictions" in answer:
        return np.array([p["class_id"] for p in answer["predictions"]], dtype=np.int32)
    return np.asarray(answer["outputs"]["class_id"], dtype=np.int32)
""",
        "class names instead of ids": """\
def class_ids_from_response(answer):
    if "predictions" in answer:
        return np.array([p["class_name"] for p in answer["predictions"]])
    return np.asarray(answer["outputs"]["class_name"])
""",
    },
    "ex_02_grpc": {
        "version argument ignored": """\
def grpc_predict(target, model_name, images, version=None):
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.asarray(images, np.uint8)))
        reply = stub.Predict(request, timeout=10.0)
    return tf.make_ndarray(reply.outputs["probabilities"]), reply.model_spec.version.value
""",
        "the Int64Value message instead of its value": """\
def grpc_predict(target, model_name, images, version=None):
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        if version is not None:
            request.model_spec.version.value = version
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.asarray(images, np.uint8)))
        reply = stub.Predict(request, timeout=10.0)
    return tf.make_ndarray(reply.outputs["probabilities"]), reply.model_spec.version
""",
        "class ids instead of probabilities": """\
def grpc_predict(target, model_name, images, version=None):
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        if version is not None:
            request.model_spec.version.value = version
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.asarray(images, np.uint8)))
        reply = stub.Predict(request, timeout=10.0)
    return tf.make_ndarray(reply.outputs["class_id"]), reply.model_spec.version.value
""",
        "float32 pixels scaled to [0, 1]": """\
def grpc_predict(target, model_name, images, version=None):
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        if version is not None:
            request.model_spec.version.value = version
        pixels = np.asarray(images, np.float32) / 255.0
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(pixels))
        reply = stub.Predict(request, timeout=10.0)
    return tf.make_ndarray(reply.outputs["probabilities"]), reply.model_spec.version.value
""",
        "errors swallowed": """\
def grpc_predict(target, model_name, images, version=None):
    try:
        with grpc.insecure_channel(target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            if version is not None:
                request.model_spec.version.value = version
            request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.asarray(images, np.uint8)))
            reply = stub.Predict(request, timeout=10.0)
    except grpc.RpcError:
        return None, None
    return tf.make_ndarray(reply.outputs["probabilities"]), reply.model_spec.version.value
""",
    },
    "ex_02_deploy": {
        "copytree straight into the version folder": """\
def deploy_version(export_dir, base_path, version, rest_url, model_name="digits", timeout=60):
    shutil.copytree(export_dir, savedmodel.version_path(base_path, version))
    started = time.perf_counter()
    while versions(rest_url, model_name).get(version) != "AVAILABLE":
        if time.perf_counter() - started > timeout:
            raise TimeoutError(version)
        time.sleep(0.1)
    return time.perf_counter() - started
""",
        "staged on another filesystem (tmpfs), then shutil.move": """\
import tempfile


def deploy_version(export_dir, base_path, version, rest_url, model_name="digits", timeout=60):
    staging = Path(tempfile.mkdtemp(dir="/dev/shm")) / "model"  # not base_path's filesystem
    shutil.copytree(export_dir, staging)
    shutil.move(staging, savedmodel.version_path(base_path, version))  # a copy, not a rename
    shutil.rmtree(staging.parent)
    started = time.perf_counter()
    while versions(rest_url, model_name).get(version) != "AVAILABLE":
        if time.perf_counter() - started > timeout:
            raise TimeoutError(version)
        time.sleep(0.1)
    return time.perf_counter() - started
""",
        "copied file by file into the version folder": """\
import os


def deploy_version(export_dir, base_path, version, rest_url, model_name="digits", timeout=60):
    target = savedmodel.version_path(base_path, version)
    for folder, _, files in os.walk(export_dir):
        into = target / Path(folder).relative_to(export_dir)
        into.mkdir(parents=True, exist_ok=True)
        for name in files:
            shutil.copy2(Path(folder) / name, into / name)
    started = time.perf_counter()
    while versions(rest_url, model_name).get(version) != "AVAILABLE":
        if time.perf_counter() - started > timeout:
            raise TimeoutError(version)
        time.sleep(0.1)
    return time.perf_counter() - started
""",
        "returns before the version is AVAILABLE": """\
def deploy_version(export_dir, base_path, version, rest_url, model_name="digits", timeout=60):
    target = savedmodel.version_path(base_path, version)
    staging = Path(base_path) / f".incoming-{target.name}"
    shutil.copytree(export_dir, staging)
    staging.rename(target)
    return 0.0
""",
        "moves the export instead of copying it": """\
def deploy_version(export_dir, base_path, version, rest_url, model_name="digits", timeout=60):
    Path(export_dir).rename(savedmodel.version_path(base_path, version))
    started = time.perf_counter()
    while versions(rest_url, model_name).get(version) != "AVAILABLE":
        if time.perf_counter() - started > timeout:
            raise TimeoutError(version)
        time.sleep(0.1)
    return time.perf_counter() - started
""",
        "staging copy left behind in base_path": """\
def deploy_version(export_dir, base_path, version, rest_url, model_name="digits", timeout=60):
    staging = Path(base_path) / "staging"
    shutil.copytree(export_dir, staging / "model")
    (staging / "model").rename(savedmodel.version_path(base_path, version))
    started = time.perf_counter()
    while versions(rest_url, model_name).get(version) != "AVAILABLE":
        if time.perf_counter() - started > timeout:
            raise TimeoutError(version)
        time.sleep(0.1)
    return time.perf_counter() - started
""",
        "no timeout: waits forever": """\
def deploy_version(export_dir, base_path, version, rest_url, model_name="digits", timeout=60):
    target = savedmodel.version_path(base_path, version)
    staging = Path(base_path) / f".incoming-{target.name}"
    shutil.copytree(export_dir, staging)
    staging.rename(target)
    started = time.perf_counter()
    while versions(rest_url, model_name).get(version) != "AVAILABLE":
        time.sleep(0.1)
    return time.perf_counter() - started
""",
    },
    "ex_02_rollback": {
        "returns at once, without waiting": """\
def roll_back(base_path, version, rest_url, model_name="digits", timeout=60):
    shutil.rmtree(savedmodel.version_path(base_path, version))
    available = [v for v, s in versions(rest_url, model_name).items() if s == "AVAILABLE"]
    return max(available)
""",
        "returns version - 1 without waiting": """\
def roll_back(base_path, version, rest_url, model_name="digits", timeout=60):
    folder = savedmodel.version_path(base_path, version)
    folder.rename(Path(base_path).parent / f"retired-{folder.name}")
    return version - 1
""",
        "returns the list of AVAILABLE versions": """\
def roll_back(base_path, version, rest_url, model_name="digits", timeout=60):
    shutil.rmtree(savedmodel.version_path(base_path, version))
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        available = [v for v, s in versions(rest_url, model_name).items() if s == "AVAILABLE"]
        if available and version not in available:
            return available
        time.sleep(0.1)
    raise TimeoutError(version)
""",
        "copies it out but leaves it in base_path": """\
def roll_back(base_path, version, rest_url, model_name="digits", timeout=1):
    folder = savedmodel.version_path(base_path, version)
    shutil.copytree(folder, Path(base_path).parent / "retired" / folder.name, dirs_exist_ok=True)
    return version - 1
""",
    },
    "quiz_02_1": {"a": 'quiz_02_1 = "a"\n', "d": 'quiz_02_1 = "d"\n'},
    "quiz_02_2": {"b": 'quiz_02_2 = "b"\n', "a": 'quiz_02_2 = "a"\n'},
    "quiz_02_3": {"c": 'quiz_02_3 = "c"\n', "d": 'quiz_02_3 = "d"\n'},
}

# exact text in a markdown cell -> (results.json -> number, low, high): the number the prose claims
CLAIMS = {
    "so one miss among": (lambda results: results["accuracies"]["digits_v1"], 0.85, 0.98),
    "from then on every request failed": (
        lambda results: results["naive_copy"]["answered_after_first_failure"],
        0,
        0,
    ),
    "Read the first line: no request failed": (lambda results: results["hot_swap"]["failed"], 0, 0),
    "so about 10% of": (lambda results: results["canary_share"], 0.03, 0.2),
    # The lone request waits out the 10 ms timeout: a lower bound by construction, noise on top.
    "its median latency rose by about the 10 ms": (
        lambda results: results["batching_lone_extra_ms"],
        7,
        20,
    ),
    # (8 clients' extra median latency) / (a lone request's): a batch fills before the timeout.
    "so batching added less to their median latency than to the lone": (
        lambda results: results["batching_busy_wait_share"],
        -1,
        0.8,
    ),
    # One run's throughput ratio, batching / none, on a CPU: never a doubling.
    "In our runs batching never doubled the requests/s": (
        lambda results: results["batching_throughput_ratio"],
        0,
        2,
    ),
    # Median first request over median second, fresh starts without warm-up.
    "its median was several times the second request's": (
        lambda results: _median_ratio(results["first_request_ms"]["no warm-up"]),
        3,
        100,
    ),
    # With warm-up: the medians of the first and second requests, in milliseconds apart.
    "the first request's median was no slower than the second's by more than a few milliseconds": (
        # a negative gap is a slow second request (noise on a loaded machine, seen at -9.4 ms in
        # CI), not a slow first one: only a first request slower by more than 5 ms breaks the claim
        lambda results: _median_gap(results["first_request_ms"]["warm-up"]),
        -50,
        5,
    ),
}


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _median_ratio(starts: list[list[float]]) -> float:
    """Median first request over median second request (ms), across fresh starts."""
    return _median([t[0] for t in starts]) / _median([t[1] for t in starts])


def _median_gap(starts: list[list[float]]) -> float:
    """Median first request minus median second request (ms), across fresh starts."""
    return _median([t[0] for t in starts]) - _median([t[1] for t in starts])
