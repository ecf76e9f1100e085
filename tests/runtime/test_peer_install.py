"""The peers' install (tests/support/peers.py): nothing when warm, a failure that says why
when pip cannot install them, never a skip."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import peers
from tests.support.prerequisites import require_peers

pytestmark = pytest.mark.runtime


def test_a_warm_venv_installs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "CACHE", tmp_path)
    venv = peers.venv_dir("kserve")
    venv.mkdir(parents=True)
    (venv / peers.MARKER).write_text("installed\n")

    def no_pip(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"ran {args} on a warm venv")

    monkeypatch.setattr(subprocess, "run", no_pip)
    assert peers.ensure_venv("kserve") == venv


def test_the_venv_is_keyed_by_version_and_requirements(monkeypatch: pytest.MonkeyPatch) -> None:
    before = peers.venv_dir("kserve")
    assert before.name.startswith(f"kserve-{peers.KSERVE_VERSION}-")
    monkeypatch.setitem(peers.PEERS, "kserve", (*peers.PEERS["kserve"], "extra==1"))
    assert peers.venv_dir("kserve") != before  # a changed pin makes a new venv


def test_a_failed_install_fails_the_test_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip without an index (as without network) cannot install: the test that needs the
    peers fails with pip's reason and the command to retry, and no venv is left marked."""
    monkeypatch.setattr(peers, "CACHE", tmp_path)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        require_peers("this test")
    message = str(failed.value)
    assert message.startswith(f"kserve {peers.KSERVE_VERSION} is missing, needed by this test")
    assert "from PyPI failed" in message and "No matching distribution" in message
    assert "run: python tests/support/peers.py kserve" in message
    assert not peers.venv_dir("kserve").exists()
    assert (tmp_path / f"{peers.venv_dir('kserve').name}.install.log").is_file()
