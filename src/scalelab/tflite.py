"""TFLite / LiteRT plumbing: interpreters, quantized predictions, op counts, QAT (child process)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from scalelab import processes

__all__ = [
    "convert_int8",
    "interpreter",
    "predict",
    "quantization_aware",
    "quiet",
    "savedmodel_op_counts",
    "seconds",
    "tensor_types",
    "tflite_op_counts",
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
            processes.native_stderr_silenced(),
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


def convert_int8(converter: Any, samples: np.ndarray, count: int = 200) -> bytes:
    """Convert to a full-integer model (int8 ops, inputs and outputs) with a tf.lite converter,
    calibrated on the first `count` float samples."""
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in samples[:count])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    with quiet():
        return bytes(converter.convert())


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


def seconds(action: Callable[[], Any], repeat: int = 20) -> float:
    """Median wall time of `action()` over `repeat` runs, after one warm-up run."""
    action()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def quantization_aware(epochs: int = 3, hidden: int = 16, timeout: float = 600) -> dict[str, Any]:
    """Train a float model, then fine-tune it two ways (float, then PTQ int8; or QAT int8).

    Both branches get the same extra epochs, so the comparison is about quantization only.
    It runs with tf_keras in a child process:

    tensorflow-model-optimization only works with tf_keras, which must be chosen (with
    TF_USE_LEGACY_KERAS=1) before TensorFlow is imported, and notebooks already run Keras 3.
    Returns the child's accuracies and sizes, and the two int8 models' bytes.
    """
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
        command = [sys.executable, "-m", "scalelab.qat", scratch, str(epochs), str(hidden)]
        processes.run(command, "quantization-aware training", env=env, timeout=timeout)
        result: dict[str, Any] = json.loads((Path(scratch) / "result.json").read_text())
        for name in ("ptq_int8", "qat_int8"):
            result[f"{name}_bytes"] = (Path(scratch) / f"{name}.tflite").read_bytes()
    return result
