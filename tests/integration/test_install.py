"""The install manifests: apply cleanly, admit the operator pod under PSS restricted, and
grant exactly the access the operator needs (proved by running it with that access)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.helpers import (
    apply,
    condition,
    eventually,
    get_json,
    model_deployment,
    service_account_kubeconfig,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
OPERATOR_SA = "system:serviceaccount:modelroll-system:modelroll-operator"


@pytest.fixture(scope="module")
def installed(cluster: Cluster, crd_installed: None) -> None:
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-k", str(REPO / "config" / "default")
    )


def can(cluster: Cluster, verb: str, resource: str, namespace: str = "default") -> bool:
    result = cluster.kubectl(
        "auth", "can-i", verb, resource, "-n", namespace, "--as", OPERATOR_SA, check=False
    )
    return result.stdout.strip() == "yes"


def test_operator_deployment_is_admitted_under_restricted_and_scheduled(
    cluster: Cluster, installed: None
) -> None:
    namespace = get_json(cluster, "namespace", "modelroll-system")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    deployment = get_json(cluster, "-n", "modelroll-system", "deployment", "modelroll-operator")
    # Two replicas, one leading through the Lease: a rolling update keeps one up.
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert deployment["spec"]["replicas"] == 2

    def scheduled() -> str:
        pods = get_json(
            cluster, "-n", "modelroll-system", "pods", "-l", "app.kubernetes.io/component=operator"
        )["items"]
        return str(pods[0]["spec"].get("nodeName", "")) if pods else ""

    assert eventually(scheduled, timeout=60).startswith("kwok-")


def test_rbac_is_least_privilege(cluster: Cluster, installed: None) -> None:
    for verb, resource in [
        ("patch", "modeldeployments.modelroll.io/status"),
        ("watch", "modeldeployments.modelroll.io"),
        ("patch", "deployments.apps"),
        ("delete", "horizontalpodautoscalers.autoscaling"),
        ("watch", "pods"),
        ("list", "nodes"),
        ("get", "secrets"),
        ("create", "events"),
    ]:
        assert can(cluster, verb, resource), f"operator needs {verb} {resource}"
    for verb, resource in [
        ("list", "secrets"),
        ("watch", "secrets"),
        ("delete", "pods"),
        ("create", "pods"),
        ("delete", "modeldeployments.modelroll.io"),
        ("create", "clusterroles.rbac.authorization.k8s.io"),
        ("patch", "nodes"),
        ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ]:
        assert not can(cluster, verb, resource), f"operator must not {verb} {resource}"


def test_rbac_grants_no_verb_the_operator_does_not_use(cluster: Cluster, installed: None) -> None:
    # Each of these was granted before the rules were checked against the code
    # (tests/unit/test_rbac.py): nothing calls them.
    for verb, resource in [
        ("update", "deployments.apps"),
        ("update", "modeldeployments.modelroll.io"),
        ("get", "modeldeployments.modelroll.io"),
        ("get", "pods"),
        ("delete", "serviceaccounts"),
        ("delete", "httproutes.gateway.networking.k8s.io"),
        ("list", "servicemonitors.monitoring.coreos.com"),
        ("patch", "events"),
        ("create", "events.events.k8s.io"),
        ("get", "customresourcedefinitions.apiextensions.k8s.io/modeldeployments.modelroll.io"),
    ]:
        assert not can(cluster, verb, resource), f"operator must not {verb} {resource}"
    crd = "customresourcedefinitions.apiextensions.k8s.io/servicemonitors.monitoring.coreos.com"
    assert can(cluster, "get", crd)
    for verb, allowed in (("patch", "yes"), ("update", "no"), ("get", "no")):
        status = cluster.kubectl(
            "auth",
            "can-i",
            verb,
            "modeldeployments.modelroll.io",
            "--subresource=status",
            "--as",
            OPERATOR_SA,
            "-n",
            "default",
            check=False,
        )
        assert status.stdout.strip() == allowed, f"{verb} modeldeployments/status"


def test_operator_works_with_exactly_the_installed_rbac(
    cluster: Cluster, installed: None, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    as_operator = service_account_kubeconfig(
        cluster, "modelroll-system", "modelroll-operator", tmp_path / "operator.kubeconfig"
    )
    operator.stop()  # one operator at a time, as the Recreate strategy guarantees in-cluster
    # With leader election on, as in-cluster: the installed Role must cover the Lease too.
    restricted = OperatorProcess(
        as_operator,
        str(tmp_path),
        {"MODELROLL_LEADER_LEASE": "modelroll-system/modelroll-operator"},
    )
    try:
        restricted.start()
        body = model_deployment("rbac", replicas=2)
        apply(cluster, namespace, body)

        def ready() -> bool:
            md = get_json(cluster, "-n", namespace, "md", "rbac")
            return condition(md, "Ready").get("status") == "True"

        eventually(ready, timeout=90)
        # Telling a GPU product no node has from a shortage needs the list of nodes.
        gpu = {"count": 1, "product": "NVIDIA-H100-80GB-HBM3"}
        apply(cluster, namespace, model_deployment("rbac-gpu", gpu=gpu))

        def not_offered() -> bool:
            md = get_json(cluster, "-n", namespace, "md", "rbac-gpu")
            return condition(md, "Stalled").get("reason") == "GPUNotOffered"

        eventually(not_offered, timeout=90)
        log = Path(restricted.log_path).read_text()
        assert "Forbidden" not in log and " 403" not in log, log[-3000:]
    finally:
        restricted.stop()
        operator.start()
