"""Each format served by a real runtime process answers like the model does in-process."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from .conftest import StartRuntime
from .models import TrainedModel, iris
from .runtime_process import RuntimeProcess

pytestmark = pytest.mark.runtime

FORMATS = ["sklearn", "xgboost", "lightgbm"]


@pytest.fixture(scope="module", params=FORMATS)
def served(
    request: pytest.FixtureRequest, start_module_runtime: StartRuntime
) -> tuple[TrainedModel, RuntimeProcess]:
    trained: TrainedModel = request.getfixturevalue(f"{request.param}_model")
    runtime = start_module_runtime(
        MODELROLL_MODEL_NAME="m",
        MODELROLL_MODEL_VERSION="7",
        MODELROLL_MODEL_URI=str(trained.directory),
        MODELROLL_MODEL_FORMAT=trained.model_format,
    )
    return trained, runtime


def v2_body(x: np.ndarray, outputs: list[str] | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "inputs": [{"name": "input-0", "shape": list(x.shape), "datatype": "FP64",
                    "data": x.ravel().tolist()}]
    }  # fmt: skip
    if outputs is not None:
        body["outputs"] = [{"name": n} for n in outputs]
    return body


def test_v2_single_row_matches_in_process(served: tuple[TrainedModel, RuntimeProcess]) -> None:
    trained, runtime = served
    for row in trained.x[:5]:
        response = runtime.post_json("/v2/models/m/infer", v2_body(row[None, :]))
        assert response.status == 200, response.body
        (output,) = response.json()["outputs"]
        assert output["name"] == "predict"
        assert output["shape"] == [1, 1]
        assert output["data"] == trained.expected_predict(row[None, :]).tolist()


def test_v2_batch_with_probabilities(served: tuple[TrainedModel, RuntimeProcess]) -> None:
    trained, runtime = served
    response = runtime.post_json(
        "/v2/models/m/versions/7/infer", v2_body(trained.x, ["predict", "predict_proba"])
    )
    assert response.status == 200, response.body
    assert response.headers["x-model-name"] == "m"
    assert response.headers["x-model-version"] == "7"
    predict, proba = response.json()["outputs"]
    assert predict["data"] == trained.expected_predict(trained.x).tolist()
    assert proba["name"] == "predict_proba"
    assert proba["shape"] == [len(trained.x), 3]
    expected = trained.expected_proba(trained.x)
    np.testing.assert_allclose(np.reshape(proba["data"], proba["shape"]), expected, atol=1e-4)


def test_v1_predict_matches_in_process(served: tuple[TrainedModel, RuntimeProcess]) -> None:
    trained, runtime = served
    response = runtime.post_json("/v1/models/m:predict", {"instances": trained.x.tolist()})
    assert response.status == 200, response.body
    if trained.model_format == "sklearn":
        assert response.json() == {"predictions": trained.expected_predict(trained.x).tolist()}
    else:  # booster.predict, as KServe's xgbserver and lgbserver answer: the probabilities
        assert response.json() == {"predictions": trained.expected_proba(trained.x).tolist()}
    assert response.headers["x-model-version"] == "7"
    status = runtime.get("/v1/models/m")
    assert status.json() == {"name": "m", "ready": True}


def test_concurrent_clients_get_their_own_answers(
    served: tuple[TrainedModel, RuntimeProcess],
) -> None:
    trained, runtime = served
    rows = np.tile(trained.x, (4, 1))
    expected = trained.expected_predict(rows).tolist()

    def one(i: int) -> int:
        response = runtime.post_json("/v2/models/m/infer", v2_body(rows[i : i + 1]))
        assert response.status == 200, response.body
        return int(response.json()["outputs"][0]["data"][0])

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(len(rows))))
    assert answers == expected


def test_compiled_to_onnx(served: tuple[TrainedModel, RuntimeProcess]) -> None:
    """sklearn's linear models compile exactly (float64 graph); the boosters' ONNX trees are
    float32 graphs that do not answer exactly what the booster does, so they serve natively."""
    trained, runtime = served
    parameters = runtime.get("/v2/models/m").json()["parameters"]
    backend = "onnx" if trained.model_format == "sklearn" else "native"
    assert parameters["backend"] == backend, parameters
    assert parameters["compilation"]["verdict"] == ("Exact" if backend == "onnx" else "NotExact")
    assert f'"backend":"{backend}"' in runtime.logs()


def test_pickle_file_and_native_fallback(
    sklearn_pickle_model: TrainedModel, start_runtime: StartRuntime, tmp_path: object
) -> None:
    # a fresh cache and a compiler that cannot run force the native path: same answers
    runtime = start_runtime(
        MODELROLL_MODEL_URI=f"file://{sklearn_pickle_model.file}",
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_CACHE_DIR="/proc/modelroll-unwritable",
    )
    response = runtime.post_json("/v2/models/model/infer", v2_body(sklearn_pickle_model.x))
    assert response.status == 200, response.body
    expected = sklearn_pickle_model.expected_predict(sklearn_pickle_model.x).tolist()
    assert response.json()["outputs"][0]["data"] == expected


def test_onnx_named_outputs(affine_onnx: object, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(MODELROLL_MODEL_URI=str(affine_onnx), MODELROLL_MODEL_FORMAT="onnx")
    x = np.array([[1, 2, 3, 4], [0, 0, 0, 1]], dtype=np.float32)
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": x.tolist()}],
            "outputs": [{"name": "y"}]}  # fmt: skip
    response = runtime.post_json("/v2/models/model/infer", body)
    assert response.status == 200, response.body
    (output,) = response.json()["outputs"]
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    expected = x @ w + np.array([1, 2, 3], dtype=np.float32)
    assert output["name"] == "y" and output["datatype"] == "FP32" and output["shape"] == [2, 3]
    np.testing.assert_allclose(np.reshape(output["data"], (2, 3)), expected, rtol=1e-6)
    metadata = runtime.get("/v2/models/model").json()
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert metadata["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]


def test_nan_means_missing_only_where_the_format_says_so(
    served: tuple[TrainedModel, RuntimeProcess],
) -> None:
    """Boosters read NaN as a missing value (their format declares it); sklearn refuses it.
    JSON has no NaN, so the rows go as binary tensor data."""
    trained, runtime = served
    x = trained.x[:6].copy()
    x[::2, 1] = np.nan
    raw = x.astype("<f8").tobytes()
    header = json.dumps({"inputs": [{"name": "input-0", "shape": list(x.shape),
                                     "datatype": "FP64",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()  # fmt: skip
    response = runtime.request(
        "POST", "/v2/models/m/infer", header + raw,
        {"Inference-Header-Content-Length": str(len(header))},
    )  # fmt: skip
    if trained.model_format == "sklearn":
        assert response.status == 400, response.body
        assert "values must be finite" in response.json()["error"]
    else:
        assert response.status == 200, response.body
        assert response.json()["outputs"][0]["data"] == trained.expected_predict(x).tolist()


def test_onnx_zipmap_probabilities_are_a_tensor(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    """skl2onnx's default export ends in ZipMap (one {label: probability} dict per row): the
    probabilities come back as an FP32 [N, classes] tensor, not as Python dict reprs."""
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    estimator = LogisticRegression(max_iter=1000).fit(x, y)
    onx = convert_sklearn(estimator, initial_types=[("x", FloatTensorType([None, 4]))])
    assert "ZipMap" in [node.op_type for node in onx.graph.node]
    (tmp_path / "zipmap").mkdir()
    onnx.save(onx, str(tmp_path / "zipmap" / "model.onnx"))
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(tmp_path / "zipmap"), MODELROLL_MODEL_FORMAT="onnx"
    )
    rows = x[::30].astype(np.float32)
    body = {"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP32",
                        "data": rows.ravel().tolist()}]}  # fmt: skip
    response = runtime.post_json("/v2/models/model/infer", body)
    assert response.status == 200, response.body
    label, probability = response.json()["outputs"]
    assert label["data"] == estimator.predict(rows).tolist()
    assert probability["name"] == "output_probability"
    assert probability["datatype"] == "FP32"
    assert probability["shape"] == [len(rows), 3]
    expected = estimator.predict_proba(rows)
    np.testing.assert_allclose(np.reshape(probability["data"], (len(rows), 3)), expected, atol=1e-6)
