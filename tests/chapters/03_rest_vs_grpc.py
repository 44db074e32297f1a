"""Chapter 3's answers the graders must accept (CORRECT) or reject (WRONG), and its prose's numbers.

Each variant is the whole source of an exercise cell, kept as a student would write it.
"""

# ruff: noqa: E501

# grade_id of the solution cell -> {short description: full replacement source of that cell}
CORRECT = {
    "ex_03_percentiles": {
        "np.quantile on fractions": """def percentiles_ms(latencies, qs=(50, 90, 99)):
    ms = np.asarray(latencies) * 1000
    return {q: np.quantile(ms, q / 100) for q in qs}
""",
        "sorted list, interpolated by hand": """def percentiles_ms(latencies, qs=(50, 90, 99)):
    ms = sorted(x * 1000 for x in latencies)
    result = {}
    for q in qs:
        position = (len(ms) - 1) * q / 100
        low = int(position)
        high = min(low + 1, len(ms) - 1)
        result[q] = ms[low] + (ms[high] - ms[low]) * (position - low)
    return result
""",
        "one np.percentile call for every q, zipped": """def percentiles_ms(latencies, qs=(50, 90, 99)):
    values = np.percentile(np.array(latencies) * 1e3, list(qs))
    return dict(zip(qs, values))
""",
        "bench.percentile_ms, rounded to the microsecond": """def percentiles_ms(latencies, qs=(50, 90, 99)):
    return {q: round(bench.percentile_ms(latencies, q), 3) for q in qs}
""",
    },
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
        "bench's clients build the bodies (compact JSON, serialized request)": """def payload_sizes(images):
    row = bench.RestClient("http://localhost:1", "digits")
    columnar = bench.RestClient("http://localhost:1", "digits", columnar=True)
    stub = bench.GrpcClient("localhost:1", "digits")  # never connects: body() only encodes
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
        bench.run_load(functools.partial(client.predict, images[:b]), requests=requests, instances=b)
        for b in batch_sizes
    ]
""",
        "senders built first by a factory, then run": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    def sender(batch):
        def send():
            return client.predict(batch)

        return send

    senders = [(b, sender(images[:b])) for b in batch_sizes]
    return [bench.run_load(send, requests=requests, instances=b) for b, send in senders]
""",
        "plain loop, lambda run at once, no warm-up": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    rows = []
    for b in batch_sizes:
        batch = np.ascontiguousarray(images[0:b])
        row = bench.run_load(lambda: client.predict(batch), requests=requests, instances=b, warmup=0)
        rows.append(row)
    return rows
""",
    },
    "ex_03_crossover": {
        "next() over sorted sizes, one dict per protocol": """def first_batch_size_above(rows, ratio):
    grpc = {r["batch size"]: r["instances/s"] for r in rows if r["protocol"] == "gRPC"}
    rest = {r["batch size"]: r["instances/s"] for r in rows if r["protocol"] == "REST row"}
    return next((b for b in sorted(grpc) if b in rest and grpc[b] / rest[b] > ratio), None)
""",
        "at least the ratio (measured speeds never tie), rows sorted": """def first_batch_size_above(rows, ratio):
    rest = {r["batch size"]: r["instances/s"] for r in rows if r["protocol"] == "REST row"}
    for row in sorted(rows, key=lambda r: r["batch size"]):
        if row["protocol"] == "gRPC" and row["instances/s"] >= ratio * rest[row["batch size"]]:
            return row["batch size"]
    return None
""",
        "every size above the ratio, then min()": """def first_batch_size_above(rows, ratio):
    speed = {(r["protocol"], r["batch size"]): r["instances/s"] for r in rows}
    above = [
        size
        for (protocol, size), value in speed.items()
        if protocol == "gRPC"
        and ("REST row", size) in speed
        and value > ratio * speed[("REST row", size)]
    ]
    return min(above) if above else None
""",
    },
    "quiz_03_1": {
        "upper case": 'quiz_03_1 = "B"\n',
        "in parentheses, spaces": 'quiz_03_1 = " (b) "\n',
    },
    "quiz_03_2": {"upper case": 'quiz_03_2 = "C"\n', "in parentheses": 'quiz_03_2 = "(c)"\n'},
}

