"""Typed tensors of the Open Inference Protocol: datatype names, decoding to numpy, encoding."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import bad_request
from .formats.base import Array, TensorSpec

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_BY_DTYPE = {dtype: name for name, dtype in DATATYPES.items()}
_INTEGER_TYPES = frozenset(n for n, d in DATATYPES.items() if d.kind in "biu")
MAX_DIMS = 8


def datatype_of(dtype: np.dtype[Any]) -> str:
    return _BY_DTYPE.get(dtype, "BYTES")


def for_json(array: Array) -> Array:
    """A float32 or float16 array as the float64 values it holds: what the peers' JSON
    (numpy's tolist()) gives, 0.9531188011169434 and not the shortest float32 text 0.9531188,
    so a client reading JSON numbers as doubles gets the native model's values exactly."""
    if array.dtype.kind == "f" and array.dtype.itemsize < 8:
        return array.astype(np.float64)
    return array


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, list) or not shape or len(shape) > MAX_DIMS:
        raise bad_request(f"input '{name}': 'shape' must be a list of 1 to {MAX_DIMS} integers")
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise bad_request(f"input '{name}': shape {shape} must hold non-negative integers")
    return tuple(shape)


def check_datatype(name: str, datatype: Any) -> np.dtype[Any]:
    if datatype == "BYTES":  # strings, as Python objects; conform() checks the model takes them
        return np.dtype(object)
    dtype = DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise bad_request(
            f"input '{name}': unknown datatype {datatype!r}; expected one of "
            + ", ".join(DATATYPES)
        )
    return dtype


def from_json_data(name: str, datatype: str, shape: tuple[int, ...], data: Any) -> Array:
    if not isinstance(data, list):
        raise bad_request(f"input '{name}': 'data' must be a list")
    if datatype == "BYTES":
        return strings(name, data, shape)
    try:
        array = np.array(data)
    except ValueError:
        raise bad_request(f"input '{name}': 'data' is ragged; nested lists must be even") from None
    if array.dtype.kind not in "biuf":
        raise bad_request(f"input '{name}': 'data' must hold only numbers for {datatype}")
    if datatype in _INTEGER_TYPES and array.dtype.kind == "f":
        raise bad_request(f"input '{name}': datatype {datatype} but 'data' holds non-integers")
    if array.size != math.prod(shape):
        raise bad_request(
            f"input '{name}': shape {list(shape)} needs {math.prod(shape)} values, "
            f"'data' has {array.size}"
        )
    declared = DATATYPES[datatype]
    if declared.kind == "f" and array.dtype != declared:
        # JSON numbers are read as float64; the values are what the declared datatype holds,
        # as with binary data (1e39 as FP32 is infinity, refused unless NaN means missing)
        with np.errstate(over="ignore"):
            array = array.astype(declared)
    return array.reshape(shape)


def strings(name: str, data: list[Any], shape: tuple[int, ...]) -> Array:
    """BYTES 'data' (nested lists of strings) as an object array of str."""
    try:
        array = np.array(data, dtype=object)
    except ValueError:
        raise bad_request(f"input '{name}': 'data' is ragged; nested lists must be even") from None
    if not all(type(v) is str for v in array.flat):
        raise bad_request(f"input '{name}': 'data' must hold only strings for BYTES")
    if array.size != math.prod(shape):
        raise bad_request(
            f"input '{name}': shape {list(shape)} needs {math.prod(shape)} values, "
            f"'data' has {array.size}"
        )
    return array.reshape(shape)


def strings_from_binary(name: str, shape: tuple[int, ...], raw: bytes) -> Array:
    """BYTES in the binary tensor data extension: each element a 4-byte little-endian length,
    then that many bytes (UTF-8 text for the models that take strings)."""
    values: list[str] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise bad_request(f"input '{name}': BYTES data ends inside an element's length")
        size = int.from_bytes(raw[offset : offset + 4], "little")
        offset += 4
        if offset + size > len(raw):
            raise bad_request(f"input '{name}': BYTES element runs past its binary data")
        try:
            values.append(raw[offset : offset + size].decode())
        except UnicodeDecodeError:
            raise bad_request(f"input '{name}': BYTES elements must be UTF-8 text") from None
        offset += size
    if len(values) != math.prod(shape):
        raise bad_request(
            f"input '{name}': shape {list(shape)} needs {math.prod(shape)} values, "
            f"the binary data has {len(values)}"
        )
    return np.array(values, dtype=object).reshape(shape)


def from_binary(name: str, dtype: np.dtype[Any], shape: tuple[int, ...], raw: bytes) -> Array:
    if dtype.kind == "O":
        return strings_from_binary(name, shape, raw)
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise bad_request(
            f"input '{name}': binary data holds {len(raw)} bytes; shape {list(shape)} of "
            f"{datatype_of(dtype)} needs {expected}"
        )
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(shape)


def conform(spec: TensorSpec, name: str, array: Array, allow_missing: bool) -> Array:
    """Check the tensor against the model's input and cast it to the model's dtype."""
    if len(spec.shape) == 1 and array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]  # a column sent as [N, 1], as MLServer's codecs may send it
    if (spec.dtype.kind == "O") != (array.dtype.kind == "O"):
        wanted = "strings (BYTES)" if spec.dtype.kind == "O" else "numbers"
        raise bad_request(f"input '{name}': the model takes {wanted} here")
    if len(spec.shape) != array.ndim:
        raise bad_request(
            f"input '{name}': expected {len(spec.shape)}-D shape {_show(spec.shape)}, "
            f"got {list(array.shape)}"
        )
    # every fixed dimension, the batch one too: an ONNX model may fix it, and onnxruntime
    # would refuse the tensor with an error that is not the client's to read
    shape = array.shape
    for index, size in spec.fixed:
        if shape[index] != size:
            raise bad_request(
                f"input '{name}': expected shape {_show(spec.shape)}, got {list(shape)}"
            )
    if shape[0] == 0:
        raise bad_request(f"input '{name}': the batch is empty (shape {list(shape)})")
    converted = array.astype(spec.dtype, copy=False)
    # tree boosters read NaN as "missing"; for every other model it is an input error
    if converted.dtype.kind == "f" and not allow_missing and not _finite(converted):
        raise bad_request(f"input '{name}': values must be finite (no NaN or infinity)")
    return converted


# Up to this many elements the finiteness check is a dot product (one C call, about half
# the cost of a ufunc reduce on a 1-row request, measured); above, the reduce, which never
# hands the array to a BLAS that may start threads for a long vector.
_DOT_CHECK_AT_MOST = 4096


def _finite(array: Array) -> bool:
    """No NaN or infinity in a float array. A finite x·x (or sum) says so in one C call
    (np.isfinite then .all() is a ufunc, an array and a Python-level reduce); one that is not
    finite may still be an overflow of finite values, so that case is checked element by
    element."""
    if array.size <= _DOT_CHECK_AT_MOST:
        flat = array.ravel()
        if math.isfinite(flat.dot(flat)):
            return True
    elif math.isfinite(np.add.reduce(array, axis=None)):
        return True
    return bool(np.isfinite(array).all())


def _show(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join("-1" if d < 0 else str(d) for d in shape) + "]"
