"""gRPC API conformance: PredictionService and ModelService with the official protos."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import grpc
import numpy as np
import pytest

from scalelab.serving import Server

from .conftest import Models


@pytest.fixture(scope="module")
def tf() -> Any:
    """TensorFlow, for make_tensor_proto/make_ndarray as learners use them."""
    from .conftest import _quiet_tensorflow

    return _quiet_tensorflow()


@pytest.fixture(scope="module")
def apis(tf: Any) -> Any:
    """The tensorflow_serving.apis message modules."""
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_management_pb2,
        predict_pb2,
    )

    return SimpleNamespace(
        get_model_metadata_pb2=get_model_metadata_pb2,
        get_model_status_pb2=get_model_status_pb2,
        model_management_pb2=model_management_pb2,
        predict_pb2=predict_pb2,
    )


def predict_request(apis: Any, tf: Any, model: str = "half_plus_two", **inputs: Any) -> Any:
    """A PredictRequest with float32 inputs (or TensorProtos given as is)."""
    from tensorflow.core.framework.tensor_pb2 import TensorProto

    request = apis.predict_pb2.PredictRequest()
    request.model_spec.name = model
    for name, value in (inputs or {"x": [[1.0], [2.0]]}).items():
        if not isinstance(value, TensorProto):
            value = tf.make_tensor_proto(value, dtype=tf.float32)
        request.inputs[name].CopyFrom(value)
    return request


def rpc_error(call: Any, code: grpc.StatusCode) -> str:
    """Run a stub call expected to fail with `code`; return its details."""
    with pytest.raises(grpc.RpcError) as failure:
        call()
    assert failure.value.code() == code, failure.value.details()
    return failure.value.details()


def test_predict_answers_typed_float_val_and_resolved_model_spec(grpc_stubs, apis, tf):
    prediction, _ = grpc_stubs
    response = prediction.Predict(predict_request(apis, tf), timeout=10)
    y = response.outputs["y"]
    assert list(y.float_val) == [2.5, 3.0] and not y.tensor_content
    assert tf.make_ndarray(y).shape == (2, 1)
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value == 1


def test_predict_accepts_tensor_content_inputs(grpc_stubs, apis, tf):
    prediction, _ = grpc_stubs
    proto = tf.make_tensor_proto(np.array([[4.0], [6.0]], np.float32))
    assert proto.tensor_content
    response = prediction.Predict(predict_request(apis, tf, x=proto), timeout=10)
    assert list(response.outputs["y"].float_val) == [4.0, 5.0]


def test_predict_by_label_and_signature(grpc_stubs, apis, tf):
    prediction, _ = grpc_stubs
    request = predict_request(apis, tf, "versioned", x=[[2.0]])
    request.model_spec.version_label = "canary"
    response = prediction.Predict(request, timeout=10)
    assert response.model_spec.version.value == 2 and list(response.outputs["y"].float_val) == [4.0]
    request = predict_request(apis, tf, a=[1.0], b=[2.0])
    request.model_spec.signature_name = "multi"
    request.output_filter.append("sum")
    response = prediction.Predict(request, timeout=10)
    assert set(response.outputs) == {"sum"} and list(response.outputs["sum"].float_val) == [3.0]


def test_predict_string_signature_returns_string_val(grpc_stubs, apis, tf):
    prediction, _ = grpc_stubs
    request = predict_request(apis, tf, text=tf.make_tensor_proto([b"ab", b"\xff"]))
    request.model_spec.signature_name = "text"
    response = prediction.Predict(request, timeout=10)
    assert list(response.outputs["echo_bytes"].string_val) == [b"ab", b"\xff"]
    assert list(response.outputs["length"].int_val) == [2, 1]


def test_missing_model_name_is_invalid_argument(grpc_stubs, apis, tf):
    prediction, _ = grpc_stubs
    rpc_error(
        lambda: prediction.Predict(predict_request(apis, tf, ""), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


def test_unknown_model_and_version_are_not_found(grpc_stubs, apis, tf):
    prediction, _ = grpc_stubs
    request = predict_request(apis, tf, "nope")
    message = rpc_error(lambda: prediction.Predict(request, timeout=10), grpc.StatusCode.NOT_FOUND)
    assert message == "Servable not found for request: Latest(nope)"
    request = predict_request(apis, tf)
    request.model_spec.version.value = 7
    message = rpc_error(lambda: prediction.Predict(request, timeout=10), grpc.StatusCode.NOT_FOUND)
    assert message == "Servable not found for request: Specific(half_plus_two, 7)"


def test_unknown_label_is_invalid_argument(grpc_stubs, apis, tf):
    prediction, _ = grpc_stubs
    request = predict_request(apis, tf, "versioned")
    request.model_spec.version_label = "nope"
    message = rpc_error(
        lambda: prediction.Predict(request, timeout=10), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert message == "Unrecognized servable version label: nope"


def test_unknown_signature_is_failed_precondition(grpc_stubs, apis, tf):
    prediction, _ = grpc_stubs
    request = predict_request(apis, tf)
    request.model_spec.signature_name = "nope"
    message = rpc_error(
        lambda: prediction.Predict(request, timeout=10), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert message == 'Serving signature key "nope" not found.'


def test_wrong_inputs_are_invalid_argument(grpc_stubs, apis, tf):
    prediction, _ = grpc_stubs
    request = predict_request(apis, tf, x=[[1.0]], extra=[[1.0]])
    message = rpc_error(
        lambda: prediction.Predict(request, timeout=10), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert message.startswith("input size does not match signature: 2!=1")
    request = predict_request(apis, tf, wrong=[[1.0]])
    rpc_error(lambda: prediction.Predict(request, timeout=10), grpc.StatusCode.INVALID_ARGUMENT)


def test_wrong_dtype_is_invalid_argument(grpc_stubs, apis, tf):
    prediction, _ = grpc_stubs
    request = predict_request(apis, tf, x=tf.make_tensor_proto([[1.0]], dtype=tf.float64))
    message = rpc_error(
        lambda: prediction.Predict(request, timeout=10), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert message == "Expects arg[0] to be float but double is provided"


def test_metadata_packs_signature_def_map_in_any(grpc_stubs, apis):
    prediction, _ = grpc_stubs
    request = apis.get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "half_plus_two"
    response = prediction.GetModelMetadata(request, timeout=10)
    signatures = apis.get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    assert signatures.signature_def["serving_default"].inputs["x"].dtype == 1  # DT_FLOAT
    assert response.model_spec.version.value == 1


def test_metadata_needs_signature_def_field(grpc_stubs, apis):
    prediction, _ = grpc_stubs
    request = apis.get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "half_plus_two"
    message = rpc_error(
        lambda: prediction.GetModelMetadata(request, timeout=10), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert message == "GetModelMetadataRequest must specify at least one metadata_field"
    request.metadata_field.append("bogus")
    message = rpc_error(
        lambda: prediction.GetModelMetadata(request, timeout=10), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert message == "Metadata field bogus is not supported"


def test_model_status_over_grpc(grpc_stubs, apis):
    _, model_service = grpc_stubs
    request = apis.get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "versioned"
    response = model_service.GetModelStatus(request, timeout=10)
    assert [(s.version, s.state) for s in response.model_version_status] == [(2, 30), (1, 30)]
    request.model_spec.name = "nope"
    message = rpc_error(
        lambda: model_service.GetModelStatus(request, timeout=10), grpc.StatusCode.NOT_FOUND
    )
    assert message == "Could not find any versions of model nope"


def test_large_messages_are_accepted_and_the_4mb_limit_is_the_clients(
    grpc_stubs, apis, tf, server: Server
):
    """The server takes messages up to 2 GB; a default client refuses answers over 4 MB."""
    prediction, _ = grpc_stubs
    rows = np.ones((1_500_000, 1), np.float32)  # 6 MB each way
    request = predict_request(apis, tf, x=tf.make_tensor_proto(rows))
    message = rpc_error(
        lambda: prediction.Predict(request, timeout=60), grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    assert "larger than max" in message
    options = [("grpc.max_receive_message_length", 64 * 2**20)]
    with grpc.insecure_channel(server.grpc_target, options=options) as channel:
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        big = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = big.Predict(request, timeout=60)
    assert len(response.outputs["y"].float_val) == rows.size
    assert prediction.Predict(predict_request(apis, tf), timeout=10).outputs["y"].float_val


def test_reload_config_moves_labels_and_refuses_labels_on_unloaded_versions(
    grpc_stubs, apis, tf, served_models: Models
):
    from google.protobuf import text_format

    _, model_service = grpc_stubs

    def reload(text: str) -> Any:
        request = apis.model_management_pb2.ReloadConfigRequest()
        text_format.Parse(text, request.config)
        return model_service.HandleReloadConfigRequest(request, timeout=60)

    def canary_version() -> int:
        request = predict_request(apis, tf, "versioned")
        request.model_spec.version_label = "canary"
        return grpc_stubs[0].Predict(request, timeout=10).model_spec.version.value

    moved = served_models.config_text.replace('key: "canary" value: 2', 'key: "canary" value: 1')
    try:
        assert reload(moved).status.error_code == 0
        assert canary_version() == 1
        unloaded = served_models.config_text.replace(
            'key: "canary" value: 2', 'key: "canary" value: 3'
        )
        message = rpc_error(lambda: reload(unloaded), grpc.StatusCode.FAILED_PRECONDITION)
        assert message == (
            "Request to assign label to version 3 of model versioned, which is not currently "
            "available for inference"
        )
        assert canary_version() == 1
    finally:
        reload(served_models.config_text)
    assert canary_version() == 2


def test_reload_config_accepts_only_model_config_list(grpc_stubs, apis):
    _, model_service = grpc_stubs
    request = apis.model_management_pb2.ReloadConfigRequest()
    request.config.custom_model_config.type_url = "type.googleapis.com/x"
    rpc_error(
        lambda: model_service.HandleReloadConfigRequest(request, timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
