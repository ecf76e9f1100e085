"""KServe's V1 protocol (TF-Serving style): {"instances": [...]} -> {"predictions": [...]}."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import orjson

from . import tensors
from .errors import bad_request
from .formats.base import Array, Model
from .v2 import parse_json


def decode_request(body: bytes, model: Model, allow_missing: bool) -> tuple[dict[str, Array], int]:
    request = parse_json(body)
    if not isinstance(request, dict):
        raise bad_request("request body must be a JSON object")
    instances = request.get("instances", request.get("inputs"))
    if not isinstance(instances, list) or not instances:
        raise bad_request("'instances' must be a non-empty list")
    if len(model.inputs) != 1:
        raise bad_request("V1 :predict serves single-input models only; use the V2 protocol")
    try:
        array = np.array(instances)
    except ValueError:
        raise bad_request("'instances' is ragged; every instance needs the same length") from None
    if array.dtype.kind not in "biuf":
        raise bad_request("'instances' must hold only numbers")
    spec = model.inputs[0]
    return {spec.name: tensors.conform(spec, "instances", array, allow_missing)}, array.shape[0]


def encode_response(results: Mapping[str, Array], output: str) -> bytes:
    array = np.asarray(results[output])
    if array.ndim == 2 and array.shape[1] == 1:
        # KServe's sklearnserver answers model.predict(x).tolist(): [N] for one target,
        # where a compiled model answers [N, 1]
        array = array[:, 0]
    if array.dtype.kind in "OSU":  # string labels; orjson serialises numeric arrays only
        return orjson.dumps({"predictions": array.astype(str).tolist()})
    return orjson.dumps(
        {"predictions": np.ascontiguousarray(array)}, option=orjson.OPT_SERIALIZE_NUMPY
    )
