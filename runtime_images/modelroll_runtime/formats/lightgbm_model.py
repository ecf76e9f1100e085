"""LightGBM boosters saved in LightGBM's text format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import PREDICT, PREDICT_PROBA, Array, ModelFormat, TabularModel


class LightGBMModel(TabularModel):
    def __init__(self) -> None:
        super().__init__()
        self.booster: Any = None
        self.objective = ""

    def load(self, model_file: Path) -> None:
        import lightgbm

        self.booster = lightgbm.Booster(model_file=str(model_file))
        self.objective = str(self.booster.params.get("objective", "")) or _objective(model_file)
        self._set_inputs(self.booster.num_feature())
        if self.is_classifier:
            self.output_names = (PREDICT, PREDICT_PROBA)

    @property
    def is_classifier(self) -> bool:
        return self.objective.split()[0] in ("binary", "multiclass", "multiclassova")

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        import numpy as np

        x = self.single_input(inputs)
        raw = np.asarray(self.booster.predict(x, num_threads=1))
        if not self.is_classifier:
            return {PREDICT: raw}
        proba = np.stack([1.0 - raw, raw], axis=1) if raw.ndim == 1 else raw
        result: dict[str, Array] = {PREDICT: proba.argmax(axis=1).astype(np.int64)}
        if PREDICT_PROBA in outputs:
            result[PREDICT_PROBA] = proba
        return result


def _objective(model_file: Path) -> str:
    with model_file.open() as lines:
        for line in lines:
            if line.startswith("objective="):
                return line.split("=", 1)[1].strip()
    return ""


def to_onnx(model: LightGBMModel, n_features: int, dtype: str) -> Any:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    # onnxmltools builds float32 trees and outputs for LightGBM, which computes in float64:
    # the compiler's check decides whether that is exact for this model (rarely)
    initial_types = [("input", FloatTensorType([None, n_features]))]
    return onnxmltools.convert_lightgbm(model.booster, initial_types=initial_types, zipmap=False)


def notable_values(model: LightGBMModel) -> dict[int, list[float]]:
    """Every split threshold, and the range LightGBM recorded for each feature."""
    dump = model.booster.dump_model()
    found: dict[int, list[float]] = {}
    for j, info in enumerate(dump.get("feature_infos", {}).values()):
        for key in ("min_value", "max_value"):
            if isinstance(info, dict) and isinstance(info.get(key), int | float):
                found.setdefault(j, []).append(float(info[key]))
    stack = [tree["tree_structure"] for tree in dump.get("tree_info", ())]
    while stack:
        node = stack.pop()
        threshold = node.get("threshold")
        if "split_feature" in node and isinstance(threshold, int | float):
            found.setdefault(int(node["split_feature"]), []).append(float(threshold))
        stack.extend(node[side] for side in ("left_child", "right_child") if side in node)
    return found


FORMAT = ModelFormat(
    name="lightgbm",
    # model.bst is the name KServe's lgbserver and MLServer's LightGBM runtime look for
    model_files=("model.txt", "model.bst", "model.lgb"),
    model_class=LightGBMModel,
    to_onnx=to_onnx,
    accepts_missing=True,  # NaN means "missing" to boosters
    runs_code=False,
    notable_values=notable_values,
    v1_probabilities=True,
)
