"""The NetworkPolicy of each ModelDeployment on the real control plane: rendered with the
operator's settings, owned and put back like every child, and absent when turned off.
Whether a network plugin enforces it is tests/e2e/test_real_network_policy.py's job."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.helpers import apply_md, condition, eventually, get_json

pytestmark = pytest.mark.integration
Json = dict[str, Any]
PLATFORM = {
    "MODELROLL_OPERATOR_NAMESPACE": "modelroll-system",
    "MODELROLL_OPERATOR_POD_LABELS": "app.kubernetes.io/name=modelroll",
    "MODELROLL_MONITORING_NAMESPACE": "monitoring",
}
WEB = {"namespaceSelector": {"matchLabels": {"team": "web"}}}


def spec(**extra: Any) -> Json:
    model = {"format": "sklearn", "uri": "https://models.example.com/iris/", "version": "1"}
    return {"model": model, "replicas": 1, **extra}


def in_namespace(name: str) -> Json:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


@pytest.fixture
def configured(
    cluster: Cluster, operator: OperatorProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OperatorProcess]:
    """The operator restarted with the settings the test names (one operator at a time, as
    the Recreate strategy guarantees in-cluster); the shared one is back afterwards."""
    operator.stop()
    process = OperatorProcess(cluster, str(tmp_path), {**operator.extra_env, **request.param})
    try:
        process.start()
        yield process
    finally:
        process.stop()
        operator.start()


def policies(cluster: Cluster, namespace: str) -> list[Json]:
    items: list[Json] = get_json(cluster, "-n", namespace, "networkpolicies")["items"]
    return items


@pytest.mark.parametrize("configured", [PLATFORM], indirect=True)
def test_the_policy_admits_namespace_operator_monitoring_and_allow_from_and_comes_back(
    cluster: Cluster, configured: OperatorProcess, namespace: str
) -> None:
    apply_md(cluster, namespace, "iris", spec(network={"allowFrom": [WEB]}))
    md = eventually(lambda: get_json(cluster, "-n", namespace, "md", "iris"))

    def rendered() -> Json:
        found: Json = get_json(cluster, "-n", namespace, "networkpolicy", "iris-modelroll")
        return found

    policy = eventually(rendered, timeout=60)
    assert policy["metadata"]["ownerReferences"][0]["uid"] == md["metadata"]["uid"]
    assert policy["spec"]["podSelector"] == {"matchLabels": {"modelroll.io/deployment": "iris"}}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    serving, metrics = policy["spec"]["ingress"]
    operator = {
        **in_namespace("modelroll-system"),
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "modelroll"}},
    }
    assert serving["from"] == [{"podSelector": {}}, operator, WEB]
    # HTTP (HTTPS with TLS) and gRPC; /metrics is on the HTTP one
    assert serving["ports"] == [
        {"protocol": "TCP", "port": 8080},
        {"protocol": "TCP", "port": 8081},
    ]
    assert metrics == {"from": [in_namespace("monitoring")], "ports": [serving["ports"][0]]}

    cluster.kubectl("-n", namespace, "delete", "networkpolicy", "iris-modelroll")

    def restored() -> Json:
        again = rendered()
        assert again["metadata"]["uid"] != policy["metadata"]["uid"]
        return again

    assert eventually(restored, timeout=60)["spec"] == policy["spec"]
    events = get_json(
        cluster, "-n", namespace, "events", "--field-selector", "involvedObject.name=iris"
    )["items"]
    assert any(
        e["reason"] == "ChildRestored" and "NetworkPolicy iris-modelroll" in e["message"]
        for e in events
    ), [e["message"] for e in events]

    # A hand edit that opens the pods to everyone is reverted.
    cluster.kubectl(
        "-n", namespace, "patch", "networkpolicy", "iris-modelroll", "--type=json",
        "-p", '[{"op": "replace", "path": "/spec/ingress", "value": [{}]}]',
    )  # fmt: skip
    eventually(lambda: rendered()["spec"] == policy["spec"], timeout=60)


@pytest.mark.parametrize("configured", [{"MODELROLL_NETWORK_POLICY": "false"}], indirect=True)
def test_with_the_setting_off_there_is_no_policy_and_an_earlier_one_is_pruned(
    cluster: Cluster, configured: OperatorProcess, namespace: str
) -> None:
    apply_md(cluster, namespace, "plain", spec())
    # one rendered while the setting was on: the operator now owns a child it does not want
    configured.stop()
    configured.extra_env["MODELROLL_NETWORK_POLICY"] = "true"
    configured.start()
    eventually(lambda: [p["metadata"]["name"] for p in policies(cluster, namespace)]
               == ["plain-modelroll"], timeout=60)  # fmt: skip
    configured.stop()
    configured.extra_env["MODELROLL_NETWORK_POLICY"] = "false"
    configured.start()
    eventually(lambda: policies(cluster, namespace) == [], timeout=60)

    apply_md(cluster, namespace, "later", spec())
    eventually(lambda: get_json(cluster, "-n", namespace, "service", "later"), timeout=60)
    assert policies(cluster, namespace) == []


def test_a_policy_of_that_name_the_model_deployment_does_not_own_is_left_alone(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    theirs = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "taken-modelroll", "namespace": namespace},
        "spec": {"podSelector": {"matchLabels": {"app": "theirs"}}, "ingress": [{}]},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(theirs))
    before = get_json(cluster, "-n", namespace, "networkpolicy", "taken-modelroll")
    apply_md(cluster, namespace, "taken", spec())

    def conflict() -> Json:
        md: Json = get_json(cluster, "-n", namespace, "md", "taken")
        assert condition(md, "Ready").get("reason") == "ChildConflict", md.get("status")
        return md

    assert "NetworkPolicy/taken-modelroll" in condition(eventually(conflict), "Ready")["message"]
    after = get_json(cluster, "-n", namespace, "networkpolicy", "taken-modelroll")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"] == before["spec"]
