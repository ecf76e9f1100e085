from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .models import TrainedModel, onnx_model, train_lightgbm, train_sklearn, train_xgboost
from .runtime_process import RuntimeProcess

StartRuntime = Callable[..., RuntimeProcess]


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # shared by every runtime of the session: each model is compiled to ONNX once
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def sklearn_model(models_dir: Path) -> TrainedModel:
    return train_sklearn(models_dir / "sklearn")


@pytest.fixture(scope="session")
def sklearn_pickle_model(models_dir: Path) -> TrainedModel:
    return train_sklearn(models_dir / "sklearn-pickle", "model.pkl")


@pytest.fixture(scope="session")
def xgboost_model(models_dir: Path) -> TrainedModel:
    return train_xgboost(models_dir / "xgboost")


@pytest.fixture(scope="session")
def lightgbm_model(models_dir: Path) -> TrainedModel:
    return train_lightgbm(models_dir / "lightgbm")


@pytest.fixture(scope="session")
def affine_onnx(models_dir: Path) -> Path:
    return onnx_model(models_dir / "affine-onnx", "affine")


def _start(
    tmp: Path, compile_cache: Path, started: list[RuntimeProcess], wait: str, env: dict[str, str]
) -> RuntimeProcess:
    full_env = {
        "MODELROLL_CACHE_DIR": str(compile_cache),
        "MODELROLL_MODEL_DIR": str(tmp / "downloads"),
        "MODELROLL_TERMINATION_LOG": str(tmp / "termination-log"),
        **env,
    }
    runtime = RuntimeProcess(full_env, tmp / f"runtime-{len(started)}.log").start()
    started.append(runtime)
    if wait == "ready":
        runtime.wait_ready()
    elif wait == "live":
        runtime.wait_live()
    return runtime


@pytest.fixture
def start_runtime(tmp_path: Path, compile_cache: Path) -> Iterator[StartRuntime]:
    """start_runtime(wait="ready"|"live"|"none", **{MODELROLL_X: value})"""
    started: list[RuntimeProcess] = []

    def start(wait: str = "ready", **env: str) -> RuntimeProcess:
        return _start(tmp_path, compile_cache, started, wait, env)

    yield start
    for runtime in started:
        runtime.stop()


@pytest.fixture(scope="module")
def start_module_runtime(
    tmp_path_factory: pytest.TempPathFactory, compile_cache: Path
) -> Iterator[StartRuntime]:
    """Like start_runtime, for servers shared by the tests of one module."""
    started: list[RuntimeProcess] = []
    tmp = tmp_path_factory.mktemp("module-runtime")

    def start(wait: str = "ready", **env: str) -> RuntimeProcess:
        return _start(tmp, compile_cache, started, wait, env)

    yield start
    for runtime in started:
        runtime.stop()