WRONG = {
    "ex_03_percentiles": {
        "seconds, not milliseconds": """def percentiles_ms(latencies, qs=(50, 90, 99)):
    return {q: float(np.percentile(latencies, q)) for q in qs}
""",
        "nearest rank, not interpolated": """def percentiles_ms(latencies, qs=(50, 90, 99)):
    ms = sorted(x * 1000 for x in latencies)
    return {q: ms[round((len(ms) - 1) * q / 100)] for q in qs}
""",
        "method='lower'": """def percentiles_ms(latencies, qs=(50, 90, 99)):
    ms = np.asarray(latencies) * 1000
    return {q: float(np.percentile(ms, q, method="lower")) for q in qs}
""",
        "fractions passed to np.percentile": """def percentiles_ms(latencies, qs=(50, 90, 99)):
    ms = np.asarray(latencies) * 1000
    return {q: float(np.percentile(ms, q / 100)) for q in qs}
""",
        "ignores qs": """def percentiles_ms(latencies, qs=(50, 90, 99)):
    ms = np.asarray(latencies) * 1000
    return {q: float(np.percentile(ms, q)) for q in (50, 90, 99)}
""",
        "keys 'p50' instead of q": """def percentiles_ms(latencies, qs=(50, 90, 99)):
    ms = np.asarray(latencies) * 1000
    return {f"p{q}": float(np.percentile(ms, q)) for q in qs}
""",
    },
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
        bench.run_load(send, requests=requests, instances=b)
        for send, b in zip(senders, batch_sizes)
    ]
""",
        "run_load not told the batch size": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    return [
        bench.run_load(lambda b=b: client.predict(images[:b]), requests=requests)
        for b in batch_sizes
    ]
""",
        "the notebook's request count, not the argument": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    return [
        bench.run_load(lambda b=b: client.predict(images[:b]), requests=SIZES.requests, instances=b)
        for b in batch_sizes
    ]
""",
        "batch sizes sorted": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    return [
        bench.run_load(lambda b=b: client.predict(images[:b]), requests=requests, instances=b)
        for b in sorted(batch_sizes)
    ]
""",
        "every image in every request": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    return [
        bench.run_load(lambda: client.predict(images), requests=requests, instances=b)
        for b in batch_sizes
    ]
