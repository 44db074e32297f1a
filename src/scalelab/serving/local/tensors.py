"""Tensors on the wire: TF Serving's JSON row/columnar formats and typed TensorProto fields."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from grpc import StatusCode
from tensorflow.core.framework import tensor_pb2, types_pb2

from .status import ServingError, invalid

_FLOATS = {types_pb2.DT_FLOAT: np.float32, types_pb2.DT_DOUBLE: np.float64}
_INTS = {  # dtype -> (numpy type, range rapidjson accepts for it)
    types_pb2.DT_INT32: (np.int32, -(2**31), 2**31),
    types_pb2.DT_INT16: (np.int16, -(2**31), 2**31),
    types_pb2.DT_INT8: (np.int8, -(2**31), 2**31),
    types_pb2.DT_UINT8: (np.uint8, -(2**31), 2**31),
    types_pb2.DT_INT64: (np.int64, -(2**63), 2**63),
    types_pb2.DT_UINT32: (np.uint32, 0, 2**32),
    types_pb2.DT_UINT64: (np.uint64, 0, 2**64),
}
_PROTO_FIELDS = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_HALF: "half_val",
}
_FLOAT_DIGITS = {2: 5, 4: 9, 8: 17}  # max_digits10 by item size


def dtype_name(dtype: int) -> str:
    """TensorFlow's DataTypeString: DT_FLOAT -> 'float'."""
    return types_pb2.DataType.Name(dtype)[3:].lower()


def array_dtype(arr: np.ndarray) -> int:
    """The DataType enum of a numpy array (object/bytes arrays are DT_STRING)."""
    if arr.dtype.kind in "OSU":
        return types_pb2.DT_STRING
    return tf.as_dtype(arr.dtype).as_datatype_enum


def shape_string(shape: tuple[int, ...] | list[int]) -> str:
    """A shape written like TF Serving's messages: [2,1]."""
    return "[" + ",".join(str(d) for d in shape) + "]"


# --- JSON -> numpy -------------------------------------------------------------------------


def json_type(value: Any) -> str:
    """rapidjson's name for the type of a parsed JSON value."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def json_debug(value: Any) -> str:
    """A JSON value as written in error messages (cut at 256 characters)."""
    return json.dumps(value, ensure_ascii=False)[:256]


def is_b64(value: Any) -> bool:
    """True for {"b64": "<string>"}, TF Serving's binary-value object."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _accepts(dtype: int) -> Callable[[Any], bool] | None:
    if dtype in _FLOATS:
        return lambda v: type(v) in (int, float)
    if dtype in _INTS:
        _, low, high = _INTS[dtype]
        return lambda v: type(v) is int and low <= v < high
    if dtype == types_pb2.DT_BOOL:
        return lambda v: type(v) is bool
    if dtype == types_pb2.DT_STRING:
        return lambda v: type(v) is str
    return None


def _type_error(value: Any, dtype: int) -> ServingError:
    return invalid(
        f"JSON Value: {json_debug(value)} Type: {json_type(value)} "
        f"is not of expected type: {dtype_name(dtype)}"
    )


def _b64decode(value: Any) -> bytes:
    if not is_b64(value):
        raise invalid(f"JSON Value: {json_debug(value)} not formatted correctly for base64 data")
    text = value["b64"]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid("Unable to base64 decode") from None


def _fast_array(value: Any, dtype: int, may_hold_bools: bool) -> np.ndarray | None:
    """numpy's own conversion, when it provably gives what TF Serving's checks would accept."""
    if dtype == types_pb2.DT_BOOL:
        kinds, target, bounds = "b", np.bool_, None
    elif may_hold_bools:
        return None  # numpy silently turns true/false into 1/0
    elif dtype in _FLOATS:
        kinds, target, bounds = "fiu", _FLOATS[dtype], None
    elif dtype in _INTS:
        target, low, high = _INTS[dtype]
        kinds, bounds = "iu", (low, high)
    else:
        return None
    try:
        arr = np.asarray(value)
    except (ValueError, OverflowError):
        return None
    if arr.dtype.kind not in kinds:
        return None
    if bounds and arr.size and (int(arr.min()) < bounds[0] or int(arr.max()) >= bounds[1]):
        return None
    return arr.astype(target, copy=False)


