"""The error the local server answers with, and TF Serving's status-code to HTTP-code mapping."""

from __future__ import annotations

from typing import Protocol

from grpc import StatusCode

HTTP_STATUS = {
    StatusCode.OK: 200,
    StatusCode.CANCELLED: 499,
    StatusCode.UNKNOWN: 500,
    StatusCode.INVALID_ARGUMENT: 400,
    StatusCode.DEADLINE_EXCEEDED: 504,
    StatusCode.NOT_FOUND: 404,
    StatusCode.ALREADY_EXISTS: 409,
    StatusCode.PERMISSION_DENIED: 403,
    StatusCode.RESOURCE_EXHAUSTED: 429,
    StatusCode.FAILED_PRECONDITION: 400,
    StatusCode.ABORTED: 409,
    StatusCode.OUT_OF_RANGE: 400,
    StatusCode.UNIMPLEMENTED: 501,
    StatusCode.INTERNAL: 500,
    StatusCode.UNAVAILABLE: 503,
    StatusCode.DATA_LOSS: 500,
    StatusCode.UNAUTHENTICATED: 401,
}


_BY_NUMBER = {code.value[0]: code for code in StatusCode}


class _OpError(Protocol):
    """What a tf.errors.OpError carries (this module does not import TensorFlow)."""

    error_code: int
    message: str


class ServingError(Exception):
    """A failed request or load, carrying a gRPC status code like TF Serving's absl::Status."""

    def __init__(self, code: StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def invalid(message: str) -> ServingError:
    """An INVALID_ARGUMENT error, the most common answer to a bad request."""
    return ServingError(StatusCode.INVALID_ARGUMENT, message)


def from_op_error(error: _OpError) -> ServingError:
    """A TensorFlow OpError as the ServingError with its status code (UNKNOWN if not one)."""
    return ServingError(_BY_NUMBER.get(error.error_code, StatusCode.UNKNOWN), error.message)
