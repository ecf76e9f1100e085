"""Every malformed request gets a 4xx with a JSON {"error": ...} naming the problem."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import StartRuntime
from .models import TrainedModel
from .runtime_process import RuntimeProcess

pytestmark = pytest.mark.runtime

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
INFER = "/v2/models/iris/infer"
ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def iris(sklearn_model: TrainedModel, start_module_runtime: StartRuntime) -> RuntimeProcess:
    return start_module_runtime(
        MODELROLL_MODEL_NAME="iris",
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_MAX_BODY_BYTES="4096",
        MODELROLL_AUTH_TOKEN=TOKEN,
    )


def tensor(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ROW}
    base.update(overrides)
    return {"inputs": [base]}


def js(document: Any) -> bytes:
    return json.dumps(document).encode()


CT = {"Content-Type": "application/json"}
CASES: list[tuple[str, str, str, bytes | None, dict[str, str], int, str]] = [
    ("not json", "POST", INFER, b"{nope", CT, 400, "not valid JSON"),
    ("json array", "POST", INFER, b"[1, 2]", CT, 400, "must be a JSON object"),
    ("no inputs", "POST", INFER, b"{}", CT, 400, "'inputs' must be a non-empty list"),
    ("empty inputs", "POST", INFER, js({"inputs": []}), CT, 400, "'inputs' must be a non-empty"),
    ("input not object", "POST", INFER, js({"inputs": [3]}), CT, 400, "must be a JSON object"),
    ("missing name", "POST", INFER, js({"inputs": [{"shape": [1, 4]}]}), CT, 400, "'name'"),
    ("bad shape", "POST", INFER, js(tensor(shape="1x4")), CT, 400, "'shape' must be a list"),
    ("negative dim", "POST", INFER, js(tensor(shape=[-1, 4])), CT, 400, "non-negative"),
    ("wrong width", "POST", INFER, js(tensor(shape=[1, 3], data=ROW[:3])), CT, 400,
     "expected shape [-1, 4], got [1, 3]"),
    ("wrong rank", "POST", INFER, js(tensor(shape=[4])), CT, 400, "expected 2-D shape"),
    ("shape vs data", "POST", INFER, js(tensor(shape=[2, 4])), CT, 400, "needs 8 values"),
    ("unknown datatype", "POST", INFER, js(tensor(datatype="FP33")), CT, 400,
     "unknown datatype 'FP33'"),
    ("bytes datatype", "POST", INFER, js(tensor(datatype="BYTES")), CT, 400, "BYTES"),
    ("strings as FP32", "POST", INFER, js(tensor(data=["a", "b", "c", "d"])), CT, 400,
     "only numbers"),
    ("ragged data", "POST", INFER, js(tensor(data=[[1, 2], [3]])), CT, 400, "ragged"),
    ("floats as INT64", "POST", INFER, js(tensor(datatype="INT64")), CT, 400, "non-integers"),
    ("no data", "POST", INFER, js({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32"}]}),
     CT, 400, "neither 'data' nor binary_data_size"),
    ("empty batch", "POST", INFER, js(tensor(shape=[0, 4], data=[])), CT, 400, "batch is empty"),
    ("unknown output", "POST", INFER, js({**tensor(), "outputs": [{"name": "logits"}]}), CT, 400,
     "unknown output 'logits'"),
    ("id not string", "POST", INFER, js({**tensor(), "id": 5}), CT, 400, "'id' must be a string"),
    ("two inputs", "POST", INFER, js({"inputs": tensor()["inputs"] * 2}), CT, 400,
     "takes 1 input(s), the request has 2"),
    ("huge number", "POST", INFER, js(tensor(data=[1e39, 0, 0, 0])), CT, 400, "finite"),
    ("binary header not int", "POST", INFER, js(tensor()),
     {"Inference-Header-Content-Length": "x"}, 400, "must be an integer"),
    ("binary header too long", "POST", INFER, js(tensor()),
     {"Inference-Header-Content-Length": "100000"}, 400, "outside the body"),
    ("binary size mismatch", "POST", INFER,
     js({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                     "parameters": {"binary_data_size": 8}}]}) + b"\0" * 8,
     {"Inference-Header-Content-Length": str(len(js({"inputs": [{"name": "x", "shape": [1, 4],
      "datatype": "FP32", "parameters": {"binary_data_size": 8}}]})))}, 400, "needs 16"),
    ("wrong content type", "POST", INFER, js(tensor()), {"Content-Type": "text/html"}, 415,
     "unsupported Content-Type 'text/html'"),
    ("form content type", "POST", INFER, js(tensor()),
     {"Content-Type": "application/x-www-form-urlencoded"}, 415, "send application/json"),
    ("body too large", "POST", INFER, b" " * 5000 + js(tensor()), CT, 413, "exceeds 4096"),
    ("unknown model", "POST", "/v2/models/other/infer", js(tensor()), CT, 404,
     "model 'other' not found"),
    ("unknown version", "POST", "/v2/models/iris/versions/9/infer", js(tensor()), CT, 404,
     "no version '9'"),
    ("GET infer", "GET", INFER, None, {}, 405, "method GET not allowed"),
    ("unknown route", "GET", "/v3/anything", None, {}, 404, "no route for /v3/anything"),
    ("v1 no instances", "POST", "/v1/models/iris:predict", js({"rows": []}), CT, 400,
     "'instances' must be a non-empty list"),
    ("v1 ragged", "POST", "/v1/models/iris:predict", js({"instances": [[1, 2, 3, 4], [1]]}), CT,
     400, "ragged"),
    ("v1 wrong width", "POST", "/v1/models/iris:predict", js({"instances": [[1, 2]]}), CT, 400,
     "expected shape [-1, 4], got [1, 2]"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_request(
    iris: RuntimeProcess,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    response = iris.request(method, path, body, {**AUTH, **headers})
    assert response.status == status, response.body
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert message in error, error
    # the server is still fine afterwards
    assert iris.post_json(INFER, tensor(), AUTH).status == 200


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"]
)
def test_auth_required_on_model_endpoints(iris: RuntimeProcess, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = iris.post_json(INFER, tensor(), headers)
    assert response.status == 401
    assert response.json() == {"error": "missing or wrong bearer token"}
    assert response.headers["www-authenticate"] == "Bearer"
    assert iris.get("/v1/models/iris", headers).status == 401


def test_health_and_metrics_stay_open(iris: RuntimeProcess) -> None:
    assert iris.get("/v2/health/live").status == 200
    assert iris.get("/v2/health/ready").status == 200
    assert iris.get("/metrics").status == 200
    assert iris.get("/").status == 200  # KServe's liveness route
