"""What the server needs from a loaded model, and from a model format, whatever the backend.

numpy is imported only where arrays are made, never at import time: config.py reads the
format registry to check MODELROLL_MODEL_FORMAT, and the launcher that imports it (with
MODELROLL_WORKERS > 1) stays free of numpy and of every model library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeAlias, TypeVar

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Array: TypeAlias = "npt.NDArray[Any]"

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
    # (index, size) of each fixed dimension: what every request's tensor is checked against
    fixed: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fixed = tuple((i, d) for i, d in enumerate(self.shape) if d >= 0)
        object.__setattr__(self, "fixed", fixed)  # frozen: set once, here


class Model(Protocol):
    backend: str  # "onnx" or "native"
    inputs: tuple[TensorSpec, ...]
    output_names: tuple[str, ...]
    default_outputs: tuple[str, ...]

    def load(self, model_file: Path) -> None: ...

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]: ...


M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class ModelFormat(Generic[M]):
    """Everything the runtime knows about one model format; each format module declares one."""

    name: str  # the value of MODELROLL_MODEL_FORMAT (and spec.model.format)
    # Well-known file names, in order of preference. A directory that holds none of them but
    # exactly one file with one of their suffixes is accepted too.
    model_files: tuple[str, ...]
    model_class: type[M]  # loads the file natively, with the format's own library
    # ONNX graph (an onnx.ModelProto) from the loaded native model, its number of features
    # and the graph's input dtype ("float64" or "float32"), or None for a format that is
    # served as it is. Raises when it cannot convert.
    to_onnx: Callable[[M, int, str], Any] | None
    accepts_missing: bool  # NaN in a request means "missing value", not bad input
    runs_code: bool  # loading the file executes code (pickle): remote files need a sha256 pin
    # Input dtypes to try for the ONNX graph, in order; the first one that answers exactly
    # like the native model is served.
    onnx_input_dtypes: tuple[str, ...] = ("float32",)
    # What the model learned about its inputs, by feature index: split thresholds, scaler
    # statistics, feature ranges. The compiler probes around these values (see probe.py).
    notable_values: Callable[[M], dict[int, list[float]]] | None = None
    # V1 answers the classifier's probabilities, as KServe's xgbserver and lgbserver answer
    # booster.predict, instead of its labels, as sklearnserver answers model.predict
    v1_probabilities: bool = False

    def load(self, model_file: Path) -> M:
        """The native model (for a pickle format this runs the file's code: verify first)."""
        model = self.model_class()
        model.load(model_file)
        return model

    def find_model_file(self, path: Path) -> Path:
        """The one model file in `path` (a file is its own model file)."""
        if path.is_file():
            return path
        if not path.is_dir():
            raise ModelFileError(f"model path {path} does not exist")
        for name in self.model_files:
            candidate = path / name
            if candidate.is_file():
                return candidate
        suffixes = {Path(n).suffix for n in self.model_files}
        matches = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in suffixes)
        if len(matches) == 1:
            return matches[0]
        wanted = ", ".join(self.model_files)
        if not matches:
            raise ModelFileError(f"no {self.name} model file in {path} (looked for {wanted})")
        raise ModelFileError(
            f"{len(matches)} candidate {self.name} model files in {path}: "
            f"{', '.join(p.name for p in matches)}; name the one to serve {self.model_files[0]}"
        )


class TabularModel:
    """Shared shape of the native tabular models: one 2-D float input, named outputs."""

    backend = "native"

    def __init__(self) -> None:
        self.inputs: tuple[TensorSpec, ...] = ()
        self.output_names: tuple[str, ...] = (PREDICT,)
        self.default_outputs: tuple[str, ...] = (PREDICT,)

    def _set_inputs(self, n_features: int | None) -> None:
        import numpy as np

        width = -1 if n_features is None else int(n_features)
        self.inputs = (TensorSpec("input-0", np.dtype(np.float64), (-1, width)),)

    @staticmethod
    def single_input(inputs: Mapping[str, Array]) -> Array:
        (x,) = inputs.values()
        return x
