"""The operator against the real control plane (issue: API and operator)."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.helpers import (
    apply,
    condition,
    eventually,
    get_json,
    model_deployment,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def ready(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    md = get_json(cluster, "-n", namespace, "md", name)
    assert condition(md, "Ready").get("status") == "True", md.get("status")
    assert md["status"]["observedGeneration"] == md["metadata"]["generation"]
    return md


def deployments(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    items = get_json(
        cluster, "-n", namespace, "deployments", "-l", f"modelroll.io/deployment={name}"
    )
    return items["items"]


def test_example_becomes_ready_with_every_child(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "sklearn-iris.yaml"))
    cluster.kubectl("wait", "-n", namespace, "md/iris", "--for=condition=Ready", "--timeout=90s")
    md = ready(cluster, namespace, "iris")
    status = md["status"]
    assert not md["metadata"].get("finalizers"), (
        "deleting a ModelDeployment must not need the operator"
    )
    assert status["url"] == f"http://iris.{namespace}.svc.cluster.local/v2/models/iris/infer"
    assert status["selector"] == "modelroll.io/deployment=iris"
    assert status["readyReplicas"] == md["spec"]["replicas"]
    assert status["revisions"][0]["weight"] == 100
    assert status["stableRevision"] == status["revisions"][0]["name"]

    table = cluster.kubectl("get", "-n", namespace, "md").stdout
    for column in ("READY", "REPLICAS", "VERSION", "STRATEGY", "TRAFFIC", "AGE"):
        assert column in table.splitlines()[0]
    assert "True" in table.splitlines()[1]
    wide = cluster.kubectl("get", "-n", namespace, "md", "-o", "wide").stdout
    assert "URL" in wide.splitlines()[0]

    everything = get_json(
        cluster,
        "-n",
        namespace,
        "deployments,services,serviceaccounts,poddisruptionbudgets",
        "-l",
        "modelroll.io/deployment=iris",
    )["items"]
    kinds = sorted(item["kind"] for item in everything)
    assert kinds == ["Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"]
    for item in everything:
        labels = item["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "modelroll"
        assert labels["modelroll.io/revision"] == status["stableRevision"]
        owner = item["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == (
            "ModelDeployment",
            "iris",
            True,
        )
    pod_spec = deployments(cluster, namespace, "iris")[0]["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODELROLL_MODEL_FORMAT"] == "sklearn"
    assert env["MODELROLL_MODEL_NAME"] == "iris"


def test_gpu_pods_land_on_gpu_nodes_and_shortage_is_reported(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(
        cluster,
        namespace,
        model_deployment(
            "gpu-ok", replicas=2, gpu={"count": 1, "product": "NVIDIA-A100-SXM4-80GB"}
        ),
    )
    eventually(lambda: ready(cluster, namespace, "gpu-ok"), timeout=90)
    pods = get_json(cluster, "-n", namespace, "pods", "-l", "modelroll.io/deployment=gpu-ok")[
        "items"
    ]
    assert len(pods) == 2
    assert all(p["spec"]["nodeName"].startswith("kwok-gpu-") for p in pods)

    apply(cluster, namespace, model_deployment("gpu-too-big", gpu={"count": 16}))

    def shortage() -> dict[str, Any]:
        md = get_json(cluster, "-n", namespace, "md", "gpu-too-big")
        ready_condition = condition(md, "Ready")
        assert ready_condition.get("reason") == "InsufficientGPU", ready_condition
        return ready_condition

    ready_condition = eventually(shortage, timeout=90)
    assert ready_condition["status"] == "False"
    assert "nvidia.com/gpu" in ready_condition["message"]
    events = get_json(
        cluster, "-n", namespace, "events", "--field-selector", "involvedObject.name=gpu-too-big"
    )["items"]
    assert any(e["reason"] == "InsufficientGPU" and e["type"] == "Warning" for e in events)


def test_new_version_rolls_out_and_deleted_children_come_back(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, namespace, model_deployment("rollme", replicas=2))
    first = eventually(lambda: ready(cluster, namespace, "rollme"), timeout=90)["status"][
        "stableRevision"
    ]

    body = model_deployment("rollme", replicas=2)
    body["spec"]["model"]["version"] = "2"
    apply(cluster, namespace, body)

    def rolled() -> str:
        md = ready(cluster, namespace, "rollme")
        assert md["status"]["stableRevision"] != first
        names = [d["metadata"]["name"] for d in deployments(cluster, namespace, "rollme")]
        assert names == [f"rollme-{md['status']['stableRevision']}"], names
        assert [r["version"] for r in md["status"]["revisions"]] == ["2"]
        return str(md["status"]["stableRevision"])

    second = eventually(rolled, timeout=90)

    deployment = f"rollme-{second}"
    cluster.kubectl("delete", "-n", namespace, "deployment", deployment, "--wait=false")
    eventually(
        lambda: (
            deployments(cluster, namespace, "rollme")
            and deployments(cluster, namespace, "rollme")[0]["metadata"].get("deletionTimestamp")
            is None
            and deployments(cluster, namespace, "rollme")[0]["metadata"]["name"] == deployment
        ),
        timeout=30,
    )
    eventually(lambda: ready(cluster, namespace, "rollme"), timeout=60)
    cluster.kubectl("delete", "-n", namespace, "service", "rollme", "--wait=false")
    eventually(
        lambda: (
            get_json(cluster, "-n", namespace, "service", "rollme")["metadata"].get(
                "deletionTimestamp"
            )
            is None
        ),
        timeout=30,
    )
    events = get_json(
        cluster, "-n", namespace, "events", "--field-selector", "involvedObject.name=rollme"
    )["items"]
    assert any(e["reason"] == "ChildRestored" for e in events)


def test_hand_edits_to_children_are_reverted(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, namespace, model_deployment("drift"))
    revision = eventually(lambda: ready(cluster, namespace, "drift"), timeout=90)["status"][
        "stableRevision"
    ]
    name = f"drift-{revision}"
    patch = {
        "spec": {
            "template": {"spec": {"containers": [{"name": "model-server", "image": "evil:latest"}]}}
        }
    }
    cluster.kubectl(
        "patch", "-n", namespace, "deployment", name, "--type=strategic", "-p", json.dumps(patch)
    )

    def reverted() -> bool:
        deployment = get_json(cluster, "-n", namespace, "deployment", name)
        return bool(
            deployment["spec"]["template"]["spec"]["containers"][0]["image"] != "evil:latest"
        )

    eventually(reverted, timeout=30)
    cluster.kubectl(
        "patch",
        "-n",
        namespace,
        "service",
        "drift",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"selector": {"app": "other"}}}),
    )
    eventually(
        lambda: (
            "app" not in get_json(cluster, "-n", namespace, "service", "drift")["spec"]["selector"]
        ),
        timeout=30,
    )


def test_autoscaling_renders_an_hpa_and_no_replicas(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(
        cluster,
        namespace,
        model_deployment(
            "scaled",
            autoscaling={"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 70},
        ),
    )
    md = eventually(lambda: ready(cluster, namespace, "scaled"), timeout=120)
    hpa = get_json(cluster, "-n", namespace, "hpa", "scaled")
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"scaled-{md['status']['stableRevision']}"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    managed = get_json(
        cluster,
        "-n",
        namespace,
        "deployment",
        f"scaled-{md['status']['stableRevision']}",
        "--show-managed-fields",
    )["metadata"]["managedFields"]
    ours = [m for m in managed if m["manager"] == "modelroll"]
    assert ours and "f:replicas" not in json.dumps(ours[0]["fieldsV1"].get("f:spec", {}))


def test_missing_secret_is_invalid_spec_without_retry_storm(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    body = model_deployment("nosecret")
    body["spec"]["model"]["uri"] = "s3://bucket/iris/"
    body["spec"]["model"]["credentials"] = {"secretRef": {"name": "s3-creds"}}
    apply(cluster, namespace, body)

    def invalid() -> dict[str, Any]:
        md = get_json(cluster, "-n", namespace, "md", "nosecret")
        ready_condition = condition(md, "Ready")
        assert ready_condition.get("reason") == "InvalidSpec", ready_condition
        return ready_condition

    ready_condition = eventually(invalid, timeout=60)
    assert ready_condition["status"] == "False"
    assert "s3-creds" in ready_condition["message"]
    assert deployments(cluster, namespace, "nosecret") == []
    events = get_json(
        cluster,
        "-n",
        namespace,
        "events",
        "--field-selector",
        "involvedObject.name=nosecret,reason=InvalidSpec",
    )["items"]
    assert len(events) == 1 and events[0].get("count", 1) == 1

    cluster.kubectl(
        "create",
        "secret",
        "generic",
        "s3-creds",
        "-n",
        namespace,
        "--from-literal=AWS_ACCESS_KEY_ID=x",
        "--from-literal=AWS_SECRET_ACCESS_KEY=y",
    )
    eventually(lambda: ready(cluster, namespace, "nosecret"), timeout=60)


def assert_no_failures_logged(operator: OperatorProcess, start: int, namespace: str) -> None:
    """No handler failed, and nothing was refused, for this namespace after `start` (bytes)."""
    with Path(operator.log_path).open() as lines:
        lines.seek(start)
        about_namespace = [line for line in lines if namespace in line]
    failed = [line for line in about_namespace if "Forbidden" in line or "failed" in line]
    assert not failed, "".join(failed)[-3000:]


def test_deleting_the_model_deployment_removes_every_child(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, namespace, model_deployment("gone", replicas=2))
    eventually(lambda: ready(cluster, namespace, "gone"), timeout=90)
    start = Path(operator.log_path).stat().st_size
    cluster.kubectl("delete", "-n", namespace, "md", "gone", "--wait=true", "--timeout=60s")

    def no_children() -> bool:
        left = get_json(
            cluster,
            "-n",
            namespace,
            "deployments,services,serviceaccounts,poddisruptionbudgets,pods",
            "-l",
            "modelroll.io/deployment=gone",
        )["items"]
        return not left

    eventually(no_children, timeout=60)
    assert_no_failures_logged(operator, start, namespace)


def test_deleting_the_namespace_is_not_fought(cluster: Cluster, operator: OperatorProcess) -> None:
    """Deleting a namespace deletes children before their owner; the operator must not try
    to restore them into a namespace the server is removing (403 NamespaceTerminating)."""
    namespace = f"t-gone-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    names = [f"doomed-{i}" for i in range(4)]
    for name in names:
        apply(cluster, namespace, model_deployment(name, replicas=2))
    for name in names:
        eventually(lambda name=name: ready(cluster, namespace, name), timeout=90)  # type: ignore[misc]
    start = Path(operator.log_path).stat().st_size
    cluster.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s")
    time.sleep(2)  # child events still queued when the namespace vanished
    assert_no_failures_logged(operator, start, namespace)


def test_killing_the_operator_mid_reconcile_converges_without_duplicates(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    names = [f"burst-{i}" for i in range(12)]
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input="\n---\n".join(json.dumps(model_deployment(n, replicas=2)) for n in names),
    )
    eventually(lambda: deployments(cluster, namespace, "burst-0"), timeout=30, interval=0.05)
    operator.kill()
    operator.start()
    for name in names:
        eventually(lambda name=name: ready(cluster, namespace, name), timeout=120)  # type: ignore[misc]
    all_deployments = get_json(cluster, "-n", namespace, "deployments")["items"]
    owners = sorted(d["metadata"]["labels"]["modelroll.io/deployment"] for d in all_deployments)
    assert owners == sorted(names)
    services = get_json(cluster, "-n", namespace, "services")["items"]
    assert sorted(s["metadata"]["name"] for s in services) == sorted(names)


def test_operator_liveness_and_metrics(operator: OperatorProcess) -> None:
    import urllib.request

    health = json.loads(
        urllib.request.urlopen(
            f"http://127.0.0.1:{operator.liveness_port}/healthz", timeout=5
        ).read()
    )
    assert health["watch"] in ("fresh",) or health["watch"].startswith("catching up")
    metrics = (
        urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5)
        .read()
        .decode()
    )
    assert "modelroll_operator_reconcile_total" in metrics
    assert "modelroll_operator_reconcile_duration_seconds_bucket" in metrics


def test_make_targets_exist() -> None:
    targets = subprocess.run(
        ["make", "-C", str(REPO), "help"], capture_output=True, text=True
    ).stdout
    for target in ("install", "run", "cluster-up", "cluster-down", "test"):
        assert target in targets


def test_every_example_is_applied_and_becomes_ready(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    examples = sorted((REPO / "examples").glob("*.yaml"))
    # Some examples read their model from object storage with credentials, as users would.
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        "s3-creds",
        "-n",
        namespace,
        "--from-literal=AWS_ACCESS_KEY_ID=demo",
        "--from-literal=AWS_SECRET_ACCESS_KEY=demo",
    )
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "model-store", "namespace": namespace},
        "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"models-{namespace}"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadOnlyMany"],
            "hostPath": {"path": "/srv/models"},
            "persistentVolumeReclaimPolicy": "Delete",
            "claimRef": {"namespace": namespace, "name": "model-store"},
        },
    }
    # examples/onnx.yaml reads its model from this claim, bound to a static volume.
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [volume, claim]}),
    )
    names = []
    for path in examples:
        cluster.kubectl("apply", "-n", namespace, "-f", str(path))
        names += [
            line.split("/", 1)[1]
            for line in cluster.kubectl(
                "get", "-n", namespace, "-f", str(path), "-o", "name"
            ).stdout.split()
        ]
    assert len(names) >= 7, names
    for name in names:
        eventually(lambda name=name: ready(cluster, namespace, name), timeout=120)  # type: ignore[misc]
    gpu_pods = get_json(
        cluster,
        "-n",
        namespace,
        "pods",
        "-l",
        "modelroll.io/deployment=" + next(n for n in names if "gpu" in n),
    )["items"]
    assert gpu_pods and all(p["spec"]["nodeName"].startswith("kwok-gpu-") for p in gpu_pods)
