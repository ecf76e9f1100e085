"""The single-file bundle and the Helm chart apply cleanly to a real apiserver.

dist/install.yaml is applied for real (server-side): every object is accepted, the
namespace is restricted, and the operator Deployment gets a pod scheduled on a kwok node.
The Helm-rendered bundle holds the same cluster-scoped objects, so it is applied with
--dry-run=server on top: the apiserver validates and admits every object without storing it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Cluster
from tests.integration.helpers import eventually, get_json

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist" / "install.yaml"
NAMESPACE = "modelroll-system"


def helm() -> str:
    built = subprocess.run(
        [str(REPO / "hack" / "helm" / "build.sh")], capture_output=True, text=True, timeout=1800
    )
    if built.returncode != 0:
        pytest.fail(f"hack/helm/build.sh failed:\n{built.stderr[-4000:]}")
    return built.stdout.strip().splitlines()[-1]


def objects(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def resource(obj: dict[str, Any]) -> list[str]:
    """kubectl get arguments naming one object."""
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    kind = f"{obj['kind'].lower()}.{group}" if group else obj["kind"].lower()
    namespace = obj["metadata"].get("namespace")
    return [*(["-n", namespace] if namespace else []), kind, obj["metadata"]["name"]]


@pytest.fixture(scope="module")
def applied(cluster: Cluster) -> list[dict[str, Any]]:
    result = cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(DIST))
    assert "modelroll-operator" in result.stdout
    cluster.wait_established("modeldeployments.modelroll.io")
    return objects(DIST.read_text())


def test_every_object_of_dist_install_yaml_is_stored(
    cluster: Cluster, applied: list[dict[str, Any]]
) -> None:
    kinds = sorted(o["kind"] for o in applied)
    assert kinds == sorted(
        [
            "Namespace",
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Service",
            "Deployment",
            "NetworkPolicy",
            # the tenants' aggregated roles
            "ClusterRole",
            "ClusterRole",
            # high availability: the leader Lease's Role and binding, the replicas' PDB
            "Role",
            "RoleBinding",
            "PodDisruptionBudget",
        ]
    )
    for obj in applied:
        stored = get_json(cluster, *resource(obj))
        assert stored["metadata"]["name"] == obj["metadata"]["name"]
        for label, value in (obj["metadata"].get("labels") or {}).items():
            assert stored["metadata"]["labels"][label] == value


def test_namespace_exists_and_enforces_restricted(
    cluster: Cluster, applied: list[dict[str, Any]]
) -> None:
    namespace = get_json(cluster, "namespace", NAMESPACE)
    assert namespace["status"]["phase"] == "Active"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_operator_deployment_gets_a_scheduled_pod_on_a_kwok_node(
    cluster: Cluster, applied: list[dict[str, Any]]
) -> None:
    def scheduled_node() -> str:
        pods = get_json(
            cluster, "-n", NAMESPACE, "pods", "-l", "app.kubernetes.io/component=operator"
        )["items"]
        return str(pods[0]["spec"].get("nodeName", "")) if pods else ""

    assert eventually(scheduled_node, timeout=60).startswith("kwok-")
    deployment = get_json(cluster, "-n", NAMESPACE, "deployment", "modelroll-operator")
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"  # leader election
    events = cluster.kubectl("-n", NAMESPACE, "get", "events", "-o", "json").stdout
    assert "violates PodSecurity" not in events


def test_helm_bundle_applies_cleanly_on_top(
    cluster: Cluster, applied: list[dict[str, Any]]
) -> None:
    rendered = subprocess.run(
        [
            helm(),
            "template",
            "modelroll",
            str(REPO / "charts" / "modelroll"),
            "--namespace",
            NAMESPACE,
            "--include-crds",
            "--set",
            "namespace.create=true",
            "--set",
            "watchNamespaces={team-a,team-b}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rendered.returncode == 0, rendered.stderr
    bundle = objects(rendered.stdout)
    # Watching named namespaces adds a Role and RoleBinding in each, which must exist.
    assert {o["kind"] for o in bundle} == {o["kind"] for o in applied} | {"Role", "RoleBinding"}
    for team in ("team-a", "team-b"):
        cluster.kubectl("create", "namespace", team, check=False)
    result = cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=helm-bundle-check",
        "--dry-run=server",
        "-f",
        "-",
        input=rendered.stdout,
    )
    for obj in bundle:
        assert f"{obj['metadata']['name']} serverside-applied (server dry run)" in result.stdout, (
            result.stdout
        )
