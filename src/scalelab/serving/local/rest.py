"""TF Serving's HTTP/REST API on the standard library's threaded HTTP server."""

from __future__ import annotations

import gzip
import http
import json
import os
import re
import socket
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import orjson
from google.protobuf import json_format
from grpc import StatusCode
from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2

from ...gcpause import collector_paused
from . import monitoring, rapidjson
from .manager import ModelManager
from .servable import DEFAULT_SIGNATURE
from .status import HTTP_STATUS, ServingError, invalid
from .tensors import inputs_to_arrays, instances_to_arrays, json_debug, outputs_to_json

_V1 = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_VERSION_OR_LABEL = r"(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
_PREDICT = re.compile(
    rf"/v1/models/([^/:]+){_VERSION_OR_LABEL}:(classify|regress|predict)", re.IGNORECASE
)
_STATUS = re.compile(rf"/v1/models(?:/([^/:]+))?{_VERSION_OR_LABEL}(?:/(metadata))?", re.IGNORECASE)
_DECODER = json.JSONDecoder()
# digits -> 0, e/E -> e, + stays, the rest -> space: numbers' shapes, found by substring search
_NUMBER_SHAPES = bytes(
    48 if 48 <= i <= 57 else 101 if i in (69, 101) else 43 if i == 43 else 32 for i in range(256)
)
_REASONS = {status.value: status.phrase for status in http.HTTPStatus}
_NOT_FOUND_HTML = (
    b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>"
)


def _json_from_proto(message: Any, keep_names: bool = False) -> str:
    return json_format.MessageToJson(
        message,
        preserving_proto_field_name=keep_names,
        always_print_fields_with_no_presence=True,
        indent=None,
    )


