"""The operator's wheel, installed in a fresh virtualenv, renders and lints every example.

No Kubernetes here: this checks packaging. The wheel is built from exactly what the
Dockerfile's build stage copies, installed with its dependencies (pip's cache is reused)
into a new virtualenv, and run from a folder outside the checkout with no PYTHONPATH, so
templates and the CRD can only come from the installed package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
IGNORED = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")


def build_stage_copies(dockerfile: Path) -> list[tuple[str, str]]:
    """(source, destination) of each COPY in the Dockerfile's first stage."""
    copies: list[tuple[str, str]] = []
    stages = 0
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            stages += 1
        elif words[:1] == ["COPY"] and stages == 1:
            *sources, destination = [w for w in words[1:] if not w.startswith("--")]
            copies += [(source, destination) for source in sources]
    return copies


def stage_build_context(stage: Path) -> None:
    for source, destination in build_stage_copies(REPO / "Dockerfile"):
        target = stage / destination
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, target, symlinks=True, ignore=IGNORED)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / source, target / source)


def run(*argv: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=480
    )
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed() -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """(the fresh virtualenv's bin folder, a work folder outside the checkout, its env)."""
    with tempfile.TemporaryDirectory(prefix="modelroll-wheel-") as tmp:
        root = Path(tmp)
        assert not root.resolve().is_relative_to(REPO)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        stage, wheels, venv, work = (root / d for d in ("context", "wheels", "venv", "work"))
        stage_build_context(stage)
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
        run(*pip, "wheel", "--no-deps", "--wheel-dir", wheels, stage, cwd=root, env=env)
        [wheel] = wheels.glob("modelroll-*.whl")
        # No pip inside the new venv: the test's pip installs into it (faster than ensurepip).
        run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root, env=env)
        python = venv / "bin" / "python"
        run(*pip, "--python", python, "install", "--quiet", wheel, cwd=root, env=env)
        work.mkdir()
        for example in EXAMPLES:
            shutil.copy(example, work / example.name)
        yield venv / "bin", work, env


def test_the_package_is_the_installed_one(installed: tuple[Path, Path, dict[str, str]]) -> None:
    bin_dir, work, env = installed
    where = "import modelroll.render as r, modelroll.api as a\n"
    where += "print(r.__file__, r.TEMPLATES, a.__file__)"
    found = run(bin_dir / "python", "-c", where, cwd=work, env=env).stdout.split()
    assert len(found) == 3, found
    assert all(Path(p).resolve().is_relative_to(bin_dir.parent.resolve()) for p in found), found


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_render_works_from_the_wheel(
    installed: tuple[Path, Path, dict[str, str]], example: Path
) -> None:
    bin_dir, work, env = installed
    text = run(bin_dir / "modelroll", "render", example.name, "-n", "ml", cwd=work, env=env).stdout
    children = list(yaml.safe_load_all(text))
    names = {d["metadata"]["name"] for d in yaml.safe_load_all(example.read_text()) if d}
    assert children[0]["kind"] == "Deployment"
    assert {"Deployment", "Service", "ServiceAccount"} <= {c["kind"] for c in children}
    assert {c["metadata"]["namespace"] for c in children} == {"ml"}
    owners = {ref["name"] for c in children for ref in c["metadata"]["ownerReferences"]}
    assert owners == names


def test_lint_works_from_the_wheel(installed: tuple[Path, Path, dict[str, str]]) -> None:
    bin_dir, work, env = installed
    files = [e.name for e in EXAMPLES]
    lines = run(bin_dir / "modelroll", "lint", *files, cwd=work, env=env).stdout.splitlines()
    assert len(lines) == len(files)
    assert all(line.endswith(": valid") for line in lines), lines
    invalid = work / "invalid.yaml"
    iris = (REPO / "examples" / "sklearn-iris.yaml").read_text()
    invalid.write_text(iris.replace("replicas: 2", "replicas: -1", 1))
    result = subprocess.run(
        [str(bin_dir / "modelroll"), "lint", invalid.name],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "spec.replicas" in result.stdout, result.stdout
