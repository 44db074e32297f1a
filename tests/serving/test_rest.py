"""REST API conformance: the answers TF Serving gives (see shared/reference/tf-serving-wire.md)."""

from __future__ import annotations

import base64
import gzip
import json
import math
from typing import Any

import pytest
import requests

from scalelab.serving import Server


def post(http: requests.Session, server: Server, path: str, body: Any) -> requests.Response:
    """POST a JSON body (a str is sent as-is) to a /v1 path."""
    data = body if isinstance(body, str | bytes) else None
    return http.post(f"{server.rest_url}{path}", json=None if data is not None else body, data=data)


def error_of(answer: requests.Response, status: int) -> str:
    """Check the HTTP status and the JSON error shape; return the message."""
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    return answer.json()["error"]


PREDICT = "/v1/models/half_plus_two:predict"


# --- model status and metadata ------------------------------------------------------------


def test_status_lists_available_version_with_ok_status(http, server):
    answer = http.get(f"{server.rest_url}/v1/models/half_plus_two")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def test_status_of_one_version(http, server):
    answer = http.get(f"{server.rest_url}/v1/models/versioned/versions/2").json()
    assert [v["version"] for v in answer["model_version_status"]] == ["2"]


def test_status_lists_newest_version_first(http, server):
    answer = http.get(f"{server.rest_url}/v1/models/versioned").json()
    assert [v["version"] for v in answer["model_version_status"]] == ["2", "1"]


def test_status_of_unknown_model_is_404(http, server):
    answer = http.get(f"{server.rest_url}/v1/models/nope")
    assert error_of(answer, 404) == "Could not find any versions of model nope"


def test_status_of_unknown_version_is_404(http, server):
    answer = http.get(f"{server.rest_url}/v1/models/half_plus_two/versions/7")
    assert error_of(answer, 404) == "Could not find version 7 of model half_plus_two"


def test_status_without_model_name_is_400(http, server):
    answer = http.get(f"{server.rest_url}/v1/models")
    assert error_of(answer, 400) == "Missing model name in request."


