"""Drop-in compatibility with KServe and MLServer clients, each checked against a real runtime
process: V1 answers shaped as KServe's sklearnserver gives them, KServe's listing and
liveness routes, OIP-valid metadata, Triton's repository index, compressed bodies, the auth
scheme in any case, fixed batch dimensions, CloudEvents binary mode, well-known file names."""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import StartRuntime
from .models import TrainedModel, iris, onnx_model
from .runtime_process import RuntimeProcess

pytestmark = pytest.mark.runtime

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
TOKEN = "s3cret-token"
SPECIES = np.array(["setosa", "versicolor", "virginica"])


def v2_body(rows: list[list[float]], name: str = "input-0") -> dict[str, Any]:
    return {"inputs": [{"name": name, "shape": [len(rows), len(rows[0])], "datatype": "FP64",
                        "data": rows}]}  # fmt: skip


@pytest.fixture(scope="module")
def regressor_dir(models_dir: Path) -> tuple[Path, Any]:
    import joblib
    from sklearn.linear_model import LinearRegression

    x, _ = iris()
    model = LinearRegression().fit(x[:, 1:], x[:, 0])
    directory = models_dir / "regressor"
    directory.mkdir()
    joblib.dump(model, directory / "model.joblib")
    return directory, model


@pytest.fixture(scope="module")
def species_dir(models_dir: Path) -> tuple[Path, Any]:
    import joblib
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    model = LogisticRegression(max_iter=1000).fit(x, SPECIES[y])
    directory = models_dir / "species"
    directory.mkdir()
    joblib.dump(model, directory / "model.joblib")
    return directory, model


@pytest.fixture(scope="module")
def served(sklearn_model: TrainedModel, start_module_runtime: StartRuntime) -> RuntimeProcess:
    return start_module_runtime(
        MODELROLL_MODEL_NAME="iris",
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_MAX_BODY_BYTES="4096",
        MODELROLL_AUTH_TOKEN=TOKEN,
    )


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_v1_regression_answers_a_flat_list(
    regressor_dir: tuple[Path, Any], start_runtime: StartRuntime
) -> None:
    directory, model = regressor_dir
    runtime = start_runtime(MODELROLL_MODEL_URI=str(directory), MODELROLL_MODEL_FORMAT="sklearn")
    rows = [r[1:] for r in ROWS]
    response = runtime.post_json("/v1/models/model:predict", {"instances": rows})
    assert response.status == 200, response.body
    predictions = response.json()["predictions"]
    assert np.shape(predictions) == (2,)  # sklearnserver: model.predict(x).tolist()
    np.testing.assert_allclose(predictions, model.predict(np.array(rows)), rtol=1e-5)


def _regressors(models_dir: Path) -> tuple[np.ndarray, dict[str, tuple[Path, Any]]]:
    """Rows x, and a regressor per format with what its native library answers for x."""
    import joblib
    import lightgbm
    import xgboost
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, (256, 2)).round(0)  # whole numbers: float32 trees are exact
    y = np.where(x[:, 0] > 5, 8.0, 0.0) + np.where(x[:, 1] > 5, 4.0, 0.0) + x[:, 1] / 4
    found: dict[str, tuple[Path, Any]] = {}
    linear = LinearRegression().fit(x, y)
    directory = models_dir / "flat-sklearn"
    directory.mkdir()
    joblib.dump(linear, directory / "model.joblib")
    found["sklearn"] = (directory, linear.predict(x))
    booster = xgboost.XGBRegressor(n_estimators=1, max_depth=2, learning_rate=1.0,
                                   base_score=0.0).fit(x, y)  # fmt: skip
    directory = models_dir / "flat-xgboost"
    directory.mkdir()
    booster.save_model(str(directory / "model.json"))
    found["xgboost"] = (directory, booster.predict(x))
    lgbm = lightgbm.LGBMRegressor(n_estimators=5, num_leaves=4, verbose=-1).fit(x, y)
    directory = models_dir / "flat-lightgbm"
    directory.mkdir()
    lgbm.booster_.save_model(str(directory / "model.bst"))
    found["lightgbm"] = (directory, lgbm.predict(x))
    graph = convert_sklearn(linear, initial_types=[("x", DoubleTensorType([None, 2]))])
    directory = models_dir / "flat-onnx"
    directory.mkdir()
    (directory / "model.onnx").write_bytes(graph.SerializeToString())
    found["onnx"] = (directory, linear.predict(x))
    return x, found


