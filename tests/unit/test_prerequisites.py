"""A missing host tool fails a test in one line that names it and the fix, no traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests/unit is no package; the helper is in one
from tests.support.prerequisites import install_command, missing, require  # noqa: E402


def test_present_tools_and_paths_pass() -> None:
    assert missing(("sh", sys.executable)) == []
    require("sh", sys.executable, needed_by="nothing")


def test_a_missing_tool_fails_naming_it_and_the_install_command() -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        require("sh", "no-such-tool-x", "/no/such/binary", needed_by="the widget")
    assert str(failed.value) == (
        f"missing no-such-tool-x, /no/such/binary, needed by the widget; {install_command()}"
    )
    assert "hack/install-deps.sh" in install_command()


def test_the_failure_is_one_line_in_pytests_report_without_a_traceback(tmp_path: Path) -> None:
    test_file = tmp_path / "test_needs_a_tool.py"
    test_file.write_text(
        textwrap.dedent(
            """
            import pytest
            from tests.support.prerequisites import require

            @pytest.fixture
            def tool():
                require("no-such-tool-x", needed_by="the fixture")

            def test_uses_it(tool):
                pass
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout
    line = f"missing no-such-tool-x, needed by the fixture; {install_command()}"
    assert line in result.stdout.splitlines(), result.stdout  # the error's whole report
    assert "Traceback" not in result.stdout and "def tool" not in result.stdout, result.stdout
