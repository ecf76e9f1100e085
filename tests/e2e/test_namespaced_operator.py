"""The namespaced install on the real node: the operator in-cluster from
dist/install-namespaced.yaml, with a Role in the one namespace it watches and no
ClusterRoleBinding beyond the two optional reads, reconciles a ModelDeployment there.

The package's cluster-wide install (conftest `installed_operator`) is taken down first,
its ClusterRole and ClusterRoleBinding too, and put back afterwards for the other modules.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import (
    ON_REAL_NODE,
    REPO,
    ModelStore,
    model_deployment_from_example,
    operator_pods,
    wait_ready,
)
from tests.integration.helpers import apply, can_i_list, eventually, get_json
from tests.support.cluster import Cluster
from tests.support.operator_access import (
    CLUSTER_READS,
    IN_WATCHED_NAMESPACE,
    OPERATOR_SA,
    SELF_REVIEWS,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("installed_operator")]
WATCHED = "models"
SYSTEM = "modelroll-system"


def on_real_node(path: Path) -> str:
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "modelroll-operator":
            doc["spec"]["template"]["spec"].update(ON_REAL_NODE)
    return yaml.safe_dump_all(docs)


def rolled_out(cluster: Cluster) -> None:
    cluster.kubectl(
        "-n",
        SYSTEM,
        "rollout",
        "status",
        "deployment/modelroll-operator",
        "--timeout=300s",
        timeout=320,
    )


def restricted_namespace_named(cluster: Cluster, name: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))
    eventually(
        lambda: cluster.kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0
    )


@pytest.fixture(scope="module")
def namespaced_operator(real_cluster: Cluster) -> Iterator[str]:
    """Yields a namespace the operator does not watch."""
    cluster = real_cluster
    # foreground: its pods are gone too when it returns, and with them their hold on the Lease
    cluster.kubectl(
        "-n", SYSTEM, "delete", "deployment", "modelroll-operator", "--cascade=foreground",
        "--wait=true", timeout=200,
    )  # fmt: skip
    cluster.kubectl("delete", "clusterrolebinding,clusterrole", "modelroll-operator")
    restricted_namespace_named(cluster, WATCHED)
    unwatched = f"e2e-unwatched-{uuid.uuid4().hex[:6]}"
    restricted_namespace_named(cluster, unwatched)
    install = on_real_node(REPO / "dist" / "install-namespaced.yaml")
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=install)
    rolled_out(cluster)
    yield unwatched
    cluster.kubectl("delete", "namespace", WATCHED, unwatched, "--timeout=180s", timeout=200)
    # Back to the package's cluster-wide install (conftest installed_operator).
    # foreground: its pods are gone too when it returns, and with them their hold on the Lease
    cluster.kubectl(
        "-n", SYSTEM, "delete", "deployment", "modelroll-operator", "--cascade=foreground",
        "--wait=true", timeout=200,
    )  # fmt: skip
    install = on_real_node(REPO / "dist" / "install.yaml")
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=install)
    rolled_out(cluster)


def test_the_namespaced_operator_has_exactly_its_role_and_the_optional_reads(
    real_cluster: Cluster, namespaced_operator: str
) -> None:
    assert can_i_list(real_cluster, OPERATOR_SA, WATCHED) == {
        **SELF_REVIEWS,
        **CLUSTER_READS,
        **IN_WATCHED_NAMESPACE,
    }
    assert can_i_list(real_cluster, OPERATOR_SA, namespaced_operator) == {
        **SELF_REVIEWS,
        **CLUSTER_READS,
    }
    bindings = get_json(real_cluster, "clusterrolebindings")["items"]
    ours = [
        b
        for b in bindings
        if any(s.get("name") == "modelroll-operator" for s in b.get("subjects") or [])
    ]
    assert [b["metadata"]["name"] for b in ours] == ["modelroll-operator"]
    role = get_json(real_cluster, "clusterrole", "modelroll-operator")
    print("ClusterRole modelroll-operator:", json.dumps(role["rules"]))
    assert [(r["resources"], r["verbs"]) for r in role["rules"]] == [
        (["nodes"], ["list"]),
        (["customresourcedefinitions"], ["get"]),
    ]


def test_the_namespaced_operator_reconciles_its_namespace_only(
    real_cluster: Cluster, namespaced_operator: str, model_store: ModelStore
) -> None:
    body = model_deployment_from_example("sklearn-iris.yaml", model_store, "1")
    apply(real_cluster, WATCHED, body)
    apply(real_cluster, namespaced_operator, body)
    md = wait_ready(real_cluster, WATCHED, "iris")
    assert md["status"]["readyReplicas"] == body["spec"]["replicas"]
    elsewhere = get_json(real_cluster, "-n", namespaced_operator, "modeldeployment", "iris")
    assert elsewhere.get("status", {}) == {"observedGeneration": 0}  # the schema's default
    assert not get_json(real_cluster, "-n", namespaced_operator, "deployments")["items"]
    for pod in operator_pods(real_cluster):  # the leader and the standby
        (container,) = pod["status"]["containerStatuses"]
        assert container["ready"] and container["restartCount"] == 0
        log = real_cluster.kubectl("-n", SYSTEM, "logs", pod["metadata"]["name"]).stdout
        assert "Forbidden" not in log and " 403" not in log, log[-3000:]
