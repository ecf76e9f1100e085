"""The predictions in a V2 or V1 answer of the server the metrics sidecar fronts, for the
drift telemetry's prediction counters (telemetry.py): the output the reference profile bins
(`predict` unless the profile says otherwise; a server's only output otherwise), one value
per row.

An answer these do not understand counts nothing: the sidecar passes every answer through
unchanged, and telemetry must never fail or alter one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from . import v2
from .errors import RequestError
from .formats.base import Array


def v2_predictions(body: bytes, binary_header: str | None, output: str) -> Array | None:
    """The rows of `output` in a V2 infer answer (JSON, or the binary tensor extension's
    JSON header and raw bytes), or None."""
    tail = b""
    if binary_header is not None:
        if not binary_header.isdigit() or not 0 < int(binary_header) <= len(body):
            return None
        body, tail = body[: int(binary_header)], body[int(binary_header) :]
    document = _json(body)
    outputs = document.get("outputs") if isinstance(document, dict) else None
    if not isinstance(outputs, list) or not outputs:
        return None
    offset = 0
    for i, raw in enumerate(outputs):
        try:
            name, array, offset = v2.read_tensor(raw, tail, offset)
        except (RequestError, ValueError, TypeError):
            return None
        if name == output or (len(outputs) == 1 and i == 0):
            return _rows(array)
    return None


def v1_predictions(body: bytes) -> Array | None:
    """The rows of a V1 `{"predictions": [...]}` answer: one value each, or a list per row
    (its first value, as the runtime counts a [N, k] output), or None."""
    document = _json(body)
    predictions = document.get("predictions") if isinstance(document, dict) else None
    if not isinstance(predictions, list) or not predictions:
        return None
    try:
        array = np.asarray(predictions)
    except ValueError:  # ragged rows
        return None
    if array.dtype.kind == "O":  # objects per row: not a prediction the profile bins
        return None
    return _rows(array)


def _rows(array: Array) -> Array | None:
    if array.ndim == 0 or array.shape[0] == 0:
        return None
    flat: Array = array.reshape(array.shape[0], -1)[:, 0]
    return flat


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
