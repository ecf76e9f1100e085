"""The NetworkPolicy of a ModelDeployment: pure rendering, and the settings that shape it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import kubernetes_validate
import pytest
from modelroll.config import OperatorConfig, config_from_env
from modelroll.render import RUNTIME_PORTS, Owner, RenderContext, render_children
from modelroll.revision import revision_of

OWNER = Owner("iris", "models", "0b7c3b9e-0000-4000-8000-000000000001")
BASE: dict[str, Any] = {"model": {"format": "sklearn", "uri": "s3://bucket/iris/", "version": "3"}}
PLATFORM = OperatorConfig(
    operator_namespace="modelroll-system",
    operator_pod_labels={"app.kubernetes.io/name": "modelroll"},
    monitoring_namespace="monitoring",
)


def children(spec: dict[str, Any], config: OperatorConfig = PLATFORM) -> list[dict[str, Any]]:
    return render_children(OWNER, spec, revision_of(spec, "img"), RenderContext(config))


def policy(spec: dict[str, Any], config: OperatorConfig = PLATFORM) -> dict[str, Any]:
    (found,) = [c for c in children(spec, config) if c["kind"] == "NetworkPolicy"]
    return found


def in_namespace(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


# HTTP (HTTPS with TLS) and gRPC
SERVING = [{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 8081}]
METRICS = [{"protocol": "TCP", "port": 8080}]


def test_the_policy_fences_every_revisions_pods_for_ingress_only() -> None:
    found = policy(BASE)
    kubernetes_validate.validate(found, "1.34.0", strict=True)
    assert found["metadata"]["name"] == "iris-modelroll"
    assert found["metadata"]["namespace"] == "models"
    assert found["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    assert found["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "modelroll"
    # no revision label in the selector: pods of a preview or canary are fenced too
    assert found["spec"]["podSelector"] == {"matchLabels": {"modelroll.io/deployment": "iris"}}
    assert found["spec"]["policyTypes"] == ["Ingress"]


def test_the_namespace_and_the_operator_pods_reach_the_serving_port_monitoring_the_metrics() -> (
    None
):
    serving, metrics = policy(BASE)["spec"]["ingress"]
    operator = {
        **in_namespace("modelroll-system"),
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "modelroll"}},
    }
    assert serving == {"from": [{"podSelector": {}}, operator], "ports": SERVING}
    assert metrics == {"from": [in_namespace("monitoring")], "ports": METRICS}


def test_allow_from_adds_its_peers_to_the_serving_port_as_written() -> None:
    peers = [
        {"namespaceSelector": {"matchLabels": {"team": "web"}}},
        {
            "namespaceSelector": {},
            "podSelector": {
                "matchExpressions": [{"key": "app", "operator": "In", "values": ["gateway"]}]
            },
        },
    ]
    found = policy({**BASE, "network": {"allowFrom": peers}})
    kubernetes_validate.validate(found, "1.34.0", strict=True)
    assert found["spec"]["ingress"][0]["from"][2:] == peers
    assert found["spec"]["ingress"][0]["ports"] == SERVING


def test_without_operator_namespace_or_monitoring_only_the_namespace_gets_in() -> None:
    (serving,) = policy(BASE, OperatorConfig())["spec"]["ingress"]
    assert serving == {"from": [{"podSelector": {}}], "ports": SERVING}


def test_with_the_setting_off_no_policy_is_rendered() -> None:
    off = replace(PLATFORM, network_policy=False)
    assert "NetworkPolicy" not in {c["kind"] for c in children(BASE, off)}


def test_the_container_ports_and_the_policy_ports_come_from_one_list() -> None:
    rendered = children(BASE)
    deployment = rendered[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == RUNTIME_PORTS
    serving = next(c for c in rendered if c["kind"] == "NetworkPolicy")["spec"]["ingress"][0]
    assert [p["port"] for p in serving["ports"]] == list(RUNTIME_PORTS.values())


def test_settings_come_from_the_environment() -> None:
    config = config_from_env(
        {
            "MODELROLL_NETWORK_POLICY": "false",
            "MODELROLL_OPERATOR_NAMESPACE": "platform",
            "MODELROLL_OPERATOR_POD_LABELS": "app.kubernetes.io/name=modelroll, tier=ops",
            "MODELROLL_MONITORING_NAMESPACE": "observability",
        }
    )
    assert config.network_policy is False
    assert config.operator_namespace == "platform"
    assert config.operator_pod_labels == {"app.kubernetes.io/name": "modelroll", "tier": "ops"}
    assert config.monitoring_namespace == "observability"
    assert config_from_env({}).network_policy is True


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MODELROLL_NETWORK_POLICY", "off"),
        ("MODELROLL_OPERATOR_NAMESPACE", "Not_A_Namespace"),
        ("MODELROLL_MONITORING_NAMESPACE", "mon/itoring"),
        ("MODELROLL_OPERATOR_POD_LABELS", "app"),
        ("MODELROLL_OPERATOR_POD_LABELS", "app=has space"),
    ],
)
def test_a_bad_setting_is_refused_naming_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        config_from_env({variable: value})
