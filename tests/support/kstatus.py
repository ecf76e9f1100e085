"""kstatus as Flux computes it: our helper (hack/kstatus, on sigs.k8s.io/cli-utils) runs
`status.Compute` on one object. hack/kstatus/build.sh builds it into ~/.cache/modelroll on
first use; without Go (and no cached build) the tests that need it fail with one line."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "hack" / "kstatus" / "build.sh"


@functools.cache
def kstatus_binary() -> str:
    try:
        built = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        pytest.fail("hack/kstatus/build.sh did not finish in 900s", pytrace=False)
    if built.returncode != 0:
        lines = built.stderr.strip().splitlines() or [f"exit status {built.returncode}"]
        pytest.fail(f"hack/kstatus/build.sh failed: {lines[-1]}", pytrace=False)
    return built.stdout.strip().splitlines()[-1]


def kstatus(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) that kstatus computes for `obj`, e.g. ("Failed", "...")."""
    result = subprocess.run(
        [kstatus_binary()], input=json.dumps(obj), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, f"kstatus helper failed: {result.stderr}"
    computed = json.loads(result.stdout)
    return str(computed["status"]), str(computed["message"])
