"""The namespaced install (dist/install-namespaced.yaml, i.e. config/namespaced; Helm renders
the same with watchNamespaces, tests/unit/test_install_bundles.py) on a real apiserver.

The operator's ServiceAccount gets a Role in the watched namespace `models` and nothing in
any other namespace; cluster-wide only the two optional reads. The operator, run from
source with exactly that ServiceAccount's token, reconciles a ModelDeployment in `models`
to Ready without one 403, and leaves one in an unwatched namespace alone.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.helpers import (
    apply,
    can_i_list,
    condition,
    eventually,
    get_json,
    model_deployment,
    service_account_kubeconfig,
)
from tests.support.operator_access import (
    CLUSTER_READS,
    IN_WATCHED_NAMESPACE,
    OPERATOR_SA,
    SELF_REVIEWS,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
WATCHED = "models"


def create_namespace(cluster: Cluster, name: str) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))


@pytest.fixture(scope="module")
def namespaced_install(cluster: Cluster, crd_installed: None) -> Iterator[str]:
    """dist/install-namespaced.yaml applied for real; yields an unwatched namespace. After
    the module the cluster-wide install's RBAC is back, as other modules may expect it."""
    create_namespace(cluster, WATCHED)
    unwatched = f"unwatched-{uuid.uuid4().hex[:6]}"
    create_namespace(cluster, unwatched)
    # A cluster-wide install (other modules) leaves a ClusterRole the namespaced one replaces.
    dist = REPO / "dist" / "install-namespaced.yaml"
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(dist))
    yield unwatched
    cluster.kubectl("delete", "namespace", unwatched, WATCHED, "--wait=false")
    cluster.kubectl("delete", "-k", str(REPO / "config" / "namespaced" / "models"))
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-k", str(REPO / "config" / "rbac")
    )


def can(cluster: Cluster, user: str, *args: str) -> bool:
    result = cluster.kubectl("auth", "can-i", *args, "--as", user, check=False)
    return result.stdout.strip() == "yes"


def test_the_operator_has_exactly_its_role_in_the_watched_namespace(
    cluster: Cluster, namespaced_install: str
) -> None:
    expected = {**SELF_REVIEWS, **CLUSTER_READS, **IN_WATCHED_NAMESPACE}
    assert can_i_list(cluster, OPERATOR_SA, WATCHED) == expected


def test_the_operator_has_nothing_in_an_unwatched_namespace(
    cluster: Cluster, namespaced_install: str
) -> None:
    assert can_i_list(cluster, OPERATOR_SA, namespaced_install) == {
        **SELF_REVIEWS,
        **CLUSTER_READS,
    }
    for verb, resource in [
        ("list", "pods"),
        ("get", "secrets"),
        ("list", "modeldeployments.modelroll.io"),
        ("create", "deployments.apps"),
        ("create", "events"),
    ]:
        assert not can(cluster, OPERATOR_SA, verb, resource, "-n", namespaced_install)
        assert can(cluster, OPERATOR_SA, verb, resource, "-n", WATCHED)
    assert not can(cluster, OPERATOR_SA, "list", "pods", "--all-namespaces")
    assert not can(cluster, OPERATOR_SA, "list", "modeldeployments.modelroll.io", "-A")
    assert not can(cluster, OPERATOR_SA, "get", "crd/modeldeployments.modelroll.io")


def test_the_only_cluster_role_binding_is_the_optional_reads(
    cluster: Cluster, namespaced_install: str
) -> None:
    bindings = get_json(cluster, "clusterrolebindings", "-l", "app.kubernetes.io/name=modelroll")
    (binding,) = bindings["items"]
    role = get_json(cluster, "clusterrole", binding["roleRef"]["name"])
    assert [(r["resources"], r["verbs"]) for r in role["rules"]] == [
        (["nodes"], ["list"]),
        (["customresourcedefinitions"], ["get"]),
    ]


