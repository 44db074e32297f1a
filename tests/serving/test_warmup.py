"""SavedModel warm-up (`assets.extra/tf_serving_warmup_requests`) as TF Serving does it: the
records run while the version loads, before it is AVAILABLE; a bad file fails the load with TF
Serving's error. Runs on every backend that starts its own server (not remote: its host's flags)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from scalelab import serving

from .conftest import NO_RETRIES, Models, _quiet_tensorflow

FAILS = "did not become available"


def prediction_log(value: float = 1.0, kind: str = "predict_log") -> bytes:
    """A serialized PredictionLog asking half_plus_two's default signature for one value."""
    tf = _quiet_tensorflow()
    from tensorflow_serving.apis import prediction_log_pb2

    entry = prediction_log_pb2.PredictionLog()
    if kind == "predict_log":
        request = entry.predict_log.request
        request.model_spec.name = "ignored: warm-up runs on the version being loaded"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([[value]], dtype=tf.float32))
    elif kind == "session_run_log":
        entry.session_run_log.SetInParent()
    return entry.SerializeToString()


def write_records(path: Path, records: list[bytes], compression: str | None = None) -> None:
    """A TFRecord file of these records (tf.io.TFRecordWriter)."""
    tf = _quiet_tensorflow()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path), options=compression) as writer:
        for record in records:
            writer.write(record)


@pytest.fixture
def start_with_warmup(
    backend: str, models: Models, tmp_path: Path
) -> Callable[..., serving.Server]:
    """start(files): serve a copy of half_plus_two whose version 1 holds a warm-up file written
    by `files(path)`; the caller stops it."""
    if backend == "remote":
        pytest.skip("warm-up flags belong to the server the remote backend attaches to")

    def start(write: Callable[[Path], None], flags: tuple[str, ...] = ()) -> serving.Server:
        base = tmp_path / "half_plus_two"
        shutil.copytree(models.base("half_plus_two"), base)
        write(base / "1" / "assets.extra" / "tf_serving_warmup_requests")
        return serving.start(base, backend=backend, extra_flags=[*NO_RETRIES, *flags], timeout=90)

    return start


def test_good_file_runs_every_record_before_the_version_is_available(start_with_warmup):
    records = [prediction_log(float(i)) for i in range(5)]
    with start_with_warmup(lambda path: write_records(path, records)) as server:
        logs = server.logs()
    assert "Number of warmup records read: 5." in logs, logs[-2000:]
    assert logs.index("warmup records read") < logs.index("Successfully loaded servable version")


def test_1000_records_are_the_limit(start_with_warmup):
    records = [prediction_log()] * 1000
    with start_with_warmup(lambda path: write_records(path, records)) as server:
        assert "Number of warmup records read: 1000." in server.logs()


def test_1001_records_fail_the_load(start_with_warmup):
    records = [prediction_log()] * 1001
    with pytest.raises(serving.ServerStartError, match=FAILS) as failure:
        start_with_warmup(lambda path: write_records(path, records))
    assert "Number of warmup records exceeds the maximum (1000)" in str(failure.value)


def test_a_record_that_is_not_a_prediction_log_fails_the_load(start_with_warmup):
    records = [prediction_log(), b"\xff\xff\xff not a PredictionLog"]
    with pytest.raises(serving.ServerStartError, match=FAILS) as failure:
        start_with_warmup(lambda path: write_records(path, records))
    assert "Failed to parse warmup record" in str(failure.value)


def test_a_file_that_is_not_a_tfrecord_fails_the_load(start_with_warmup):
    def write_text(path: Path) -> None:
        path.parent.mkdir(parents=True)
        path.write_text('{"instances": [[1.0]]}\n')

    with pytest.raises(serving.ServerStartError, match=FAILS) as failure:
        start_with_warmup(write_text)
    assert "Please verify your warmup data is in TFRecord format" in str(failure.value)


def test_a_gzip_compressed_tfrecord_file_fails_the_load(start_with_warmup):
    with pytest.raises(serving.ServerStartError, match=FAILS) as failure:
        start_with_warmup(lambda path: write_records(path, [prediction_log()], "GZIP"))
    assert "Please verify your warmup data is in TFRecord format" in str(failure.value)


def test_a_failing_request_fails_the_load(start_with_warmup):
    tf = _quiet_tensorflow()
    from tensorflow_serving.apis import prediction_log_pb2

    entry = prediction_log_pb2.PredictionLog()
    entry.predict_log.request.inputs["not_x"].CopyFrom(tf.make_tensor_proto([[1.0]]))
    with pytest.raises(serving.ServerStartError, match=FAILS) as failure:
        start_with_warmup(lambda path: write_records(path, [entry.SerializeToString()]))
    assert "not_x" in str(failure.value)


def test_an_unsupported_log_type_fails_the_load(start_with_warmup):
    records = [prediction_log(kind="session_run_log")]
    with pytest.raises(serving.ServerStartError, match=FAILS) as failure:
        start_with_warmup(lambda path: write_records(path, records))
    assert "Unsupported log_type for warmup: 5" in str(failure.value)


def test_warmup_can_be_switched_off(start_with_warmup):
    records = [b"\xff\xff\xff not a PredictionLog"]
    flags = ("--enable_model_warmup=false",)
    with start_with_warmup(lambda path: write_records(path, records), flags) as server:
        assert "warmup records read" not in server.logs()


def test_an_empty_file_reads_zero_records(start_with_warmup):
    with start_with_warmup(lambda path: write_records(path, [])) as server:
        assert "Number of warmup records read: 0." in server.logs()
