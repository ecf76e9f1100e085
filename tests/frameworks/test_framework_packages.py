"""PyTorch and Keras/TensorFlow MLPs through `modelroll package`, then served by our runtime
as a real HTTP server: the answers equal the framework's own within the tolerance the
manifest states, and a model with an operator ONNX lacks fails packaging, naming it.

Needs the frameworks (several GB from PyPI on a first run, cached after): `make
test-frameworks` runs this directory; the normal suite leaves it out (docs/runtime.md,
"PyTorch and TensorFlow")."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.runtime.runtime_process import RuntimeProcess

from .conftest import Packaging, Rows

pytestmark = pytest.mark.runtime

FRAMEWORK = {"torch": "pytorch", "tensorflow": "tensorflow"}


@pytest.fixture
def runtimes(tmp_path: Path) -> Iterator[Callable[[Path, str], RuntimeProcess]]:
    started: list[RuntimeProcess] = []

    def start(directory: Path, pin: str) -> RuntimeProcess:
        env = {
            "MODELROLL_MODEL_URI": str(directory),
            "MODELROLL_MODEL_FORMAT": "onnx",
            "MODELROLL_MODEL_SHA256": pin,
            "MODELROLL_CACHE_DIR": str(tmp_path / "cache"),
            "MODELROLL_MODEL_DIR": str(tmp_path / "downloads"),
            "MODELROLL_TERMINATION_LOG": str(tmp_path / "termination-log"),
        }
        runtime = RuntimeProcess(env, tmp_path / f"runtime-{len(started)}.log").start()
        started.append(runtime)
        runtime.wait_ready()
        return runtime

    yield start
    for runtime in started:
        runtime.stop()


def ready_line(runtime: RuntimeProcess) -> dict[str, Any]:
    for line in runtime.logs().splitlines():
        if '"model ready"' in line:
            record: dict[str, Any] = json.loads(line)
            return record
    raise AssertionError(f"no 'model ready' line:\n{runtime.logs()}")


def infer(runtime: RuntimeProcess, rows: np.ndarray) -> np.ndarray:
    document: dict[str, Any] = {
        "inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP32",
                    "data": rows.astype(np.float32).ravel().tolist()}]
    }  # fmt: skip
    response = runtime.post_json("/v2/models/model/infer", document)
    assert response.status == 200, response.body
    (output,) = response.json()["outputs"]
    assert output["name"] == "predict"
    return np.asarray(output["data"], dtype=np.float64).reshape(output["shape"])


@pytest.mark.parametrize(
    ("framework", "model"),
    [("torch", "mlp.pt"), ("torch", "mlp.pt2"), ("tensorflow", "mlp.keras"),
     ("tensorflow", "mlp_savedmodel")],
)  # fmt: skip
def test_a_framework_mlp_is_packaged_and_served_within_the_manifests_tolerance(
    made_models: Callable[[str], Path],
    package_model: Callable[[str, Path], Packaging],
    runtimes: Callable[[Path, str], RuntimeProcess],
    iris_rows: Rows,
    framework: str,
    model: str,
) -> None:
    models = made_models(framework)
    packaged = package_model(framework, models / model)
    assert packaged.returncode == 0, packaged.stderr[-4000:]
    assert f"packaged a {FRAMEWORK[framework]} model as an onnx graph" in packaged.stdout
    manifest = json.loads((packaged.output / "manifest.json").read_text())
    assert manifest["format"] == "onnx" and manifest["onnx"] == "model.onnx"
    source = manifest["source"]
    assert source["framework"] == FRAMEWORK[framework] and source["file"] == model
    assert source["tolerance"]["abs"] == 1e-5 and source["tolerance"]["rel"] == 1e-4
    assert source["verifiedRows"] == 150 and source["outputs"]["predict"]["outside"] == 0
    pin = (packaged.output / "model.sha256").read_text().strip()

    runtime = runtimes(packaged.output, pin)
    # make_models.py's own answers, from the framework, on every iris row
    expected = np.load(models / "expected-mlp.npy").astype(np.float64)
    answered = infer(runtime, iris_rows.x)
    tolerance = source["tolerance"]
    np.testing.assert_allclose(answered, expected, rtol=tolerance["rel"], atol=tolerance["abs"])
    # the answers are a classifier's: the same classes as the framework's, and not constant
    assert (answered.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert len(set(expected.argmax(axis=1))) == 3
    # the same pin and profile as every packaged model: telemetry on, package verified
    metadata = runtime.get("/v2/models/model").json()
    assert metadata["parameters"]["compilation"]["package"] == pin
    ready = ready_line(runtime)
    assert ready["backend"] == "onnx" and ready["drift_telemetry"] is True
    features = [
        f["name"] for f in json.loads((packaged.output / "profile.json").read_text())["features"]
    ]
    assert features == ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.mark.parametrize(
    ("framework", "model", "operator"),
    [("torch", "unsupported.pt", "aten::linalg_svdvals"),
     ("tensorflow", "unsupported_savedmodel", "Svd")],
)  # fmt: skip
def test_an_operator_without_an_onnx_equivalent_fails_packaging_and_is_named(
    made_models: Callable[[str], Path],
    package_model: Callable[[str, Path], Packaging],
    framework: str,
    model: str,
    operator: str,
) -> None:
    packaged = package_model(framework, made_models(framework) / model)
    assert packaged.returncode == 1
    last = packaged.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: the {FRAMEWORK[framework]} model uses {operator}, which has no ONNX equivalent"
    ), packaged.stderr[-4000:]
    assert "Traceback" not in packaged.stderr
    assert not packaged.output.exists()  # nothing half-written to upload
