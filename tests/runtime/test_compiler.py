"""The ONNX compiler child's work, run in-process: what it produces, and when it refuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from modelroll_runtime import compiler
from modelroll_runtime.formats.onnx_model import OnnxModel

from .conftest import StartRuntime
from .models import TrainedModel, iris
from .test_lifecycle import metric

pytestmark = pytest.mark.runtime


def _logistic_regression() -> Any:
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    return LogisticRegression(max_iter=1000).fit(x, y)


def _forest() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    x, y = iris()
    return RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=1).fit(x, y)


def _pipeline_with_string_labels() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = iris()
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, labels)


def _binary_boosting() -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = iris()
    return GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x, y == 1)


def _dump(estimator: Any, directory: Path) -> Path:
    import joblib

    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, directory / "model.joblib")
    return directory / "model.joblib"


@pytest.mark.parametrize("train", [_logistic_regression, _forest, _pipeline_with_string_labels])
def test_classifiers_compile_to_probability_tensors(
    train: Callable[[], Any], tmp_path: Path
) -> None:
    import onnx

    estimator = train()
    meta = compiler.compile_model("sklearn", _dump(estimator, tmp_path / "m"), tmp_path / "out")
    assert meta["backend"] == "onnx", meta
    graph = onnx.load(str(tmp_path / "out" / compiler.ONNX_FILE)).graph
    assert "ZipMap" not in [node.op_type for node in graph.node]
    compiled = OnnxModel(meta["aliases"])
    compiled.load(tmp_path / "out" / compiler.ONNX_FILE)
    assert compiled.output_names == ("predict", "predict_proba")
    assert compiled.default_outputs == ("predict",)
    x, _ = iris()
    got = compiled.predict({"input": x}, compiled.output_names)
    assert got["predict"].tolist() == estimator.predict(x).tolist()
    assert got["predict_proba"].dtype == np.float64
    np.testing.assert_allclose(got["predict_proba"], estimator.predict_proba(x), rtol=1e-9)


def test_float32_tree_probabilities_are_served_natively(tmp_path: Path) -> None:
    """skl2onnx builds boosted trees as float32 graphs only: their probabilities are float32
    where sklearn's are float64, so the compiler refuses them, and says so."""
    model_file = _dump(_binary_boosting(), tmp_path / "m")
    meta = compiler.compile_model("sklearn", model_file, tmp_path / "out")
    assert meta["backend"] == "native", meta
    assert meta["verdict"] == compiler.NOT_EXACT
    assert "float32 where the native model answers float64" in meta["reason"]
    assert [a["input_dtype"] for a in meta["attempts"]] == ["float64", "float32"]
    assert not (tmp_path / "out" / compiler.ONNX_FILE).exists()


def test_forest_conversion_skips_the_attribute_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Converter options make skl2onnx evaluate every fitted attribute, and a forest then
    redraws each tree's bootstrap sample: seconds for big training sets. We pass none."""
    from sklearn.ensemble import RandomForestClassifier

    model_file = _dump(_forest(), tmp_path / "m")
    redrawn: list[int] = []

    def estimators_samples(self: Any) -> list[Any]:
        redrawn.append(1)
        return []

    monkeypatch.setattr(RandomForestClassifier, "estimators_samples_", property(estimators_samples))
    meta = compiler.compile_model("sklearn", model_file, tmp_path / "out")
    assert meta["backend"] == "onnx", meta
    assert redrawn == []


def test_mismatching_onnx_is_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    impostor = LogisticRegression(max_iter=1000).fit(x, (y + 1) % 3)  # other answers
    real_convert = compiler.convert

    def convert_the_impostor(model_format: str, native: Any, n_features: int, dtype: str) -> Any:
        other = SimpleNamespace(estimator=impostor, output_names=native.output_names)
        return real_convert(model_format, other, n_features, dtype)

    monkeypatch.setattr(compiler, "convert", convert_the_impostor)
    model_file, out = _dump(_logistic_regression(), tmp_path / "m"), tmp_path / "out"
    assert compiler.main(["sklearn", str(model_file), str(out)]) == 0
    meta = json.loads((out / compiler.META_FILE).read_text())
    assert meta["backend"] == "native"
    assert meta["reason"].startswith("ONNX outputs differ from the native model on the probe batch")
    assert not (out / compiler.ONNX_FILE).exists()


def test_native_verdict_in_the_cache_serves_native(
    sklearn_model: TrainedModel, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    """What the server does with the compiler's "differs, use native" verdict."""
    cache = tmp_path / "cache"
    entry = cache / f"{sklearn_model.sha256}-sklearn"
    entry.mkdir(parents=True)
    reason = "ONNX outputs differ from the native model on the probe batch: (test)"
    (entry / compiler.META_FILE).write_text(json.dumps({"backend": "native", "reason": reason}))
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_CACHE_DIR=str(cache),
    )
    body = {"inputs": [{"name": "input-0", "shape": list(sklearn_model.x.shape),
                        "datatype": "FP64", "data": sklearn_model.x.ravel().tolist()}]}  # fmt: skip
    response = runtime.post_json("/v2/models/model/infer", body)
    assert response.status == 200, response.body
    expected = sklearn_model.expected_predict(sklearn_model.x).tolist()
    assert response.json()["outputs"][0]["data"] == expected
    parameters = runtime.get("/v2/models/model").json()["parameters"]
    assert parameters["backend"] == "native"
    assert parameters["compilation"]["reason"] == reason
    text = runtime.get("/metrics").body.decode()
    assert metric(text, "modelroll_model_info", format="sklearn", backend="native") == 1
    assert metric(text, "modelroll_model_info", backend="onnx") == 0
    assert reason in runtime.logs()
