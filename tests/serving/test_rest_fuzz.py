"""Bad REST bodies: each gets TF Serving's answer (a 4xx status and {"error": "..."}), never a
dropped connection, and the server answers good requests after them.

The expected messages come from TF Serving's sources: tensorflow_serving/util/json_tensor.cc
(ParseJson: rapidjson 1.1.0 with kParseIterativeFlag, kParseNanAndInfFlag and
kParseStopWhenDoneFlag, no UTF-8 validation) and rapidjson's error/en.h. The fuzzing is bounded:
a fixed seed, a few hundred small bodies, on the suite's loopback server.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest
import requests

from scalelab.serving import Server

PREDICT = "/v1/models/half_plus_two:predict"
SIGNATURES = ["", "multi", "counts", "text", "negate", "missing"]
GOOD_BODIES = [
    b'{"instances": [[1.0], [2.0]]}',
    b'{"inputs": [[1.0]]}',
    b'{"signature_name": "multi", "inputs": {"a": [1.0, 2.0], "b": [3.0, 4.0]}}',
    b'{"signature_name": "multi", "instances": [{"a": 1.0, "b": 2.0}]}',
    b'{"signature_name": "counts", "instances": [1, 2, 3]}',
    b'{"signature_name": "text", "instances": [{"b64": "aGk="}, "hi"]}',
    b'{"signature_name": "negate", "inputs": [true, false]}',
]
# pieces that break parsers: brackets, escapes, rapidjson's number spellings and limits, bytes
# that are not UTF-8, a byte-order mark, NUL
ODD_PIECES = [
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b'"',
    b"\\",
    b"\\u",
    b'"\\ud800"',
    b'"\\udc00"',
    b"\\x",
    b"NaN",
    b"-Inf",
    b"Infinit",
    b"1e999",
    b"1e-999",
    b"9" * 400,
    b"-0",
    b"0.",
    b"1e",
    b"tru",
    b"nul",
    b"\x00",
    b"\xff\xfe",
    b"\xc3",
    b"\xef\xbb\xbf",
    b"\x0c",
    b"\t\r\n ",
    b'{"b64": 1}',
    b'{"b64": "!!"}',
    b"[" * 2000,
    b"]" * 2000,
]


def post(http: requests.Session, server: Server, body: bytes, path: str = PREDICT) -> Any:
    """POST raw bytes; the answer."""
    return http.post(f"{server.rest_url}{path}", data=body, timeout=60)


def error_of(answer: requests.Response) -> str:
    """Check TF Serving's error shape (a 4xx status, a JSON object with an error string)."""
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    assert answer.headers["Content-Type"] == "application/json"
    document = json.loads(answer.content)
    assert isinstance(document, dict) and isinstance(document.get("error"), str), answer.text
    return str(document["error"])


def assert_alive(http: requests.Session, server: Server) -> None:
    """A good request still answers."""
    answer = post(http, server, b'{"instances": [[1.0]]}')
    assert answer.status_code == 200 and answer.json() == {"predictions": [[2.5]]}


# --- the cases named in issue 27 and TF Serving's answers to them -------------------------


def test_100000_unclosed_brackets_are_a_parse_error_at_the_end_not_a_dropped_connection(
    http, server
):
    message = error_of(post(http, server, b"[" * 100_000))
    assert message == "JSON Parse error: Invalid value. at offset: 100000"
    assert_alive(http, server)


def test_instances_nested_100000_deep_are_a_parse_error_when_unclosed(http, server):
    body = b'{"instances": ' + b"[" * 100_000
    assert error_of(post(http, server, body)) == (
        f"JSON Parse error: Invalid value. at offset: {len(body)}"
    )
    assert_alive(http, server)


def test_instances_nested_5000_deep_are_refused_as_a_tensor(http, server):
    body = b'{"instances": ' + b"[" * 5000 + b"1.0" + b"]" * 5000 + b"}"
    error_of(post(http, server, body))  # TensorFlow holds 254 dimensions at most
    assert_alive(http, server)


