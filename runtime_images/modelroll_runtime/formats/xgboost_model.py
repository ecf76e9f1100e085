"""XGBoost boosters saved as JSON or UBJSON (or the legacy binary format)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import PREDICT, PREDICT_PROBA, Array, ModelFormat, TabularModel


class XGBoostModel(TabularModel):
    def __init__(self) -> None:
        super().__init__()
        self.booster: Any = None
        self.objective = ""

    def load(self, model_file: Path) -> None:
        import xgboost

        self.booster = xgboost.Booster(model_file=str(model_file))
        self.booster.set_param({"nthread": 1})
        config = json.loads(self.booster.save_config())
        self.objective = config["learner"]["objective"]["name"]
        self._set_inputs(self.booster.num_features())
        if self.is_classifier:
            self.output_names = (PREDICT, PREDICT_PROBA)

    @property
    def is_classifier(self) -> bool:
        return self.objective.startswith(("binary:", "multi:"))

    def probabilities(self, x: Array) -> Array:
        import numpy as np
        import xgboost

        raw = self.booster.predict(xgboost.DMatrix(x))
        if raw.ndim == 1:  # binary: P(class 1) only
            return np.stack([1.0 - raw, raw], axis=1)
        return np.asarray(raw)

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        import numpy as np
        import xgboost

        x = self.single_input(inputs)
        if not self.is_classifier:
            return {PREDICT: self.booster.predict(xgboost.DMatrix(x))}
        proba = self.probabilities(x)
        result: dict[str, Array] = {PREDICT: proba.argmax(axis=1).astype(np.int64)}
        if PREDICT_PROBA in outputs:
            result[PREDICT_PROBA] = proba
        return result


def to_onnx(model: XGBoostModel, n_features: int, dtype: str) -> Any:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    # XGBoost reads its inputs as float32 itself; its ONNX trees are float32 graphs only
    initial_types = [("input", FloatTensorType([None, n_features]))]
    return onnxmltools.convert_xgboost(model.booster, initial_types=initial_types)


def notable_values(model: XGBoostModel) -> dict[int, list[float]]:
    """Every split threshold, by feature."""
    names = list(model.booster.feature_names or [])
    index = {name: j for j, name in enumerate(names)}
    found: dict[int, list[float]] = {}
    stack = [json.loads(tree) for tree in model.booster.get_dump(dump_format="json")]
    while stack:
        node = stack.pop()
        if "split" in node:
            split = str(node["split"])
            j = index.get(split)
            if j is None and split[:1] == "f" and split[1:].isdigit():
                j = int(split[1:])
            if j is not None:
                found.setdefault(j, []).append(float(node["split_condition"]))
        stack.extend(node.get("children", ()))
    return found


FORMAT = ModelFormat(
    name="xgboost",
    model_files=("model.json", "model.ubj", "model.bst"),
    model_class=XGBoostModel,
    to_onnx=to_onnx,
    accepts_missing=True,  # NaN means "missing" to boosters
    runs_code=False,
    notable_values=notable_values,
    v1_probabilities=True,
)
