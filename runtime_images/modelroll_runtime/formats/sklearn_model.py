"""scikit-learn estimators saved with joblib or pickle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import PREDICT, PREDICT_PROBA, Array, ModelFileError, TabularModel


class SklearnModel(TabularModel):
    def __init__(self) -> None:
        super().__init__()
        self.estimator: Any = None

    def load(self, model_file: Path) -> None:
        import joblib

        # joblib reads both joblib dumps and plain pickles. Both execute code: callers
        # verify the sha256 pin before they get here.
        self.estimator = joblib.load(model_file)
        if not hasattr(self.estimator, "predict"):
            raise ModelFileError(f"{model_file.name} holds no estimator with predict()")
        self._set_inputs(getattr(self.estimator, "n_features_in_", None))
        if hasattr(self.estimator, "predict_proba"):
            self.output_names = (PREDICT, PREDICT_PROBA)

    @property
    def is_classifier(self) -> bool:
        return PREDICT_PROBA in self.output_names

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        x = self.single_input(inputs)
        result: dict[str, Array] = {}
        for name in outputs:
            if name == PREDICT:
                result[name] = self.estimator.predict(x)
            elif name == PREDICT_PROBA:
                result[name] = self.estimator.predict_proba(x)
        return result
