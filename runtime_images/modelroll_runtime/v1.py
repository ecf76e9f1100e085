"""KServe's V1 protocol (TF-Serving style): {"instances": [...]} -> {"predictions": [...]}."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from . import tensors
from .errors import bad_request
from .formats.base import PREDICT_PROBA, Array, Model, TensorSpec
from .v2 import parse_json


def decode_request(body: bytes, model: Model, allow_missing: bool) -> tuple[dict[str, Array], int]:
    request = parse_json(body)
    if not isinstance(request, dict):
        raise bad_request("request body must be a JSON object")
    instances = request.get("instances", request.get("inputs"))
    if not isinstance(instances, list) or not instances:
        raise bad_request("'instances' must be a non-empty list")
    if any(isinstance(instance, dict) for instance in instances):
        instances = _records(instances)
    if len(model.inputs) != 1:
        return _columns(instances, model.inputs, allow_missing), len(instances)
    spec = model.inputs[0]
    if isinstance(instances[0], dict):  # named columns, for a model fitted on a DataFrame
        instances = _rows_in_column_order(instances, getattr(model, "columns", ()))
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


def _records(instances: list[Any]) -> list[Any]:
    """Instances as one {column: value} record per row. KServe's V1 reads each instance
    with pandas.DataFrame(instance), so one instance may also be a whole frame: a
    {column: [values]} object, here split into its rows."""
    records: list[Any] = []
    for instance in instances:
        if not isinstance(instance, dict):
            records.append(instance)
            continue
        lists = [v for v in instance.values() if isinstance(v, list)]
        if not lists:
            records.append(instance)
            continue
        lengths = {len(v) for v in lists}
        if len(lists) != len(instance) or len(lengths) != 1:
            raise bad_request(
                "an instance of columns must give every column a list of the same length"
            )
        (length,) = lengths
        records.extend({k: v[i] for k, v in instance.items()} for i in range(length))
    if not records:
        raise bad_request("'instances' holds no rows")
    return records


def _rows_in_column_order(records: list[Any], columns: tuple[str, ...]) -> list[Any]:
    """{column: value} records as rows of values in the model's column order."""
    if not columns:
        raise bad_request(
            "the model was not fitted on named columns; send each instance as a list of values"
        )
    rows = []
    for record in records:
        if not isinstance(record, dict):
            raise bad_request("instances must be all objects of columns or all lists of values")
        missing = [c for c in columns if c not in record]
        unknown = [c for c in record if c not in columns]
        if missing or unknown:
            raise bad_request(
                f"the model's columns are {', '.join(columns)}; an instance has "
                f"{', '.join(map(str, record))}"
            )
        rows.append([record[c] for c in columns])
    return rows


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


def output_of(model: Model, probabilities: bool) -> str:
    """The output V1 answers: the probabilities where the format answers them (xgbserver's
    and lgbserver's booster.predict), else the model's predictions."""
    if probabilities and PREDICT_PROBA in model.output_names:
        return PREDICT_PROBA
    return model.default_outputs[0]


def encode_response(results: Mapping[str, Array], output: str) -> bytes:
    array = np.asarray(results[output])
    if array.ndim == 2 and array.shape[1] == 1:
        # KServe's sklearnserver answers model.predict(x).tolist(): [N] for one target,
        # where a compiled model answers [N, 1]
        array = array[:, 0]
    elif output == PREDICT_PROBA and array.ndim == 2 and array.shape[1] == 2:
        # a binary booster's predict is P(class 1) alone, [N]: what xgbserver and lgbserver
        # answer for binary:logistic and LightGBM's binary objective
        array = array[:, 1]
    if array.dtype.kind in "OSU":  # string labels; orjson serialises numeric arrays only
        return orjson.dumps({"predictions": array.astype(str).tolist()})
    return orjson.dumps(
        {"predictions": np.ascontiguousarray(tensors.for_json(array))},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
