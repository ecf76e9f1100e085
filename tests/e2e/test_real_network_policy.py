"""The NetworkPolicy of a ModelDeployment, enforced on the real node by kube-network-policies
(hack/real-node.sh): callers are real pods in real namespaces, reaching the ClusterIP.

A refused connection times out (the engine drops the SYN); the operator's smoke test comes
from its own pod in modelroll-system, which the policy admits by namespace and labels.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import (
    ON_REAL_NODE,
    RUNTIME_IMAGE,
    ModelStore,
    cluster_ip,
    create_namespace,
    model_deployment_from_example,
    set_version,
    wait_ready,
)
from tests.integration.helpers import apply, eventually, get_json
from tests.support.cluster import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("installed_operator")]
# Exit 0: an HTTP answer; 3: every attempt timed out; 4: any other failure. Three attempts,
# as a client would retry.
CALL = """
import socket, sys, urllib.request
path = sys.argv[2] if len(sys.argv) > 2 else "/v2/health/ready"
for attempt in range(3):
    try:
        urllib.request.urlopen(f"http://{sys.argv[1]}{path}", timeout=5).read()
        sys.exit(0)
    except Exception as error:
        reason = getattr(error, "reason", error)
        print(repr(error))
        if not isinstance(reason, (TimeoutError, socket.timeout)):
            sys.exit(4)
sys.exit(3)
"""
ANSWERED, TIMED_OUT = 0, 3


@pytest.fixture
def other_namespace(real_cluster: Cluster) -> Iterator[str]:
    name = f"e2e-caller-{uuid.uuid4().hex[:8]}"
    create_namespace(real_cluster, name, {"modelroll-e2e/caller": name})
    yield name
    real_cluster.kubectl("delete", "namespace", name, "--timeout=180s", timeout=200)


def start_caller(cluster: Cluster, namespace: str) -> str:
    """A pod in `namespace` to call from (with kubectl exec), Ready: its IP is known."""
    name = f"caller-{uuid.uuid4().hex[:8]}"
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            **ON_REAL_NODE,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "call",
                    "image": RUNTIME_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", "import time; time.sleep(3600)"],
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(pod))
    cluster.kubectl(
        "-n", namespace, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s",
        timeout=140,
    )  # fmt: skip
    return name


def call_from(
    cluster: Cluster, namespace: str, pod: str, host: str, path: str = "/v2/health/ready"
) -> int:
    """The exit status of CALL run in `pod` against http://host/path."""
    result = cluster.kubectl(
        "-n", namespace, "exec", pod, "--", "python3", "-c", CALL, host, path, check=False,
        timeout=60,
    )  # fmt: skip
    assert result.returncode in (ANSWERED, TIMED_OUT), (
        result.returncode,
        result.stdout,
        result.stderr,
    )
    return result.returncode


def stable_version(cluster: Cluster, namespace: str, name: str) -> str:
    status = get_json(cluster, "-n", namespace, "modeldeployment", name).get("status") or {}
    stable = status.get("stableRevision")
    return next((r["version"] for r in status.get("revisions", []) if r["name"] == stable), "")


def test_other_namespaces_are_refused_until_allow_from_admits_them_and_smoke_passes(
    real_cluster: Cluster, restricted_namespace: str, other_namespace: str, model_store: ModelStore
) -> None:
    ns = restricted_namespace
    body = model_deployment_from_example("bluegreen.yaml", model_store, "1")
    body["spec"]["replicas"] = 1
    apply(real_cluster, ns, body)
    wait_ready(real_cluster, ns, "iris-bg")  # the kubelet's probes are not fenced
    policy = get_json(real_cluster, "-n", ns, "networkpolicy", "iris-bg-modelroll")
    assert policy["spec"]["podSelector"] == {"matchLabels": {"modelroll.io/deployment": "iris-bg"}}
    host = cluster_ip(real_cluster, ns, "iris-bg")
    outsider, neighbour = (
        start_caller(real_cluster, other_namespace),
        start_caller(real_cluster, ns),
    )

    assert call_from(real_cluster, other_namespace, outsider, host) == TIMED_OUT
    assert call_from(real_cluster, ns, neighbour, host) == ANSWERED

    # The blue-green smoke test reaches the preview pods from the operator's pod.
    set_version(body, model_store, "2")
    apply(real_cluster, ns, body)

    def promoted() -> bool:
        # on a timeout, say where the rollout stands (a refused smoke test shows here)
        md = get_json(real_cluster, "-n", ns, "modeldeployment", "iris-bg")
        status = md.get("status") or {}
        assert stable_version(real_cluster, ns, "iris-bg") == "2", (
            status.get("conditions"),
            status.get("rollout"),
        )
        return True

    eventually(promoted, timeout=300, interval=1)
    events = get_json(
        real_cluster, "-n", ns, "events", "--field-selector", "involvedObject.name=iris-bg"
    )["items"]
    assert "SmokeTestPassed" in {e["reason"] for e in events}
    assert call_from(real_cluster, other_namespace, outsider, host) == TIMED_OUT

    body["spec"]["network"] = {
        "allowFrom": [
            {"namespaceSelector": {"matchLabels": {"modelroll-e2e/caller": other_namespace}}}
        ]
    }
    apply(real_cluster, ns, body)

    def admitted() -> list[Any]:
        peers: list[Any] = get_json(real_cluster, "-n", ns, "networkpolicy", "iris-bg-modelroll")[
            "spec"
        ]["ingress"][0]["from"]
        assert body["spec"]["network"]["allowFrom"][0] in peers, peers
        return peers

    eventually(admitted, timeout=60)
    assert call_from(real_cluster, other_namespace, outsider, host) == ANSWERED


def test_only_the_monitoring_namespace_reaches_the_operators_metrics(
    real_cluster: Cluster, other_namespace: str
) -> None:
    # dist/install.yaml's NetworkPolicy admits the namespace named monitoring to the metrics port
    created = real_cluster.kubectl("get", "namespace", "monitoring", check=False).returncode != 0
    if created:
        create_namespace(real_cluster, "monitoring", {})
    callers: list[str] = []
    try:
        pods = get_json(
            real_cluster, "-n", "modelroll-system", "pods", "-l",
            "app.kubernetes.io/name=modelroll,app.kubernetes.io/component=operator",
        )["items"]  # fmt: skip
        running = [
            p for p in pods if p["status"].get("podIP") and p["status"]["phase"] == "Running"
        ]
        assert running, [p["status"] for p in pods]
        port = next(
            p["containerPort"]
            for c in running[0]["spec"]["containers"]
            for p in c.get("ports", [])
            if p.get("name") == "metrics"
        )
        host = f"{running[0]['status']['podIP']}:{port}"
        callers.append(start_caller(real_cluster, "monitoring"))
        monitoring, outsider = callers[0], start_caller(real_cluster, other_namespace)
        assert call_from(real_cluster, "monitoring", monitoring, host, "/metrics") == ANSWERED
        assert call_from(real_cluster, other_namespace, outsider, host, "/metrics") == TIMED_OUT
    finally:
        if created:
            real_cluster.kubectl("delete", "namespace", "monitoring", "--timeout=180s", timeout=200)
        else:
            real_cluster.kubectl(
                "-n", "monitoring", "delete", "pod", "-l", "run-by=e2e", check=False
            )