def test_the_operator_works_in_the_watched_namespace_with_exactly_that_rbac(
    cluster: Cluster, namespaced_install: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    as_operator = service_account_kubeconfig(
        cluster, "modelroll-system", "modelroll-operator", tmp_path / "operator.kubeconfig"
    )
    operator.stop()  # one operator at a time, as the Recreate strategy guarantees in-cluster
    restricted = OperatorProcess(as_operator, str(tmp_path), {"MODELROLL_NAMESPACES": WATCHED})
    try:
        restricted.start()
        name = f"ns-{uuid.uuid4().hex[:6]}"
        apply(cluster, WATCHED, model_deployment(name, replicas=2))
        apply(cluster, namespaced_install, model_deployment(name, replicas=2))

        def ready() -> bool:
            md = get_json(cluster, "-n", WATCHED, "md", name)
            return condition(md, "Ready").get("status") == "True"

        eventually(ready, timeout=90)
        # The watch probe lists the watched namespace only, so the liveness probe stays up.
        health = f"http://127.0.0.1:{restricted.liveness_port}/healthz"
        with urllib.request.urlopen(health, timeout=10) as answer:
            assert json.loads(answer.read())["watch"] == "fresh"
        untouched = get_json(cluster, "-n", namespaced_install, "md", name)
        # The schema's default status only ({observedGeneration: 0}): nobody reconciled it.
        assert untouched.get("status", {}) == {"observedGeneration": 0}, untouched["status"]
        assert not get_json(cluster, "-n", namespaced_install, "deployments")["items"]
        apply(
            cluster,
            WATCHED,
            model_deployment(
                name,
                replicas=2,
                model={
                    "format": "sklearn",
                    "uri": "https://models.example.com/iris/",
                    "version": "2",
                },
            ),
        )

        def rolled() -> bool:
            deployments = get_json(cluster, "-n", WATCHED, "deployments")["items"]
            md = get_json(cluster, "-n", WATCHED, "md", name)
            return (
                len(deployments) == 1
                and condition(md, "Ready").get("status") == "True"
                and (md["status"].get("observedGeneration") == md["metadata"]["generation"])
            )

        eventually(rolled, timeout=120)  # the old revision was pruned: delete works
        log = Path(restricted.log_path).read_text()
        assert "Forbidden" not in log and " 403" not in log, log[-3000:]
    finally:
        restricted.stop()
        operator.start()


def test_tenants_with_edit_manage_model_deployments_but_never_their_status(
    cluster: Cluster, namespaced_install: str, tmp_path: Path
) -> None:
    namespace = namespaced_install
    for user, role in (("tenant-editor", "edit"), ("tenant-viewer", "view")):
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": user, "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [{"kind": "ServiceAccount", "name": user, "namespace": namespace}],
        }
        cluster.kubectl("create", "serviceaccount", user, "-n", namespace)
        cluster.kubectl("apply", "-f", "-", input=json.dumps(binding))
    editor = f"system:serviceaccount:{namespace}:tenant-editor"
    viewer = f"system:serviceaccount:{namespace}:tenant-viewer"
    md = "modeldeployments.modelroll.io"

    # The aggregation controller folds modelroll-edit/-view into edit/admin/view.
    eventually(lambda: can(cluster, editor, "create", md, "-n", namespace), timeout=60)
    for verb in ("get", "list", "watch", "create", "update", "patch", "delete"):
        assert can(cluster, editor, verb, md, "-n", namespace), verb
    status = ("--subresource=status", "-n", namespace)
    assert not can(cluster, editor, "patch", md, *status)
    assert not can(cluster, editor, "update", md, *status)
    assert can(cluster, OPERATOR_SA, "patch", md, "--subresource=status", "-n", WATCHED)
    assert not can(cluster, editor, "create", md, "-n", WATCHED)  # only where bound
    eventually(lambda: can(cluster, viewer, "list", md, "-n", namespace), timeout=60)
    assert can(cluster, viewer, "get", md, "-n", namespace)
    for verb in ("create", "patch", "delete"):
        assert not can(cluster, viewer, verb, md, "-n", namespace), verb
    assert not can(cluster, viewer, "patch", md, *status)

    # And the apiserver agrees: the editor creates one, and cannot write its status.
    as_editor = service_account_kubeconfig(
        cluster, namespace, "tenant-editor", tmp_path / "editor.kubeconfig"
    )
    apply(as_editor, namespace, model_deployment("by-tenant"))
    refused = as_editor.kubectl(
        "patch",
        "md",
        "by-tenant",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"url": "http://elsewhere"}}),
        check=False,
    )
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr
