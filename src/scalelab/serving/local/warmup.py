"""SavedModel warm-up, as TF Serving's `saved_model_warmup.cc` does it while a version loads.

`<version>/assets.extra/tf_serving_warmup_requests` is an uncompressed TFRecord file of
`PredictionLog` records. Each record's request runs `iterations` times through the same path as
a live request, before the version becomes AVAILABLE. No file: nothing to do. More than 1000
records, a record that is not a PredictionLog, a file that is not a TFRecord, a request that
fails, or a log type warm-up does not run: the load fails with TF Serving's error.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import tensorflow as tf
from google.protobuf.message import DecodeError
from grpc import StatusCode
from tensorflow_serving.apis import prediction_log_pb2

from . import monitoring
from .servable import Servable
from .status import ServingError, from_op_error, invalid
from .tensors import proto_to_array

log = logging.getLogger("scalelab.serving")

ASSETS_EXTRA = "assets.extra"
REQUESTS_FILE = "tf_serving_warmup_requests"
MAX_RECORDS = 1000
_TSL_MESSAGE = re.compile(
    r"(corrupted record at \d+|truncated record at \d+|record size too large)"
    r"( \(Is this even a TFRecord file\?\))?"
)
# PredictionLog's log_type oneof, numbered as TF Serving prints an unsupported one.
_LOG_TYPE_NUMBERS = {
    field.name: field.number
    for field in prediction_log_pb2.PredictionLog.DESCRIPTOR.oneofs_by_name["log_type"].fields
}


def warmup_path(version_path: Path) -> Path:
    """Where TF Serving looks for a version's warm-up requests."""
    return version_path / ASSETS_EXTRA / REQUESTS_FILE


def _records(path: Path) -> list[bytes] | ServingError:
    """Every record of an uncompressed TFRecord file, or the DATA_LOSS error TF Serving gives."""
    records: list[bytes] = []
    try:
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            records.append(bytes(record))
            if len(records) > MAX_RECORDS:
                break
    except tf.errors.OpError as error:
        status = from_op_error(error)
        if status.code != StatusCode.DATA_LOSS:
            return status
        found = _TSL_MESSAGE.search(status.message)  # without tf.data's node names
        message = found.group(0) if found else status.message.strip()
        return ServingError(
            StatusCode.DATA_LOSS,
            f"{message}. Please verify your warmup data is in TFRecord format.",
        )
    return records


def run_warmup(servable: Servable, iterations: int = 1) -> int:
    """Run a version's warm-up requests; return how many records it read (ServingError: the
    load fails)."""
    path = warmup_path(servable.path)
    if not path.is_file():
        log.info(f"No warmup data file found at {path}")
        return 0
    log.info(
        f"Starting to read warmup data for model at {path} with model-warmup-options "
        f"num_request_iterations {{ value: {iterations} }}"
    )
    started = time.perf_counter()
    try:
        read = _run_records(servable, path, iterations)
    except ServingError as error:
        _record(servable, started, 0, str(error))
        raise
    _record(servable, started, read, "OK")
    return read


def _record(servable: Servable, started: float, records: int, status: str) -> None:
    """The warm-up's metrics, by version path and status (absl's "OK" or "CODE: message")."""
    micros = (time.perf_counter() - started) * 1e6
    monitoring.model_warmup_latency.add(micros, str(servable.path), status)
    monitoring.model_warmup_records_read.increment(str(servable.path), status, by=records)


def _run_records(servable: Servable, path: Path, iterations: int) -> int:
    """Run every record of the warm-up file; the number of records read."""
    started = time.perf_counter()
    records = _records(path)
    if isinstance(records, ServingError):
        raise records
    for count, record in enumerate(records, start=1):
        entry = prediction_log_pb2.PredictionLog()
        try:
            entry.ParseFromString(record)
        except DecodeError:
            raise invalid(f"Failed to parse warmup record: {record!r} from {path}") from None
        kind = entry.WhichOneof("log_type")
        for _ in range(iterations):
            _run(servable, entry, kind)
        if count > MAX_RECORDS:
            raise invalid(f"Number of warmup records exceeds the maximum ({MAX_RECORDS}) at {path}")
    micros = int((time.perf_counter() - started) * 1e6)
    log.info(
        f"Finished reading warmup data for model at {path}. Number of warmup records read: "
        f"{len(records)}. Elapsed time (microseconds): {micros}."
    )
    return len(records)


def _run(servable: Servable, entry: prediction_log_pb2.PredictionLog, kind: str | None) -> None:
    """One warm-up request: Predict runs as a live one would (its model spec is ignored)."""
    if kind is None:  # no log type set: TF Serving's `default: break;`
        return
    if kind == "predict_log":
        request = entry.predict_log.request
        servable.predict(
            request.model_spec.signature_name,
            request.inputs,
            list(request.output_filter),
            convert=proto_to_array,
        )
        return
    if kind in ("classify_log", "regress_log", "multi_inference_log"):
        raise ServingError(
            StatusCode.UNIMPLEMENTED,
            f"The scalelab local server cannot warm up with {kind} (it serves Predict only): "
            "use predict_log records, or the docker or binary backend",
        )
    raise ServingError(
        StatusCode.UNIMPLEMENTED,
        f"Unsupported log_type for warmup: {_LOG_TYPE_NUMBERS[kind]}",
    )
