"""The Open Inference Protocol over gRPC with the KServe SDK's own client,
kserve.InferenceGRPCClient (KServe 0.21.0 from PyPI), against a real runtime: readiness,
model metadata equal to the REST metadata, inference with raw (numpy) and typed (list)
inputs in FP64 and FP32 whose every output equals the REST answer exactly, and bearer auth
through the client's `headers`.

The SDK pins protobuf<7, so it cannot share the dev venv: the client runs as a script
(tests/runtime/peers/kserve_grpc_client.py) in the KServe venv of tests/support/peers.py,
which require_peers installs once (a failure, never a skip, where it cannot).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support import peers
from tests.support.prerequisites import require_peers

from .conftest import StartRuntime
from .models import TrainedModel
from .runtime_process import RuntimeProcess

pytestmark = pytest.mark.runtime

CLIENT = Path(__file__).parent / "peers/kserve_grpc_client.py"
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])
OUTPUTS = ["predict", "predict_proba"]
DTYPES = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64}


def kserve_client(runtime: RuntimeProcess, model: str, token: str | None = None) -> Any:
    """What the KServe client saw, as the script prints it."""
    require_peers("the KServe gRPC client test")
    python = peers.ensure_venv("kserve") / "bin/python"
    argv = [str(python), str(CLIENT), f"127.0.0.1:{runtime.grpc_port}", model,
            json.dumps(ROWS.tolist()), *([token] if token else [])]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


def rest_answer(
    runtime: RuntimeProcess, model: str, datatype: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    rows = ROWS.astype(DTYPES[datatype])
    body = {
        "inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": datatype,
                    "data": rows.ravel().tolist()}],
        "outputs": [{"name": name} for name in OUTPUTS],
    }  # fmt: skip
    response = runtime.post_json(f"/v2/models/{model}/infer", body, headers)
    assert response.status == 200, response.body
    return {o["name"]: o for o in response.json()["outputs"]}


def assert_answers_equal_rest(
    seen: Any, runtime: RuntimeProcess, model: str, headers: dict[str, str] | None = None
) -> None:
    kinds = [(a["datatype"], a["encoding"]) for a in seen["answers"]]
    assert kinds == [("FP64", "numpy"), ("FP64", "list"), ("FP32", "numpy"), ("FP32", "list")]
    for answer in seen["answers"]:
        assert answer["model_name"] == model
        assert answer["id"] == f"{answer['datatype']}-{answer['encoding']}"
        rest = rest_answer(runtime, model, answer["datatype"], headers)
        assert [o["name"] for o in answer["outputs"]] == OUTPUTS
        for output in answer["outputs"]:
            expected = rest[output["name"]]
            assert (output["datatype"], output["shape"]) == (
                expected["datatype"], expected["shape"],
            ), answer  # fmt: skip
            dtype = DTYPES[output["datatype"]]
            got, wanted = np.array(output["data"], dtype), np.array(expected["data"], dtype)
            assert np.array_equal(got, wanted), (answer["datatype"], output["name"], got, wanted)
    predicts = [a["outputs"][0]["data"] for a in seen["answers"]]
    assert predicts == [[0, 2, 1]] * 4


def assert_metadata_equals_rest(seen: Any, runtime: RuntimeProcess, model: str, **kw: Any) -> None:
    rest = runtime.get(f"/v2/models/{model}", **kw).json()
    assert seen["metadata"] == {k: rest[k] for k in ("name", "versions", "platform", "inputs",
                                                     "outputs")}  # fmt: skip
    assert seen["metadata"]["name"] == model
    assert seen["metadata"]["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]


def test_kserve_grpc_client_readiness_metadata_and_infer_equal_rest(
    sklearn_model: TrainedModel, start_runtime: StartRuntime
) -> None:
    runtime = start_runtime(
        MODELROLL_MODEL_NAME="iris",
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
    )
    seen = kserve_client(runtime, "iris")
    assert (seen["server_live"], seen["server_ready"], seen["model_ready"]) == (True, True, True)
    assert_metadata_equals_rest(seen, runtime, "iris")
    assert_answers_equal_rest(seen, runtime, "iris")
    assert "refused" not in seen


def test_kserve_grpc_client_bearer_auth_through_its_headers(
    sklearn_model: TrainedModel, start_runtime: StartRuntime
) -> None:
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_AUTH_TOKEN="s3cret",
    )
    seen = kserve_client(runtime, "model", token="s3cret")
    assert seen["refused"] == {
        "infer": "UNAUTHENTICATED",
        "infer_wrong_token": "UNAUTHENTICATED",
        "model_ready": "UNAUTHENTICATED",
    }
    assert (seen["server_live"], seen["server_ready"], seen["model_ready"]) == (True, True, True)
    auth = {"Authorization": "Bearer s3cret"}
    assert_metadata_equals_rest(seen, runtime, "model", headers=auth)
    assert_answers_equal_rest(seen, runtime, "model", auth)
