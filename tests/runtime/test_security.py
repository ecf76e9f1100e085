"""Model sources and integrity: sha256 pins fail closed before any pickle runs, unpinned remote
pickles are refused, and http(s) downloads work."""

from __future__ import annotations

import hashlib
import http.server
import pickle
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from .conftest import StartRuntime
from .models import TrainedModel
from .runtime_process import RuntimeProcess

pytestmark = pytest.mark.runtime


class WritesMarker:
    """Unpickling this creates the marker file: proof that the pickle's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


@pytest.fixture
def malicious(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    model_dir = tmp_path / "malicious"
    model_dir.mkdir()
    (model_dir / "model.pkl").write_bytes(pickle.dumps(WritesMarker(marker)))
    return model_dir, marker


@pytest.fixture(scope="module")
def file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("served")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def never_ready(runtime: RuntimeProcess, log_text: str, seconds: float = 4) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert runtime.get("/v2/health/live").status == 200
        assert runtime.get("/v2/health/ready").status == 503
        if log_text in runtime.logs():
            break
        time.sleep(0.1)
    assert log_text in runtime.logs()
    assert runtime.get("/v2/health/ready").status == 503
    infer = runtime.post_json("/v2/models/model/infer", {"inputs": []})
    assert infer.status == 503
    assert infer.json() == {"error": "model 'model' is not ready"}


def test_sha256_mismatch_never_runs_the_pickle(
    malicious: tuple[Path, Path], start_runtime: StartRuntime
) -> None:
    model_dir, marker = malicious
    runtime = start_runtime(
        wait="live",
        MODELROLL_MODEL_URI=str(model_dir),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_MODEL_SHA256=hashlib.sha256(b"the model we meant").hexdigest(),
    )
    never_ready(runtime, "sha256 mismatch for model.pkl")
    assert not marker.exists()


def test_sha256_mismatch_exits_with_reason_when_asked(
    malicious: tuple[Path, Path], start_runtime: StartRuntime, tmp_path: Path
) -> None:
    model_dir, marker = malicious
    expected = hashlib.sha256(b"the model we meant").hexdigest()
    runtime = start_runtime(
        wait="none",
        MODELROLL_MODEL_URI=str(model_dir),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_MODEL_SHA256=expected,
        MODELROLL_EXIT_ON_LOAD_FAILURE="true",
    )
    assert runtime.process is not None
    assert runtime.process.wait(timeout=30) != 0
    reason = (tmp_path / "termination-log").read_text()
    assert reason.startswith(f"ModelLoadFailed: sha256 mismatch for model.pkl: expected {expected}")
    assert not marker.exists()


def test_the_marker_would_appear_if_the_pickle_ran(
    malicious: tuple[Path, Path], start_runtime: StartRuntime
) -> None:
    # the control for the two tests above: pinned correctly, the pickle's code does run
    model_dir, marker = malicious
    pin = hashlib.sha256((model_dir / "model.pkl").read_bytes()).hexdigest()
    runtime = start_runtime(
        wait="live",
        MODELROLL_MODEL_URI=str(model_dir),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_MODEL_SHA256=pin,
    )
    never_ready(runtime, "holds no estimator with predict()", seconds=30)
    assert marker.exists()


def test_unpinned_remote_pickle_is_refused(
    malicious: tuple[Path, Path], file_server: tuple[Path, str], start_runtime: StartRuntime
) -> None:
    model_dir, marker = malicious
    root, base_url = file_server
    (root / "evil.pkl").write_bytes((model_dir / "model.pkl").read_bytes())
    runtime = start_runtime(
        wait="live", MODELROLL_MODEL_URI=f"{base_url}/evil.pkl", MODELROLL_MODEL_FORMAT="sklearn"
    )
    never_ready(runtime, "refusing to unpickle evil.pkl from remote URI without a sha256 pin")
    assert not marker.exists()


def test_pinned_pickle_downloads_over_http(
    sklearn_model: TrainedModel, file_server: tuple[Path, str], start_runtime: StartRuntime
) -> None:
    root, base_url = file_server
    (root / "iris.joblib").write_bytes(sklearn_model.file.read_bytes())
    runtime = start_runtime(
        MODELROLL_MODEL_URI=f"{base_url}/iris.joblib",
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_MODEL_SHA256=sklearn_model.sha256,
    )
    response = runtime.post_json(
        "/v1/models/model:predict", {"instances": sklearn_model.x.tolist()}
    )
    assert response.json() == {
        "predictions": sklearn_model.expected_predict(sklearn_model.x).tolist()
    }
    assert '"msg":"downloaded"' in runtime.logs()


def test_unpinned_non_pickle_downloads_over_http(
    xgboost_model: TrainedModel, file_server: tuple[Path, str], start_runtime: StartRuntime
) -> None:
    root, base_url = file_server
    (root / "model.json").write_bytes(xgboost_model.file.read_bytes())
    runtime = start_runtime(
        MODELROLL_MODEL_URI=f"{base_url}/model.json", MODELROLL_MODEL_FORMAT="xgboost"
    )
    response = runtime.post_json(
        "/v1/models/model:predict", {"instances": xgboost_model.x.tolist()}
    )
    assert response.json() == {  # booster.predict, as KServe's xgbserver answers V1
        "predictions": xgboost_model.expected_proba(xgboost_model.x).tolist()
    }


def test_opt_in_allows_unpinned_remote_pickle(
    sklearn_model: TrainedModel, file_server: tuple[Path, str], start_runtime: StartRuntime
) -> None:
    root, base_url = file_server
    (root / "optin.joblib").write_bytes(sklearn_model.file.read_bytes())
    runtime = start_runtime(
        MODELROLL_MODEL_URI=f"{base_url}/optin.joblib",
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_ALLOW_UNPINNED_PICKLE="true",
    )
    assert runtime.get("/v2/health/ready").status == 200


def test_missing_model_stays_unready(start_runtime: StartRuntime, tmp_path: Path) -> None:
    runtime = start_runtime(
        wait="live", MODELROLL_MODEL_URI=str(tmp_path / "nothing"), MODELROLL_MODEL_FORMAT="onnx"
    )
    never_ready(runtime, "model not found")
