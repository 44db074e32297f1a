"""TF Serving's Prometheus endpoint: its metrics, their text format and --monitoring_config_file.

TF Serving's metrics live in TensorFlow's monitoring library (one registry per process) and its
PrometheusExporter writes them as text: families sorted by their `/slash/name`, written with
every character outside `[a-zA-Z0-9_]` as `:`; a `# TYPE` line for each family, points or not;
no `# HELP`; counters as integers; samplers as histograms of every bucket (TensorFlow counts a
value in the first bucket whose limit is above it), `_sum` and `_count`, numbers written like
`%g`. The latencies are in microseconds. Which metrics the local server records is listed in
docs/serving.md.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Sequence

from google.protobuf import descriptor_pb2

from .protos import message_class, parse_text

DEFAULT_PATH = "/monitoring/prometheus/metrics"  # PrometheusExporter::kPrometheusPath


def exponential(scale: float, growth: float, count: int) -> tuple[float, ...]:
    """Buckets::Exponential: `count` limits scale, scale*growth, ..., then the largest double."""
    limits, bound = [], scale
    for _ in range(count):
        limits.append(bound)
        bound *= growth
    return (*limits, float("inf"))


def _number(value: float) -> str:
    """A double as absl::StrCat writes it (six significant digits, like %g)."""
    return f"{value:.6g}"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Metric:
    """A metric family: its slash name, label names and one cell per label values."""

    def __init__(self, name: str, labels: Sequence[str], registered: bool) -> None:
        self.name, self.labels = name, tuple(labels)
        self.exported = re.sub(r"[^a-zA-Z0-9_]", ":", name)  # /a/b_c -> :a:b_c
        self._lock = threading.Lock()
        if registered:  # exported by prometheus_text()
            _REGISTRY[name] = self

    def _check(self, values: Sequence[str]) -> tuple[str, ...]:
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, not {tuple(values)}")
        return tuple(str(value) for value in values)

    def _prefix(self, suffix: str, values: tuple[str, ...]) -> str:
        """`:the:name<suffix>{label="value",...` without the closing brace."""
        pairs = [
            f"{re.sub(r'[^a-zA-Z0-9]', '_', label)}={_quoted(value)}"
            for label, value in zip(self.labels, values, strict=True)
        ]
        return f"{self.exported}{suffix}{{" + ",".join(pairs)

    def lines(self) -> list[str]:
        """This family's lines of the Prometheus text."""
        raise NotImplementedError


class Counter(_Metric):
    """A cumulative integer count per label values (tensorflow::monitoring::Counter)."""

    def __init__(self, name: str, *labels: str, registered: bool = True) -> None:
        super().__init__(name, labels, registered)
        self._cells: dict[tuple[str, ...], int] = {}

    def increment(self, *values: str, by: int = 1) -> None:
        """Add `by` to the cell of these label values."""
        key = self._check(values)
        with self._lock:
            self._cells[key] = self._cells.get(key, 0) + by

    def lines(self) -> list[str]:
        """`# TYPE` and one `name{labels} count` line per cell, sorted by label values."""
        with self._lock:
            cells = sorted(self._cells.items())
        return [f"# TYPE {self.exported} counter"] + [
            f"{self._prefix('', values)}}} {count}" for values, count in cells
        ]


