"""One small class per model format. Each knows its well-known file names and imports its
library only when it loads, so the server process never pays for formats it does not serve."""

from __future__ import annotations

from pathlib import Path

from .base import Model, ModelFileError

# Well-known file names per format, in order of preference. A directory that holds none of
# these but exactly one file with a matching suffix is accepted too.
MODEL_FILES: dict[str, tuple[str, ...]] = {
    "sklearn": ("model.joblib", "model.pkl", "model.pickle"),
    "xgboost": ("model.json", "model.ubj", "model.bst"),
    "lightgbm": ("model.txt", "model.lgb"),
    "onnx": ("model.onnx",),
}
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


def find_model_file(model_format: str, path: Path) -> Path:
    """The one model file in `path` (a file is its own model file)."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise ModelFileError(f"model path {path} does not exist")
    for name in MODEL_FILES[model_format]:
        candidate = path / name
        if candidate.is_file():
            return candidate
    suffixes = {Path(n).suffix for n in MODEL_FILES[model_format]}
    matches = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in suffixes)
    if len(matches) == 1:
        return matches[0]
    wanted = ", ".join(MODEL_FILES[model_format])
    if not matches:
        raise ModelFileError(f"no {model_format} model file in {path} (looked for {wanted})")
    raise ModelFileError(
        f"{len(matches)} candidate {model_format} model files in {path}: "
        f"{', '.join(p.name for p in matches)}; name the one to serve {wanted.split(',')[0]}"
    )


def is_pickle(model_file: Path) -> bool:
    return model_file.suffix in PICKLE_SUFFIXES


def load_native(model_format: str, model_file: Path) -> Model:
    """Load the model with its own library (this unpickles sklearn models: verify first)."""
    model: Model
    if model_format == "sklearn":
        from .sklearn_model import SklearnModel

        model = SklearnModel()
    elif model_format == "xgboost":
        from .xgboost_model import XGBoostModel

        model = XGBoostModel()
    elif model_format == "lightgbm":
        from .lightgbm_model import LightGBMModel

        model = LightGBMModel()
    elif model_format == "onnx":
        from .onnx_model import OnnxModel

        model = OnnxModel()
    else:
        raise ModelFileError(f"unknown model format {model_format!r}")
    model.load(model_file)
    return model


__all__ = ["MODEL_FILES", "Model", "ModelFileError", "find_model_file", "is_pickle", "load_native"]
