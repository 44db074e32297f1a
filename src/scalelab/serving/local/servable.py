"""One loaded SavedModel version, loaded and run the way TF Serving's C++ core does it.

The MetaGraph is imported into a Session, the variables are restored by the graph's restore op
(skipped, as in TF Serving, when `variables/variables.index` is missing), the init ops run, and a
signature runs by feeding and fetching its tensor names. So a SavedModel TF Serving cannot serve
(variables the graph cannot find, missing variables) fails here the same way, and the graph, not
a check of ours, decides which input shapes it accepts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from grpc import StatusCode
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, saved_model_pb2
from tensorflow.python.saved_model import loader_impl

from . import monitoring
from .batching import Batcher, BatchingParameters, Tensors
from .status import ServingError, from_op_error, invalid
from .tensors import array_dtype, dtype_name

log = logging.getLogger("scalelab.serving")

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"


def read_meta_graph(path: Path) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef tagged 'serve' in a SavedModel directory."""
    saved_model = saved_model_pb2.SavedModel()
    binary, text = path / "saved_model.pb", path / "saved_model.pbtxt"
    if binary.is_file():
        saved_model.ParseFromString(binary.read_bytes())
    elif text.is_file():
        from google.protobuf import text_format

        text_format.Parse(text.read_text(), saved_model)
    else:
        raise ServingError(
            StatusCode.NOT_FOUND,
            "Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
            f"{path}. Check that the directory exists and that you have the right permissions "
            "for accessing it.",
        )
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ServingError(
        StatusCode.NOT_FOUND,
        "Could not find meta graph def matching supplied tags: { serve }. To inspect available "
        "tag-sets in the SavedModel, please use the SavedModel CLI: `saved_model_cli`",
    )


class Servable:
    """A model version in its own Graph and Session; signatures run by tensor name."""

    def __init__(
        self, name: str, version: int, path: Path, batching: BatchingParameters | None = None
    ) -> None:
        self.name = name
        self.version = version
        self.path = path
        meta_graph = read_meta_graph(path)
        self.signature_defs = dict(meta_graph.signature_def)
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph)
        try:
            self._restore(meta_graph)
        except BaseException:
            self._session.close()
            raise
        self._callables: dict[tuple[str, tuple[str, ...]], Callable[..., Any]] = {}
        self._batching = batching
        self._batchers: dict[str, Batcher] = {}
        self._lock = threading.Lock()

    def _restore(self, meta_graph: meta_graph_pb2.MetaGraphDef) -> None:
        """Import the graph, restore the variables, run the init ops (TF's LoadSavedModel)."""
        variables = self.path / "variables" / "variables"
        with self._graph.as_default():
            tf.compat.v1.train.import_meta_graph(meta_graph)
            saver = meta_graph.saver_def
            if not (self.path / "variables" / "variables.index").is_file():
                log.info(
                    "The specified SavedModel has no variables; no checkpoints were restored. "
                    f"File does not exist: {variables}.index"
                )
            elif saver.restore_op_name:
                self._session.run(
                    saver.restore_op_name, {saver.filename_tensor_name: str(variables)}
                )
            loader_impl.SavedModelLoader(str(self.path)).run_init_ops(self._session, [SERVE_TAG])

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
        if signature not in self.signature_defs:
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
        started = time.perf_counter()
        if self._batching:
            outputs = self._batcher(signature).submit(arrays)
        else:
            outputs = self._run(signature, arrays)
        micros = (time.perf_counter() - started) * 1e6  # TF Serving times its Session::Run
        monitoring.runtime_latency.add(micros, self.name, "Predict", "TF1")
        return {k: v for k, v in outputs.items() if not seen or k in seen}

    def close(self) -> None:
        """Stop the batch threads (queued requests are finished first). The Session closes when
        the last request still using this version lets go of it, as TF Serving's handles do."""
        for batcher in self._batchers.values():
            batcher.close()

    def _run(self, signature: str, inputs: Tensors) -> Tensors:
        """Feed the inputs' tensor names, fetch every output's (shapes are the graph's business)."""
        signature_def = self.signature_defs[signature]
        aliases = tuple(sorted(inputs))
        key = (signature, aliases)
        run = self._callables.get(key)
        if run is None:  # a Session callable: no Python-side shape check, as in TF Serving's C++
            options = config_pb2.CallableOptions(
                feed=[signature_def.inputs[alias].name for alias in aliases],
                fetch=[
                    signature_def.outputs[alias].name for alias in sorted(signature_def.outputs)
                ],
            )
            run = self._callables[key] = self._session._make_callable_from_options(options)
        try:
            values = run(*(inputs[alias] for alias in aliases))
        except tf.errors.OpError as error:
            raise from_op_error(error) from None
        return dict(zip(sorted(signature_def.outputs), values, strict=True))

    def _batcher(self, signature: str) -> Batcher:
        with self._lock:
            if signature not in self._batchers:
                params = self._batching or BatchingParameters()
                self._batchers[signature] = Batcher(lambda t: self._run(signature, t), params)
            return self._batchers[signature]