def test_a_deep_array_body_is_not_an_object(http, server):
    message = error_of(post(http, server, b"[" * 5000 + b"]" * 5000))
    assert message.startswith("JSON Value: [[[[") and message.endswith(" Is not object")


def test_deep_nesting_under_a_key_tf_serving_ignores_still_predicts(http, server):
    body = b'{"instances": [[1.0]], "extra": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    answer = post(http, server, body)
    assert answer.status_code == 200 and answer.json() == {"predictions": [[2.5]]}


def test_a_huge_body_within_limits_gets_its_error(http, server):
    body = b'{"instances": "' + b"a" * 8_000_000 + b'"}'
    message = error_of(post(http, server, body))
    assert message.endswith("Expecting 'instances' to be an list/array")
    assert len(message) < 400  # the value is shown cut at 256 characters
    assert_alive(http, server)


def test_bytes_that_are_not_utf8_outside_strings_are_an_invalid_value(http, server):
    assert error_of(post(http, server, b"\xff\xfe{}")) == (
        "JSON Parse error: Invalid value. at offset: 0"
    )


def test_bytes_that_are_not_utf8_inside_strings_reach_the_model_as_sent(http, server):
    # rapidjson is not asked to validate UTF-8: a string's bytes are kept
    body = b'{"signature_name": "text", "instances": ["\xff\xfe"]}'
    answer = post(http, server, body)
    assert answer.status_code == 200, answer.text
    prediction = answer.json()["predictions"][0]
    assert prediction == {
        "length": 2,
        "echo_bytes": {"b64": base64.b64encode(b"\xff\xfe").decode()},
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"   ", "JSON Parse error: The document is empty. at offset: 3"),
        (b"]", "JSON Parse error: The document is empty. at offset: 0"),
        (b'{"instances": [[1e999]]}', "JSON Parse error: Number too big to be stored in double."),
        (
            b'{"instances": [[' + b"9" * 400 + b"]]}",
            "JSON Parse error: Number too big to be stored",
        ),
        (b'{"instances": [["\\ud800"]]}', "JSON Parse error: The surrogate pair in string is inv"),
        (b'{"instances": [[1.0],]}', "JSON Parse error: Invalid value. at offset: 21"),
        (b'{"instances": [[1.0]] "x"}', "JSON Parse error: Missing a comma or '}' after an object"),
        (b'{"instances": [[tru]]}', "JSON Parse error: Invalid value. at offset: 19"),
        (b'{"instances": [[1.]]}', "JSON Parse error: Miss fraction part in number. at offset: 18"),
        (b'{"instances": [["a\\q"]]}', "JSON Parse error: Invalid escape character in string."),
        (b'{"instances": [["a', "JSON Parse error: Missing a closing quotation mark in string."),
        (b"null", "JSON Value: null Is not object"),
        (b'{"instances": [[1.0]], "inputs": [[1.0]]}', "JSON Value: {"),
        (b'{"signature_name": 7, "instances": [[1.0]]}', "JSON Value: {"),
        (b'{"instances": [[1.0], [1.0, 2.0]]}', "Failed to process element: 1 of 'instances'"),
        (b'{"instances": [["x"]]}', "Failed to process element: 0 of 'instances' list. Error:"),
        (b'{"instances": []}', "JSON Value: {"),
        (b'{"unknown": 1}', "Missing 'inputs' or 'instances' key"),
    ],
    ids=[
        "whitespace only",
        "a closing bracket",
        "exponent too big",
        "integer too big",
        "lone surrogate escape",
        "trailing comma",
        "missing comma",
        "broken literal",
        "missing fraction",
        "bad escape",
        "unclosed string",
        "null",
        "instances and inputs",
        "signature not a string",
        "ragged instances",
        "wrong type",
        "no instances",
        "neither key",
    ],
)
def test_odd_bodies_get_tf_servings_message(http, server, body, expected):
    assert error_of(post(http, server, body)).startswith(expected)


def test_rapidjson_skips_a_byte_order_mark_and_text_after_the_document(http, server):
    answer = post(http, server, b'\xef\xbb\xbf{"instances": [[1.0]]} and then \x00 garbage')
    assert answer.status_code == 200 and answer.json() == {"predictions": [[2.5]]}