class Sampler(_Metric):
    """A histogram per label values (tensorflow::monitoring::Sampler)."""

    def __init__(
        self, name: str, limits: tuple[float, ...], *labels: str, registered: bool = True
    ) -> None:
        super().__init__(name, labels, registered)
        self.limits = limits
        self._cells: dict[tuple[str, ...], tuple[list[int], float]] = {}

    def add(self, value: float, *values: str) -> None:
        """Count `value` in the first bucket whose limit is above it (std::upper_bound)."""
        key = self._check(values)
        bucket = min(bisect.bisect_right(self.limits, value), len(self.limits) - 1)
        with self._lock:
            counts, total = self._cells.get(key) or ([0] * len(self.limits), 0.0)
            counts[bucket] += 1
            self._cells[key] = (counts, total + value)

    def lines(self) -> list[str]:
        """`# TYPE`, then per cell: cumulative `_bucket` lines (the last `le="+Inf"`), `_sum`,
        `_count`."""
        out = [f"# TYPE {self.exported} histogram"]
        with self._lock:
            cells = sorted(
                (key, (list(counts), total)) for key, (counts, total) in self._cells.items()
            )
        for values, (counts, total) in cells:
            bucket = self._prefix("_bucket", values) + ("," if values else "")
            cumulative = 0
            for index, count in enumerate(counts):
                cumulative += count
                limit = "+Inf" if index == len(counts) - 1 else _number(self.limits[index])
                out.append(f'{bucket}le="{limit}"}} {cumulative}')
            out.append(f"{self._prefix('_sum', values)}}} {_number(total)}")
            out.append(f"{self._prefix('_count', values)}}} {cumulative}")
        return out


_REGISTRY: dict[str, _Metric] = {}
_LATENCY = exponential(10, 1.8, 33)  # microseconds, as TF Serving's latency samplers

# tensorflow/cc/saved_model/loader.cc
load_attempt_count = Counter(
    "/tensorflow/cc/saved_model/load_attempt_count", "model_path", "status"
)
load_latency = Counter("/tensorflow/cc/saved_model/load_latency", "model_path")
# tensorflow_serving/servables/tensorflow/util.cc
request_count = Counter("/tensorflow/serving/request_count", "model_name", "status")
request_latency = Sampler(
    "/tensorflow/serving/request_latency", _LATENCY, "model_name", "API", "entrypoint"
)
runtime_latency = Sampler(
    "/tensorflow/serving/runtime_latency", _LATENCY, "model_name", "API", "runtime"
)
request_example_counts = Sampler(
    "/tensorflow/serving/request_example_counts", exponential(1, 2, 15), "model"
)  # MultiInference only, which the local server does not implement: no points
request_example_count_total = Counter("/tensorflow/serving/request_example_count_total", "model")
# tensorflow_serving/servables/tensorflow/saved_model_warmup_util.cc
model_warmup_latency = Sampler(
    "/tensorflow/serving/model_warmup_latency", _LATENCY, "model_path", "status"
)
model_warmup_records_read = Counter(
    "/tensorflow/serving/model_warmup_records_read", "model_path", "status"
)
# tensorflow_serving/core/request_logger.cc: request logging, which the local server lacks
request_log_count = Counter("/tensorflow/serving/request_log_count", "model_name", "status_code")


def prometheus_text() -> str:
    """Every registered metric as PrometheusExporter writes it: sorted by name, one line each,
    ending with a newline."""
    lines = [line for _, metric in sorted(_REGISTRY.items()) for line in metric.lines()]
    return "\n".join(lines) + "\n"


def _config_file() -> descriptor_pb2.FileDescriptorProto:
    """monitoring_config.proto's two messages, from their fields."""
    kinds = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="scalelab/tensorflow_serving/monitoring_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
    )
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=kinds.TYPE_BOOL, label=kinds.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=kinds.TYPE_STRING, label=kinds.LABEL_OPTIONAL)
    config = proto.message_type.add(name="MonitoringConfig")
    config.field.add(
        name="prometheus_config",
        number=1,
        type=kinds.TYPE_MESSAGE,
        type_name=".tensorflow.serving.PrometheusConfig",
        label=kinds.LABEL_OPTIONAL,
    )
    return proto


def prometheus_path(text: str) -> str | None:
    """The path a text-format MonitoringConfig exports the metrics at (its own, or the default
    when it names none); None when Prometheus is not enabled."""
    config = parse_text(text, message_class("tensorflow.serving.MonitoringConfig", _config_file)())
    prometheus = config.prometheus_config  # type: ignore[attr-defined]
    if not prometheus.enable:
        return None
    return str(prometheus.path) or DEFAULT_PATH
