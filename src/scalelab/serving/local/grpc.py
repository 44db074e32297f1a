"""TF Serving's gRPC API (PredictionService, ModelService) on grpcio with the official protos."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from . import monitoring
from .manager import ModelManager
from .servable import DEFAULT_SIGNATURE
from .status import ServingError, invalid
from .tensors import array_dtype, array_to_proto, proto_to_array

MAX_MESSAGE_BYTES = 2**31 - 1  # like TF Serving's ServerBuilder::SetMaxMessageSize(INT_MAX)
_MESSAGE_LIMIT = 1024


def _abort(context: grpc.ServicerContext, error: ServingError) -> NoReturn:
    message = error.message
    if len(message) > _MESSAGE_LIMIT:
        message = message[:_MESSAGE_LIMIT] + "...TRUNCATED"
    context.abort(error.code, message)


def _unimplemented(context: grpc.ServicerContext, method: str) -> NoReturn:
    _abort(
        context,
        ServingError(
            grpc.StatusCode.UNIMPLEMENTED,
            f"The scalelab local server does not implement {method}; use Predict, or the docker "
            "or binary backend",
        ),
    )


@contextlib.contextmanager
def _answering(context: grpc.ServicerContext) -> Iterator[None]:
    """Abort the call with the status of a ServingError raised in the block."""
    try:
        yield
    except ServingError as error:
        _abort(context, error)


class _Service:
    """A gRPC service answered from the model manager."""

    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager


# The generated servicer bases have no type hints (tensorflow_serving ships no stubs).
class PredictionService(_Service, prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    """Predict and GetModelMetadata; Classify, Regress and MultiInference answer UNIMPLEMENTED."""

    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        """Run a signature on TensorProto inputs; answer typed-field TensorProto outputs."""
        started, name = time.perf_counter(), request.model_spec.name
        try:
            servable = self._manager.servable(request.model_spec)
            outputs = servable.predict(
                request.model_spec.signature_name,
                request.inputs,
                list(request.output_filter),
                convert=proto_to_array,
            )
        except ServingError as error:
            monitoring.request_count.increment(name, error.code.name)
            _abort(context, error)
        monitoring.request_latency.add(
            (time.perf_counter() - started) * 1e6, name, "Predict", "GRPC"
        )
        monitoring.request_count.increment(name, grpc.StatusCode.OK.name)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        for alias, arr in outputs.items():
            response.outputs[alias].CopyFrom(array_to_proto(arr, array_dtype(arr)))
        return response

    def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """The SignatureDefMap of the requested version, packed in an Any under 'signature_def'."""
        with _answering(context):
            if not request.HasField("model_spec"):
                raise invalid("Missing ModelSpec")
            if not request.metadata_field:
                raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != "signature_def":
                    raise invalid(f"Metadata field {field} is not supported")
            servable = self._manager.servable(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        signatures = get_model_metadata_pb2.SignatureDefMap(signature_def=servable.signature_defs)
        response.metadata["signature_def"].Pack(signatures)
        return response

    def Classify(self, request: object, context: grpc.ServicerContext) -> NoReturn:
        """Not implemented by the local server."""
        _unimplemented(context, "Classify")

    def Regress(self, request: object, context: grpc.ServicerContext) -> NoReturn:
        """Not implemented by the local server."""
        _unimplemented(context, "Regress")

    def MultiInference(self, request: object, context: grpc.ServicerContext) -> NoReturn:
        """Not implemented by the local server."""
        _unimplemented(context, "MultiInference")


class ModelService(_Service, model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
    """GetModelStatus and HandleReloadConfigRequest."""

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """The state of every version of a model, or of the one version asked for."""
        with _answering(context):
            if not request.HasField("model_spec"):
                raise invalid("Missing ModelSpec")
            return self._manager.status(request.model_spec)

    def HandleReloadConfigRequest(
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> model_management_pb2.ReloadConfigResponse:
        """Replace the whole model_config_list; returns once new models are AVAILABLE."""
        with _answering(context):
            self._manager.reload(request.config)
        response = model_management_pb2.ReloadConfigResponse()
        response.status.SetInParent()  # error_code OK
        return response


def serve_grpc(manager: ModelManager, host: str, port: int) -> grpc.Server:
    """Start the gRPC server on host:port (raises RuntimeError when the port is taken)."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=4 * (os.cpu_count() or 1)),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(manager), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise RuntimeError(f"cannot bind {host}:{port}")
    server.start()
    return server
