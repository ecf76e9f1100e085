"""The import-linter contracts of `make lint`: the pure core does no I/O, entry points on top.

`lint-imports` runs on the checkout (kept) and on temporary copies with one forbidden import
added (broken), so the contracts are shown to catch what they claim to.
"""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONTRACTS = {
    c["id"]: c
    for c in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
}
# The modules of modelroll that do I/O, or start the operator or the CLI.
IO_MODULES = {
    "checks",
    "handlers",
    "inference",
    "kube",
    "kube_transport",
    "leader",
    "metrics",
    "outbound",
    "prometheus",
    "reconcile",
    "smoke",
}
ENTRY_POINTS = {"__main__", "cli"}


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root / "operator")},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_checkout_keeps_every_contract() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "verdict"),
    [
        ("render", "import urllib.request", "modelroll.render is not allowed to import urllib"),
        ("drift", "import kubernetes", "modelroll.drift is not allowed to import kubernetes"),
        ("status", "import kopf", "modelroll.status is not allowed to import kopf"),
        ("analysis", "import http.client", "modelroll.analysis is not allowed to import http"),
        (
            "spec",
            "from modelroll import prometheus",
            "modelroll.spec is not allowed to import modelroll.prometheus",
        ),
        ("kube", "import modelroll.reconcile", "modelroll.kube is not allowed to import"),
        ("reconcile", "import modelroll.cli.main", "modelroll.reconcile is not allowed to import"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, verdict: str
) -> None:
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    shutil.copytree(
        REPO / "operator" / "modelroll",
        tmp_path / "operator" / "modelroll",
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    source = tmp_path / "operator" / "modelroll" / f"{module}.py"
    text = source.read_text()
    # After the docstring and `from __future__`, where an import would normally go.
    head, future, rest = text.partition("from __future__ import annotations\n")
    assert future, f"{module}.py has no `from __future__` import to add the line after"
    source.write_text(f"{head}{future}{line}\n{rest}")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert verdict in result.stdout, result.stdout
    assert "BROKEN" in result.stdout


def test_every_module_is_either_pure_or_listed_as_io() -> None:
    """A new module must be placed: in the pure contract, or among the I/O modules here."""
    modules = {m.name for m in pkgutil.iter_modules([str(REPO / "operator" / "modelroll")])}
    pure = {m.removeprefix("modelroll.") for m in CONTRACTS["pure-core"]["source_modules"]}
    forbidden = {m.removeprefix("modelroll.") for m in CONTRACTS["pure-core"]["forbidden_modules"]}
    assert modules - pure - IO_MODULES - ENTRY_POINTS == set(), "unplaced modules"
    assert pure <= modules, "the pure contract names modules that do not exist"
    assert pure.isdisjoint(IO_MODULES | ENTRY_POINTS)
    assert IO_MODULES | {"cli"} <= forbidden, "an I/O module the pure core may import"
    layered = {
        name.strip(" ()")
        for layer in CONTRACTS["layers"]["layers"]
        for name in layer.replace("|", ":").split(":")
    }
    assert layered == modules, "the layers contract must place every module"
