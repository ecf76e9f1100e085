"""`hack/real-node.sh preflight`, which `make demo` asks before choosing real pods or its
SIMULATED kwok fallback, checks the same tools as the e2e fixtures and says in one line
what is missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests/unit is no package; the helper is in one
from tests.support.prerequisites import REAL_NODE_TOOLS  # noqa: E402

SCRIPT = REPO / "hack" / "real-node.sh"


def script_tools() -> tuple[str, ...]:
    found = re.search(r"^REAL_NODE_TOOLS=\(([^)]*)\)", SCRIPT.read_text(), re.MULTILINE)
    assert found, "hack/real-node.sh has no REAL_NODE_TOOLS=(...) list"
    words = found.group(1).split()
    return tuple(w.strip('"').replace("$CNI_BIN_DIR", "/usr/lib/cni") for w in words)


def test_the_script_and_the_fixtures_check_the_same_tools() -> None:
    assert script_tools() == REAL_NODE_TOOLS


def test_a_missing_tool_is_named_in_one_line(tmp_path: Path) -> None:
    # A PATH with the shell's own tools and every real-node tool but conntrack.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "id", "grep", "cat", *REAL_NODE_TOOLS):
        found = shutil.which(tool)
        if found and not os.path.isabs(tool) and tool != "conntrack":
            (bin_dir / tool).symlink_to(found)
    result = subprocess.run(
        ["bash", str(SCRIPT), "preflight"],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    if os.geteuid() == 0:
        first = next(
            t
            for t in REAL_NODE_TOOLS
            if not (os.access(t, os.X_OK) if os.path.isabs(t) else (bin_dir / t).exists())
        )
        assert lines[0] == f"[real-node] ERROR: {first} not found: run hack/install-deps.sh"
    else:
        assert lines[0].startswith("[real-node] ERROR: a real node needs root"), lines
