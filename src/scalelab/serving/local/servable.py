"""One loaded SavedModel version: its SignatureDefs and a thread-safe predict()."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from grpc import StatusCode
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from .batching import Batcher, BatchingParameters, Tensors
from .status import ServingError, invalid
from .tensors import array_dtype, dtype_name, shape_string

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"


def read_meta_graph(path: Path) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef tagged 'serve' in a SavedModel directory."""
    saved_model = saved_model_pb2.SavedModel()
    binary = path / "saved_model.pb"
    if binary.exists():
        saved_model.ParseFromString(binary.read_bytes())
    else:
        from google.protobuf import text_format

        text_format.Parse((path / "saved_model.pbtxt").read_text(), saved_model)
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ServingError(
        StatusCode.NOT_FOUND,
        "Could not find meta graph def matching supplied tags: { serve }. To inspect available "
        "tag-sets in the SavedModel, please use the SavedModel CLI: `saved_model_cli`",
    )


class Servable:
    """A model version loaded with tf.saved_model.load; calls its signature functions."""

    def __init__(
        self, name: str, version: int, path: Path, batching: BatchingParameters | None = None
    ) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = dict(read_meta_graph(path).signature_def)
        self._model = tf.saved_model.load(str(path), tags=[SERVE_TAG])
        self._functions = dict(self._model.signatures)
        self._batching = batching
        self._batchers: dict[str, Batcher] = {}
        self._lock = threading.Lock()

    def input_dtypes(self, signature: str) -> dict[str, int]:
        """Input alias -> DataType enum of a signature (sorted by alias, like TF's std::map)."""
        inputs = self.signature_defs[signature].inputs
        return {alias: inputs[alias].dtype for alias in sorted(inputs)}

    def predict(
        self,
        signature: str,
        inputs: Mapping[str, Any],
        output_filter: Sequence[str] = (),
        convert: Callable[[Any, str], np.ndarray] | None = None,
    ) -> Tensors:
        """Validate inputs like TF Serving's RunPredict, run the signature, return its outputs.

        `convert` turns each input (e.g. a TensorProto) into an array once the signature is known.
        """
        signature = signature or DEFAULT_SIGNATURE
        function = self._functions.get(signature)
        if function is None or signature not in self.signature_defs:
            raise ServingError(
                StatusCode.FAILED_PRECONDITION, f'Serving signature key "{signature}" not found.'
            )
        signature_def = self.signature_defs[signature]
        expected = sorted(signature_def.inputs)
        sent = sorted(inputs)
        if len(sent) > len(expected) or (len(sent) < len(expected) and not signature_def.defaults):
            raise invalid(
                f"input size does not match signature: {len(sent)}!={len(expected)} "
                f"len({{{','.join(sent)}}}) != len({{{','.join(expected)}}}). "
                f"Sent extra: {{{','.join(sorted(set(sent) - set(expected)))}}}. "
                f"Missing but required: {{{','.join(sorted(set(expected) - set(sent)))}}}."
            )
        specs = function.structured_input_signature[1]
        arrays: Tensors = {}
        for index, alias in enumerate(expected):
            info = signature_def.inputs[alias]
            if alias not in inputs:
                raise invalid(
                    f"Signature input alias: {alias}(feed name: {info.name}) not found in request "
                    f"and no default value provided. Inputs expected to be in the request "
                    f"{{{','.join(sent)}}}, or default input alias set: "
                    f"{{{','.join(sorted(signature_def.defaults))}}}"
                )
            arr = arrays[alias] = convert(inputs[alias], alias) if convert else inputs[alias]
            if array_dtype(arr) != info.dtype:
                raise invalid(
                    f"Expects arg[{index}] to be {dtype_name(info.dtype)} but "
                    f"{dtype_name(array_dtype(arr))} is provided"
                )
            if not specs[alias].shape.is_compatible_with(arr.shape):
                wanted = [-1 if d is None else d for d in specs[alias].shape.as_list()]
                raise invalid(
                    f"Input {alias} has shape {shape_string(arr.shape)}, which does not match "
                    f"the signature's shape {shape_string(wanted)}"
                )
        seen: set[str] = set()
        for alias in output_filter:
            if alias not in signature_def.outputs:
                raise invalid(
                    f"output tensor alias not found in signature: {alias} Outputs expected to be "
                    f"in the set {{{','.join(sorted(signature_def.outputs))}}}."
                )
            if alias in seen:
                raise invalid(f"duplicate output tensor alias: {alias}")
            seen.add(alias)
        if self._batching:
            outputs = self._batcher(signature).submit(arrays)
        else:
            outputs = self._run(signature, arrays)
        return {k: v for k, v in outputs.items() if not seen or k in seen}

    def close(self) -> None:
        """Stop the batch threads (queued requests are finished first)."""
        for batcher in self._batchers.values():
            batcher.close()

    def _run(self, signature: str, inputs: Tensors) -> Tensors:
        tensors = {alias: tf.convert_to_tensor(arr) for alias, arr in inputs.items()}
        try:
            outputs = self._functions[signature](**tensors)
        except tf.errors.OpError as error:
            raise ServingError(_STATUS_CODES[error.error_code], error.message) from None
        return {alias: tensor.numpy() for alias, tensor in outputs.items()}

    def _batcher(self, signature: str) -> Batcher:
        with self._lock:
            if signature not in self._batchers:
                params = self._batching or BatchingParameters()
                self._batchers[signature] = Batcher(lambda t: self._run(signature, t), params)
            return self._batchers[signature]


_STATUS_CODES = {code.value[0]: code for code in StatusCode}
