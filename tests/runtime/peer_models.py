"""The models the peer-compatibility suite serves with KServe, MLServer and us: one folder per
model holding one file under the name all three servers find (model.joblib for
scikit-learn, model.json for XGBoost, model.bst for LightGBM), plus the rows sent to it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .fidelity_models import large_features, target
from .models import iris

FILES = {"sklearn": "model.joblib", "xgboost": "model.json", "lightgbm": "model.bst"}
SPECIES = np.array(["setosa", "versicolor", "virginica"])
TEXTS = ["a good film", "a bad film", "good acting, good story", "bad acting and a dull story",
         "what a great day", "a terrible, dull day", "great fun", "terrible and bad"]  # fmt: skip
TEXT_LABELS = ["pos", "neg", "pos", "neg", "pos", "neg", "pos", "neg"]
IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass(frozen=True)
class PeerModel:
    name: str  # the model's name on every server
    model_format: str
    # "classifier", "regressor", "text" (one string per row) or "frame" (named columns)
    kind: str
    rows: Any  # what is sent: a float matrix, a list of strings, or a DataFrame
    directory: Path

    @property
    def file(self) -> Path:
        return self.directory / FILES[self.model_format]


def _save(directory: Path, model_format: str, model: Any) -> None:
    directory.mkdir(parents=True)
    if model_format == "sklearn":
        import joblib

        joblib.dump(model, directory / FILES["sklearn"])
    else:
        model.save_model(str(directory / FILES[model_format]))


def _iris_rows() -> np.ndarray:
    x, _ = iris()
    return x[::15]


def _epoch_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epoch seconds, amounts to 1e9, ids: where float32 would answer wrong."""
    x = large_features(500, 1)
    return x, target(x, 3), large_features(8, 2)


def build_iris(directory: Path) -> PeerModel:
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    _save(directory, "sklearn", LogisticRegression(max_iter=1000).fit(x, y))
    return PeerModel(directory.name, "sklearn", "classifier", _iris_rows(), directory)


def build_species(directory: Path) -> PeerModel:
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    _save(directory, "sklearn", LogisticRegression(max_iter=1000).fit(x, SPECIES[y]))
    return PeerModel(directory.name, "sklearn", "classifier", _iris_rows(), directory)


def build_linear(directory: Path) -> PeerModel:
    from sklearn.linear_model import LinearRegression

    x, y, rows = _epoch_data()
    _save(directory, "sklearn", LinearRegression().fit(x, y))
    return PeerModel(directory.name, "sklearn", "regressor", rows, directory)


def build_text(directory: Path) -> PeerModel:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TEXTS, TEXT_LABELS)
    _save(directory, "sklearn", model)
    rows = ["a good story", "dull and terrible", "great acting"]
    return PeerModel(directory.name, "sklearn", "text", rows, directory)


def build_frame(directory: Path) -> PeerModel:
    """A LogisticRegression fitted on a DataFrame: it knows its columns' names."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    frame = pd.DataFrame(x, columns=IRIS_COLUMNS)
    _save(directory, "sklearn", LogisticRegression(max_iter=1000).fit(frame, y))
    rows = pd.DataFrame(_iris_rows(), columns=IRIS_COLUMNS)
    return PeerModel(directory.name, "sklearn", "frame", rows, directory)


def build_mixed(directory: Path) -> PeerModel:
    """A ColumnTransformer pipeline on string and numeric columns: one input per column."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({
        "city": rng.choice(["paris", "oslo", "lima"], n).astype(object),
        "age": rng.integers(18, 80, n).astype(float),
        "spend": rng.uniform(0, 1e4, n).round(2),
    })  # fmt: skip
    y = ((frame["spend"] > 5000) ^ (frame["city"] == "oslo")).astype(np.int64)
    columns = ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ("numbers", StandardScaler(), ["age", "spend"]),
    ])  # fmt: skip
    _save(directory, "sklearn", make_pipeline(columns, LogisticRegression()).fit(frame, y))
    return PeerModel(directory.name, "sklearn", "mixed", frame.iloc[::9], directory)


def _boosted(model_format: str, classes: int) -> Callable[[Path], PeerModel]:
    """XGBoost or LightGBM through their sklearn classes, as users train them; classes=0 is
    a regressor on the large-magnitude features."""

    def build(directory: Path) -> PeerModel:
        if classes:
            x, y = iris()
            if classes == 2:
                y = (y == 2).astype(np.int64)
            rows = _iris_rows()
        else:
            x, y, rows = _epoch_data()
        if model_format == "xgboost":
            import xgboost

            params: dict[str, Any] = {"n_estimators": 10, "max_depth": 3, "n_jobs": 1}
            cls = xgboost.XGBClassifier if classes else xgboost.XGBRegressor
            _save(directory, "xgboost", cls(**params).fit(x, y))
        else:
            import lightgbm

            params = {"n_estimators": 10, "num_leaves": 7, "min_child_samples": 5,
                      "n_jobs": 1, "verbose": -1}  # fmt: skip
            cls = lightgbm.LGBMClassifier if classes else lightgbm.LGBMRegressor
            _save(directory, "lightgbm", cls(**params).fit(x, y).booster_)
        kind = "classifier" if classes else "regressor"
        return PeerModel(directory.name, model_format, kind, rows, directory)

    return build


# name -> (kind, builder); the kind decides which calls the suite makes
BUILDERS: dict[str, tuple[str, Callable[[Path], PeerModel]]] = {
    "iris": ("classifier", build_iris),
    "species": ("classifier", build_species),
    "linear": ("regressor", build_linear),
    "text": ("text", build_text),
    "frame": ("frame", build_frame),
    "mixed": ("mixed", build_mixed),
    "xgb-multi": ("classifier", _boosted("xgboost", 3)),
    "xgb-binary": ("classifier", _boosted("xgboost", 2)),
    "xgb-reg": ("regressor", _boosted("xgboost", 0)),
    "lgb-multi": ("classifier", _boosted("lightgbm", 3)),
    "lgb-binary": ("classifier", _boosted("lightgbm", 2)),
    "lgb-reg": ("regressor", _boosted("lightgbm", 0)),
}
