"""docs/api-reference.md is generated from the typed API and must not go stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_api_reference_matches_the_crd() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modelroll.api.generate", "--check", "--root", str(REPO)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_api_reference_documents_every_spec_field() -> None:
    text = (REPO / "docs" / "api-reference.md").read_text()
    for field in (
        "spec.model.uri",
        "spec.gpu.count",
        "spec.rollout.canary.steps[].weight",
        "spec.rollout.blueGreen.smokeTest",
        "status.conditions",
    ):
        assert f"`{field}" in text, field
