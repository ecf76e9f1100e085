"""Every file generated from the typed API (modelroll.api) is what the generator writes now.

The CRD in crds/, its chart copy, the CRD inside dist/install.yaml and docs/api-reference.md
all come from operator/modelroll/api/v1alpha1.py; editing a model and not regenerating fails
here (run: make generate).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from modelroll import analysis
from modelroll.api import generate, v1alpha1
from modelroll.api.crd import crd

REPO = Path(__file__).resolve().parents[2]
CHART_CRD = REPO / "charts" / "modelroll" / "crds" / "modelroll.io_modeldeployments.yaml"


def test_generate_check_passes_on_the_checkout() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modelroll.api.generate", "--check", "--root", str(REPO)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_the_chart_and_dist_carry_the_generated_crd() -> None:
    # Without kubectl: the kubectl-based check is test_install_bundles' render-install test.
    assert CHART_CRD.read_text() == (REPO / generate.CRD_FILE).read_text()
    dist = [d for d in yaml.safe_load_all((REPO / "dist" / "install.yaml").read_text()) if d]
    crds = [d for d in dist if d["kind"] == "CustomResourceDefinition"]
    assert crds == [crd()], "run: make generate"


@pytest.mark.parametrize("relative", [generate.CRD_FILE, generate.REFERENCE_FILE])
def test_check_names_a_hand_edited_generated_file_and_writing_restores_it(
    tmp_path: Path, relative: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in generate.generated():  # the RBAC files too (modelroll.api.rbac_files)
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp_path / path)
    assert generate.main(["--check", "--root", str(tmp_path)]) == 0
    target = tmp_path / relative
    target.write_text(target.read_text().replace("Largest batch, in requests.", "Largest batch."))
    assert generate.main(["--check", "--root", str(tmp_path)]) == 1
    assert f"stale: {relative}" in capsys.readouterr().err
    assert generate.main(["--root", str(tmp_path)]) == 0
    assert target.read_text() == (REPO / relative).read_text()


def _models_in(annotation: Any, schema: dict[str, Any]) -> list[tuple[type[Any], Any]]:
    """The API models a field holds (itself, Optional of it, or a tuple of it), with schemas."""
    if isinstance(annotation, type) and issubclass(annotation, v1alpha1.ApiModel):
        return [(annotation, schema)]
    args = get_args(annotation)
    if getattr(annotation, "__origin__", None) is tuple:
        return _models_in(args[0], schema.get("items", {}))
    return [found for arg in args for found in _models_in(arg, schema)]


def test_every_field_default_is_the_crd_default() -> None:
    # One source: the pydantic default of each field is exactly the schema default written.
    def walk(model: type[Any], schema: dict[str, Any], path: str) -> int:
        checked = 0
        for name, info in model.model_fields.items():
            child = schema["properties"][info.alias or name]
            if "default" in child and child["default"] != {}:
                assert info.get_default(call_default_factory=True) == child["default"], path + name
                checked += 1
            for inner, inner_schema in _models_in(info.annotation, child):
                checked += walk(inner, inner_schema, f"{path}{name}.")
        return checked

    root = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert walk(v1alpha1.ModelDeploymentSpec, root["properties"]["spec"], "spec.") >= 15


def test_the_listed_analysis_reasons_are_the_ones_analysis_emits() -> None:
    emitted = {
        analysis.PASSED,
        analysis.FAILED,
        analysis.INSUFFICIENT_REQUESTS,
        analysis.UNAVAILABLE,
        analysis.ENDPOINT_UNKNOWN,
        analysis.CUSTOM_CHECKS_DISABLED,
        analysis.PREDICTION_SHIFT,
    }
    assert emitted == set(get_args(v1alpha1.AnalysisReason))


def test_a_hand_edited_rbac_file_is_stale_and_writing_restores_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in generate.generated():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp_path / path)
    role = tmp_path / "config" / "rbac" / "role.yaml"
    role.write_text(role.read_text().replace("verbs: [list, watch]}", "verbs: [get, list, watch]}"))
    assert generate.main(["--check", "--root", str(tmp_path)]) == 1
    assert "stale: config/rbac/role.yaml" in capsys.readouterr().err
    assert generate.main(["--root", str(tmp_path)]) == 0
    assert role.read_text() == (REPO / "config" / "rbac" / "role.yaml").read_text()
