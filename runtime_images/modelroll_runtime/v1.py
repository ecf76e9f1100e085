"""KServe's V1 protocol (TF-Serving style): {"instances": [...]} -> {"predictions": [...]}."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from . import tensors
from .errors import bad_request
from .formats.base import Array, Model, TensorSpec
from .v2 import parse_json


def decode_request(body: bytes, model: Model, allow_missing: bool) -> tuple[dict[str, Array], int]:
    request = parse_json(body)
    if not isinstance(request, dict):
        raise bad_request("request body must be a JSON object")
    instances = request.get("instances", request.get("inputs"))
    if not isinstance(instances, list) or not instances:
        raise bad_request("'instances' must be a non-empty list")
    if len(model.inputs) != 1:
        return _columns(instances, model.inputs, allow_missing), len(instances)
    spec = model.inputs[0]
    if spec.dtype.kind == "O":  # text: one string per instance, as sklearnserver takes them
        array = tensors.strings("instances", instances, (len(instances),))
        return {spec.name: tensors.conform(spec, "instances", array, allow_missing)}, len(array)
    try:
        array = np.array(instances)
    except ValueError:
        raise bad_request("'instances' is ragged; every instance needs the same length") from None
    if array.dtype.kind not in "biuf":
        raise bad_request("'instances' must hold only numbers")
    return {spec.name: tensors.conform(spec, "instances", array, allow_missing)}, array.shape[0]


def _columns(
    instances: list[Any], specs: tuple[TensorSpec, ...], allow_missing: bool
) -> dict[str, Array]:
    """A model with one input per column (a DataFrame): instances as {column: value} records
    or as rows of values in the model's column order."""
    names = [spec.name for spec in specs]
    columns: list[list[Any]] = [[] for _ in specs]
    for instance in instances:
        if isinstance(instance, dict):
            missing = [n for n in names if n not in instance]
            if missing:
                raise bad_request(f"an instance lacks the column(s) {', '.join(missing)}")
            values = [instance[n] for n in names]
        elif isinstance(instance, list) and len(instance) == len(names):
            values = instance
        else:
            raise bad_request(
                f"each instance must be an object of the columns {', '.join(names)} or a list "
                f"of {len(names)} values in that order"
            )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    inputs = {}
    for spec, values in zip(specs, columns, strict=True):
        if spec.dtype.kind == "O":
            array = tensors.strings(spec.name, values, (len(values),))
        else:
            array = tensors.from_json_data(spec.name, "FP64", (len(values),), values)
        inputs[spec.name] = tensors.conform(spec, spec.name, array, allow_missing)
    return inputs


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
