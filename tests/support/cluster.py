"""A test's handle on a local cluster, and starting a private one through hack/cluster.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.prerequisites import (
    CONTROL_PLANE_TOOLS,
    REAL_NODE_TOOLS,
    require,
    require_root,
)

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = str(REPO / "hack" / "cluster.sh")


@dataclass(frozen=True)
class Cluster:
    kubeconfig: str
    bin_dir: str

    def kubectl_argv(self, *args: str) -> list[str]:
        """The command line of a kubectl call against this cluster."""
        return [os.path.join(self.bin_dir, "kubectl"), "--kubeconfig", self.kubeconfig, *args]

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.kubectl_argv(*args),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}"
            )
        return result

    def wait_established(self, crd: str, timeout: int = 60) -> None:
        """Until `crd` is Established: `kubectl wait` fails at once, instead of waiting, while
        a just-created CRD has no conditions yet (hack/wait-crd.sh polls)."""
        subprocess.run(
            [str(REPO / "hack" / "wait-crd.sh"), crd, str(timeout)],
            env=self.env,
            check=True,
            timeout=timeout + 10,
        )

    @property
    def env(self) -> dict[str, str]:
        """Environment for child processes (the operator) that talk to this cluster."""
        return {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "PATH": f"{self.bin_dir}:{os.environ['PATH']}",
        }


def existing_cluster(kubeconfig: str) -> Cluster:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(f"a cluster was named ({kubeconfig}) but no kubectl is on PATH")
    return Cluster(kubeconfig=kubeconfig, bin_dir=os.path.dirname(kubectl))


@contextmanager
def private_cluster(node: str = "kwok") -> Iterator[Cluster]:
    """Starts a cluster of its own (NODE=kwok or real) and removes it afterwards.

    When it cannot be built or started the test fails with the reason; it is never skipped.
    """
    require(*CONTROL_PLANE_TOOLS, needed_by="the local control plane (hack/cluster.sh)")
    if node == "real":
        require_root("the real node (hack/real-node.sh)")
        require(*REAL_NODE_TOOLS, needed_by="the real node (hack/real-node.sh, hack/images.sh)")
    cluster_dir = tempfile.mkdtemp(prefix=f"modelroll-test-{node}-")
    env = {**os.environ, "CLUSTER_DIR": cluster_dir, "NODE": node}
    started = subprocess.run(
        [CLUSTER_SCRIPT, "up"], env=env, capture_output=True, text=True, timeout=3600
    )
    if started.returncode != 0:
        subprocess.run([CLUSTER_SCRIPT, "down"], env=env, capture_output=True, timeout=300)
        pytest.fail(f"local cluster (NODE={node}) failed to start:\n{started.stderr[-4000:]}")
    bin_dir = Path(cluster_dir, "run", "bin_dir").read_text().strip()
    try:
        yield Cluster(kubeconfig=os.path.join(cluster_dir, "kubeconfig"), bin_dir=bin_dir)
    finally:
        keep_logs(Path(cluster_dir, "logs"), node)
        subprocess.run([CLUSTER_SCRIPT, "down"], env=env, capture_output=True, timeout=300)


def keep_logs(logs: Path, node: str) -> None:
    """The latest test cluster's logs outlive it (one copy per node kind), for post-mortems."""
    kept = Path(tempfile.gettempdir(), f"modelroll-test-logs-{node}")
    shutil.rmtree(kept, ignore_errors=True)
    if logs.is_dir():
        shutil.copytree(logs, kept)