""",
        "the last b images": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    return [
        bench.run_load(lambda b=b: client.predict(images[-b:]), requests=requests, instances=b)
        for b in batch_sizes
    ]
""",
        "rows in a dict by batch size": """def sweep_batch_sizes(client, images, batch_sizes, requests):
    return {
        b: bench.run_load(lambda b=b: client.predict(images[:b]), requests=requests, instances=b)
        for b in batch_sizes
    }
""",
    },
    "ex_03_crossover": {
        "REST over gRPC (inverted)": """def first_batch_size_above(rows, ratio):
    speed = {(r["protocol"], r["batch size"]): r["instances/s"] for r in rows}
    for size in sorted({r["batch size"] for r in rows}):
        if ("gRPC", size) in speed and speed[("REST row", size)] / speed[("gRPC", size)] > ratio:
            return size
    return None
""",
        "first in row order, not the smallest batch size": """def first_batch_size_above(rows, ratio):
    rest = {r["batch size"]: r["instances/s"] for r in rows if r["protocol"] == "REST row"}
    for row in rows:
        if row["protocol"] == "gRPC" and row["instances/s"] / rest[row["batch size"]] > ratio:
            return row["batch size"]
    return None
""",
        "any REST protocol as the baseline": """def first_batch_size_above(rows, ratio):
    rest = {r["batch size"]: r["instances/s"] for r in rows if r["protocol"].startswith("REST")}
    grpc = {r["batch size"]: r["instances/s"] for r in rows if r["protocol"] == "gRPC"}
    for size in sorted(grpc):
        if grpc[size] / rest[size] > ratio:
            return size
    return None
""",
        "the largest batch size above": """def first_batch_size_above(rows, ratio):
    speed = {(r["protocol"], r["batch size"]): r["instances/s"] for r in rows}
    above = [s for (p, s), v in speed.items() if p == "gRPC" and v / speed[("REST row", s)] > ratio]
    return max(above) if above else None
""",
        "0 instead of None": """def first_batch_size_above(rows, ratio):
    speed = {(r["protocol"], r["batch size"]): r["instances/s"] for r in rows}
    above = [s for (p, s), v in speed.items() if p == "gRPC" and v / speed[("REST row", s)] > ratio]
    return min(above) if above else 0
""",
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


def _single_p50_gap(results):
    p50 = {row["protocol"]: row["p50 ms"] for row in results["single_instance_ms"]}
    return abs(p50["REST"] - p50["gRPC"])


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


# exact text in a markdown cell -> (results.json -> number, low, high): the number the prose claims
CLAIMS = {
    # section 3: bytes, the same in fast and full runs
    "JSON row is 2.5–4×": (lambda r: min(_json_over_protobuf(r, "digits")), 2.5, 4.0),
    "2.5–4× the protobuf": (lambda r: max(_json_over_protobuf(r, "digits")), 2.5, 4.0),
    "for the float images it is about 5×": (
        lambda r: min(_json_over_protobuf(r, "photos")),
        4.7,
        5.5,
    ),
    "about 5× at every batch size": (lambda r: max(_json_over_protobuf(r, "photos")), 4.7, 5.5),
    # Two medians timed apart: on a loaded machine the encode alone measured 1.18× the request.
    "a third or more of a large REST request": (
        lambda r: r["json_encode_share_of_rest_request"],
        0.3,
        2.0,
    ),
    "far longer than encoding the protobuf": (
        lambda r: r["json_encode_over_protobuf_encode"],
        20,
        1e6,
    ),
    "the gap widens with payload size": (_advantage_growth, 1.5, 1e4),
    "about 50 MB of JSON": (lambda r: 16 * _bytes_per_photo(r, "json_row") / 1e6, 45, 55),
    # section 6
    "the protocols come close together": (_spread_one_digit_through_links, 1.0, 1.5),
    "REST with compression\nstays behind gRPC on every link here": (
        _gzip_share_of_grpc_beyond_one_digit,
        0.0,
        0.9,
    ),
    # section 7
    "8 clients get nowhere near 8 times the requests/s of one": (
        lambda r: max(
            _concurrency(r, "requests/s", p, 8) / _concurrency(r, "requests/s", p, 1)
            for p in ("REST", "gRPC")
        ),
        0.0,
        4.0,
    ),
    "the p50 latency grows with the queue": (
        lambda r: min(
            _concurrency(r, "p50 ms", p, 8) / _concurrency(r, "p50 ms", p, 1)
            for p in ("REST", "gRPC")
        ),
        1.5,
        1e4,
    ),
    # The median of the three: one point turned (0.76) once under CI's load with 80 requests each.
    "gRPC serves more requests per second than REST at most numbers of clients": (
        lambda r: sorted(
            _concurrency(r, "requests/s", "gRPC", n) / _concurrency(r, "requests/s", "REST", n)
            for n in (1, 4, 8)
        )[1],
        1.0,
        1e4,
    ),
    # the model answer to Q3, and the summary
    "p50s within a few milliseconds of each other": (_single_p50_gap, 0.0, 5.0),
    "several times the instances/s at batch 256": (lambda r: _digits_speedup(r, 256), 2.0, 1e4),
    "about 5× the bytes for floats": (lambda r: max(_json_over_protobuf(r, "photos")), 4.7, 5.5),
    "still about 2.4× the protobuf": (_photo_gzip_over_protobuf, 2.2, 2.6),
    "about 3× (small integers)": (lambda r: r["json_over_protobuf"]["digits, batch 4"], 2.5, 4.0),
    "5× (floats)": (lambda r: r["json_over_protobuf"]["photos, batch 1"], 4.7, 5.5),
    "gRPC's advantage grows with the payload": (_advantage_growth, 1.5, 1e4),
    "gRPC still moves the fewest bytes, request and answer\n  together": (
        _gzip_over_grpc_bytes_both_ways,
        1.0,
        100,
    ),
}
