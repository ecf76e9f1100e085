"""Open Inference Protocol V2 over REST: infer requests in, responses out.

Both JSON bodies and the binary tensor data extension (an Inference-Header-Content-Length
header, a JSON header, then raw little-endian tensor bytes) are read, as tritonclient sends
them by default. Response field order follows MLServer's, and output names follow its
sklearn runtime (predict, predict_proba), so MLServer clients decode our answers unchanged.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from . import tensors
from .errors import bad_request
from .formats.base import Array, Model, TensorSpec

BINARY_HEADER = "inference-header-content-length"
_OUTPUT_PARAMETERS = {"content_type": "np"}
# a random UUID's variant digit (RFC 4122: 10xx) from any hex digit
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}
_LOW_48_BITS = (1 << 48) - 1


class _RequestIds:
    """Version 4 UUID text, what MLServer answers a request without an id: the first 80 bits
    random per process, the last 48 a counter from a random start. Unique in the process
    by construction, and across processes with the odds of random UUIDs, for one string
    format per request (uuid.uuid4() took ~2.5 µs of a 1-row request's ~40, and drawing
    random bits per request is a system call)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        h = os.urandom(16).hex()
        self.prefix = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-"
        self.counter = itertools.count(int(h[20:], 16))


_IDS = _RequestIds()
os.register_at_fork(after_in_child=_IDS.reset)  # a forked worker draws its own prefix


def new_request_id() -> str:
    return f"{_IDS.prefix}{next(_IDS.counter) & _LOW_48_BITS:012x}"


# not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__,
# about six times this one's cost (timeit, 4.0 against 0.7 µs on the loaded 2-core machine)
@dataclass(slots=True)
class InferRequest:
    id: str
    inputs: dict[str, Array]
    rows: int
    outputs: tuple[str, ...]
    binary_outputs: frozenset[str]


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from None


def decode_request(
    body: bytes, binary_header_length: str | None, model: Model, allow_missing: bool
) -> InferRequest:
    raw_tail = b""
    if binary_header_length is not None:
        try:
            json_length = int(binary_header_length)
        except ValueError:
            raise bad_request("Inference-Header-Content-Length must be an integer") from None
        if not 0 < json_length <= len(body):
            raise bad_request(
                f"Inference-Header-Content-Length {json_length} is outside the body of "
                f"{len(body)} bytes"
            )
        raw_tail = body[json_length:]
        body = body[:json_length]
    return decode_document(parse_json(body), raw_tail, model, allow_missing)


def decode_document(
    request: Any, raw_tail: bytes, model: Model, allow_missing: bool
) -> InferRequest:
    """A V2 request as parsed JSON, with the binary data its inputs' binary_data_size point
    into: the REST body's tail, or the gRPC request's raw_input_contents (grpc_codec.py puts
    a gRPC request in this shape, so both protocols are checked by this one code)."""
    if not isinstance(request, dict):
        raise bad_request("request body must be a JSON object")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise bad_request("'id' must be a string")
    raw_inputs = request.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise bad_request("'inputs' must be a non-empty list of tensors")
    specs = model.inputs
    parameters = request.get("parameters")
    pandas = isinstance(parameters, dict) and parameters.get("content_type") == "pd"
    if pandas and len(raw_inputs) > 1 and len(specs) == 1 and len(specs[0].shape) == 2:
        # MLServer's PandasCodec on a one-matrix model: one input per column, stacked
        inputs, offset = _columns_as_matrix(raw_inputs, raw_tail, model, allow_missing)
    else:
        inputs, offset = _tensors(raw_inputs, raw_tail, specs, allow_missing)
    if offset != len(raw_tail):
        raise bad_request(f"{len(raw_tail) - offset} bytes of binary data belong to no input")
    rows = {a.shape[0] for a in inputs.values()} if len(inputs) > 1 else None
    if rows is not None and len(rows) != 1:
        raise bad_request("all inputs must have the same batch size (first dimension)")
    outputs, binary_outputs = _requested_outputs(request, model)
    return InferRequest(
        request_id if request_id is not None else new_request_id(),
        inputs,
        rows.pop() if rows is not None else next(iter(inputs.values())).shape[0],
        outputs,
        binary_outputs,
    )


def _tensors(
    raw_inputs: list[Any], raw_tail: bytes, specs: tuple[TensorSpec, ...], allow_missing: bool
) -> tuple[dict[str, Array], int]:
    """Each input as the model's input of its name (or its only one); the binary bytes read."""
    if len(raw_inputs) != len(specs):
        raise bad_request(
            f"the model takes {len(specs)} input(s), the request has {len(raw_inputs)}"
        )
    by_name = {spec.name: spec for spec in specs} if len(specs) > 1 else {}
    inputs: dict[str, Array] = {}
    offset = 0
    for raw in raw_inputs:
        name, array, offset = read_tensor(raw, raw_tail, offset)
        spec = specs[0] if len(specs) == 1 else by_name.get(name)
        if spec is None:
            raise bad_request(
                f"unknown input '{name}'; the model's inputs are {', '.join(by_name)}"
            )
        if spec.name in inputs:
            raise bad_request(f"input '{name}' is given twice")
        inputs[spec.name] = tensors.conform(spec, name, array, allow_missing)
    return inputs, offset