def _parse_body(body: bytes) -> tuple[dict[str, Any], bool]:
    """The request's JSON object, and whether orjson (C) parsed it.

    orjson parses strict JSON at C speed; anything it refuses (NaN/Infinity, trailing text,
    bytes that are not UTF-8, deep nesting, a document that is not an object) goes through
    `_parse_body_exactly`, which reads it as TF Serving does. orjson also turns integers beyond
    64 bits into floats: conversions that fail are redone from the exact parse so that error
    messages show the numbers as sent.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _parse_body_exactly(body), False
    if not isinstance(document, dict):
        return _parse_body_exactly(body), False
    return document, True


def _parse_body_exactly(body: bytes) -> dict[str, Any]:
    """The request's JSON object, read as TF Serving's rapidjson reads it.

    Python's json module (C) reads what it reads the same way; the rest (its errors, nesting
    deeper than it recurses, numbers too big for a double, lone surrogate escapes, rapidjson's
    extra spellings such as -Inf) goes to rapidjson.parse, which is exact but slow.
    """
    document: Any = None
    if _python_reads_as_rapidjson(body):
        text = body.decode("utf-8", "surrogateescape")  # rapidjson keeps bytes that are not UTF-8
        start = len(text) - len(text.lstrip(" \t\n\r"))
        try:
            document, _ = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            document = None
    if document is None:  # also a body that is `null`: rapidjson.parse says so exactly
        document = rapidjson.parse(body)
    if not isinstance(document, dict):
        raise invalid(f"JSON Value: {json_debug(document)} Is not object")
    return document


def _python_reads_as_rapidjson(body: bytes) -> bool:
    """False where Python's json reads otherwise than rapidjson: a byte-order mark, NUL, an
    escaped surrogate, numbers too big for a double (300 digits, a 3-digit positive exponent)."""
    if body.startswith(b"\xef") or b"\x00" in body or re.search(rb"\\u[dD][89a-fA-F]", body):
        return False
    shapes = body.translate(_NUMBER_SHAPES)
    return b"0" * 300 not in shapes and b"e000" not in shapes and b"e+000" not in shapes


class RestApi:
    """Maps a method, path and body to TF Serving's answer (status code, JSON)."""

    def __init__(self, manager: ModelManager, timeout_in_ms: int) -> None:
        self._manager = manager
        self._timeout = timeout_in_ms / 1000 if timeout_in_ms > 0 else None
        self._pool = ThreadPoolExecutor(max_workers=4 * (os.cpu_count() or 1))

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        """Answer one /v1 request; errors become {"error": ...} with TF Serving's HTTP codes.
        Counted in the request metrics as TF Serving counts it: by model and status, and its
        latency when it succeeded, by model and verb (lower case, empty for GETs)."""
        started = time.perf_counter()
        pattern = {"POST": _PREDICT, "GET": _STATUS}.get(method)
        match = pattern.fullmatch(path) if pattern else None
        name = unquote(match.group(1) or "") if match else ""
        verb = match.group(4).lower() if match and method == "POST" else ""
        try:
            answer = 200, self._dispatch(method, match, path, body).encode()
        except ServingError as error:
            monitoring.request_count.increment(name, error.code.name)
            return HTTP_STATUS[error.code], json.dumps({"error": error.message}).encode()
        micros = (time.perf_counter() - started) * 1e6
        monitoring.request_latency.add(micros, name, verb, "REST")
        monitoring.request_count.increment(name, StatusCode.OK.name)
        return answer

    def close(self) -> None:
        """Stop the prediction threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _dispatch(self, method: str, match: re.Match[str] | None, path: str, body: bytes) -> str:
        if match is None:
            raise invalid(f"Malformed request: {method} {path}")
        name, version, label, verb = match.groups()
        spec = model_pb2.ModelSpec(name=unquote(name or ""))
        if version is not None:
            if int(version) >= 2**63:
                raise invalid(f"Failed to convert version: {version} to numeric.")
            spec.version.value = int(version)
        if label is not None:
            spec.version_label = unquote(label)
        if method == "POST":
            if verb.lower() != "predict":
                raise ServingError(
                    StatusCode.UNIMPLEMENTED,
                    f"The scalelab local server does not implement :{verb.lower()}; use "
                    ":predict, or the docker or binary backend",
                )
            return self._predict(spec, body)
        if not spec.name:
            raise invalid("Missing model name in request.")
        if verb:
            return self._metadata(spec)
        return _json_from_proto(self._manager.status(spec))

    def _metadata(self, spec: model_pb2.ModelSpec) -> str:
        servable = self._manager.servable(spec)
        model_spec = model_pb2.ModelSpec(name=servable.name)
        model_spec.version.value = servable.version
        signatures = get_model_metadata_pb2.SignatureDefMap(signature_def=servable.signature_defs)
        return (
            f'{{"model_spec": {_json_from_proto(model_spec, True)}, '
            f'"metadata": {{"signature_def": {_json_from_proto(signatures, True)}}}}}'
        )

    def _predict(self, spec: model_pb2.ModelSpec, body: bytes) -> str:
        with collector_paused():
            document, fast = _parse_body(body)
            row_format = "instances" in document
            try:
                signature, servable, inputs = self._request(spec, document, body)
            except ServingError:
                if not fast:
                    raise
                signature, servable, inputs = self._request(spec, _parse_body_exactly(body), body)
            del document  # its lists die here, before the collector runs again
        future = self._pool.submit(servable.predict, signature, inputs)
        try:
            outputs = future.result(timeout=self._timeout)
        except FutureTimeout:
            assert self._timeout is not None  # result() times out only when given a timeout
            raise ServingError(
                StatusCode.DEADLINE_EXCEEDED,
                f"Deadline exceeded: the request took longer than --rest_api_timeout_in_ms="
                f"{int(self._timeout * 1000)}",
            ) from None
        return outputs_to_json(outputs, row_format)

    def _request(
        self, spec: model_pb2.ModelSpec, document: dict[str, Any], body: bytes
    ) -> tuple[str, Any, dict[str, Any]]:
        """The signature name, the servable and the input arrays of a parsed predict body."""
        signature = document.get("signature_name", "")
        if not isinstance(signature, str):
            raise invalid(
                f"JSON Value: {json_debug(document)} not formatted correctly. 'signature_name' "
                "key must be a string value."
            )
        servable = self._manager.servable(spec)
        if (signature or DEFAULT_SIGNATURE) not in servable.signature_defs:
            raise invalid(
                f'Serving signature name: "{signature or DEFAULT_SIGNATURE}" not found in '
                "signature def"
            )
        dtypes = servable.input_dtypes(signature or DEFAULT_SIGNATURE)
        if not dtypes:
            raise invalid(f"Failed to get input map for signature: {signature or 'DEFAULT'}")
        may_hold_bools = b"true" in body or b"false" in body
        if "instances" in document:
            instances = document["instances"]
            if "inputs" in document:
                raise invalid(
                    f"JSON Value: {json_debug(document)} Not formatted correctly expecting only "
                    "one of 'inputs' or 'instances' keys to exist "
                )
            if not isinstance(instances, list):
                raise invalid(
                    f"JSON Value: {json_debug(document)} Expecting 'instances' to be an list/array"
                )
            if not instances:
                raise invalid(f"JSON Value: {json_debug(document)} No values in 'instances' array")
            inputs = instances_to_arrays(instances, dtypes, may_hold_bools)
        elif "inputs" in document:
            inputs = inputs_to_arrays(document["inputs"], dtypes, may_hold_bools)
        else:
            raise invalid("Missing 'inputs' or 'instances' key")
        return signature, servable, inputs


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if "gzip" in self.headers.get("Content-Encoding", ""):  # as TF Serving: gzip bodies only
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error):
                body = b""  # TF Serving gets no body either, and answers a JSON parse error
        path = self.path.split("?", 1)[0]
        metrics = self.server.metrics_path
        if metrics is not None and path == metrics:  # any method, as TF Serving's handler
            kind = "text/plain"
            if self.path == metrics:
                status, payload = 200, monitoring.prometheus_text().encode()
            else:
                status, payload = 400, f"Unexpected path: {self.path}. Should be {metrics}".encode()
        elif not _V1.fullmatch(path):
            status, kind, payload = 404, "text/html", _NOT_FOUND_HTML
        elif self.command == "OPTIONS":  # CORS preflight
            ok = re.match(r"https?://", self.headers.get("Origin", ""))
            status, kind = (200, "application/json") if ok else (400, "application/json")
            payload = b"" if ok else b'{"error": "Origin header is missing in CORS preflight"}'
        else:
            status, payload = self.server.api.handle(self.command, path, body)
            kind = "application/json"
        close = "Connection: close\r\n" if self.close_connection else ""
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Client Closed Request')}\r\n"
            f"Content-Type: {kind}\r\nContent-Length: {len(payload)}\r\n{close}\r\n"
        )
        self.wfile.write(head.encode() + payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: TF Serving logs no access lines either."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: RestApi, metrics_path: str | None) -> None:
        self.api, self.metrics_path = api, metrics_path
        super().__init__(address, _Handler)


def serve_rest(
    manager: ModelManager,
    host: str,
    port: int,
    timeout_in_ms: int,
    metrics_path: str | None = None,
) -> _Server:
    """Bind the REST port (raises OSError when taken); call serve_forever() in a thread. With
    `metrics_path`, the port also answers Prometheus's scrapes there."""
    return _Server((host, port), RestApi(manager, timeout_in_ms), metrics_path)