def test_metadata_has_model_spec_and_signature_defs_in_tf_serving_shape(http, server):
    answer = http.get(f"{server.rest_url}/v1/models/half_plus_two/metadata")
    assert answer.status_code == 200
    body = answer.json()
    assert body["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "multi", "counts", "text", "negate"} <= set(signatures)
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["defaults"] == {}
    x = default["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT"
    assert x["tensor_shape"] == {
        "dim": [{"size": "-1", "name": ""}, {"size": "1", "name": ""}],
        "unknown_rank": False,
    }
    assert x["name"].endswith(":0")
    assert default["outputs"]["y"]["dtype"] == "DT_FLOAT"


def test_metadata_of_keras_export_shows_serving_default(http, server):
    body = http.get(f"{server.rest_url}/v1/models/keras/metadata").json()
    assert "serving_default" in body["metadata"]["signature_def"]["signature_def"]


def test_metadata_of_unknown_model_is_404_servable_not_found(http, server):
    answer = http.get(f"{server.rest_url}/v1/models/nope/metadata")
    assert error_of(answer, 404) == "Servable not found for request: Latest(nope)"


# --- predict: formats -----------------------------------------------------------------------


def test_row_format_answers_predictions(http, server):
    answer = post(http, server, PREDICT, {"instances": [[1.0], [2.0], [5.0]]})
    assert answer.status_code == 200
    assert answer.json() == {"predictions": [[2.5], [3.0], [4.5]]}


def test_gzip_compressed_request_bodies_are_accepted(http, server):
    body = gzip.compress(json.dumps({"instances": [[1.0], [2.0]]}).encode())
    answer = http.post(
        f"{server.rest_url}{PREDICT}", data=body, headers={"Content-Encoding": "gzip"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": [[2.5], [3.0]]}


def test_corrupt_gzip_body_is_a_json_parse_error(http, server):
    answer = http.post(
        f"{server.rest_url}{PREDICT}", data=b"not gzip", headers={"Content-Encoding": "gzip"}
    )
    assert error_of(answer, 400).startswith("JSON Parse error: ")


def test_columnar_format_answers_outputs(http, server):
    answer = post(http, server, PREDICT, {"inputs": [[1.0], [2.0]]})
    assert answer.json() == {"outputs": [[2.5], [3.0]]}


def test_columnar_named_inputs_and_several_outputs_answer_object_by_name(http, server):
    body = {"signature_name": "multi", "inputs": {"a": [1.0, 2.0], "b": [3.0, 4.0]}}
    assert post(http, server, PREDICT, body).json() == {
        "outputs": {"product": [3.0, 8.0], "sum": [4.0, 6.0]}
    }


def test_row_format_objects_and_several_outputs_answer_one_object_per_instance(http, server):
    body = {"signature_name": "multi", "instances": [{"a": 1.0, "b": 3.0}, {"a": 2.0, "b": 4.0}]}
    assert post(http, server, PREDICT, body).json() == {
        "predictions": [{"product": 3.0, "sum": 4.0}, {"product": 8.0, "sum": 6.0}]
    }


def test_integers_are_accepted_for_float_inputs(http, server):
    assert post(http, server, PREDICT, {"instances": [[4]]}).json() == {"predictions": [[4.0]]}


def test_int64_signature_round_trips_integers(http, server):
    body = {"signature_name": "counts", "instances": [1, 2, 2**40]}
    assert post(http, server, PREDICT, body).json() == {"predictions": [2, 4, 2**41]}


def test_bool_signature(http, server):
    body = {"signature_name": "negate", "inputs": [True, False]}
    assert post(http, server, PREDICT, body).json() == {"outputs": [False, True]}


def test_b64_string_input_and_bytes_output_is_written_as_b64(http, server):
    raw = b"\x00\xffbinary"
    body = {
        "signature_name": "text",
        "instances": [{"b64": base64.b64encode(raw).decode()}, "plain"],
    }
    answer = post(http, server, PREDICT, body).json()
    assert answer == {
        "predictions": [
            {"echo_bytes": {"b64": base64.b64encode(raw).decode()}, "length": len(raw)},
            {"echo_bytes": {"b64": base64.b64encode(b"plain").decode()}, "length": 5},
        ]
    }


def test_nan_and_infinity_are_accepted_and_written_back(http, server):
    answer = post(http, server, PREDICT, '{"instances": [[NaN], [Infinity], [-Infinity]]}')
    assert answer.status_code == 200
    assert answer.text.replace(" ", "").replace("\n", "") == (
        '{"predictions":[[NaN],[Infinity],[-Infinity]]}'
    )
    values = [row[0] for row in answer.json()["predictions"]]
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]


def test_float32_outputs_are_written_short_and_whole_numbers_keep_a_decimal_point(http, server):
    body = {"signature_name": "multi", "inputs": {"a": [0.1], "b": [0.0]}}
    text = post(http, server, PREDICT, body).text.replace(" ", "").replace("\n", "")
    assert '"sum":[0.1]' in text and '"product":[0.0]' in text


def test_signature_name_selects_signature_and_labels_and_versions_select_versions(http, server):
    body = {"instances": [[2.0]]}
    assert post(http, server, "/v1/models/versioned/labels/stable:predict", body).json() == {
        "predictions": [[3.0]]
    }
    assert post(http, server, "/v1/models/versioned/labels/canary:predict", body).json() == {
        "predictions": [[4.0]]
    }
    assert post(http, server, "/v1/models/versioned/versions/1:predict", body).json() == {
        "predictions": [[3.0]]
    }
    assert post(http, server, "/v1/models/versioned:predict", body).json() == {
        "predictions": [[4.0]]
    }


def test_paths_are_case_insensitive(http, server):
    answer = post(http, server, "/V1/MODELS/half_plus_two:PREDICT", {"instances": [[1.0]]})
    assert answer.json() == {"predictions": [[2.5]]}


def test_keras_export_predicts_probabilities(http, server):
    answer = post(http, server, "/v1/models/keras:predict", {"instances": [[1.0, 2.0, 3.0, 4.0]]})
    assert answer.status_code == 200
    (row,) = answer.json()["predictions"]
    assert len(row) == 3 and abs(sum(row) - 1.0) < 1e-5


# --- predict: errors ------------------------------------------------------------------------


def test_empty_body_is_json_parse_error(http, server):
    answer = post(http, server, PREDICT, "")
    assert error_of(answer, 400) == "JSON Parse error: The document is empty"


def test_malformed_json_is_json_parse_error(http, server):
    assert error_of(post(http, server, PREDICT, '{"instances": [1,'), 400).startswith(
        "JSON Parse error: "
    )


def test_body_that_is_not_an_object_is_400(http, server):
    assert error_of(post(http, server, PREDICT, "[1, 2]"), 400).endswith("Is not object")


def test_both_instances_and_inputs_is_400(http, server):
    message = error_of(post(http, server, PREDICT, {"instances": [[1.0]], "inputs": [[1.0]]}), 400)
    assert "expecting only one of 'inputs' or 'instances' keys to exist" in message


def test_neither_instances_nor_inputs_is_400(http, server):
    message = error_of(post(http, server, PREDICT, {"signature_name": "serving_default"}), 400)
    assert message == "Missing 'inputs' or 'instances' key"


def test_empty_instances_is_400(http, server):
    assert "No values in 'instances' array" in error_of(
        post(http, server, PREDICT, {"instances": []}), 400
    )


def test_string_for_float_input_is_type_error_wrapped_per_element(http, server):
    message = error_of(post(http, server, PREDICT, {"instances": [["x"]]}), 400)
    assert message.startswith("Failed to process element: 0 of 'instances' list. Error: ")
    assert message.endswith('JSON Value: "x" Type: String is not of expected type: float')


def test_columnar_type_error_is_not_wrapped(http, server):
    message = error_of(post(http, server, PREDICT, {"inputs": [["x"]]}), 400)
    assert message == 'JSON Value: "x" Type: String is not of expected type: float'


def test_integer_input_rejects_floats(http, server):
    body = {"signature_name": "counts", "inputs": [1.0]}
    message = error_of(post(http, server, PREDICT, body), 400)
    assert message == "JSON Value: 1.0 Type: Number is not of expected type: int64"


def test_b64_object_for_float_input_is_type_error(http, server):
    message = error_of(post(http, server, PREDICT, {"inputs": [[{"b64": "AA=="}]]}), 400)
    assert "Type: Object is not of expected type: float" in message


def test_ragged_instances_are_400(http, server):
    body = {"signature_name": "multi", "instances": [{"a": 1.0, "b": 2.0}, {"a": 1.0}]}
    message = error_of(post(http, server, PREDICT, body), 400)
    assert message.startswith("Failed to process element: 1 of 'instances' list.")


def test_shape_the_graph_rejects_is_400_with_the_ops_message(http, server):
    body = {"instances": [[1.0, 2.0, 3.0]]}  # the Dense layer's kernel wants 4 features
    message = error_of(post(http, server, "/v1/models/keras:predict", body), 400)
    assert "Matrix size-incompatible" in message


def test_shape_the_graph_accepts_is_answered_although_the_signature_says_otherwise(http, server):
    """TF Serving feeds the tensor and lets the graph decide: 0.5 x + 2 broadcasts [1,3]."""
    answer = post(http, server, PREDICT, {"instances": [[1.0, 2.0, 3.0]]})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": [[2.5, 3.0, 3.5]]}


def test_unknown_signature_is_400(http, server):
    message = error_of(
        post(http, server, PREDICT, {"signature_name": "nope", "instances": [1]}), 400
    )
    assert message == 'Serving signature name: "nope" not found in signature def'


def test_unknown_model_is_404_servable_not_found(http, server):
    message = error_of(post(http, server, "/v1/models/nope:predict", {"instances": [[1.0]]}), 404)
    assert message == "Servable not found for request: Latest(nope)"


def test_unknown_version_is_404_servable_not_found(http, server):
    path = "/v1/models/half_plus_two/versions/7:predict"
    message = error_of(post(http, server, path, {"instances": [[1.0]]}), 404)
    assert message == "Servable not found for request: Specific(half_plus_two, 7)"


def test_version_outside_specific_policy_is_not_served(http, server):
    path = "/v1/models/versioned/versions/3:predict"
    message = error_of(post(http, server, path, {"instances": [[1.0]]}), 404)
    assert message == "Servable not found for request: Specific(versioned, 3)"


def test_unknown_label_is_400(http, server):
    path = "/v1/models/versioned/labels/nope:predict"
    message = error_of(post(http, server, path, {"instances": [[1.0]]}), 400)
    assert message == "Unrecognized servable version label: nope"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models/half_plus_two:predict"),
        ("POST", "/v1/models/half_plus_two/metadata"),
        ("GET", "/v1/models/half_plus_two/versions/abc"),
        ("PUT", "/v1/models/half_plus_two"),
    ],
)
def test_paths_that_fit_no_api_are_malformed_request(http, server, method, path):
    answer = http.request(method, f"{server.rest_url}{path}", data=b"{}")
    assert error_of(answer, 400) == f"Malformed request: {method} {path}"


def test_paths_outside_v1_get_plain_html_404(http, server):
    answer = http.get(f"{server.rest_url}/models/half_plus_two")
    assert answer.status_code == 404
    assert not answer.headers["Content-Type"].startswith("application/json")
