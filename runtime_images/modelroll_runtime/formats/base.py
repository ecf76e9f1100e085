"""What the server needs from a loaded model, whatever its format or backend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]

# Output names follow MLServer's sklearn runtime, so its clients work unchanged.
PREDICT = "predict"
PREDICT_PROBA = "predict_proba"


class ModelFileError(Exception):
    """The model file is missing, ambiguous or unreadable."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]  # -1 marks a variable dimension


class Model(Protocol):
    backend: str  # "onnx" or "native"
    inputs: tuple[TensorSpec, ...]
    output_names: tuple[str, ...]
    default_outputs: tuple[str, ...]

    def load(self, model_file: Path) -> None: ...

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]: ...


class TabularModel:
    """Shared shape of the native tabular models: one 2-D float input, named outputs."""

    backend = "native"

    def __init__(self) -> None:
        self.inputs: tuple[TensorSpec, ...] = ()
        self.output_names: tuple[str, ...] = (PREDICT,)
        self.default_outputs: tuple[str, ...] = (PREDICT,)

    def _set_inputs(self, n_features: int | None) -> None:
        width = -1 if n_features is None else int(n_features)
        self.inputs = (TensorSpec("input-0", np.dtype(np.float64), (-1, width)),)

    @staticmethod
    def single_input(inputs: Mapping[str, Array]) -> Array:
        (x,) = inputs.values()
        return x
