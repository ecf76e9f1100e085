"""The operator in-cluster, from its image and the install bundle, on the real node."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import (
    NODE_NAME,
    OPERATOR_IMAGE,
    REPO,
    ModelStore,
    leader_pod,
    model_deployment_from_example,
    operator_pods,
    wait_ready,
)
from tests.integration.helpers import apply, can_i_list, eventually, get_json
from tests.support.cluster import Cluster
from tests.support.operator_access import (
    CLUSTER_READS,
    IN_OPERATOR_NAMESPACE,
    IN_WATCHED_NAMESPACE,
    OPERATOR_SA,
    SELF_REVIEWS,
)
from tests.support.prerequisites import VENV_FIX, require

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("installed_operator")]


def test_operator_runs_from_its_image_with_the_installed_service_account(
    real_cluster: Cluster,
) -> None:
    pods = operator_pods(real_cluster)
    assert len(pods) == 2  # a leader and a standby
    for pod in pods:
        assert pod["spec"]["nodeName"] == NODE_NAME
        assert pod["spec"]["serviceAccountName"] == "modelroll-operator"
        (container,) = pod["status"]["containerStatuses"]
        assert container["image"] == OPERATOR_IMAGE and container["ready"]
        assert container["restartCount"] == 0
    assert leader_pod(real_cluster) in {p["metadata"]["name"] for p in pods}


def rendered_children(body: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    """What `modelroll render` says the operator creates, computed offline."""
    cli = str(REPO / ".venv" / "bin" / "modelroll")
    require(cli, needed_by="the offline render", fix=VENV_FIX)
    result = subprocess.run(
        [cli, "render", "-", "--namespace", namespace],
        input=json.dumps(body),
        capture_output=True,
        text=True,
        check=True,
    )
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_model_deployment_reconciles_as_rendered_and_drift_is_put_back(
    real_cluster: Cluster, restricted_namespace: str, model_store: ModelStore
) -> None:
    ns = restricted_namespace
    body = model_deployment_from_example("sklearn-iris.yaml", model_store, "1")
    apply(real_cluster, ns, body)
    md = wait_ready(real_cluster, ns, "iris")
    # The same status the out-of-cluster tests (tests/integration/test_operator.py) check.
    status = md["status"]
    assert {c["type"]: c["reason"] for c in status["conditions"]}["Ready"] == "RevisionAvailable"
    assert status["url"] == f"http://iris.{ns}.svc.cluster.local/v2/models/iris/infer"
    assert status["readyReplicas"] == body["spec"]["replicas"]
    assert status["revisions"][0]["weight"] == 100
    assert status["stableRevision"] == status["revisions"][0]["name"]

    expected = rendered_children(body, ns)
    assert {c["kind"] for c in expected} >= {"Deployment", "Service", "PodDisruptionBudget"}
    for child in expected:
        live = get_json(
            real_cluster,
            "-n",
            ns,
            child["kind"].lower(),
            child["metadata"]["name"],
            "--show-managed-fields",
        )
        assert live["metadata"]["ownerReferences"][0]["uid"] == md["metadata"]["uid"]
        managers = {
            f["manager"]
            for f in live["metadata"].get("managedFields", [])
            if f["operation"] == "Apply"
        }
        assert managers == {"modelroll"}, (child["kind"], managers)
        if child["kind"] == "Deployment":
            want = child["spec"]["template"]["spec"]["containers"][0]
            got = live["spec"]["template"]["spec"]["containers"][0]
            assert got["image"] == want["image"]
            assert {e["name"]: e.get("value") for e in got["env"]} == {
                e["name"]: e.get("value") for e in want["env"]
            }

    real_cluster.kubectl("-n", ns, "delete", "service", "iris")
    restored = eventually(
        lambda: get_json(real_cluster, "-n", ns, "service", "iris"), timeout=60, interval=1
    )
    assert restored["metadata"]["ownerReferences"][0]["uid"] == md["metadata"]["uid"]
    events = get_json(
        real_cluster, "-n", ns, "events", "--field-selector", "involvedObject.kind=ModelDeployment"
    )["items"]
    assert any(e["reason"] == "ChildRestored" for e in events), [e["reason"] for e in events]


def test_the_service_account_has_exactly_the_reduced_rbac(real_cluster: Cluster) -> None:
    # Cluster-wide install: the namespaced rules hold in every namespace, plus the two reads.
    expected = {**SELF_REVIEWS, **CLUSTER_READS, **IN_WATCHED_NAMESPACE}
    assert can_i_list(real_cluster, OPERATOR_SA, "default") == expected
    # Its own namespace also holds the leader Lease.
    assert can_i_list(real_cluster, OPERATOR_SA, "modelroll-system") == {
        **expected,
        **IN_OPERATOR_NAMESPACE,
    }


def test_metrics_listen_on_the_pod_ip_only(real_cluster: Cluster) -> None:
    # The leader's (kopf's) metrics server; the standby starts the same one before it leads.
    (pod,) = [
        p for p in operator_pods(real_cluster) if p["metadata"]["name"] == leader_pod(real_cluster)
    ]
    pod_ip = pod["status"]["podIP"]
    probe = (
        "import sys, urllib.request\n"
        "for host in sys.argv[1:]:\n"
        "    try:\n"
        "        urllib.request.urlopen(f'http://{host}:8000/metrics', timeout=5).read()\n"
        "        print(host, 'open')\n"
        "    except OSError as error:\n"
        "        print(host, 'closed', error)\n"
    )
    result = real_cluster.kubectl(
        "-n",
        "modelroll-system",
        "exec",
        pod["metadata"]["name"],
        "--",
        "python",
        "-c",
        probe,
        pod_ip,
        "127.0.0.1",
    )
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines[pod_ip] == "open", result.stdout
    assert lines["127.0.0.1"].startswith("closed"), result.stdout
