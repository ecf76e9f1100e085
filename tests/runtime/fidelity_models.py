"""Models for the numeric-fidelity suite: trained on the magnitudes real tabular features have.

Each builder trains one model, saves it the way its format is served, and says how the
native library answers (the reference every served answer must equal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROWS = 2000
TEST_ROWS = 200


@dataclass(frozen=True)
class FidelityCase:
    name: str
    model_format: str
    directory: Path
    x_test: np.ndarray
    # output name -> the native library's answer for x_test
    expected: dict[str, np.ndarray]


def large_features(rows: int, seed: int) -> np.ndarray:
    """Epoch seconds (with milliseconds), amounts in cents up to 1e9, ids and a small feature."""
    rng = np.random.default_rng(seed)
    epoch = np.round(rng.uniform(1.6e9, 1.8e9, rows), 3)
    cents = np.round(rng.uniform(0, 1e9, rows))
    ids = rng.integers(10_000_000, 99_999_999, rows).astype(np.float64)
    small = rng.normal(0.0, 1.0, rows)
    return np.column_stack([epoch, cents, ids, small])


def small_features(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, (rows, 4)) * np.array([1.0, 0.1, 5.0, 0.01])


def target(x: np.ndarray, seed: int) -> np.ndarray:
    """A smooth function of every feature, scaled so that each one matters."""
    rng = np.random.default_rng(seed)
    scaled = (x - x.mean(axis=0)) / x.std(axis=0)
    return 40.0 + scaled @ np.array([3.0, -2.0, 1.0, 0.5]) + rng.normal(0, 0.1, len(x))


def _data(large: bool, classify: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    features = large_features if large else small_features
    x, x_test = features(ROWS, 1), features(TEST_ROWS, 2)
    y = target(x, 3)
    if classify:
        y = (y > np.median(y)).astype(np.int64)
    return x, y, x_test


def _sklearn(estimator: Any, large: bool, classify: bool) -> Callable[[Path], FidelityCase]:
    def build(directory: Path) -> FidelityCase:
        import joblib

        x, y, x_test = _data(large, classify)
        estimator.fit(x, y)
        directory.mkdir(parents=True)
        joblib.dump(estimator, directory / "model.joblib")
        expected = {"predict": np.asarray(estimator.predict(x_test))}
        if classify:
            expected["predict_proba"] = np.asarray(estimator.predict_proba(x_test))
        return FidelityCase(directory.name, "sklearn", directory, x_test, expected)

    return build


def _xgboost(large: bool, classify: bool) -> Callable[[Path], FidelityCase]:
    def build(directory: Path) -> FidelityCase:
        import xgboost

        x, y, x_test = _data(large, classify)
        objective = "binary:logistic" if classify else "reg:squarederror"
        booster = xgboost.train(
            {"objective": objective, "max_depth": 4, "nthread": 1},
            xgboost.DMatrix(x, label=y),
            num_boost_round=30,
        )
        directory.mkdir(parents=True)
        booster.save_model(str(directory / "model.json"))
        raw = booster.predict(xgboost.DMatrix(x_test))
        expected = {"predict": raw}
        if classify:
            proba = np.stack([1.0 - raw, raw], axis=1)
            expected = {"predict": proba.argmax(axis=1), "predict_proba": proba}
        return FidelityCase(directory.name, "xgboost", directory, x_test, expected)

    return build


def _lightgbm(large: bool, classify: bool) -> Callable[[Path], FidelityCase]:
    def build(directory: Path) -> FidelityCase:
        import lightgbm

        x, y, x_test = _data(large, classify)
        objective = "binary" if classify else "regression"
        booster = lightgbm.train(
            {"objective": objective, "num_leaves": 15, "verbose": -1, "num_threads": 1},
            lightgbm.Dataset(x, label=y),
            num_boost_round=30,
        )
        directory.mkdir(parents=True)
        booster.save_model(str(directory / "model.txt"))
        raw = np.asarray(booster.predict(x_test))
        expected = {"predict": raw}
        if classify:
            proba = np.stack([1.0 - raw, raw], axis=1)
            expected = {"predict": proba.argmax(axis=1), "predict_proba": proba}
        return FidelityCase(directory.name, "lightgbm", directory, x_test, expected)

    return build


def _builders() -> dict[str, Callable[[Path], FidelityCase]]:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeRegressor

    def scaled_logistic() -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))

    return {
        "linear-large": _sklearn(LinearRegression(), large=True, classify=False),
        "linear-small": _sklearn(Ridge(), large=False, classify=False),
        "logistic-large": _sklearn(scaled_logistic(), large=True, classify=True),
        "logistic-small": _sklearn(LogisticRegression(max_iter=1000), large=False, classify=True),
        "tree-large": _sklearn(DecisionTreeRegressor(max_depth=8, random_state=0), True, False),
        "forest-large": _sklearn(
            RandomForestRegressor(n_estimators=10, random_state=0, n_jobs=1), True, False
        ),
        "forest-classifier-large": _sklearn(
            RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1), True, True
        ),
        "forest-classifier-small": _sklearn(
            RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1), False, True
        ),
        "xgboost-regressor-large": _xgboost(large=True, classify=False),
        "xgboost-classifier-large": _xgboost(large=True, classify=True),
        "xgboost-classifier-small": _xgboost(large=False, classify=True),
        "lightgbm-regressor-large": _lightgbm(large=True, classify=False),
        "lightgbm-classifier-large": _lightgbm(large=True, classify=True),
        "lightgbm-regressor-small": _lightgbm(large=False, classify=False),
    }


# The names _builders() answers, listed here so that collecting the tests imports no sklearn
CASES = (
    "linear-large", "linear-small", "logistic-large", "logistic-small", "tree-large",
    "forest-large", "forest-classifier-large", "forest-classifier-small",
    "xgboost-regressor-large", "xgboost-classifier-large", "xgboost-classifier-small",
    "lightgbm-regressor-large", "lightgbm-classifier-large", "lightgbm-regressor-small",
)  # fmt: skip


def build_case(name: str, directory: Path) -> FidelityCase:
    return _builders()[name](directory / name)