# --- random bodies -------------------------------------------------------------------------


def _mutated(rng: random.Random) -> bytes:
    """A good body with a few bytes flipped, cut, or odd pieces put in."""
    body = bytearray(rng.choice(GOOD_BODIES))
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(body) + 1)
        action = rng.randrange(4)
        if action == 0 and body:
            body[min(at, len(body) - 1)] = rng.randrange(256)
        elif action == 1:
            del body[at : at + rng.randint(1, 8)]
        elif action == 2:
            body[at:at] = rng.choice(ODD_PIECES)
        else:
            del body[at:]
    return bytes(body)


def _value(rng: random.Random, depth: int) -> bytes:
    """A JSON-ish value of odd types and shapes (NaN, huge numbers, raw bytes, ragged lists)."""
    kind = rng.randrange(10 if depth < 5 else 6)
    if kind == 0:
        return rng.choice([b"1", b"-2.5", b"0", b"1e308", b"-1e-320", b"18446744073709551616"])
    if kind == 1:
        return rng.choice([b"NaN", b"Infinity", b"-Infinity", b"-Inf", b"true", b"false", b"null"])
    if kind == 2:
        return rng.choice([b'"x"', b'"\\u00e9\\n"', b'"\xff"', b'"\\ud83d\\ude00"', b'""'])
    if kind == 3:
        return rng.choice([b'{"b64": "aGk="}', b'{"b64": "@@"}', b'{"b64": 1}', b"{}", b"[]"])
    if kind in (4, 5):
        return rng.choice(ODD_PIECES)
    if kind in (6, 7, 8):
        items = [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
        return b"[" + b", ".join(items) + b"]"
    keys = rng.sample(["a", "b", "x", "b64", "instances", "inputs", "n", "text", "flag"], 2)
    members = [json.dumps(k).encode() + b": " + _value(rng, depth + 1) for k in keys]
    return b"{" + b", ".join(members) + b"}"


def _structured(rng: random.Random) -> bytes:
    """A request-shaped object whose parts are odd."""
    members = []
    if rng.random() < 0.5:
        members.append(b'"signature_name": ' + json.dumps(rng.choice(SIGNATURES)).encode())
    for key in rng.sample(["instances", "inputs", "other"], rng.randint(0, 2)):
        members.append(json.dumps(key).encode() + b": " + _value(rng, 0))
    return b"{" + b", ".join(members) + b"}"


def _random_bytes(rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))


def test_random_and_odd_bodies_each_get_an_answer_and_the_server_lives(http, server):
    rng = random.Random(27)
    makers = [_mutated, _mutated, _structured, _structured, _random_bytes]
    errors = 0
    for _ in range(300):
        body = rng.choice(makers)(rng)
        answer = post(http, server, body)
        if answer.status_code == 200:  # a body that stayed good: TF Serving's answer shape
            assert set(answer.json()) & {"predictions", "outputs"}, (body, answer.text[:300])
        else:
            error_of(answer)
            errors += 1
    assert errors > 200  # the bodies are mostly bad: the fuzzing reached the error paths
    assert_alive(http, server)


def test_the_exact_parser_reads_valid_json_as_pythons_json_does():
    """rest.py hands Python's json the bodies it reads as rapidjson does; rapidjson.py must agree
    with it on every valid document (no server needed)."""
    from scalelab.serving.local import rapidjson

    rng = random.Random(27)

    def value(depth: int) -> Any:
        kind = rng.randrange(9 if depth < 5 else 5)
        if kind < 5:
            return rng.choice(
                [0, -7, 2**64, 1.5, -2.5e-300, 1e300, "", 'é\n"\\', "😀", True, False, None]
            )
        if kind < 7:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {rng.choice("abcdé"): value(depth + 1) for _ in range(rng.randint(0, 4))}

    for _ in range(500):
        document = value(0)
        for text in (json.dumps(document), json.dumps(document, ensure_ascii=False, indent=1)):
            assert rapidjson.parse(text.encode()) == json.loads(text), text
