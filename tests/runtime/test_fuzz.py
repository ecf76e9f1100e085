"""Property-based fuzzing of the V2 endpoints: whatever arrives, no 5xx and no crash."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import StartRuntime
from .models import TrainedModel
from .runtime_process import RuntimeProcess

pytestmark = pytest.mark.runtime

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
datatypes = st.sampled_from(
    ["FP32", "FP64", "INT64", "INT32", "UINT8", "BOOL", "FP16", "BYTES", "fp32", ""]
)
numbers = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.booleans())
shapes = st.lists(st.integers(-2, 6), min_size=0, max_size=4)


@st.composite
def tensors(draw: st.DrawFn) -> dict[str, Any]:
    tensor: dict[str, Any] = {
        "name": draw(st.text(max_size=6)),
        "shape": draw(st.one_of(shapes, json_values)),
        "datatype": draw(st.one_of(datatypes, json_values)),
        "data": draw(st.one_of(st.lists(numbers, max_size=24),
                               st.lists(st.lists(numbers, max_size=5), max_size=5),
                               json_values)),
    }  # fmt: skip
    for key in draw(st.lists(st.sampled_from(list(tensor)), max_size=2)):
        tensor.pop(key, None)
    if draw(st.booleans()):
        tensor["parameters"] = draw(
            st.one_of(json_values, st.fixed_dictionaries({"binary_data_size": json_values}))
        )
    return tensor


@st.composite
def infer_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": draw(st.one_of(st.lists(tensors(), max_size=3), json_values))}
    if draw(st.booleans()):
        body["outputs"] = draw(
            st.one_of(
                st.lists(st.fixed_dictionaries({"name": st.sampled_from(
                    ["predict", "predict_proba", "nope"])}), max_size=3),
                json_values,
            )
        )  # fmt: skip
    if draw(st.booleans()):
        body["id"] = draw(json_values)
    if draw(st.booleans()):
        body["parameters"] = draw(json_values)
    return body


@pytest.fixture(scope="module")
def iris(sklearn_model: TrainedModel, start_module_runtime: StartRuntime) -> RuntimeProcess:
    return start_module_runtime(
        MODELROLL_MODEL_NAME="iris",
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
    )


def assert_client_error_at_most(runtime: RuntimeProcess, status: int, body: bytes) -> None:
    assert status < 500, body
    if status != 200:
        assert isinstance(json.loads(body)["error"], str)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=infer_bodies())
def test_fuzz_v2_infer_json(iris: RuntimeProcess, body: dict[str, Any]) -> None:
    response = iris.post_json("/v2/models/iris/infer", body)
    assert_client_error_at_most(iris, response.status, response.body)


@settings(max_examples=200, deadline=None)
@given(
    header=infer_bodies(),
    raw=st.binary(max_size=64),
    declared=st.one_of(st.integers(-5, 400).map(str), st.text("0123456789-+ .eab", max_size=4)),
)
def test_fuzz_v2_binary_extension(
    iris: RuntimeProcess, header: dict[str, Any], raw: bytes, declared: str
) -> None:
    encoded = json.dumps(header).encode()
    length = declared if declared.strip() and declared.isascii() else str(len(encoded))
    response = iris.request(
        "POST",
        "/v2/models/iris/infer",
        encoded + raw,
        {"Inference-Header-Content-Length": length},
    )
    assert_client_error_at_most(iris, response.status, response.body)


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.lists(
        st.sampled_from(
            [
                "v2",
                "models",
                "iris",
                "versions",
                "1",
                "infer",
                "ready",
                "health",
                "live",
                "",
                ":predict",
                "v1",
                "%2e%2e",
                "x" * 300,
            ]
        ),
        max_size=6,
    ),
    body=st.binary(max_size=200),
)
def test_fuzz_v2_routes(iris: RuntimeProcess, method: str, path: list[str], body: bytes) -> None:
    response = iris.request(
        method, "/" + "/".join(path), body, {"Content-Type": "application/json"}
    )
    assert response.status < 500, response.body


def test_still_alive_after_fuzzing(iris: RuntimeProcess, sklearn_model: TrainedModel) -> None:
    assert iris.process is not None and iris.process.poll() is None
    response = iris.post_json("/v1/models/iris:predict", {"instances": sklearn_model.x.tolist()})
    assert response.json() == {
        "predictions": sklearn_model.expected_predict(sklearn_model.x).tolist()
    }
