"""hack/install-deps.sh stops before changing anything, in one line that says what is
missing and the command that fixes it, where it cannot install (not root, not Debian).

The script runs for real, on a PATH of the real tools it uses plus stand-ins for the
machine's identity and package manager (`id`, `dpkg-query`, `apt-get`): a test cannot be
made non-root or non-Debian otherwise, and must not install packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "hack" / "install-deps.sh"


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is not on PATH"
    return found


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    """A bin dir: the real bash, grep, head, go and python3, and a non-root `id`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("bash", "grep", "head"):
        (bin_dir / name).symlink_to(tool(name))
    (bin_dir / "go").symlink_to(tool("go"))
    (bin_dir / "python3").symlink_to(sys.executable)
    stub(bin_dir, "id", "echo 1000")
    stub(bin_dir, "apt-get", f'echo "$*" >>{tmp_path}/apt-get.calls')
    return bin_dir


def stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!{tool('bash')}\n{body}\n")
    path.chmod(0o755)


def run(bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(
        [str(bin_dir / "bash"), str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_not_root_without_sudo_names_the_missing_packages_and_the_command(
    machine: Path,
) -> None:
    # Debian where every package but prometheus is installed
    stub(machine, "dpkg-query", '[ "$3" = prometheus ] && exit 1; printf "install ok installed"')
    result = run(machine)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "[install-deps] ERROR: missing Debian packages prometheus (not root, no sudo): "
        "run as root: apt-get update && apt-get install -y --no-install-recommends prometheus"
    ]
    assert not (machine.parent / "apt-get.calls").exists()


def test_a_command_that_needs_root_stops_first(machine: Path) -> None:
    stub(machine, "dpkg-query", f"touch {machine.parent}/dpkg-query.called")
    result = run(machine, "--root-for", "make test")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "[install-deps] ERROR: make test runs a real node and builds images, which need root: "
        "run: sudo make test"
    ]
    assert not (machine.parent / "dpkg-query.called").exists()


def test_not_debian_names_the_missing_tools(machine: Path) -> None:
    (machine / "apt-get").unlink()  # no dpkg-query, no apt-get; wrk is not on this PATH
    result = run(machine)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("[install-deps] ERROR: missing ")
    assert " wrk " in line
    assert line.endswith(
        "and this installer needs Debian/Ubuntu (apt-get): "
        "install them with the system's package manager, then rerun"
    )


def test_with_everything_installed_it_changes_nothing_and_needs_no_root(machine: Path) -> None:
    stub(machine, "dpkg-query", 'printf "install ok installed"')
    result = run(machine)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0].startswith("[install-deps] all 19 system packages present")
    assert not (machine.parent / "apt-get.calls").exists()
