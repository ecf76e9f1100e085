"""scikit-learn estimators saved with joblib or pickle.

Three input shapes, read off the fitted estimator: a 2-D float matrix (the default); text,
where the first step takes strings (TfidfVectorizer, CountVectorizer: a 1-D string tensor);
and a DataFrame, where the estimator was fitted on named columns of which some hold strings
(a ColumnTransformer with a OneHotEncoder): one 1-D input per column, in
`feature_names_in_` order, as MLServer's PandasCodec sends them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import (
    PREDICT,
    PREDICT_PROBA,
    Array,
    ModelFileError,
    ModelFormat,
    TabularModel,
    TensorSpec,
)
from .sklearn_inputs import column_examples, first_step, takes_text


class SklearnModel(TabularModel):
    def __init__(self) -> None:
        super().__init__()
        self.estimator: Any = None
        self.columns: tuple[str, ...] = ()  # feature_names_in_: a DataFrame is built of them
        self._examples: dict[str, Array] | None = None

    def load(self, model_file: Path) -> None:
        import joblib

        # joblib reads both joblib dumps and plain pickles. Both execute code: callers
        # verify the sha256 pin before they get here.
        self.estimator = joblib.load(model_file)
        if not hasattr(self.estimator, "predict"):
            raise ModelFileError(f"{model_file.name} holds no estimator with predict()")
        self._set_inputs(getattr(self.estimator, "n_features_in_", None))
        self._read_input_shape()
        if hasattr(self.estimator, "predict_proba"):
            self.output_names = (PREDICT, PREDICT_PROBA)

    def _read_input_shape(self) -> None:
        import numpy as np

        names = getattr(self.estimator, "feature_names_in_", None)
        self.columns = () if names is None else tuple(str(n) for n in names)
        if takes_text(first_step(self.estimator)):
            self.inputs = (TensorSpec("input-0", np.dtype(object), (-1,)),)
            self._examples = {"input-0": np.array([""], dtype=object)}
            return
        examples = column_examples(self.estimator, self.columns)
        if any(isinstance(v, str) for v in examples.values()):
            # a string column: no 2-D tensor holds the row, so one input per column
            self.inputs = tuple(
                TensorSpec(c, np.dtype(object if isinstance(v, str) else np.float64), (-1,))
                for c, v in examples.items()
            )
            self._examples = {
                c: np.array([v], dtype=s.dtype) for (c, v), s in zip(
                    examples.items(), self.inputs, strict=True
                )
            }  # fmt: skip

    def example_inputs(self) -> dict[str, Array] | None:
        """One row the model accepts, for the warm-up; None where zeros do."""
        return self._examples

    @property
    def is_classifier(self) -> bool:
        return PREDICT_PROBA in self.output_names

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        x = self._features(inputs)
        result: dict[str, Array] = {}
        for name in outputs:
            if name == PREDICT:
                result[name] = self.estimator.predict(x)
            elif name == PREDICT_PROBA:
                result[name] = self.estimator.predict_proba(x)
        return result

    def _features(self, inputs: Mapping[str, Array]) -> Any:
        """What the estimator was fitted on: a DataFrame where it knows its columns' names
        (a ColumnTransformer selects them by name), else the one tensor."""
        if len(self.inputs) > 1:  # one input per column
            import pandas as pd

            return pd.DataFrame({c: inputs[c] for c in self.columns})
        x = self.single_input(inputs)
        if not self.columns or x.ndim != 2:
            return x
        try:
            import pandas as pd
        except ImportError:  # numeric columns, read by position: the matrix does
            return x
        return pd.DataFrame(x, columns=list(self.columns))


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
