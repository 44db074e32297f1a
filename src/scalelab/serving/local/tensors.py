"""Tensors on the wire: TF Serving's JSON row/columnar formats and typed TensorProto fields."""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any, cast

import numpy as np
import tensorflow as tf
from grpc import StatusCode
from tensorflow.core.framework import tensor_pb2, types_pb2

from .status import ServingError, invalid

_FLOATS: dict[int, type[np.floating[Any]]] = {
    types_pb2.DT_FLOAT: np.float32,
    types_pb2.DT_DOUBLE: np.float64,
}
# dtype -> (numpy type, range rapidjson accepts for it)
_INTS: dict[int, tuple[type[np.integer[Any]], int, int]] = {
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
_MAX_RANK = 64  # NumPy's most dimensions


def dtype_name(dtype: int) -> str:
    """TensorFlow's DataTypeString: DT_FLOAT -> 'float'."""
    name: str = types_pb2.DataType.Name(dtype)
    return name[3:].lower()


def array_dtype(arr: np.ndarray) -> int:
    """The DataType enum of a numpy array (object/bytes arrays are DT_STRING)."""
    if arr.dtype.kind in "OSU":
        return cast(int, types_pb2.DT_STRING)
    return cast(int, tf.as_dtype(arr.dtype).as_datatype_enum)


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
    names: dict[type[Any], str] = {dict: "Object", list: "Array", str: "String"}
    return names.get(type(value), "Number")


def json_debug(value: Any) -> str:
    """A JSON value as written in error messages (cut at 256 characters), written only as far
    as the cut and without recursion: a request can nest lists thousands deep."""
    parts: list[str] = []
    length = 0
    for part in _json_parts(value):
        parts.append(part)
        length += len(part)
        if length >= _DEBUG_CHARS:
            break
    return "".join(parts)[:_DEBUG_CHARS]


_DEBUG_CHARS = 256
_END = object()


def _json_parts(value: Any) -> Iterator[str]:
    """json.dumps(value, ensure_ascii=False) in pieces, with a stack instead of recursion."""
    stack: list[tuple[Iterator[Any], str]] = []  # the open containers' remaining items
    while True:
        first = isinstance(value, list | dict) and bool(value)
        if first:
            named = isinstance(value, dict)
            yield "{" if named else "["
            stack.append((iter(value.items()) if named else iter(value), "}" if named else "]"))
        else:
            yield json.dumps(value, ensure_ascii=False)
        while stack:
            items, close = stack[-1]
            item: Any = next(items, _END)
            if item is _END:
                stack.pop()
                yield close
                first = False
                continue
            if not first:
                yield ", "
            if close == "}":
                yield json.dumps(item[0], ensure_ascii=False) + ": "
                item = item[1]
            value = item
            break
        else:
            return


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
    target: type[np.generic]
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


def _fill(value: Any, level: int, shape: list[int], dtype: int, out: list[Any]) -> None:
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
        # bytes that were not UTF-8 come back as they were sent (rapidjson keeps them)
        out.append(
            value.encode("utf-8", "surrogateescape") if dtype == types_pb2.DT_STRING else value
        )
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


def json_to_array(
    value: Any, dtype: int, may_hold_bools: bool = True, batched: bool = False
) -> np.ndarray:
    """Convert one JSON value/list to a tensor of `dtype`, with TF Serving's checks and errors
    (`batched`: one instance, to which the batch adds a dimension)."""
    fast = _fast_array(value, dtype, may_hold_bools)
    if fast is not None and fast.ndim + batched <= _MAX_RANK:
        return fast
    shape = _dense_shape(value)
    if len(shape) + batched > _MAX_RANK:
        raise invalid(
            f"JSON Value: {json_debug(value)} makes a tensor of {len(shape) + batched} "
            f"dimensions; the scalelab local server holds at most {_MAX_RANK} (NumPy's limit; "
            "TensorFlow's is 254)"
        )
    flat: list[Any] = []
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
    arr = json_to_array(value, dtypes[name], batched=True)
    seen = items.setdefault(name, [])
    if seen and seen[0].size != arr.size:
        raise invalid(f"Expecting tensor size: {seen[0].size} but got: {arr.size}")
    if seen and seen[0].shape != arr.shape:
        raise invalid(
            f"Expecting shape {shape_string(seen[0].shape)} but got: {shape_string(arr.shape)}"
        )
    seen.append(arr)


def instances_to_arrays(
    instances: list[Any], dtypes: dict[str, int], may_hold_bools: bool
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
#
# TF Serving writes a float with absl::StrCat (printf "%g": six significant digits), and when that
# does not parse back to the same value, with "%.9g" (float32) or "%.17g" (float64); whole numbers
# written without an exponent get ".0". Formatting is exact in Python's % operator, which runs
# in C; the only per-value decision, whether "%g" round-trips, is made for a whole float32 tensor
# at once with NumPy, and value by value only where float64 arithmetic cannot decide it.

_SEP = "\x00"  # splits the output of one % call back into tokens (never part of a number)
_NON_FINITE = {"nan": "NaN%.0s", "inf": "Infinity%.0s", "-inf": "-Infinity%.0s"}


def _nearest_float32(value: Fraction) -> float:
    """The float32 nearest to an exact rational (ties to even), as a Python float."""
    guess = np.float32(float(value))
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess]
    candidates.append(np.nextafter(guess, np.float32(np.inf)))
    finite = [c for c in candidates if np.isfinite(c)]
    best = min(finite, key=lambda c: (abs(Fraction(float(c)) - value), int(c.view(np.uint32)) & 1))
    return float(best)


def _g_round_trips_exactly(value: float, itemsize: int) -> bool:
    """Whether "%g" of `value` parses back to it (a float32 parses to the nearest float32)."""
    token = f"{value:g}"
    if itemsize == 8:
        return float(token) == value
    return _nearest_float32(Fraction(token)) == value


_FLOAT32 = struct.Struct("f")
_SMALL = 48  # below this many values, deciding one by one is quicker than NumPy's set-up


def _g_round_trips_float32_one_by_one(values: list[float]) -> list[bool]:
    """_g_round_trips_float32 for a few values: parse "%g" as a double, round to float32."""
    short = []
    for v in values:
        a = abs(v)
        if not math.isfinite(a) or a == 0:
            short.append(a == 0)
            continue
        if a < 2.0**-126 or a > 3.4e38:
            short.append(_g_round_trips_exactly(v, 4))
            continue
        parsed = float(f"{v:g}")
        significand = math.frexp(parsed)[0] * 2.0**25
        if significand == int(significand) and int(significand) % 2:
            # exactly halfway between two float32s: the double may have rounded the decimal
            # onto the tie, so decide from the decimal itself
            short.append(_g_round_trips_exactly(v, 4))
        else:
            short.append(_FLOAT32.unpack(_FLOAT32.pack(parsed))[0] == v)
    return short


def _g_round_trips_float32(flat: np.ndarray) -> np.ndarray:
    """For finite float32 values: does "%g" (six significant digits) parse back to the value?

    The six-digit decimal is computed in float64 and compared with half the gap to the
    neighbouring float32s; values too close to a rounding boundary for float64 to be sure, and
    subnormal or huge ones, are decided exactly, one by one.
    """
    a = np.abs(flat.astype(np.float64))
    ok: np.ndarray = np.zeros(a.shape, bool)
    normal = (a >= 2.0**-126) & (a < 1e38)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        exponent = np.floor(np.log10(np.where(normal, a, 1.0))).astype(np.int64)
        digits = np.zeros_like(a)
        ok[a == 0] = True
        unsure = ~normal & (a != 0)
        for _ in range(3):  # settle the exponent: 100000 <= digits < 1000000
            scale = 10.0 ** np.abs(5 - exponent)
            scaled = np.where(exponent <= 5, a * scale, a / scale)
            digits = np.rint(scaled)
            low, high = digits < 1e5, digits >= 1e6
            exponent = exponent - low + high
            if not (low | high)[normal].any():
                break
        unsure |= normal & ((digits < 1e5) | (digits >= 1e6))
        unsure |= np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6  # a near-tie in the rounding
        scale = 10.0 ** np.abs(exponent - 5)
        decimal = np.where(exponent >= 5, digits * scale, digits / scale)
        single = np.abs(flat).astype(np.float32)
        above = np.nextafter(single, np.float32(np.inf)).astype(np.float64) - a
        below = a - np.nextafter(single, np.float32(0)).astype(np.float64)
        distance = decimal - a
        half_gap = np.where(distance > 0, above, below) / 2
        margin = 8 * np.spacing(a)
        unsure |= np.abs(np.abs(distance) - half_gap) <= margin
        ok = (np.abs(distance) < half_gap) | (a == 0)
    for i in np.flatnonzero(unsure).tolist():
        ok[i] = _g_round_trips_exactly(float(flat[i]), 4)
    return ok


def _float_specs(values: list[float], short: list[bool], digits: int) -> list[str]:
    """The printf spec of each value (few values: decided in Python)."""
    specs = []
    for v, ok in zip(values, short, strict=True):
        if not math.isfinite(v):
            specs.append(_NON_FINITE[str(v)])
        elif v == int(v) and (abs(v) < 1e6 or (not ok and abs(v) < 10.0**digits)):
            specs.append("%.1f")  # a whole number without an exponent gets ".0"
        else:
            specs.append("%g" if ok else f"%.{digits}g")
    return specs


def _float_tokens(flat: np.ndarray) -> list[str]:
    """Floats as TF Serving writes them: %g, or full precision when %g does not round-trip."""
    if not flat.size:
        return []
    digits = _FLOAT_DIGITS.get(flat.dtype.itemsize, 17)
    values = flat.tolist()
    if flat.dtype.itemsize == 8:
        short = [math.isfinite(v) and _g_round_trips_exactly(v, 8) for v in values]
        return (_SEP.join(_float_specs(values, short, digits)) % tuple(values)).split(_SEP)
    if flat.dtype.itemsize != 4:  # half precision: parse "%g" back as the same type
        back = np.array([f"{v:g}" for v in values], dtype=flat.dtype) == flat
        short = (np.isfinite(flat) & back).tolist()
        return (_SEP.join(_float_specs(values, short, digits)) % tuple(values)).split(_SEP)
    if flat.size < _SMALL:
        short = _g_round_trips_float32_one_by_one(values)
        return (_SEP.join(_float_specs(values, short, digits)) % tuple(values)).split(_SEP)
    finite = np.isfinite(flat)
    short_array = np.zeros(flat.shape, bool)
    short_array[finite] = _g_round_trips_float32(flat[finite])
    with np.errstate(invalid="ignore"):  # signalling NaNs, written as NaN below
        a = np.abs(flat.astype(np.float64))
    whole = finite & (a == np.floor(np.where(finite, a, 0)))
    # whole numbers written without an exponent get ".0": "%.1f" writes exactly that
    point = whole & ((a < 1e6) | (~short_array & (a < 10.0**digits)))
    specs = np.where(point, "%.1f", np.where(short_array, "%g", f"%.{digits}g")).tolist()
    if not finite.all():
        for i in np.flatnonzero(~finite).tolist():
            specs[i] = _NON_FINITE[str(values[i])]
    return (_SEP.join(specs) % tuple(values)).split(_SEP)


def _tokens(arr: np.ndarray, as_bytes: bool) -> list[str]:
    flat = arr.ravel()
    kind = arr.dtype.kind
    if kind == "f":
        return _float_tokens(flat)
    if kind in "iu":
        return list(map(str, flat.tolist()))
    if kind == "b":
        return ["true" if v else "false" for v in flat.tolist()]
    if kind in "OS":
        if as_bytes:
            return ['{"b64": "' + base64.b64encode(v).decode() + '"}' for v in flat.tolist()]
        if not flat.size:
            return []
        text = json.dumps([v.decode("utf-8", "replace") for v in flat], ensure_ascii=False)
        return ['"' + v + '"' for v in text[2:-2].split('", "')]  # an inner '"' is escaped
    raise invalid(f"Failed to write JSON value for tensor type: {dtype_name(array_dtype(arr))}")


def _nest(tokens: list[str], shape: tuple[int, ...]) -> str:
    if not shape:
        return tokens[0]
    if len(shape) == 1:
        return "[" + ", ".join(tokens) + "]"
    step = len(tokens) // shape[0] if shape[0] else 0
    parts = (_nest(tokens[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0]))
    return "[" + ", ".join(parts) + "]"


def _per_instance(tokens: list[str], shape: tuple[int, ...]) -> list[str]:
    """One JSON value per batch item of a tensor of `shape`."""
    inner = shape[1:]
    if not inner:
        return tokens
    step = math.prod(inner)
    if not step:
        return [_nest([], inner)] * shape[0]
    if len(inner) == 1:
        return ["[" + ", ".join(tokens[i : i + step]) + "]" for i in range(0, len(tokens), step)]
    return [_nest(tokens[i : i + step], inner) for i in range(0, len(tokens), step)]


def outputs_to_json(outputs: dict[str, np.ndarray], row_format: bool) -> str:
    """The predict answer: {"predictions": [...]} (row) or {"outputs": ...} (columnar)."""
    if not outputs:
        raise invalid("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if not row_format:
        tokens = {n: _tokens(outputs[n], n.endswith("_bytes")) for n in names}
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
    items = {
        n: _per_instance(_tokens(outputs[n], n.endswith("_bytes")), outputs[n].shape) for n in names
    }
    if len(names) == 1:
        return '{"predictions": [' + ", ".join(items[names[0]]) + "]}"
    template = "{" + ", ".join(json.dumps(n).replace("%", "%%") + ": %s" for n in names) + "}"
    rows = zip(*(items[n] for n in names), strict=True)
    return '{"predictions": [' + ", ".join([template % row for row in rows]) + "]}"


# --- gRPC TensorProto ----------------------------------------------------------------------


def proto_to_array(proto: tensor_pb2.TensorProto, alias: str) -> np.ndarray:
    """A request TensorProto (typed fields or tensor_content) as a numpy array."""
    try:
        return cast(np.ndarray, tf.make_ndarray(proto))
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
