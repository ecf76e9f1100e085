"""The framework packaging tests' fixtures: the framework venvs (installed from PyPI on a
first run, tests/support/frameworks.py), the models made in them, and the packager run in
them as `modelroll package` runs in a user's CI."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

from tests.support import frameworks

REPO = Path(__file__).resolve().parents[2]
MAKE_MODELS = Path(__file__).with_name("make_models.py")
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass(frozen=True)
class Rows:
    x: np.ndarray
    reference: Path  # the same rows as CSV with a header: the packager's reference data


@dataclass(frozen=True)
class Packaging:
    returncode: int
    stdout: str
    stderr: str
    output: Path


@pytest.fixture(scope="session")
def iris_rows(tmp_path_factory: pytest.TempPathFactory) -> Rows:
    root = tmp_path_factory.mktemp("iris")
    x, y = load_iris(return_X_y=True)
    np.save(root / "x.npy", x)
    np.save(root / "y.npy", y)
    lines = [",".join(COLUMNS), *(",".join(repr(float(v)) for v in row) for row in x)]
    (root / "reference.csv").write_text("\n".join(lines) + "\n")
    return Rows(x, root / "reference.csv")


def _quiet_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELROLL_")}
    env["PYTHONPATH"] = str(REPO / "runtime_images")  # this checkout's packager
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONWARNINGS"] = "ignore"
    return env


@pytest.fixture(scope="session")
def made_models(tmp_path_factory: pytest.TempPathFactory, iris_rows: Rows) -> Callable[[str], Path]:
    """made_models("torch"): the directory of make_models.py's models for that framework."""
    made: dict[str, Path] = {}

    def make(framework: str) -> Path:
        if framework not in made:
            out = tmp_path_factory.mktemp(f"{framework}-models")
            x_file = iris_rows.reference.with_name("x.npy")
            done = subprocess.run(
                [str(frameworks.python(framework)), str(MAKE_MODELS), framework, str(out),
                 str(x_file), str(x_file.with_name("y.npy"))],
                env=_quiet_env(), capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr[-4000:]
            made[framework] = out
        return made[framework]

    return make


@pytest.fixture
def package_model(tmp_path: Path, iris_rows: Rows) -> Callable[[str, Path], Packaging]:
    """package_model("torch", model): `python -m modelroll_runtime.packager` in that
    framework's venv, as a user's CI runs `modelroll package` with the extra installed."""

    def run(framework: str, model: Path) -> Packaging:
        output = tmp_path / f"package-{model.name}"
        done = subprocess.run(
            [str(frameworks.python(framework)), "-m", "modelroll_runtime.packager", str(model),
             "--reference", str(iris_rows.reference), "--output", str(output)],
            env=_quiet_env(), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        return Packaging(done.returncode, done.stdout, done.stderr, output)

    return run
