"""TFLite / LiteRT plumbing: interpreters, quantized predictions, op counts, QAT (child process)."""

from __future__ import annotations

import contextlib
import io
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from scalelab.processes import children

__all__ = [
    "interpreter",
    "predict",
    "quiet",
    "savedmodel_op_counts",
    "seconds",
    "tensor_types",
    "tflite_op_counts",
    "weight_levels",
]


def interpreter(model_bytes: bytes, delegates: bool = True) -> Any:
    """A ready LiteRT interpreter for a .tflite model (tf.lite's if ai-edge-litert is missing).

    With `delegates`, allocating tensors hands the operators XNNPACK supports to that delegate
    (LiteRT's optimized CPU kernels): its plan then shows a `DELEGATE` node, and the runtime logs
    "Created TensorFlow Lite XNNPACK delegate for CPU." once, to stderr, which is hidden here.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # LiteRT is the successor; tf.lite.Interpreter still runs the same files
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
        OpResolverType = tf.lite.experimental.OpResolverType
    resolver = (
        OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    with quiet():
        runner = Interpreter(model_content=model_bytes, experimental_op_resolver_type=resolver)
        runner.allocate_tensors()
    return runner


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep what the converter and interpreters log (native and Python, warnings included) off
    stderr, where nbgrader would score a test cell 0; show it if the block fails."""
    captured = io.StringIO()
    try:
        with (
            children.native_stderr_silenced(),
            warnings.catch_warnings(),
            contextlib.redirect_stderr(captured),
        ):
            warnings.simplefilter("ignore")
            yield
    except BaseException:
        sys.stderr.write(captured.getvalue())
        raise


def predict(runner: Any, x: np.ndarray) -> np.ndarray:
    """Run a batch of float inputs through `runner`, quantizing in and out when it is integer."""
    (source,) = runner.get_input_details()
    (target,) = runner.get_output_details()
    if tuple(source["shape"]) != x.shape:
        runner.resize_tensor_input(source["index"], list(x.shape))
        runner.allocate_tensors()
    values = x
    if np.issubdtype(source["dtype"], np.integer):
        scale, zero_point = source["quantization"]
        info = np.iinfo(source["dtype"])
        values = np.clip(np.round(x / scale + zero_point), info.min, info.max)
    runner.set_tensor(source["index"], values.astype(source["dtype"]))
    runner.invoke()
    out: np.ndarray = runner.get_tensor(target["index"])
    if np.issubdtype(target["dtype"], np.integer):
        scale, zero_point = target["quantization"]
        out = (out.astype(np.float32) - zero_point) * scale
    return out


def savedmodel_op_counts(export_dir: str | Path) -> Counter[str]:
    """Op types in every function of a SavedModel's serving graph (what TensorFlow would run)."""
    from tensorflow.core.protobuf import saved_model_pb2

    stored = saved_model_pb2.SavedModel.FromString(
        (Path(export_dir) / "saved_model.pb").read_bytes()
    )
    graph = stored.meta_graphs[0].graph_def
    counts = Counter(node.op for node in graph.node)
    for function in graph.library.function:
        counts.update(node.op for node in function.node_def)
    return counts


def tflite_op_counts(model_bytes: bytes) -> Counter[str]:
    """Operator types stored in a TFLite model (without the `DELEGATE` node XNNPACK adds)."""
    runner = interpreter(model_bytes, delegates=False)
    return Counter(op["op_name"] for op in runner._get_ops_details())


def tensor_types(model_bytes: bytes) -> Counter[str]:
    """How many of a TFLite model's tensors (weights and activations) have each dtype."""
    runner = interpreter(model_bytes, delegates=False)
    return Counter(np.dtype(tensor["dtype"]).name for tensor in runner.get_tensor_details())


def weight_levels(model_bytes: bytes) -> dict[str, int]:
    """How many distinct values each int8 weight matrix of a TFLite model holds (at most 3 for
    2-bit weights stored in int8, up to 255 for 8-bit ones)."""
    runner = interpreter(model_bytes, delegates=False)
    return {
        tensor["name"]: len(np.unique(runner.get_tensor(tensor["index"])))
        for tensor in runner.get_tensor_details()
        # weights are 2-D; activations of a batch of one have a leading 1
        if tensor["dtype"] == np.int8 and len(tensor["shape"]) == 2 and min(tensor["shape"]) > 1
    }


def seconds(action: Callable[[], Any], repeat: int = 20) -> float:
    """Median wall time of `action()` over `repeat` runs, after one warm-up run."""
    action()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return float(np.median(times))
