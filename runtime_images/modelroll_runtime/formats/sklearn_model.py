"""scikit-learn estimators saved with joblib or pickle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import PREDICT, PREDICT_PROBA, Array, ModelFileError, ModelFormat, TabularModel


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


def to_onnx(model: SklearnModel, n_features: int, dtype: str) -> Any:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    # No converter options (zipmap=False): given any, skl2onnx evaluates every fitted
    # attribute of the model to resolve them, and forests then redraw the bootstrap sample of
    # every tree (0.17 s for 100 trees fitted on 2000 rows, 0.9 s for 50 trees on 200k rows).
    # The ZipMap node it appends without the option is cut off instead.
    from . import sklearn_trees

    if dtype == "float64" and sklearn_trees.supports(model.estimator):
        return sklearn_trees.to_onnx(model.estimator, n_features)
    tensor_type = DoubleTensorType if dtype == "float64" else FloatTensorType
    initial_types = [("input", tensor_type([None, n_features]))]
    onx = convert_sklearn(model.estimator, initial_types=initial_types)
    _drop_zipmap(onx)
    return onx


def _drop_zipmap(onx: Any) -> None:
    """Make the probability tensor a ZipMap reads the graph output, instead of its list of dicts."""
    from onnx import TensorProto, helper

    graph = onx.graph
    outputs = list(graph.output)
    double = graph.input[0].type.tensor_type.elem_type == TensorProto.DOUBLE
    elem_type = TensorProto.DOUBLE if double else TensorProto.FLOAT
    for node in list(graph.node):
        if node.op_type != "ZipMap":
            continue
        index = next((i for i, o in enumerate(outputs) if o.name == node.output[0]), None)
        if index is not None:
            graph.node.remove(node)
            outputs[index] = helper.make_tensor_value_info(node.input[0], elem_type, None)
    del graph.output[:]
    graph.output.extend(outputs)


def notable_values(model: SklearnModel) -> dict[int, list[float]]:
    """Input-space statistics of the estimator, or of a pipeline's first step."""
    estimator = model.estimator
    steps = getattr(estimator, "steps", None)
    if steps:  # later steps see transformed features: only the first one speaks of inputs
        estimator = steps[0][1]
    found: dict[int, list[float]] = {}
    _collect(estimator, found)
    return found


def _collect(estimator: Any, found: dict[int, list[float]]) -> None:
    import numpy as np

    def add(values_by_feature: Any) -> None:
        for j, values in enumerate(np.atleast_2d(values_by_feature).T):
            found.setdefault(j, []).extend(float(v) for v in values)

    tree = getattr(estimator, "tree_", None)
    if tree is not None:  # split thresholds, by feature
        for feature, threshold in zip(tree.feature, tree.threshold, strict=True):
            if feature >= 0:
                found.setdefault(int(feature), []).append(float(threshold))
        return
    members = getattr(estimator, "estimators_", None)
    if members is not None:  # forests, boosting (a 2-D array of trees), bagging
        for member in np.ravel(np.asarray(members, dtype=object)):
            _collect(member, found)
        return
    mean, scale = getattr(estimator, "mean_", None), getattr(estimator, "scale_", None)
    center = getattr(estimator, "center_", None)
    middle = mean if mean is not None else center
    if middle is not None and scale is not None:  # StandardScaler, RobustScaler
        middle, scale = np.asarray(middle, float), np.asarray(scale, float)
        add(np.stack([middle + k * scale for k in (-6, -3, -1, 0, 1, 3, 6)]))
        return
    if hasattr(estimator, "data_min_"):  # MinMaxScaler
        add(np.stack([estimator.data_min_, estimator.data_max_]))
        return
    coef = getattr(estimator, "coef_", None)
    if coef is not None:
        # A linear model names no range, but |intercept / coef| is where a feature's term
        # outweighs the intercept: the scale that feature was fitted on.
        coef = np.abs(np.atleast_2d(np.asarray(coef, float))).max(axis=0)
        intercept = np.max(np.abs(np.atleast_1d(getattr(estimator, "intercept_", 0.0))))
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(coef > 0, (intercept + 1.0) / coef, np.nan)
        add(np.stack([-scale, scale, scale / 2]))


FORMAT = ModelFormat(
    name="sklearn",
    model_files=("model.joblib", "model.pkl", "model.pickle"),
    model_class=SklearnModel,
    to_onnx=to_onnx,
    accepts_missing=False,
    runs_code=True,  # joblib and pickle files unpickle
    # float64 first: float32 holds integers exactly only to 2**24 (epoch seconds are 1.7e9).
    # skl2onnx builds float64 graphs for linear models and scalers; trees and forests get
    # our own float64 graph (sklearn_trees.py), as skl2onnx's trees are float32 graphs.
    onnx_input_dtypes=("float64", "float32"),
    notable_values=notable_values,
)
