"""The typed spec: parse_spec's defaults are the CRD's defaults, read from the CRD itself."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from modelroll.spec import (
    Analysis,
    BlueGreen,
    Canary,
    CanaryStep,
    Gpu,
    SecretKey,
    parse_spec,
)

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "modelroll.io_modeldeployments.yaml"
JSON = dict[str, Any]
MODEL: JSON = {"format": "sklearn", "uri": "s3://bucket/iris/"}
PROMETHEUS: JSON = {"prometheus": {"endpoint": "main"}}


def spec_schema() -> JSON:
    crd = yaml.safe_load(CRD_PATH.read_text())
    schema: JSON = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def crd_default(path: str) -> Any:
    """The `default:` of spec.<path>, where path names properties and `[]` array items."""
    node = spec_schema()
    for part in path.split("."):
        node = node["items"] if part == "[]" else node["properties"][part]
    assert "default" in node, f"spec.{path} has no default in the CRD"
    return node["default"]


def apply_defaults(schema: JSON, value: Any) -> Any:
    """Structural defaulting as the apiserver does it: absent fields get `default:`."""
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for name, child in schema["properties"].items():
            if name not in out and "default" in child:
                out[name] = copy.deepcopy(child["default"])
            if name in out:
                out[name] = apply_defaults(child, out[name])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], v) for v in value]
    return value


# --- defaults ---------------------------------------------------------------------------------


def test_minimal_spec_gets_the_crd_defaults() -> None:
    spec = parse_spec({"model": MODEL})
    assert spec.replicas == crd_default("replicas")
    assert spec.runtime.protocol == crd_default("runtime.protocol")
    assert spec.runtime.batching.max_batch_size == crd_default("runtime.batching.maxBatchSize")
    assert spec.rollout.strategy == crd_default("rollout.strategy")
    # An absent rollout defaults to {}, which the nested defaults then fill in.
    rollout_schema = spec_schema()["properties"]["rollout"]
    assert (
        apply_defaults(rollout_schema, crd_default("rollout"))["strategy"] == spec.rollout.strategy
    )
    assert spec.rollout.progress_deadline_seconds == crd_default("rollout.progressDeadlineSeconds")
    assert spec.rollout.revision_history_limit == crd_default("rollout.revisionHistoryLimit")
    assert spec.gpu is None
    assert spec.autoscaling is None
    assert spec.rollout.canary is None
    assert spec.rollout.blue_green is None


def test_gpu_resource_default_matches_the_crd() -> None:
    gpu = parse_spec({"model": MODEL, "gpu": {"count": 2}}).gpu
    assert gpu == Gpu(count=2, resource=crd_default("gpu.resource"), product="")


def test_autoscaling_min_replicas_default_matches_the_crd() -> None:
    spec = parse_spec(
        {"model": MODEL, "autoscaling": {"maxReplicas": 4, "targetCPUUtilizationPercentage": 70}}
    )
    assert spec.autoscaling is not None
    assert spec.autoscaling.min_replicas == crd_default("autoscaling.minReplicas")


def test_canary_and_analysis_defaults_match_the_crd() -> None:
    raw = {
        "model": MODEL,
        "rollout": {
            "strategy": "Canary",
            "canary": {"steps": [{"weight": 10}], "analysis": PROMETHEUS},
        },
    }
    canary = parse_spec(raw).rollout.canary
    assert canary is not None
    assert canary.steps[0].pause_seconds == crd_default("rollout.canary.steps.[].pauseSeconds")
    assert canary.traffic_routing_mode == crd_default("rollout.canary.trafficRouting.mode")
    analysis = canary.analysis
    assert analysis is not None
    base = "rollout.canary.analysis"
    assert analysis.interval_seconds == crd_default(f"{base}.intervalSeconds")
    assert analysis.max_error_percent == crd_default(f"{base}.maxErrorPercent")
    assert analysis.min_request_count == crd_default(f"{base}.minRequestCount")
    assert analysis.max_p99_latency_ms is None
    assert analysis.max_p99_latency_increase_percent is None


def test_blue_green_defaults_match_the_crd() -> None:
    raw = {"model": MODEL, "rollout": {"strategy": "BlueGreen", "blueGreen": {}}}
    blue_green = parse_spec(raw).rollout.blue_green
    assert blue_green == BlueGreen(
        auto_promote=crd_default("rollout.blueGreen.autoPromote"),
        scale_down_delay_seconds=crd_default("rollout.blueGreen.scaleDownDelaySeconds"),
        smoke_tests=(),
    )


@pytest.mark.parametrize(
    "raw",
    [
        {"model": MODEL},
        {"model": MODEL, "runtime": {"batching": {}}, "gpu": {"count": 1}},
        {"model": MODEL, "autoscaling": {"maxReplicas": 3, "targetRequestsPerSecond": 50}},
        {
            "model": MODEL,
            "rollout": {
                "strategy": "Canary",
                "canary": {"steps": [{"weight": 20}, {"weight": 50}], "analysis": PROMETHEUS},
            },
        },
        {"model": MODEL, "rollout": {"strategy": "BlueGreen", "blueGreen": {}}},
    ],
    ids=["minimal", "gpu-batching", "autoscaling", "canary", "bluegreen"],
)
def test_parsing_is_the_same_before_and_after_the_apiserver_defaults(raw: JSON) -> None:
    # Every `default:` in the CRD, not only the ones named above: if parse_spec's fallback
    # and the schema's default ever disagree, an object reads differently once stored.
    defaulted = apply_defaults(spec_schema(), raw)
    assert defaulted != raw  # the schema did fill something in
    assert parse_spec(defaulted) == parse_spec(raw)


# --- explicit values ----------------------------------------------------------------------


def test_canary_steps_analysis_and_gateway_parse() -> None:
    raw = {
        "model": {**MODEL, "version": "7", "sha256": "ab" * 32},
        "rollout": {
            "strategy": "Canary",
            "progressDeadlineSeconds": 900,
            "revisionHistoryLimit": 5,
            "canary": {
                "steps": [{"weight": 10, "pauseSeconds": 60}, {"weight": 50}],
                "trafficRouting": {
                    "mode": "GatewayAPI",
                    "gatewayAPI": {
                        "parentRefs": [{"name": "public", "namespace": "gateways"}],
                        "hostnames": ["iris.example.com"],
                    },
                },
                "analysis": {
                    **PROMETHEUS,
                    "intervalSeconds": 60,
                    "maxErrorPercent": 2,
                    "maxP99LatencyMs": 250,
                    "maxP99LatencyIncreasePercent": 20,
                    "minRequestCount": 100,
                    "customChecks": [
                        {"name": "drift", "query": "max(x{$canary})", "maxValue": "0.5"}
                    ],
                },
            },
        },
    }
    rollout = parse_spec(raw).rollout
    assert rollout.strategy == "Canary"
    assert rollout.progress_deadline_seconds == 900
    assert rollout.revision_history_limit == 5
    assert rollout.canary == Canary(
        steps=(CanaryStep(10, 60), CanaryStep(50, 0)),
        traffic_routing_mode="GatewayAPI",
        parent_refs=({"name": "public", "namespace": "gateways"},),
        hostnames=("iris.example.com",),
        analysis=Analysis(
            prometheus_endpoint="main",
            interval_seconds=60,
            max_error_percent=2,
            max_p99_latency_ms=250,
            max_p99_latency_increase_percent=20,
            min_request_count=100,
            custom_checks=({"name": "drift", "query": "max(x{$canary})", "maxValue": "0.5"},),
        ),
    )


def test_canary_without_analysis_has_none() -> None:
    raw = {"model": MODEL, "rollout": {"strategy": "Canary", "canary": {"steps": [{"weight": 5}]}}}
    canary = parse_spec(raw).rollout.canary
    assert canary is not None
    assert canary.analysis is None


def test_blue_green_parses() -> None:
    request = {"name": "iris", "body": {"inputs": []}, "expectStatus": 200}
    raw = {
        "model": MODEL,
        "rollout": {
            "strategy": "BlueGreen",
            "blueGreen": {
                "autoPromote": False,
                "scaleDownDelaySeconds": 0,
                "smokeTest": {"requests": [request]},
            },
        },
    }
    assert parse_spec(raw).rollout.blue_green == BlueGreen(
        auto_promote=False, scale_down_delay_seconds=0, smoke_tests=(request,)
    )


def test_model_runtime_and_placement_parse() -> None:
    raw = {
        "model": {**MODEL, "credentials": {"secretRef": {"name": "s3-credentials"}}},
        "runtime": {
            "image": "ghcr.io/acme/runtime:2",
            "imagePullPolicy": "Always",
            "protocol": "v1",
            "env": [{"name": "LOG_LEVEL", "value": "debug"}],
            "workers": 4,
            "batching": {"maxBatchSize": 8},
        },
        "gpu": {"count": 1, "resource": "nvidia.com/mig-1g.10gb", "product": "NVIDIA-A100"},
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "replicas": 0,
    }
    spec = parse_spec(raw)
    assert spec.model.credentials_secret == "s3-credentials"
    assert spec.runtime.image == "ghcr.io/acme/runtime:2"
    assert spec.runtime.protocol == "v1"
    assert spec.runtime.workers == 4
    assert spec.runtime.batching.max_batch_size == 8
    assert spec.runtime.env == ({"name": "LOG_LEVEL", "value": "debug"},)
    assert spec.gpu == Gpu(1, "nvidia.com/mig-1g.10gb", "NVIDIA-A100")
    assert spec.node_selector == {"pool": "gpu"}
    assert spec.tolerations == ({"key": "dedicated", "operator": "Exists"},)
    assert spec.replicas == 0  # zero is a value, not "unset"


# --- min_replicas -------------------------------------------------------------------------


def test_min_replicas_is_the_replica_count_without_autoscaling() -> None:
    assert parse_spec({"model": MODEL, "replicas": 3}).min_replicas == 3
    assert parse_spec({"model": MODEL}).min_replicas == crd_default("replicas")


def test_min_replicas_is_the_hpa_floor_with_autoscaling() -> None:
    raw = {
        "model": MODEL,
        "replicas": 7,
        "autoscaling": {"minReplicas": 2, "maxReplicas": 9, "targetCPUUtilizationPercentage": 60},
    }
    assert parse_spec(raw).min_replicas == 2


def test_runtime_auth_parses_to_its_secret_key() -> None:
    auth = {"tokenSecretRef": {"name": "iris-token", "key": "token"}}
    assert parse_spec({"model": MODEL, "runtime": {"auth": auth}}).runtime.auth_token == SecretKey(
        "iris-token", "token"
    )
    assert parse_spec({"model": MODEL}).runtime.auth_token is None


@pytest.mark.parametrize(
    "ref", [{"name": "iris-token"}, {"key": "token"}, {"name": "Bad_Name", "key": "token"}]
)
def test_runtime_auth_needs_a_valid_secret_name_and_key(ref: JSON) -> None:
    with pytest.raises(ValueError):
        parse_spec({"model": MODEL, "runtime": {"auth": {"tokenSecretRef": ref}}})


def test_runtime_tls_parses_to_its_secret_name() -> None:
    tls = {"secretRef": {"name": "iris-tls"}}
    assert parse_spec({"model": MODEL, "runtime": {"tls": tls}}).runtime.tls_secret == "iris-tls"
    assert parse_spec({"model": MODEL}).runtime.tls_secret == ""


@pytest.mark.parametrize("tls", [{}, {"secretRef": {}}, {"secretRef": {"name": "Bad_Name"}}])
def test_runtime_tls_needs_a_valid_secret_name(tls: JSON) -> None:
    with pytest.raises(ValueError):
        parse_spec({"model": MODEL, "runtime": {"tls": tls}})
