"""Numeric fidelity: a served model answers what the native model answers, at real magnitudes.

Every model here runs in a real runtime process, compiled or not, as the runtime decides.
Labels must be equal, values within 1e-9 relative, and bit-equal where the native library
answers float32 (XGBoost). Features include epoch seconds, amounts in cents up to 1e9 and
ids, where float32 (resolution 128 at 1.7e9) cannot hold the values.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from .fidelity_models import CASES, FidelityCase, build_case
from .runtime_process import RuntimeProcess
from .test_lifecycle import metric

pytestmark = pytest.mark.runtime

RTOL = 1e-9
ATOL = 1e-12  # probabilities the native model rounds to 0 may come back as 1e-17


@pytest.fixture(scope="module", params=CASES)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, compile_cache: Path
) -> Iterator[tuple[FidelityCase, RuntimeProcess]]:
    tmp = tmp_path_factory.mktemp("fidelity")
    case = build_case(request.param, tmp / "models")
    runtime = RuntimeProcess(
        {
            "MODELROLL_MODEL_URI": str(case.directory),
            "MODELROLL_MODEL_FORMAT": case.model_format,
            "MODELROLL_CACHE_DIR": str(compile_cache),
            "MODELROLL_MODEL_DIR": str(tmp / "downloads"),
            "MODELROLL_TERMINATION_LOG": str(tmp / "termination-log"),
        },
        tmp / "runtime.log",
    ).start()
    try:
        runtime.wait_ready()
        yield case, runtime
    finally:
        runtime.stop()


def assert_equal_to_native(name: str, got: np.ndarray, expected: np.ndarray) -> None:
    got = got.reshape(expected.shape)
    if expected.dtype.kind in "iub":
        assert got.tolist() == expected.tolist(), f"{name}: labels differ"
    elif expected.dtype == np.float32:
        differ = int((got.astype(np.float32) != expected).sum())
        assert differ == 0, f"{name}: {differ} of {expected.size} float32 values differ"
    else:
        close = np.isclose(got, expected, rtol=RTOL, atol=ATOL)
        worst = float(np.max(np.abs(got - expected) / np.maximum(np.abs(expected), ATOL)))
        assert close.all(), (
            f"{name}: {int((~close).sum())} of {expected.size} values differ, "
            f"worst relative error {worst:.3g}"
        )


def _datatype(expected: np.ndarray) -> str:
    return {"i": "INT64", "f": "FP64" if expected.dtype == np.float64 else "FP32"}[
        expected.dtype.kind
    ]


def test_v2_answers_equal_the_native_model(served: tuple[FidelityCase, RuntimeProcess]) -> None:
    case, runtime = served
    body = {
        "inputs": [{"name": "input-0", "shape": list(case.x_test.shape), "datatype": "FP64",
                    "data": case.x_test.ravel().tolist()}],
        "outputs": [{"name": name} for name in case.expected],
    }  # fmt: skip
    response = runtime.post_json("/v2/models/model/infer", body)
    assert response.status == 200, response.body
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert list(outputs) == list(case.expected)
    for name, expected in case.expected.items():
        output = outputs[name]
        assert output["datatype"] == _datatype(expected), (name, output["datatype"])
        assert_equal_to_native(name, np.asarray(output["data"]), expected)


def test_v2_binary_answers_equal_the_native_model(
    served: tuple[FidelityCase, RuntimeProcess],
) -> None:
    """tritonclient's binary tensors carry the dtype's full precision both ways."""
    import json

    case, runtime = served
    raw = case.x_test.astype("<f8").tobytes()
    header = json.dumps({
        "inputs": [{"name": "input-0", "shape": list(case.x_test.shape), "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw)}}],
        "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in case.expected],
    }).encode()  # fmt: skip
    response = runtime.request(
        "POST",
        "/v2/models/model/infer",
        header + raw,
        {"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status == 200, response.body
    json_length = int(response.headers["inference-header-content-length"])
    document = json.loads(response.body[:json_length])
    offset = json_length
    for output, (name, expected) in zip(document["outputs"], case.expected.items(), strict=True):
        assert output["name"] == name
        size = output["parameters"]["binary_data_size"]
        dtype = {"INT64": "<i8", "FP64": "<f8", "FP32": "<f4"}[output["datatype"]]
        got = np.frombuffer(response.body[offset : offset + size], dtype=dtype)
        offset += size
        assert output["datatype"] == _datatype(expected), (name, output["datatype"])
        assert_equal_to_native(name, got, expected)


def test_v1_answers_equal_the_native_model(served: tuple[FidelityCase, RuntimeProcess]) -> None:
    case, runtime = served
    response = runtime.post_json("/v1/models/model:predict", {"instances": case.x_test.tolist()})
    assert response.status == 200, response.body
    predictions = np.asarray(response.json()["predictions"])
    if case.model_format in ("xgboost", "lightgbm") and "predict_proba" in case.expected:
        # V1 answers booster.predict, as KServe's xgbserver and lgbserver do: P(class 1)
        assert_equal_to_native("predict", predictions, case.expected["predict_proba"][:, 1])
    else:
        assert_equal_to_native("predict", predictions, case.expected["predict"])


def test_the_decision_and_its_evidence_are_shown(
    served: tuple[FidelityCase, RuntimeProcess],
) -> None:
    case, runtime = served
    metadata = runtime.get("/v2/models/model").json()
    for field in ("name", "versions", "platform", "inputs", "outputs"):
        assert field in metadata
    backend = metadata["parameters"]["backend"]
    compilation = metadata["parameters"]["compilation"]
    if case.model_format == "sklearn":
        # linear models and trees compile to float64 graphs: large magnitudes keep the
        # fast path
        assert backend == "onnx", compilation
        assert compilation["input_dtype"] == "float64"
        assert metadata["inputs"][0]["datatype"] == "FP64"
    assert compilation["backend"] == backend
    assert compilation["verdict"] in ("Exact", "NotExact", "NoConverter")
    assert compilation["reason"]
    if backend == "onnx":
        assert compilation["verdict"] == "Exact"
        assert compilation["probe_rows"] >= 1000
        assert compilation["max_rel_error"] <= RTOL
        assert compilation["input_dtype"] in ("float64", "float32")
        expected_dtypes = {n: str(a.dtype) for n, a in case.expected.items()}
        for name, dtype in compilation["output_dtypes"].items():
            if name in expected_dtypes and np.dtype(expected_dtypes[name]).kind == "f":
                assert dtype == expected_dtypes[name]
    text = runtime.get("/metrics").body.decode()
    verdict = compilation["verdict"]
    assert metric(text, "modelroll_model_compilation", verdict=verdict, backend=backend) == 1
    assert compilation["reason"] in runtime.logs()
