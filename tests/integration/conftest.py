"""Fixtures that give integration tests a real control plane.

The session starts one private cluster through hack/cluster.sh, or uses the one named by
MODELROLL_TEST_KUBECONFIG. When it cannot be built or started the tests fail with the
reason; they are never skipped.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.support.cluster import Cluster, existing_cluster, private_cluster
from tests.support.prerequisites import VENV_FIX, require
from tests.support.router import Router

__all__ = ["Cluster", "OperatorProcess"]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    existing = os.environ.get("MODELROLL_TEST_KUBECONFIG")
    if existing:
        yield existing_cluster(existing)
        return
    with private_cluster("kwok") as started:
        yield started


@pytest.fixture(scope="session")
def api_client(cluster: Cluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=cluster.kubeconfig)


@pytest.fixture(scope="session")
def crd_installed(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(REPO / "crds"))
    # `kubectl wait` errors out (instead of waiting) while the CRD has no conditions yet.
    deadline = time.monotonic() + 60
    jsonpath = '{.status.conditions[?(@.type=="Established")].status}'
    while (
        cluster.kubectl(
            "get",
            "crd",
            "modeldeployments.modelroll.io",
            "-o",
            f"jsonpath={jsonpath}",
            check=False,
        ).stdout
        != "True"
    ):
        assert time.monotonic() < deadline, "the ModelDeployment CRD was not Established in 60s"
        time.sleep(0.2)


@pytest.fixture
def namespace(cluster: Cluster, api_client: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    deadline = time.monotonic() + 30
    while True:  # pods cannot be created before the namespace's default ServiceAccount exists
        try:
            core.read_namespaced_service_account("default", name)
            break
        except client.ApiException as error:
            if error.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    yield name
    core.delete_namespace(name)


PROMETHEUS_ENDPOINT = "test"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """The operator run from source, as `make run` does, against the test cluster."""

    def __init__(
        self, cluster: Cluster, log_dir: str, extra_env: dict[str, str] | None = None
    ) -> None:
        self.cluster = cluster
        self.extra_env = extra_env or {}
        self.log_path = os.path.join(log_dir, "operator.log")
        self.metrics_port = _free_port()
        self.liveness_port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **self.cluster.env,
            "MODELROLL_METRICS_PORT": str(self.metrics_port),
            "MODELROLL_LIVENESS": f"http://127.0.0.1:{self.liveness_port}/healthz",
            "MODELROLL_TIMER_INTERVAL_SECONDS": "3",
            **self.extra_env,
        }
        python = str(REPO / ".venv" / "bin" / "python")
        require(python, needed_by="the operator run from source", fix=VENV_FIX)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.process = subprocess.Popen(
            [python, "-m", "modelroll"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        deadline = time.monotonic() + 60
        import urllib.request

        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"operator exited with {self.process.returncode}; log: {self.log_path}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2)
                return
            except OSError:
                time.sleep(0.3)
        pytest.fail(f"operator did not report healthy in 60s; log: {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: the harshest way to stop it, as a node failure would."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="session")
def router() -> Iterator[Router]:
    """Stands in for cluster DNS and kube-proxy: kwok pods have no network."""
    started = Router().start()
    yield started
    started.stop()


@pytest.fixture(scope="session")
def prometheus_port() -> int:
    """The loopback port the operator knows as Prometheus endpoint `test` (its default): a
    module that needs analysis starts its own Prometheus there (PrometheusServer(port=…))."""
    return _free_port()


@pytest.fixture(scope="session")
def operator(
    cluster: Cluster,
    crd_installed: None,
    router: Router,
    prometheus_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        cluster,
        str(tmp_path_factory.mktemp("operator")),
        {
            "MODELROLL_SERVICE_URL_TEMPLATE": router.url_template,
            # Analysis may query only the endpoints the operator names (issue 12).
            "MODELROLL_PROMETHEUS_ENDPOINTS": f"{PROMETHEUS_ENDPOINT}=http://127.0.0.1:{prometheus_port}",
        },
    )
    process.start()
    yield process
    process.stop()
