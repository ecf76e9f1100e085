"""The settings parser at start: what the real process refuses, and what it stays free of."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from modelroll_runtime.config import ConfigError, Settings, known_names
from modelroll_runtime.formats import FORMATS

from .conftest import StartRuntime
from .models import TrainedModel
from .runtime_process import RuntimeProcess

pytestmark = pytest.mark.runtime

VALID = {"MODELROLL_MODEL_URI": "/models/iris", "MODELROLL_MODEL_FORMAT": "sklearn"}


def exits_with(runtime: RuntimeProcess, status: int) -> None:
    assert runtime.process is not None
    assert runtime.process.wait(timeout=30) == status


def test_a_misspelt_variable_stops_the_start(
    sklearn_model: TrainedModel, start_runtime: StartRuntime
) -> None:
    runtime = start_runtime(
        wait="none",
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_AUTH_TOKNE="secret",
    )
    exits_with(runtime, 2)
    assert (
        "InvalidConfig: MODELROLL_AUTH_TOKNE is not a runtime setting "
        "(did you mean MODELROLL_AUTH_TOKEN?)" in runtime.logs()
    )


def test_an_unknown_format_names_the_registered_ones(start_runtime: StartRuntime) -> None:
    runtime = start_runtime(wait="none", MODELROLL_MODEL_URI="/m", MODELROLL_MODEL_FORMAT="torch")
    exits_with(runtime, 2)
    assert (
        "MODELROLL_MODEL_FORMAT must be one of sklearn, xgboost, lightgbm, onnx, got 'torch'"
        in runtime.logs()
    )


def test_the_launcher_imports_no_numpy(
    sklearn_model: TrainedModel, start_runtime: StartRuntime
) -> None:
    """With several workers the launcher only supervises: reading the settings (and so the
    format registry) must not load numpy or a model library into it."""
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_WORKERS="2",
    )
    assert runtime.process is not None
    launcher = Path(f"/proc/{runtime.process.pid}")
    workers = (launcher / "task" / str(runtime.process.pid) / "children").read_text().split()
    assert len(workers) == 2
    time.sleep(0.5)  # both workers loaded: their maps are the control
    for worker in workers:
        assert "numpy" in Path(f"/proc/{worker}/maps").read_text()
    mapped = (launcher / "maps").read_text()
    for library in ("numpy", "onnxruntime", "sklearn", "xgboost", "lightgbm"):
        assert library not in mapped, library


def test_every_registered_format_is_accepted() -> None:
    assert list(FORMATS) == ["sklearn", "xgboost", "lightgbm", "onnx"]
    for name, declared in FORMATS.items():
        assert declared.name == name
        assert Settings.from_env({**VALID, "MODELROLL_MODEL_FORMAT": name}).model_format == name


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODELROLL_MAX_BATCH_SIZ": "8"}, "did you mean MODELROLL_MAX_BATCH_SIZE?"),
        ({"MODELROLL_THREADS": "4"}, "MODELROLL_THREADS is not a runtime setting (known: "),
        ({"MODELROLL_HTTP_PORT": "http"}, "MODELROLL_HTTP_PORT must be an integer"),
        ({"MODELROLL_WORKERS": "0"}, "MODELROLL_WORKERS must be between 1 and 1024"),
        ({"MODELROLL_LOG_LEVEL": "verbose"}, "MODELROLL_LOG_LEVEL must be one of DEBUG, INFO"),
        ({"MODELROLL_EXIT_ON_LOAD_FAILURE": "ture"}, "must be true or false, got 'ture'"),
        ({"MODELROLL_MODEL_SHA256": "abc"}, "MODELROLL_MODEL_SHA256 must be 64 hex digits"),
        ({"MODELROLL_MODEL_URI": " "}, "MODELROLL_MODEL_URI is required"),
        ({"MODELROLL_BODY_TIMEOUT_SECONDS": "0"}, "BODY_TIMEOUT_SECONDS must be a finite number"),
        ({"MODELROLL_BODY_TIMEOUT_SECONDS": "inf"}, "must be a finite number of at least"),
        ({"MODELROLL_BODY_TIMEOUT_SECONDS": "nan"}, "must be a finite number of at least"),
        ({"MODELROLL_BODY_TIMEOUT_SECONDS": "-1"}, "BODY_TIMEOUT_SECONDS must be a finite number"),
        ({"MODELROLL_MAX_LATENCY_MS": "5"}, "MODELROLL_MAX_LATENCY_MS is not a runtime setting"),
        ({"MODELROLL_GRPC_PORT": "grpc"}, "MODELROLL_GRPC_PORT must be an integer"),
        ({"MODELROLL_GRPC_PORT": "70000"}, "MODELROLL_GRPC_PORT must be between 1 and 65535"),
        ({"MODELROLL_GRPC_PORT": "8080"}, "MODELROLL_GRPC_PORT and MODELROLL_HTTP_PORT are both"),
    ],
)
def test_invalid_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**VALID, **env})
    assert message in str(raised.value)


def test_the_grpc_port_defaults_to_8081_and_can_be_turned_off() -> None:
    assert Settings.from_env(VALID).grpc_port == 8081
    assert Settings.from_env({**VALID, "MODELROLL_GRPC_PORT": "9000"}).grpc_port == 9000
    for off in ("0", "off", "OFF"):
        assert Settings.from_env({**VALID, "MODELROLL_GRPC_PORT": off}).grpc_port is None


def test_the_body_deadline_defaults_to_30_seconds() -> None:
    assert Settings.from_env(VALID).body_timeout_seconds == 30.0
    settings = Settings.from_env({**VALID, "MODELROLL_BODY_TIMEOUT_SECONDS": "2.5"})
    assert settings.body_timeout_seconds == 2.5


def test_other_variables_are_not_the_runtimes_business() -> None:
    settings = Settings.from_env({**VALID, "OMP_NUM_THREADS": "4", "AWS_REGION": "x"})
    assert settings.model_uri == "/models/iris"
    assert "MODELROLL_MODEL_URI" in known_names()
