"""REST and gRPC clients of TF Serving's Predict API, each over one persistent connection."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from scalelab.gcpause import collector_paused

if TYPE_CHECKING:
    import grpc

Sent = tuple[int, int] | None  # (bytes sent, bytes received) of one request, when known
PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
PROTOCOLS = ("REST row", "REST columnar", "REST gzip", "gRPC")


class RestClient:
    """Sends :predict requests with `requests` over one persistent session."""

    def __init__(
        self, rest_url: str, model: str, *, columnar: bool = False, compress: bool = False
    ) -> None:
        import requests

        self.url = f"{rest_url}/v1/models/{model}:predict"
        self.columnar = columnar
        self.compress = compress
        self.session = requests.Session()
        self.headers = {"Content-Type": "application/json"}
        if compress:
            self.headers["Content-Encoding"] = "gzip"

    def body(self, inputs: np.ndarray, input_name: str = "images") -> bytes:
        """The request body: row or columnar JSON, gzip-compressed if asked."""
        with collector_paused():
            values = inputs.tolist()
            document = {"inputs": {input_name: values}} if self.columnar else {"instances": values}
            data = json.dumps(document, separators=(",", ":")).encode()
            del document, values
        return gzip.compress(data, compresslevel=1) if self.compress else data

    def predict(self, inputs: np.ndarray) -> tuple[int, int]:
        """Send one request; return (bytes sent, bytes received); raise on an HTTP error."""
        data = self.body(inputs)
        answer = self.session.post(self.url, data=data, headers=self.headers, timeout=120)
        answer.raise_for_status()
        return len(data), len(answer.content)

    def send(self, data: bytes) -> bytes:
        """POST an already encoded body; return the answer's bytes (raise on an HTTP error)."""
        answer = self.session.post(self.url, data=data, headers=self.headers, timeout=120)
        answer.raise_for_status()
        return answer.content

    @staticmethod
    def decode(content: bytes) -> dict[str, np.ndarray]:
        """An answer's JSON as arrays by output name, as a Python client would read it."""
        with collector_paused():
            document = json.loads(content)
            value = document["predictions"] if "predictions" in document else document["outputs"]
            if isinstance(value, dict):  # columnar, several outputs
                return {name: np.asarray(v) for name, v in value.items()}
            if value and isinstance(value[0], dict):  # row, several outputs: one object per item
                return {name: np.asarray([item[name] for item in value]) for name in value[0]}
            return {"output": np.asarray(value)}


class GrpcClient:
    """Sends PredictRequests over one gRPC channel with `tensorflow-serving-api` stubs."""

    MAX_MESSAGE = 2**31 - 1  # lift the client's 4 MB default, as large batches need

    def __init__(self, target: str, model: str) -> None:
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        options = [
            ("grpc.max_send_message_length", self.MAX_MESSAGE),
            ("grpc.max_receive_message_length", self.MAX_MESSAGE),
        ]
        self.channel = grpc.insecure_channel(target, options=options)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model = model
        self._raw: grpc.UnaryUnaryMultiCallable[bytes, bytes] | None = None

    def request(self, inputs: np.ndarray, input_name: str = "images") -> Any:
        """The PredictRequest for `inputs`."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model
        request.inputs[input_name].CopyFrom(tf.make_tensor_proto(inputs))
        return request

    def predict(self, inputs: np.ndarray) -> tuple[int, int]:
        """Send one request; return (bytes sent, bytes received); raise on a gRPC error."""
        request = self.request(inputs)
        reply = self.stub.Predict(request, timeout=120)
        return request.ByteSize(), reply.ByteSize()

    def body(self, inputs: np.ndarray) -> bytes:
        """The serialized PredictRequest, what goes on the wire."""
        return cast(bytes, self.request(inputs).SerializeToString())

    def send(self, data: bytes) -> bytes:
        """Call Predict with an already serialized request; return the serialized reply."""
        if self._raw is None:
            self._raw = self.channel.unary_unary(PREDICT_METHOD)  # bytes in, bytes out
        return self._raw(data, timeout=120)

    @staticmethod
    def decode(content: bytes) -> dict[str, np.ndarray]:
        """A serialized PredictResponse as arrays by output name."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        reply = predict_pb2.PredictResponse.FromString(content)
        return {name: tf.make_ndarray(proto) for name, proto in reply.outputs.items()}

    def close(self) -> None:
        self.channel.close()


def by_name(
    rest_url: str, grpc_target: str, model: str, names: Sequence[str] = PROTOCOLS
) -> dict[str, RestClient | GrpcClient]:
    """A client for each of `names`, PROTOCOLS' four ways to send a predict request."""
    make: dict[str, Callable[[], RestClient | GrpcClient]] = {
        "REST row": lambda: RestClient(rest_url, model),
        "REST columnar": lambda: RestClient(rest_url, model, columnar=True),
        "REST gzip": lambda: RestClient(rest_url, model, compress=True),
        "gRPC": lambda: GrpcClient(grpc_target, model),
    }
    return {name: make[name]() for name in names}


def describe_server(server: Any) -> str:
    """What a serving.Server is, for figure titles: "local backend: scalelab stand-in (...)"."""
    from scalelab.serving import BACKENDS

    backend = getattr(server, "backend", "?")
    what = BACKENDS[backend].describe(server) if backend in BACKENDS else repr(server)
    return f"{backend} backend: {what}"
