"""What a fixture needs from the host, checked before the fixture uses it.

A missing tool fails the test with one line that names it and the command that installs
it (hack/install-deps.sh, which `make test` runs first), never with a raw
`FileNotFoundError` from deep inside a fixture.
"""

from __future__ import annotations

import os
import shutil

import pytest

INSTALLER = "hack/install-deps.sh"

# hack/cluster.sh: the control plane's certificates and health checks.
CONTROL_PLANE_TOOLS = ("openssl", "curl")
# hack/real-node.sh and hack/images.sh, and the host checks of the e2e tests.
REAL_NODE_TOOLS = (
    "containerd",
    "ctr",
    "runc",
    "/usr/lib/cni/bridge",
    "iptables",
    "ip6tables",
    "conntrack",
    "nft",
    "ip",
    "sysctl",
    "buildah",
    "mmdebstrap",
    "gcc",
    "git",
)


def install_command() -> str:
    """The command that installs what is missing, as this user can run it."""
    if os.geteuid() == 0:
        return f"run: {INSTALLER}"
    if shutil.which("sudo"):
        return f"run: sudo {INSTALLER}"
    return f"run as root: {INSTALLER}"


def missing(tools: tuple[str, ...]) -> list[str]:
    """The tools (commands on PATH, or absolute paths) that are not there."""
    return [
        tool
        for tool in tools
        if not (os.access(tool, os.X_OK) if os.path.isabs(tool) else shutil.which(tool))
    ]


# The project's own virtualenv, which the operator and CLI subprocesses of the tests run from.
VENV_FIX = "run: make venv"


def require(*tools: str, needed_by: str, fix: str | None = None) -> None:
    """Fails the test, in one line, unless every tool is there; `fix` defaults to the installer."""
    absent = missing(tools)
    if absent:
        pytest.fail(
            f"missing {', '.join(absent)}, needed by {needed_by}; {fix or install_command()}",
            pytrace=False,
        )


# KServe and MLServer for the peer-compatibility tests: pip installs them on first use.
PEERS_FIX = "python tests/support/peers.py"


def require_peers(needed_by: str) -> None:
    """Fails the test, saying why, unless both peers are installed (from the cache when
    warm): without them the comparison cannot be made, so this is a failure, never a skip."""
    from . import peers

    for name in peers.PEERS:
        try:
            peers.ensure_venv(name)
        except peers.PeerInstallError as exc:
            pytest.fail(
                f"{name} {peers.VERSIONS[name]} is missing, needed by {needed_by}: {exc}\n"
                f"fix the cause above, then run: {PEERS_FIX} {name}",
                pytrace=False,
            )


def require_root(needed_by: str) -> None:
    if os.geteuid() != 0:
        pytest.fail(
            f"{needed_by} needs root (network namespaces, mounts, iptables); "
            "run the tests as root: sudo make test",
            pytrace=False,
        )
