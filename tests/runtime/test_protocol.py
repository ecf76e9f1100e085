"""Protocol conformance: response bytes pinned from the V2 spec and MLServer's encoding,
V1 as KServe answers it, health and metadata endpoints, and the binary data extension."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from .conftest import StartRuntime
from .models import TrainedModel
from .runtime_process import RuntimeProcess

pytestmark = pytest.mark.runtime

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@pytest.fixture(scope="module")
def iris(sklearn_model: TrainedModel, start_module_runtime: StartRuntime) -> RuntimeProcess:
    return start_module_runtime(
        MODELROLL_MODEL_NAME="iris",
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
    )


def test_v2_response_bytes_are_pinned(iris: RuntimeProcess) -> None:
    # MLServer's field order (model_name, model_version, id, outputs) and its NumpyCodec
    # output (1-D predictions reported as [N, 1], parameters.content_type "np")
    body = {"id": "req-42", "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
                                        "data": ROWS}]}  # fmt: skip
    response = iris.post_json("/v2/models/iris/infer", body)
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    assert response.body == (
        b'{"model_name":"iris","model_version":"1","id":"req-42","outputs":[{"name":"predict",'
        b'"shape":[2,1],"datatype":"INT64","parameters":{"content_type":"np"},"data":[0,2]}]}'
    )


def test_v2_generates_an_id_when_none_is_sent(iris: RuntimeProcess) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROWS[0]}]}
    document = iris.post_json("/v2/models/iris/infer", body).json()
    assert list(document) == ["model_name", "model_version", "id", "outputs"]
    assert len(document["id"]) == 36  # a uuid4, like MLServer's
    assert list(document["outputs"][0]) == ["name", "shape", "datatype", "parameters", "data"]


def test_v1_matches_kserve(iris: RuntimeProcess) -> None:
    response = iris.post_json("/v1/models/iris:predict", {"instances": ROWS})
    assert response.body == b'{"predictions":[0,2]}'
    assert iris.get("/v1/models/iris").body == b'{"name":"iris","ready":true}'


def test_health_and_server_metadata(iris: RuntimeProcess) -> None:
    assert iris.get("/v2/health/live").body == b'{"live":true}'
    assert iris.get("/v2/health/ready").body == b'{"ready":true}'
    assert iris.get("/v2/models/iris/ready").body == b'{"name":"iris","ready":true}'
    assert iris.get("/v2/models/iris/versions/1/ready").status == 200
    assert iris.get("/v2").json() == {
        "name": "modelroll-runtime",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data"],
    }
    metadata = iris.get("/v2/models/iris").json()
    assert metadata == {
        "name": "iris",
        "versions": ["1"],
        "platform": "modelroll-sklearn",
        "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1, 1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
        ],
        "parameters": {"backend": "onnx", "compilation": metadata["parameters"]["compilation"]},
    }
    assert metadata["parameters"]["compilation"]["verdict"] == "Exact"


def tritonclient_body(x: np.ndarray, binary_outputs: bool) -> tuple[bytes, dict[str, str]]:
    """The body tritonclient.http builds by default: a JSON header, then raw tensor bytes."""
    raw = x.astype("<f4").tobytes()
    header: dict[str, object] = {
        "inputs": [{"name": "input-0", "shape": list(x.shape), "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)}}],
    }  # fmt: skip
    if binary_outputs:
        header["outputs"] = [
            {"name": "predict", "parameters": {"binary_data": True}},
            {"name": "predict_proba", "parameters": {"binary_data": True}},
        ]
    else:
        header["parameters"] = {"binary_data_output": False}
    encoded = json.dumps(header).encode()
    # tritonclient sets no Content-Type for this body; only the header length
    return encoded + raw, {"Inference-Header-Content-Length": str(len(encoded))}


def test_binary_request_json_response(iris: RuntimeProcess, sklearn_model: TrainedModel) -> None:
    x = np.array(ROWS, dtype=np.float32)
    body, headers = tritonclient_body(x, binary_outputs=False)
    response = iris.request("POST", "/v2/models/iris/infer", body, headers)
    assert response.status == 200, response.body
    assert response.json()["outputs"][0]["data"] == sklearn_model.expected_predict(x).tolist()


def test_binary_request_binary_response(iris: RuntimeProcess, sklearn_model: TrainedModel) -> None:
    x = np.array(ROWS * 3, dtype=np.float32)
    body, headers = tritonclient_body(x, binary_outputs=True)
    response = iris.request("POST", "/v2/models/iris/infer", body, headers)
    assert response.status == 200, response.body
    assert response.headers["content-type"] == "application/octet-stream"
    json_length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.body[:json_length])
    predict, proba = header["outputs"]
    assert "data" not in predict and "data" not in proba
    labels_size = predict["parameters"]["binary_data_size"]
    assert labels_size == 6 * 8
    raw = response.body[json_length:]
    labels = struct.unpack("<6q", raw[:labels_size])
    assert list(labels) == sklearn_model.expected_predict(x).tolist()
    assert proba["datatype"] == "FP64"  # the native model's dtype, as the peers answer
    probabilities = np.frombuffer(raw[labels_size:], dtype="<f8").reshape(proba["shape"])
    np.testing.assert_allclose(probabilities, sklearn_model.expected_proba(x), atol=1e-4)


def test_pure_json_without_content_type(iris: RuntimeProcess) -> None:
    # tritonclient's pure-JSON call sends no Content-Type; KServe rejects it, we do not
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ROWS[0]}]}
    response = iris.request("POST", "/v2/models/iris/infer", json.dumps(body).encode())
    assert response.status == 200, response.body
