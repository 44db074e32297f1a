"""A simple dynamic batcher: concurrent requests to one signature are merged into one run."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, wrappers_pb2
from google.protobuf.message import Message
from grpc import StatusCode

from .protos import message_class, parse_text
from .status import ServingError, invalid

Tensors = dict[str, np.ndarray]
_SUPPORTED = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")
_IGNORED = ("thread_pool_name",)
# tensorflow.serving.BatchingParameters (session_bundle_config.proto), which the
# tensorflow-serving-api package does not ship: (field, number, wrapper type or None, repeated).
_FIELDS = (
    ("max_batch_size", 1, "Int64Value"),
    ("batch_timeout_micros", 2, "Int64Value"),
    ("max_enqueued_batches", 3, "Int64Value"),
    ("num_batch_threads", 4, "Int64Value"),
    ("thread_pool_name", 5, "StringValue"),
    ("allowed_batch_sizes", 6, None),
    ("pad_variable_length_inputs", 7, None),
    ("enable_large_batch_splitting", 8, "BoolValue"),
    ("max_execution_batch_size", 9, "Int64Value"),
)


def _batching_parameters_file() -> descriptor_pb2.FileDescriptorProto:
    """session_bundle_config.proto's BatchingParameters, from its fields."""
    descriptor_pool.Default().FindFileByName(wrappers_pb2.DESCRIPTOR.name)  # imported: in the pool
    proto = descriptor_pb2.FileDescriptorProto(
        name="scalelab/tensorflow_serving/batching_parameters.proto",
        package="tensorflow.serving",
        dependency=["google/protobuf/wrappers.proto"],
        syntax="proto3",
    )
    message = proto.message_type.add(name="BatchingParameters")
    kinds = descriptor_pb2.FieldDescriptorProto
    for name, number, wrapper in _FIELDS:
        entry = message.field.add(name=name, number=number, label=kinds.LABEL_OPTIONAL)
        if wrapper:
            entry.type, entry.type_name = kinds.TYPE_MESSAGE, f".google.protobuf.{wrapper}"
        elif name == "allowed_batch_sizes":
            entry.type, entry.label = kinds.TYPE_INT64, kinds.LABEL_REPEATED
        else:
            entry.type = kinds.TYPE_BOOL
    return proto


def batching_parameters_class() -> type[Message]:
    """The tensorflow.serving.BatchingParameters message class, built from its fields."""
    return message_class("tensorflow.serving.BatchingParameters", _batching_parameters_file)


@dataclass(frozen=True)
class BatchingParameters:
    """The BatchingParameters fields the local server honours, with TF Serving's defaults."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)


def parse_batching_parameters(text: str) -> BatchingParameters:
    """Read a text-format BatchingParameters file (as TF Serving does, with the proto); refuse
    the fields the local server lacks by name."""
    message = parse_text(text, batching_parameters_class()())
    values: dict[str, int] = {}
    for descriptor, value in message.ListFields():
        if descriptor.name in _SUPPORTED:
            values[descriptor.name] = int(value.value)
        elif descriptor.name not in _IGNORED:
            raise invalid(
                f"BatchingParameters field '{descriptor.name}' is not supported by the local server"
            )
    return BatchingParameters(**values)


@dataclass
class _Task:
    inputs: Tensors
    size: int
    future: Future[Tensors] = field(default_factory=Future)


class Batcher:
    """Queues requests and runs them in batches of at most max_batch_size rows."""

    def __init__(self, run: Callable[[Tensors], Tensors], params: BatchingParameters) -> None:
        self._run = run
        self._params = params
        self._queue: queue.Queue[_Task | None] = queue.Queue()
        self._closed = False
        self._forming = threading.Lock()
        self._threads = [
            threading.Thread(target=self._loop, daemon=True, name="batch")
            for _ in range(max(params.num_batch_threads, 1))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, inputs: Tensors) -> Tensors:
        """Run `inputs` as part of a batch and return this request's slice of the outputs."""
        sizes = {arr.shape[0] if arr.ndim else -1 for arr in inputs.values()}
        if self._closed or -1 in sizes:
            return self._run(inputs)
        if len(sizes) != 1:
            raise invalid("Batching session Run() input tensors must have equal 0th-dimension size")
        size = sizes.pop()
        if size > self._params.max_batch_size:
            raise invalid(
                f"Task size {size} is larger than maximum input batch size "
                f"{self._params.max_batch_size}"
            )
        limit = self._params.max_enqueued_batches * self._params.max_batch_size
        if self._queue.qsize() >= limit:
            raise ServingError(
                StatusCode.UNAVAILABLE,
                "The batch scheduling queue to which this task was submitted is full",
            )
        task = _Task(inputs, size)
        self._queue.put(task)
        return task.future.result()

    def close(self) -> None:
        """Finish the queued requests, then stop the batch threads."""
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)

    def _form(self, carry: _Task | None) -> tuple[list[_Task], _Task | None]:
        """The next batch (empty: stop), and a task that did not fit in it. One batch is open at a
        time, as in TF Serving's scheduler: it closes when full or when its first task has waited
        batch_timeout_micros; the batch threads run closed batches meanwhile."""
        with self._forming:
            task = carry or self._queue.get()
            carry = None
            if task is None:
                return [], None
            batch, rows = [task], task.size
            deadline = time.monotonic() + self._params.batch_timeout_micros / 1e6
            while rows < self._params.max_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    if remaining > 0:
                        nxt = self._queue.get(timeout=remaining)
                    else:
                        nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # leave the stop signal for the next round
                    break
                if rows + nxt.size > self._params.max_batch_size:
                    carry = nxt
                    break
                batch.append(nxt)
                rows += nxt.size
            return batch, carry

    def _loop(self) -> None:
        carry: _Task | None = None
        while True:
            batch, carry = self._form(carry)
            if not batch:
                return
            groups: dict[tuple[tuple[str, tuple[int, ...], str], ...], list[_Task]] = {}
            for item in batch:
                key = tuple((k, v.shape[1:], v.dtype.str) for k, v in sorted(item.inputs.items()))
                groups.setdefault(key, []).append(item)
            for group in groups.values():
                self._run_group(group)

    def _run_group(self, group: list[_Task]) -> None:
        try:
            merged = {k: np.concatenate([t.inputs[k] for t in group]) for k in group[0].inputs}
            outputs = self._run(merged)
            total = sum(t.size for t in group)
            if any(arr.ndim == 0 or arr.shape[0] != total for arr in outputs.values()):
                raise ServingError(
                    StatusCode.INTERNAL,
                    "Batched output tensor's 0th dimension does not equal the sum of the 0th "
                    "dimension sizes of the input tensors",
                )
            start = 0
            for task in group:
                end = start + task.size
                task.future.set_result({k: v[start:end] for k, v in outputs.items()})
                start = end
        except Exception as error:  # every waiting request gets the batch's error
            for task in group:
                task.future.set_exception(error)
