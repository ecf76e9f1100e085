"""Open Inference Protocol messages over gRPC, to and from the REST path's request shape.

A ModelInferRequest is put in the shape of a parsed V2 JSON request (typed `contents` as
each input's "data", `raw_input_contents` as binary data that each input's
binary_data_size points into), so v2.decode_document checks both protocols with one code
and both answer the same numbers. Responses mirror the request, as KServe's do: raw
`raw_output_contents` for a request that sent raw inputs, typed `contents` otherwise (and raw
whenever an output is FP16, which has no typed field).

Only the runtime's gRPC server and its decoder child import this module: its messages are
registered in protobuf's default pool under the protocol's names (inference.*), where
tritonclient's own copies of them would clash in one process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf.message import DecodeError

from . import tensors, v2
from .errors import bad_request
from .formats.base import Array, Model
from .oip import grpc_predict_v2_pb2 as pb

# Each datatype's field in InferTensorContents.
CONTENTS_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_LENGTH_BYTES = 4  # BYTES elements in raw contents: a little-endian length, then the bytes


def parse(message: bytes) -> pb.ModelInferRequest:
    try:
        request: pb.ModelInferRequest = pb.ModelInferRequest.FromString(message)
    except DecodeError:
        raise bad_request("the message is not a valid inference.ModelInferRequest") from None
    return request


def decode_request(
    request: pb.ModelInferRequest, model: Model, allow_missing: bool
) -> v2.InferRequest:
    """The v2.InferRequest of a ModelInferRequest, or the RequestError (400) v2 raises."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise bad_request(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
            "it needs one per input, in order"
        )
    inputs: list[dict[str, Any]] = []
    for index, tensor in enumerate(request.inputs):
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        if raw:
            if tensor.HasField("contents"):
                raise bad_request(
                    f"input '{tensor.name}' has contents, and the request raw_input_contents; "
                    "send one or the other"
                )
            entry["parameters"] = {"binary_data_size": len(raw[index])}
        else:
            entry["data"] = _typed_values(tensor)
        inputs.append(entry)
    document: dict[str, Any] = {"inputs": inputs}
    if request.id:
        document["id"] = request.id
    if request.parameters:
        document["parameters"] = _parameters(request.parameters)
    if request.outputs:
        document["outputs"] = [{"name": output.name} for output in request.outputs]
    return v2.decode_document(document, b"".join(raw), model, allow_missing)


def _typed_values(tensor: pb.ModelInferRequest.InferInputTensor) -> list[Any]:
    """The values in the contents field of the tensor's datatype; the others must be empty."""
    name, datatype = tensor.name, tensor.datatype
    field = CONTENTS_FIELDS.get(datatype)
    if field is None:
        if datatype in tensors.DATATYPES:  # FP16: no typed field
            raise bad_request(f"input '{name}': {datatype} can only be sent in raw_input_contents")
        return []  # v2 refuses the datatype by name, as for REST
    contents = tensor.contents
    for descriptor, _ in contents.ListFields():
        if descriptor.name != field:
            raise bad_request(
                f"input '{name}': datatype {datatype} takes its values in contents.{field}, "
                f"not contents.{descriptor.name}"
            )
    values = list(getattr(contents, field))
    if datatype != "BYTES":
        return values
    try:
        return [value.decode() for value in values]
    except UnicodeDecodeError:
        raise bad_request(f"input '{name}': BYTES elements must be UTF-8 text") from None


def _parameters(parameters: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    plain: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        plain[key] = getattr(parameter, choice) if choice is not None else None
    return plain


def encode_response(
    model_name: str,
    model_version: str,
    request: v2.InferRequest,
    results: Mapping[str, Array],
    raw: bool,
) -> bytes:
    """The serialized ModelInferResponse: raw contents if `raw`, else typed ones."""
    outputs = v2.output_tensors(request, results)
    raw = raw or any(datatype not in CONTENTS_FIELDS for _, datatype, _ in outputs)
    response = pb.ModelInferResponse(
        model_name=model_name, model_version=model_version, id=request.id
    )
    for name, datatype, array in outputs:
        output = response.outputs.add(name=name, datatype=datatype, shape=array.shape)
        output.parameters["content_type"].string_param = "np"  # as the REST answer says
        if raw:
            response.raw_output_contents.append(_raw_bytes(datatype, array))
        elif datatype == "BYTES":
            output.contents.bytes_contents.extend(str(v).encode() for v in array.ravel().tolist())
        else:
            getattr(output.contents, CONTENTS_FIELDS[datatype]).extend(array.ravel().tolist())
    data: bytes = response.SerializeToString()
    return data


def _raw_bytes(datatype: str, array: Array) -> bytes:
    if datatype != "BYTES":
        return v2.little_endian(array)
    parts: list[bytes] = []
    for value in array.ravel().tolist():
        data = str(value).encode()
        parts += (len(data).to_bytes(_LENGTH_BYTES, "little"), data)
    return b"".join(parts)