def _columns_as_matrix(
    raw_inputs: list[Any], raw_tail: bytes, model: Model, allow_missing: bool
) -> tuple[dict[str, Array], int]:
    """Numeric columns ([N] or [N, 1] each) as the model's one [N, columns] matrix: in the
    model's column order where it knows its columns' names, else in the request's order."""
    (spec,) = model.inputs
    known: tuple[str, ...] = getattr(model, "columns", ())
    columns: dict[str, Array] = {}
    offset = 0
    for raw in raw_inputs:
        name, array, offset = read_tensor(raw, raw_tail, offset)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise bad_request(f"input '{name}': a column must be [N] or [N, 1]")
        if name in columns:
            raise bad_request(f"input '{name}' is given twice")
        columns[name] = array
    if known:
        missing = [c for c in known if c not in columns]
        if missing or len(columns) != len(known):
            raise bad_request(
                f"the model's columns are {', '.join(known)}; the request has {', '.join(columns)}"
            )
        columns = {c: columns[c] for c in known}
    if len({a.shape[0] for a in columns.values()}) != 1:
        raise bad_request("all inputs must have the same batch size (first dimension)")
    if any(a.dtype.kind == "O" for a in columns.values()):
        raise bad_request("the model takes numbers; a BYTES column was given")
    matrix = np.column_stack(list(columns.values()))
    return {spec.name: tensors.conform(spec, "inputs", matrix, allow_missing)}, offset


def read_tensor(raw: Any, raw_tail: bytes, offset: int) -> tuple[str, Array, int]:
    """One tensor of a request (or of a response: the sidecar reads those): its name, its
    values as sent, and the binary bytes read so far."""
    if not isinstance(raw, dict):
        raise bad_request("each input must be a JSON object")
    name = raw.get("name")
    if not isinstance(name, str):
        raise bad_request("each input needs a 'name' string")
    shape = tensors.check_shape(name, raw.get("shape"))
    dtype = tensors.check_datatype(name, raw.get("datatype"))
    parameters = raw.get("parameters")
    binary_size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if binary_size is not None:
        if type(binary_size) is not int or binary_size < 0:
            raise bad_request(f"input '{name}': binary_data_size must be an integer >= 0")
        if offset + binary_size > len(raw_tail):
            raise bad_request(f"input '{name}': binary data runs past the end of the body")
        array = tensors.from_binary(name, dtype, shape, raw_tail[offset : offset + binary_size])
        return name, array, offset + binary_size
    if "data" in raw:
        return name, tensors.from_json_data(name, raw["datatype"], shape, raw["data"]), offset
    raise bad_request(f"input '{name}' has neither 'data' nor binary_data_size")


def _requested_outputs(
    request: Mapping[str, Any], model: Model
) -> tuple[tuple[str, ...], frozenset[str]]:
    parameters = request.get("parameters")
    all_binary = isinstance(parameters, dict) and parameters.get("binary_data_output") is True
    raw_outputs = request.get("outputs")
    if raw_outputs is None:
        names = model.default_outputs
        return names, frozenset(names) if all_binary else frozenset()
    if not isinstance(raw_outputs, list):
        raise bad_request("'outputs' must be a list")
    names_list: list[str] = []
    binary: set[str] = set()
    for raw in raw_outputs:
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str):
            raise bad_request("each requested output needs a 'name' string")
        if name not in model.output_names:
            raise bad_request(
                f"unknown output '{name}'; the model's outputs are {', '.join(model.output_names)}"
            )
        names_list.append(name)
        output_parameters = raw.get("parameters")
        if all_binary or (
            isinstance(output_parameters, dict) and output_parameters.get("binary_data") is True
        ):
            binary.add(name)
    if not names_list:
        return model.default_outputs, frozenset()
    return tuple(dict.fromkeys(names_list)), frozenset(binary)


def output_tensors(
    request: InferRequest, results: Mapping[str, Array]
) -> list[tuple[str, str, Array]]:
    """The requested outputs as the response gives them: name, datatype and array."""
    answer: list[tuple[str, str, Array]] = []
    for name in request.outputs:
        array = np.asarray(results[name])
        if array.ndim == 1:  # MLServer's NumpyCodec: [N] is reported as [N, 1]
            array = array.reshape(-1, 1)
        answer.append((name, tensors.datatype_of(array.dtype), array))
    return answer


def encode_response(
    model_name: str, model_version: str, request: InferRequest, results: Mapping[str, Array]
) -> tuple[bytes, int | None]:
    """The body, and the JSON header's length when binary outputs follow it."""
    outputs: list[dict[str, Any]] = []
    raw_parts: list[bytes] = []
    for name, datatype, array in output_tensors(request, results):
        entry: dict[str, Any] = {
            "name": name,
            "shape": list(array.shape),
            "datatype": datatype,
            "parameters": _OUTPUT_PARAMETERS,
        }
        if name in request.binary_outputs and datatype != "BYTES":
            data = little_endian(array)
            entry["parameters"] = {**_OUTPUT_PARAMETERS, "binary_data_size": len(data)}
            raw_parts.append(data)
        elif datatype == "BYTES":
            entry["data"] = [str(v) for v in array.ravel().tolist()]
        else:
            entry["data"] = tensors.for_json(array).ravel()  # ravel: C-contiguous, as orjson needs
        outputs.append(entry)
    document = {
        "model_name": model_name,
        "model_version": model_version,
        "id": request.id,
        "outputs": outputs,
    }
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not raw_parts:
        return header, None
    return b"".join([header, *raw_parts]), len(header)


def little_endian(array: Array) -> bytes:
    """A numeric tensor's elements as the binary extension (and gRPC's raw contents) lay
    them out: row-major, little-endian, no padding."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
