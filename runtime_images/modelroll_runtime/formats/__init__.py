"""The format registry: one module per model format, each declaring its `FORMAT`.

A format module knows its well-known file names, how to load the file with its own library
(imported only then, so the server process never pays for formats it does not serve), how
to convert the loaded model to ONNX, and whether NaN is a valid input. Everything else in
the runtime reads it from here. Adding a format is writing its module and listing it below.
"""

from __future__ import annotations

from typing import Any

from . import lightgbm_model, onnx_model, sklearn_model, xgboost_model
from .base import Model, ModelFileError, ModelFormat

_DECLARED: tuple[ModelFormat[Any], ...] = (
    sklearn_model.FORMAT,
    xgboost_model.FORMAT,
    lightgbm_model.FORMAT,
    onnx_model.FORMAT,
)
# By name, in the order above (messages list them so).
FORMATS: dict[str, ModelFormat[Any]] = {f.name: f for f in _DECLARED}

__all__ = ["FORMATS", "Model", "ModelFileError", "ModelFormat"]
