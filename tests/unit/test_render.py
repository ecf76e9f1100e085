"""Pure rendering: every child is valid Kubernetes 1.34, for examples and for random specs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelroll.config import OperatorConfig
from modelroll.render import Owner, RenderContext, render_children
from modelroll.revision import revision_of

REPO = Path(__file__).resolve().parents[2]
OWNER = Owner("iris", "models", "0b7c3b9e-0000-4000-8000-000000000001")
CONTEXT = RenderContext(OperatorConfig(), service_monitor_available=False)
K8S_VERSION = "1.34.0"


def render(spec: dict[str, Any], context: RenderContext = CONTEXT) -> list[dict[str, Any]]:
    return render_children(OWNER, spec, revision_of(spec, "img"), context)


def validate(manifest: dict[str, Any]) -> None:
    if manifest["kind"] == "ServiceMonitor":
        return  # not a core type: no schema in the Kubernetes OpenAPI document
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def examples() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        docs += [
            d
            for d in yaml.safe_load_all(path.read_text())
            if d and d.get("kind") == "ModelDeployment"
        ]
    return docs


@pytest.mark.parametrize("example", examples(), ids=lambda e: e["metadata"]["name"])
def test_every_example_renders_valid_children(example: dict[str, Any]) -> None:
    children = render(
        example["spec"], RenderContext(OperatorConfig(), service_monitor_available=True)
    )
    assert children[0]["kind"] == "Deployment"
    for child in children:
        validate(child)


BASE: dict[str, Any] = {"model": {"format": "sklearn", "uri": "s3://bucket/iris/", "version": "3"}}


def test_hpa_owns_replicas_so_the_deployment_has_none() -> None:
    spec = {
        **BASE,
        "replicas": 4,
        "autoscaling": {"minReplicas": 2, "maxReplicas": 6, "targetRequestsPerSecond": 50},
    }
    deployment, *shared = render(spec)
    assert "replicas" not in deployment["spec"]
    hpa = next(c for c in shared if c["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "modelroll_requests_per_second"
    assert any(c["kind"] == "PodDisruptionBudget" for c in shared)


def test_single_replica_gets_no_pdb_and_no_hpa() -> None:
    kinds = [c["kind"] for c in render({**BASE, "replicas": 1})]
    assert kinds == ["Deployment", "ServiceAccount", "Service"]


def test_gpu_placement() -> None:
    spec = {
        **BASE,
        "gpu": {"count": 2, "product": "NVIDIA-A100-SXM4-80GB", "resource": "nvidia.com/gpu"},
    }
    pod = render(spec)[0]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert pod["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]


def test_mig_resource_is_requested_by_name() -> None:
    pod = render({**BASE, "gpu": {"count": 1, "resource": "nvidia.com/mig-1g.10gb"}})[0]["spec"][
        "template"
    ]["spec"]
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/mig-1g.10gb": 1}
    assert "nvidia.com/gpu.product" not in pod["nodeSelector"]


def test_restricted_pod_security() -> None:
    pod = render(BASE)[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["automountServiceAccountToken"] is False


def test_credentials_come_only_from_the_secret() -> None:
    spec = {**BASE, "model": {**BASE["model"], "credentials": {"secretRef": {"name": "s3-creds"}}}}
    container = render(spec)[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]


def test_pvc_uri_mounts_the_claim_read_only() -> None:
    spec = {**BASE, "model": {"format": "onnx", "uri": "pvc://models/iris/v3"}}
    pod = render(spec)[0]["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["MODELROLL_MODEL_URI"] == "/mnt/models/iris/v3"
    assert {
        "name": "model-store",
        "persistentVolumeClaim": {"claimName": "models", "readOnly": True},
    } in pod["volumes"]


def test_rendering_does_not_mutate_its_input() -> None:
    spec = {**BASE, "tolerations": [{"key": "a", "operator": "Exists"}], "gpu": {"count": 1}}
    before = copy.deepcopy(spec)
    render(spec)
    assert spec == before


def test_pod_affecting_change_makes_a_new_revision_and_replicas_do_not() -> None:
    assert revision_of(BASE, "img") == revision_of({**BASE, "replicas": 7}, "img")
    changed = {**BASE, "model": {**BASE["model"], "version": "4"}}
    assert revision_of(BASE, "img") != revision_of(changed, "img")
    assert revision_of(BASE, "img") != revision_of(BASE, "other-img")


names = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)
quantities = st.sampled_from(["100m", "1", "2", "512Mi", "1Gi", "250m"])
specs = st.fixed_dictionaries(
    {
        "model": st.fixed_dictionaries(
            {
                "format": st.sampled_from(["sklearn", "xgboost", "lightgbm", "onnx"]),
                "uri": st.one_of(
                    st.builds(lambda n: f"s3://bucket/{n}/", names),
                    st.builds(lambda n: f"pvc://claim/{n}", names),
                    st.builds(lambda n: f"https://models.example.com/{n}", names),
                ),
            },
            optional={
                "version": names,
                "sha256": st.from_regex(r"[a-f0-9]{64}", fullmatch=True),
                "credentials": st.builds(lambda n: {"secretRef": {"name": n}}, names),
            },
        )
    },
    optional={
        "replicas": st.integers(0, 50),
        "runtime": st.fixed_dictionaries(
            {},
            optional={
                "image": st.just("registry.local/runtime:1"),
                "protocol": st.sampled_from(["v1", "v2"]),
                "workers": st.integers(1, 8),
                "env": st.lists(
                    st.builds(lambda n, v: {"name": n.upper(), "value": v}, names, names),
                    max_size=3,
                ),
                "batching": st.fixed_dictionaries({"maxBatchSize": st.integers(1, 1024)}),
            },
        ),
        "resources": st.fixed_dictionaries(
            {},
            optional={
                "requests": st.dictionaries(
                    st.sampled_from(["cpu", "memory"]), quantities, min_size=1
                ),
                "limits": st.dictionaries(
                    st.sampled_from(["cpu", "memory"]), quantities, min_size=1
                ),
            },
        ),
        "gpu": st.fixed_dictionaries(
            {"count": st.integers(1, 8)},
            optional={
                "product": st.just("NVIDIA-H100-80GB-HBM3"),
                "resource": st.sampled_from(["nvidia.com/gpu", "nvidia.com/mig-1g.10gb"]),
            },
        ),
        "nodeSelector": st.dictionaries(names, names, max_size=2),
        "autoscaling": st.builds(
            lambda lo, extra, cpu: {
                "minReplicas": lo,
                "maxReplicas": lo + extra,
                "targetCPUUtilizationPercentage": cpu,
            },
            st.integers(1, 5),
            st.integers(0, 5),
            st.integers(1, 100),
        ),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs, monitor=st.booleans())
def test_random_specs_render_valid_children(spec: dict[str, Any], monitor: bool) -> None:
    children = render(spec, RenderContext(OperatorConfig(), service_monitor_available=monitor))
    for child in children:
        validate(child)
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "modelroll"
        assert child["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