def test_v1_regression_is_flat_for_every_format(
    models_dir: Path, start_runtime: StartRuntime
) -> None:
    """[43.375], never [[43.375]], whichever backend answers: the compiled graphs (sklearn,
    XGBoost, a user's ONNX) answer [N, 1], the native LightGBM booster [N]. LightGBM is never
    compiled (its float32 graph cannot answer its float64 values), so it runs natively."""
    x, regressors = _regressors(models_dir)
    backends = {"sklearn": "onnx", "xgboost": "onnx", "lightgbm": "native", "onnx": "onnx"}
    for model_format, (directory, expected) in regressors.items():
        runtime = start_runtime(
            MODELROLL_MODEL_URI=str(directory), MODELROLL_MODEL_FORMAT=model_format
        )
        assert (
            runtime.get("/v2/models/model").json()["parameters"]["backend"]
            == (backends[model_format])
        ), model_format
        response = runtime.post_json("/v1/models/model:predict", {"instances": x[:8].tolist()})
        assert response.status == 200, response.body
        predictions = response.json()["predictions"]
        assert all(isinstance(p, float) for p in predictions), (model_format, predictions)
        np.testing.assert_allclose(predictions, expected[:8], rtol=1e-9, atol=0)
        runtime.stop()


def test_v1_and_v2_string_labels(
    species_dir: tuple[Path, Any], start_runtime: StartRuntime
) -> None:
    directory, model = species_dir
    runtime = start_runtime(MODELROLL_MODEL_URI=str(directory), MODELROLL_MODEL_FORMAT="sklearn")
    expected = model.predict(np.array(ROWS)).tolist()
    assert expected == ["setosa", "virginica"]
    response = runtime.post_json("/v1/models/model:predict", {"instances": ROWS})
    assert response.status == 200, response.body
    assert response.json() == {"predictions": expected}
    response = runtime.post_json("/v2/models/model/infer", v2_body(ROWS))
    assert response.status == 200, response.body
    (output,) = response.json()["outputs"]
    assert output["datatype"] == "BYTES" and output["data"] == expected
    outputs = runtime.get("/v2/models/model").json()["outputs"]
    assert outputs[0] == {"name": "predict", "datatype": "BYTES", "shape": [-1, 1]}


def test_lightgbm_model_bst_is_a_well_known_name(
    lightgbm_model: TrainedModel, models_dir: Path, start_runtime: StartRuntime
) -> None:
    directory = models_dir / "lightgbm-bst"
    directory.mkdir()
    (directory / "model.bst").write_bytes(lightgbm_model.file.read_bytes())
    (directory / "README.txt").write_text("not a model")  # a .txt beside it: names decide
    runtime = start_runtime(MODELROLL_MODEL_URI=str(directory), MODELROLL_MODEL_FORMAT="lightgbm")
    response = runtime.post_json("/v2/models/model/infer", v2_body(lightgbm_model.x.tolist()))
    assert response.status == 200, response.body
    expected = lightgbm_model.expected_predict(lightgbm_model.x).tolist()
    assert response.json()["outputs"][0]["data"] == expected