def _dense_shape(value: Any) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, shape: list[int], dtype: int, out: list) -> None:
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid(
                f"JSON Value: {json_debug(value)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}"
            )
        if isinstance(value, dict):
            if dtype != types_pb2.DT_STRING:
                raise _type_error(value, dtype)
            out.append(_b64decode(value))
            return
        accepts = _accepts(dtype)
        if accepts is None:
            raise ServingError(
                StatusCode.UNIMPLEMENTED,
                f"Conversion of JSON Value: {json_debug(value)} to type: {dtype_name(dtype)}",
            )
        if not accepts(value):
            raise _type_error(value, dtype)
        out.append(value.encode() if dtype == types_pb2.DT_STRING else value)
        return
    if level >= rank:
        raise invalid(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def json_to_array(value: Any, dtype: int, may_hold_bools: bool = True) -> np.ndarray:
    """Convert one JSON value/list to a tensor of `dtype`, with TF Serving's checks and errors."""
    fast = _fast_array(value, dtype, may_hold_bools)
    if fast is not None:
        return fast
    shape = _dense_shape(value)
    flat: list = []
    _fill(value, 0, shape, dtype, flat)
    if dtype == types_pb2.DT_STRING:
        target: Any = object
    else:
        target = _FLOATS.get(dtype) or _INTS.get(dtype, (np.bool_,))[0]
    try:
        return np.array(flat, dtype=target).reshape(shape)
    except OverflowError:
        raise _type_error(flat[0], dtype) from None


def _add_instance_item(
    value: Any, name: str, dtypes: dict[str, int], items: dict[str, list[np.ndarray]]
) -> None:
    if name not in dtypes:
        raise invalid(f"JSON object: does not have named input: {name}")
    arr = json_to_array(value, dtypes[name])
    seen = items.setdefault(name, [])
    if seen and seen[0].size != arr.size:
        raise invalid(f"Expecting tensor size: {seen[0].size} but got: {arr.size}")
    if seen and seen[0].shape != arr.shape:
        raise invalid(
            f"Expecting shape {shape_string(seen[0].shape)} but got: {shape_string(arr.shape)}"
        )
    seen.append(arr)


def instances_to_arrays(
    instances: list, dtypes: dict[str, int], may_hold_bools: bool
) -> dict[str, np.ndarray]:
    """The row format: one list element per batch item, plain or one object per item."""
    first = instances[0]
    if not isinstance(first, dict) and len(dtypes) > 1:
        raise invalid(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    named = isinstance(first, dict) and not is_b64(first)
    if not named:
        name = next(iter(dtypes))
        fast = _fast_array(instances, dtypes[name], may_hold_bools)
        if fast is not None:
            return {name: fast}
    elif all(isinstance(e, dict) and e.keys() == dtypes.keys() for e in instances):
        arrays = {
            n: _fast_array([e[n] for e in instances], dt, may_hold_bools)
            for n, dt in dtypes.items()
        }
        if all(a is not None for a in arrays.values()):
            return arrays  # type: ignore[return-value]
    items: dict[str, list[np.ndarray]] = {}
    for index, element in enumerate(instances):
        element_named = isinstance(element, dict) and not is_b64(element)
        if named and not element_named:
            raise invalid(f"Expecting object but got list at item {index} of input list")
        if not named and element_named:
            raise invalid(f"Expecting value/list but got object at item {index} of input list")
        if not named:
            try:
                _add_instance_item(element, next(iter(dtypes)), dtypes, items)
            except ServingError as error:
                raise invalid(
                    f"Failed to process element: {index} of 'instances' list. Error: {error}"
                ) from None
            continue
        for key, value in element.items():
            try:
                _add_instance_item(value, key, dtypes, items)
            except ServingError as error:
                raise invalid(
                    f"Failed to process element: {index} key: {key} of 'instances' list. "
                    f"Error: {error}"
                ) from None
        if element.keys() != dtypes.keys():
            raise invalid(
                f"Failed to process element: {index} of 'instances' list. JSON object: "
                f"{json_debug(element)} keys must be equal to: {','.join(sorted(dtypes))}"
            )
    return {name: np.stack(arrays) for name, arrays in items.items()}


def inputs_to_arrays(
    value: Any, dtypes: dict[str, int], may_hold_bools: bool
) -> dict[str, np.ndarray]:
    """The columnar format: one value for a single input, or an object of name -> tensor."""
    if not isinstance(value, dict) or is_b64(value):
        if len(dtypes) > 1:
            raise invalid(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        name = next(iter(dtypes))
        return {name: json_to_array(value, dtypes[name], may_hold_bools)}
    arrays = {}
    for name, dtype in dtypes.items():
        if name not in value:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = json_to_array(value[name], dtype, may_hold_bools)
    return arrays


# --- numpy -> JSON -------------------------------------------------------------------------


def _finish_float(text: str) -> str:
    if "n" in text:  # nan, inf, -inf
        return "NaN" if text == "nan" else ("-Infinity" if text[0] == "-" else "Infinity")
    return text if ("." in text or "e" in text) else text + ".0"


def _float_tokens(flat: np.ndarray) -> list[str]:
    """Floats as TF Serving writes them: %g, or full precision when %g does not round-trip."""
    values = flat.tolist()
    tokens = [f"{v:g}" for v in values]
    back = np.array(tokens, dtype=flat.dtype)
    digits = _FLOAT_DIGITS.get(flat.dtype.itemsize, 17)
    for i in np.flatnonzero((back != flat) & ~np.isnan(flat)).tolist():
        tokens[i] = f"{values[i]:.{digits}g}"
    return [_finish_float(t) for t in tokens]


def _tokens(arr: np.ndarray, as_bytes: bool) -> list[str]:
    flat = arr.ravel()
    kind = arr.dtype.kind
    if kind == "f":
        return _float_tokens(flat)
    if kind in "iu":
        return [str(v) for v in flat.tolist()]
    if kind == "b":
        return ["true" if v else "false" for v in flat.tolist()]
    if kind in "OS":
        if as_bytes:
            return ['{"b64": "' + base64.b64encode(v).decode() + '"}' for v in flat.tolist()]
        return [json.dumps(v.decode("utf-8", "replace"), ensure_ascii=False) for v in flat]
    raise invalid(f"Failed to write JSON value for tensor type: {dtype_name(array_dtype(arr))}")


def _nest(tokens: list[str], shape: tuple[int, ...]) -> str:
    if not shape:
        return tokens[0]
    if len(shape) == 1:
        return "[" + ", ".join(tokens) + "]"
    step = len(tokens) // shape[0] if shape[0] else 0
    parts = (_nest(tokens[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0]))
    return "[" + ", ".join(parts) + "]"


def outputs_to_json(outputs: dict[str, np.ndarray], row_format: bool) -> str:
    """The predict answer: {"predictions": [...]} (row) or {"outputs": ...} (columnar)."""
    if not outputs:
        raise invalid("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    tokens = {n: _tokens(outputs[n], n.endswith("_bytes")) for n in names}
    if not row_format:
        if len(names) == 1:
            return '{"outputs": ' + _nest(tokens[names[0]], outputs[names[0]].shape) + "}"
        parts = (json.dumps(n) + ": " + _nest(tokens[n], outputs[n].shape) for n in names)
        return '{"outputs": {' + ", ".join(parts) + "}}"
    batch = -1
    for name in names:
        shape = outputs[name].shape
        if not shape:
            raise invalid(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and shape[0] != batch:
            raise invalid(
                f"Tensor name: {name} has inconsistent batch size: {shape[0]} expecting: {batch}"
            )
        batch = shape[0]
    items = []
    for i in range(batch):
        per_name = {}
        for name in names:
            shape = outputs[name].shape
            step = math.prod(shape[1:])
            per_name[name] = _nest(tokens[name][i * step : (i + 1) * step], shape[1:])
        if len(names) == 1:
            items.append(per_name[names[0]])
        else:
            items.append(
                "{" + ", ".join(json.dumps(n) + ": " + v for n, v in per_name.items()) + "}"
            )
    return '{"predictions": [' + ", ".join(items) + "]}"


# --- gRPC TensorProto ----------------------------------------------------------------------


def proto_to_array(proto: tensor_pb2.TensorProto, alias: str) -> np.ndarray:
    """A request TensorProto (typed fields or tensor_content) as a numpy array."""
    try:
        return tf.make_ndarray(proto)
    except Exception:
        raise invalid(f"tensor parsing error: {alias}") from None


def array_to_proto(arr: np.ndarray, dtype: int) -> tensor_pb2.TensorProto:
    """A response TensorProto with typed `*_val` fields, as TF Serving writes them."""
    field = _PROTO_FIELDS.get(dtype)
    if field is None:
        return tf.make_tensor_proto(arr)
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tf.TensorShape(arr.shape).as_proto())
    flat = arr.ravel()
    getattr(proto, field).extend((flat.view(np.uint16) if field == "half_val" else flat).tolist())
    return proto
