"""LightGBM boosters saved in LightGBM's text format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import PREDICT, PREDICT_PROBA, Array, TabularModel


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