def test_metadata_is_oip_valid(served: RuntimeProcess) -> None:
    """Every input and output carries name, datatype and shape (the OIP metadata_tensor),
    and the datatype and shape are the ones an infer response reports."""
    metadata = served.get("/v2/models/iris", AUTH).json()
    assert metadata["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1, 1]},
        {"name": "predict_proba", "datatype": metadata["outputs"][1]["datatype"], "shape": [-1, 3]},
    ]
    body = {**v2_body(ROWS), "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}
    answered = served.post_json("/v2/models/iris/infer", body, AUTH).json()["outputs"]
    for declared, output in zip(metadata["outputs"], answered, strict=True):
        assert declared["datatype"] == output["datatype"]
        assert declared["shape"][1:] == output["shape"][1:]
    for tensor in metadata["inputs"] + metadata["outputs"]:
        assert set(tensor) == {"name", "datatype", "shape"}


def test_kserve_liveness_and_model_listings(served: RuntimeProcess) -> None:
    # the KServe SDK's V1 liveness check is GET /; listings are KServe's {"models": [...]}
    root = served.get("/")
    assert (root.status, root.json()) == (200, {"status": "alive"})
    assert served.get("/v1/models", AUTH).json() == {"models": ["iris"]}
    assert served.get("/v2/models", AUTH).json() == {"models": ["iris"]}
    assert served.get("/v2/models").status == 401


def test_repository_index(served: RuntimeProcess) -> None:
    entry = {"name": "iris", "version": "1", "state": "READY", "reason": ""}
    assert served.request("POST", "/v2/repository/index", None, AUTH).json() == [entry]
    assert served.post_json("/v2/repository/index", {"ready": True}, AUTH).json() == [entry]
    assert served.post_json("/v2/repository/index", {}).status == 401
    assert served.post_json("/v2/repository/index", {"ready": "yes"}, AUTH).status == 400


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_auth_scheme_in_any_case(served: RuntimeProcess, scheme: str) -> None:
    headers = {"Authorization": f"{scheme} {TOKEN}"}
    assert served.post_json("/v2/models/iris/infer", v2_body(ROWS), headers).status == 200
    wrong = {"Authorization": f"{scheme} not-{TOKEN}"}
    assert served.post_json("/v2/models/iris/infer", v2_body(ROWS), wrong).status == 401


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "GZIP"])
def test_compressed_bodies(served: RuntimeProcess, encoding: str) -> None:
    raw = json.dumps(v2_body(ROWS)).encode()
    packed = gzip.compress(raw) if encoding.lower() == "gzip" else zlib.compress(raw)
    headers = {**AUTH, "Content-Type": "application/json", "Content-Encoding": encoding}
    response = served.request("POST", "/v2/models/iris/infer", packed, headers)
    assert response.status == 200, response.body
    assert response.json()["outputs"][0]["data"] == [0, 2]


def test_size_cap_applies_after_decompression(served: RuntimeProcess) -> None:
    raw = json.dumps({**v2_body(ROWS), "id": "x" * 20_000}).encode()  # 4096 is the cap
    packed = gzip.compress(raw)
    assert len(packed) < 4096 < len(raw)
    headers = {**AUTH, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = served.request("POST", "/v2/models/iris/infer", packed, headers)
    assert response.status == 413, response.body
    assert "decompressed" in response.json()["error"]


@pytest.mark.parametrize(
    ("encoding", "body", "status", "message"),
    [
        ("gzip", b"not gzip at all", 400, "gzip"),
        ("deflate", b"not deflate", 400, "deflate"),
        ("br", b"{}", 415, "Content-Encoding 'br'"),
    ],
)
def test_bad_compressed_bodies(
    served: RuntimeProcess, encoding: str, body: bytes, status: int, message: str
) -> None:
    headers = {**AUTH, "Content-Type": "application/json", "Content-Encoding": encoding}
    response = served.request("POST", "/v2/models/iris/infer", body, headers)
    assert response.status == status, response.body
    assert message in response.json()["error"]


def test_cloudevents_binary_mode_gets_ce_headers(served: RuntimeProcess) -> None:
    request_id = str(uuid.uuid4())
    headers = {**AUTH, "ce-specversion": "1.0", "ce-id": request_id,
               "ce-source": "urn:test", "ce-type": "io.example.request"}  # fmt: skip
    response = served.post_json("/v1/models/iris:predict", {"instances": ROWS}, headers)
    assert response.status == 200, response.body
    assert response.json() == {"predictions": [0, 2]}
    assert response.headers["ce-specversion"] == "1.0"
    assert response.headers["ce-type"] == "io.kserve.inference.response"
    assert response.headers["ce-source"] == "io.kserve.inference.iris"
    assert response.headers["ce-id"] != request_id
    uuid.UUID(response.headers["ce-id"])
    assert response.headers["ce-time"].endswith("Z")
    plain = served.post_json("/v1/models/iris:predict", {"instances": ROWS}, AUTH)
    assert not any(k.startswith("ce-") for k in plain.headers)


def test_fixed_batch_dimension_mismatch_is_400(
    models_dir: Path, start_runtime: StartRuntime
) -> None:
    directory = onnx_model(models_dir / "fixed-batch-onnx", "fixed-batch")
    runtime = start_runtime(MODELROLL_MODEL_URI=str(directory), MODELROLL_MODEL_FORMAT="onnx")
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": ROWS}]}
    response = runtime.post_json("/v2/models/model/infer", body)
    assert response.status == 400, response.body
    assert response.json()["error"] == "input 'x': expected shape [1, 4], got [2, 4]"
    one = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ROWS[0]}]}
    assert runtime.post_json("/v2/models/model/infer", one).status == 200
