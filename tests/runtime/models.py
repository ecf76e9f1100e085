"""Tiny models the tests train themselves, one directory per model, plus their test inputs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TrainedModel:
    directory: Path
    model_format: str
    native: Any  # the in-process model the runtime's answers are compared with
    x: np.ndarray  # sample rows to send
    classifier: bool

    @property
    def file(self) -> Path:
        (only,) = [p for p in self.directory.iterdir() if p.is_file()]
        return only

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.file.read_bytes()).hexdigest()

    def expected_predict(self, x: np.ndarray) -> np.ndarray:
        if self.model_format == "sklearn":
            return np.asarray(self.native.predict(x))
        if self.model_format == "xgboost":
            import xgboost

            return np.asarray(self.native.predict(xgboost.DMatrix(x))).argmax(axis=1)
        if self.model_format == "lightgbm":
            return np.asarray(self.native.predict(x)).argmax(axis=1)
        raise AssertionError(self.model_format)

    def expected_proba(self, x: np.ndarray) -> np.ndarray:
        if self.model_format == "sklearn":
            return np.asarray(self.native.predict_proba(x))
        if self.model_format == "xgboost":
            import xgboost

            return np.asarray(self.native.predict(xgboost.DMatrix(x)))
        return np.asarray(self.native.predict(x))


def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32).astype(np.float64), y


def train_sklearn(directory: Path, file_name: str = "model.joblib") -> TrainedModel:
    import joblib
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    model = LogisticRegression(max_iter=1000).fit(x, y)
    directory.mkdir(parents=True)
    joblib.dump(model, directory / file_name)
    return TrainedModel(directory, "sklearn", model, x[::7], True)


def train_xgboost(directory: Path) -> TrainedModel:
    import xgboost

    x, y = iris()
    booster = xgboost.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "nthread": 1},
        xgboost.DMatrix(x, label=y),
        num_boost_round=10,
    )
    directory.mkdir(parents=True)
    booster.save_model(str(directory / "model.json"))
    return TrainedModel(directory, "xgboost", booster, x[::7], True)


def train_lightgbm(directory: Path) -> TrainedModel:
    import lightgbm

    x, y = iris()
    booster = lightgbm.train(
        {"objective": "multiclass", "num_class": 3, "num_leaves": 7, "verbose": -1,
         "num_threads": 1, "min_data_in_leaf": 5},
        lightgbm.Dataset(x, label=y),
        num_boost_round=10,
    )  # fmt: skip
    directory.mkdir(parents=True)
    booster.save_model(str(directory / "model.txt"))
    return TrainedModel(directory, "lightgbm", booster, x[::7], True)


def onnx_model(directory: Path, kind: str) -> Path:
    """Hand-built ONNX graphs, input "x" [N, 4] float.

    - "affine": y = x @ W + b with named output "y" (a plain user ONNX model)
    - "fixed-batch": "affine" with a fixed batch dimension, input "x" [1, 4]
    - "slow": a big matmul chain summed to [N, 1], for drain tests (~1 s at 2000 rows)
    - "broken": reshapes to [2, 2], so it works on 1 row (warm-up) and fails on any other
      batch size: a predict exception on input the server accepted
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    batch = 1 if kind == "fixed-batch" else None
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])
    rng = np.random.default_rng(0)
    if kind in ("affine", "fixed-batch"):
        w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "w")
        b = numpy_helper.from_array(np.array([1, 2, 3], dtype=np.float32), "b")
        nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]),
                 helper.make_node("Add", ["xw", "b"], ["y"])]  # fmt: skip
        inits = [w, b]
        outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])]
    elif kind == "slow":
        w1 = numpy_helper.from_array(rng.normal(size=(4, 2048)).astype(np.float32), "w1")
        w2 = numpy_helper.from_array(rng.normal(size=(2048, 2048)).astype(np.float32), "w2")
        axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
        nodes = [
            helper.make_node("MatMul", ["x", "w1"], ["h1"]),
            helper.make_node("MatMul", ["h1", "w2"], ["h2"]),
            helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
            helper.make_node("ReduceSum", ["h3", "axes"], ["y"], keepdims=1),
        ]
        inits = [w1, w2, axes]
        outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])]
    elif kind == "broken":
        shape = numpy_helper.from_array(np.array([2, 2], dtype=np.int64), "shape")
        nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"])]
        inits = [shape]
        outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])]
    else:
        raise AssertionError(kind)
    graph = helper.make_graph(nodes, kind, [x], outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    directory.mkdir(parents=True)
    onnx.save(model, str(directory / "model.onnx"))
    return directory
