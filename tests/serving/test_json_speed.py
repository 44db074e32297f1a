"""The stand-in's fast JSON paths (orjson in, vectorized float writing out) answer exactly what
the plain per-value rules answer. Correctness only: speed is measured by the benchmark."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest


@pytest.fixture(scope="module")
def local() -> Any:
    """The TensorFlow-backed modules, imported quietly."""
    from .conftest import _quiet_tensorflow

    _quiet_tensorflow()
    from tensorflow.core.framework import types_pb2

    from scalelab.serving.local import rest, tensors

    return SimpleNamespace(rest=rest, tensors=tensors, types=types_pb2)


def reference_token(value: float, dtype: type) -> str:
    """TF Serving's rule, one value at a time: "%g"; if that does not parse back to the same
    value, "%.9g" (float32), "%.17g" (float64) or "%.5g" (half); ".0" after whole numbers."""
    if np.isnan(value):
        return "NaN"
    if np.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    token = f"{value:g}"
    if dtype(token) != dtype(value):
        digits = {np.float16: 5, np.float32: 9, np.float64: 17}[dtype]
        token = f"{value:.{digits}g}"
    return token if ("." in token or "e" in token) else token + ".0"


def float32_samples(rng: np.random.Generator) -> dict[str, np.ndarray]:
    probabilities = np.exp(rng.random((2000, 10), dtype=np.float32) * 30)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    edges = np.array(
        [10.0**k for k in range(-45, 39)]
        + [999999.5, 1e6, 1e7, 1e9, 999999936, 3e-5, 0.1, 2.0**-126, 2.0**-149, 3.4028235e38]
        + [0.0, -0.0, 65504, 123456789, 16777217, np.nan, np.inf, -np.inf],
        np.float32,
    )
    return {
        "random bit patterns": rng.integers(0, 2**32, 50_000, dtype=np.uint64)
        .astype(np.uint32)
        .view(np.float32),
        "softmax outputs": probabilities.ravel(),
        "whole numbers": rng.integers(-(2**25), 2**25, 5000).astype(np.float32),
        "short decimals": (rng.integers(0, 10**6, 5000) / 10.0 ** rng.integers(0, 12, 5000)).astype(
            np.float32
        ),
        "edges": np.concatenate([edges, -edges]),
    }


def test_float32_tensors_are_written_like_the_per_value_rule(local):
    for name, values in float32_samples(np.random.default_rng(0)).items():
        expected = [reference_token(float(v), np.float32) for v in values]
        assert local.tensors._float_tokens(values) == expected, name  # the vectorized path
        small = [
            t for i in range(0, 3000, 10) for t in local.tensors._float_tokens(values[i : i + 10])
        ]
        assert small == expected[:3000], name  # the one-by-one path


def test_float64_and_half_tensors_are_written_like_the_per_value_rule(local):
    rng = np.random.default_rng(1)
    doubles = np.concatenate(
        [
            rng.random(3000),
            rng.integers(0, 2**64, 3000, dtype=np.uint64).view(np.float64),
            np.array([0.1, 1 / 3, 1e16, 1e17, 2.0**53, 5e-324, -0.0, np.nan, -np.inf]),
        ]
    )
    expected = [reference_token(float(v), np.float64) for v in doubles]
    assert local.tensors._float_tokens(doubles) == expected
    halves = np.concatenate([rng.random(2000), np.arange(-2000, 2000, 7)]).astype(np.float16)
    expected = [reference_token(float(v), np.float16) for v in halves]
    assert local.tensors._float_tokens(halves) == expected


def test_answers_with_several_outputs_strings_and_bytes_keep_their_layout(local):
    names = ["a", 'quo"te', "back\\slash", "ünï", "\x01", "", "x, y", '", "']
    outputs = {
        "probabilities": np.array([[0.25, 0.1], [1.0, 3e-5]], np.float32),
        "class_id": np.array([3, -4]),
        "class_name": np.array([names[0].encode(), names[1].encode()], dtype=object),
    }
    row = local.tensors.outputs_to_json(outputs, row_format=True)
    assert row == (
        '{"predictions": [{"class_id": 3, "class_name": "a", "probabilities": [0.25, 0.1]}, '
        '{"class_id": -4, "class_name": "quo\\"te", "probabilities": [1.0, 3e-05]}]}'
    )
    strings = {"s": np.array([n.encode() for n in names], dtype=object)}
    for row_format, key in ((True, "predictions"), (False, "outputs")):
        text = local.tensors.outputs_to_json(strings, row_format=row_format)
        assert json.loads(text) == {key: names}
    raw = {"x_bytes": np.array([b"\x00\xff", b"ok"], dtype=object), "n": np.array([[1, 2]] * 2)}
    assert json.loads(local.tensors.outputs_to_json(raw, row_format=True)) == {
        "predictions": [
            {"n": [1, 2], "x_bytes": {"b64": "AP8="}},
            {"n": [1, 2], "x_bytes": {"b64": "b2s="}},
        ]
    }
    empty = local.tensors.outputs_to_json({"e": np.zeros((2, 0), np.float32)}, row_format=True)
    assert empty == '{"predictions": [[], []]}'


@pytest.mark.parametrize(
    ("body", "fast"),
    [
        (b'{"instances": [[1, 2.5]]}', True),
        (b' {"inputs": {"a": [1]}, "signature_name": "s"} ', True),
        (b'{"instances": [[NaN, Infinity, -Infinity]]}', False),  # rapidjson's extensions
        (b'{"instances": [1]} trailing text', False),
        (b"\xef\xbb\xbf{}", False),
    ],
)
def test_orjson_parses_plain_json_and_hands_the_rest_to_the_exact_parser(local, body, fast):
    try:
        expected = local.rest._parse_body_exactly(body)
    except local.rest.ServingError as error:
        with pytest.raises(local.rest.ServingError, match="JSON Parse error"):
            local.rest._parse_body(body)
        assert fast is False and "JSON Parse error" in error.message
        return
    document, used_orjson = local.rest._parse_body(body)
    assert used_orjson is fast
    assert json.dumps(document) == json.dumps(expected)


def test_errors_show_numbers_as_sent_though_orjson_reads_huge_integers_as_floats(local):
    class Servable:
        signature_defs: ClassVar[dict] = {"serving_default": None}

        @staticmethod
        def input_dtypes(signature: str) -> dict[str, int]:
            return {"x": local.types.DT_INT64}

    class Manager:
        @staticmethod
        def servable(spec: Any) -> Servable:
            return Servable()

    api = local.rest.RestApi(Manager(), 30000)
    try:
        status, payload = api.handle(
            "POST", "/v1/models/m:predict", b'{"inputs": [1, 18446744073709551616]}'
        )
    finally:
        api.close()
    assert status == 400
    assert json.loads(payload)["error"] == (
        "JSON Value: 18446744073709551616 Type: Number is not of expected type: int64"
    )
