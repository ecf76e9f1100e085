"""The ModelDeployment CRD on a real apiserver (issue 3, acceptance 4).

Every case in tests/cases/invalid_modeldeployments.yaml is rejected at create time with
422 Invalid and a message naming the field; every example is accepted; defaults, printer
columns, `kubectl explain`, and the status and scale subresources behave as documented.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client

from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CASES = yaml.safe_load((REPO / "tests" / "cases" / "invalid_modeldeployments.yaml").read_text())
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
GROUP, VERSION, PLURAL = "modelroll.io", "v1alpha1", "modeldeployments"


@pytest.fixture(scope="module")
def ns(crd_installed: None, api_client: client.ApiClient) -> Iterator[str]:
    """One namespace for the whole module: most objects here are rejected or dry-run."""
    core = client.CoreV1Api(api_client)
    name = f"crd-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def create(
    custom: client.CustomObjectsApi, ns: str, body: dict[str, Any], dry_run: bool = False
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"field_validation": "Strict"}
    if dry_run:
        kwargs["dry_run"] = "All"
    created = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body, **kwargs)
    return cast(dict[str, Any], created)


def rejection(error: client.ApiException) -> tuple[int, str]:
    status = json.loads(error.body or "{}")
    return int(error.status), str(status.get("message", ""))


def minimal(name: str = "mini") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": {"format": "sklearn", "uri": "file:///models/iris.joblib"}},
    }


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_invalid_case_is_rejected(
    case: dict[str, Any], custom: client.CustomObjectsApi, ns: str
) -> None:
    body = json.loads(json.dumps(case["manifest"]))
    try:
        create(custom, ns, body)
    except client.ApiException as error:
        code, message = rejection(error)
        expected_code = case.get("code", 422)
        assert code == expected_code, f"expected {expected_code}, got {code}: {message}"
        assert case["expect"] in message, f"expected {case['expect']!r} in: {message}"
        return
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body["metadata"]["name"])
    pytest.fail(f"the apiserver accepted invalid case {case['name']}")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_accepted(path: Path, cluster: Cluster, ns: str) -> None:
    # kubectl validates fields strictly by default, as a user's `kubectl apply` would.
    result = cluster.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-n", ns, "-f", str(path)
    )
    assert "created (server dry run)" in result.stdout


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_round_trips_without_pruning(
    path: Path, custom: client.CustomObjectsApi, ns: str
) -> None:
    """Nothing the user wrote is dropped: the stored spec contains the example's spec."""
    obj = yaml.safe_load(path.read_text())
    stored = create(custom, ns, obj, dry_run=True)

    def contains(outer: Any, inner: Any) -> bool:
        if isinstance(inner, dict):
            return isinstance(outer, dict) and all(
                k in outer and contains(outer[k], v) for k, v in inner.items()
            )
        if isinstance(inner, list):
            return (
                isinstance(outer, list)
                and len(outer) == len(inner)
                and all(contains(o, i) for o, i in zip(outer, inner, strict=True))
            )
        return bool(outer == inner)

    assert contains(stored["spec"], obj["spec"]), stored["spec"]


def test_defaults(custom: client.CustomObjectsApi, ns: str) -> None:
    stored = create(custom, ns, minimal(), dry_run=True)
    assert stored["spec"] == {
        "model": {"format": "sklearn", "uri": "file:///models/iris.joblib"},
        "runtime": {"protocol": "v2"},
        "replicas": 1,
        "rollout": {
            "strategy": "Rolling",
            "progressDeadlineSeconds": 600,
            "revisionHistoryLimit": 3,
        },
    }


def test_nested_defaults(custom: client.CustomObjectsApi, ns: str) -> None:
    obj = minimal("nested")
    obj["spec"]["gpu"] = {"count": 1}
    obj["spec"]["runtime"] = {"batching": {}}
    obj["spec"]["autoscaling"] = {"maxReplicas": 3, "targetRequestsPerSecond": 10}
    obj["spec"]["rollout"] = {
        "strategy": "Canary",
        "canary": {
            "steps": [{"weight": 20}],
            "analysis": {"prometheus": {"endpoint": "main"}},
        },
    }
    spec = create(custom, ns, obj, dry_run=True)["spec"]
    assert spec["gpu"] == {"count": 1, "resource": "nvidia.com/gpu"}
    assert spec["runtime"] == {
        "protocol": "v2",
        "batching": {"maxBatchSize": 32},
    }
    assert spec["autoscaling"]["minReplicas"] == 1
    canary = spec["rollout"]["canary"]
    assert canary["trafficRouting"] == {"mode": "Replicas"}
    assert canary["steps"] == [{"weight": 20, "pauseSeconds": 0}]
    assert canary["analysis"] == {
        "prometheus": {"endpoint": "main"},
        "intervalSeconds": 30,
        "maxErrorPercent": 1,
        "minRequestCount": 20,
        # on by default wherever analysis is configured
        "predictionShift": {"enabled": True, "significance": "0.01", "minSamples": 100},
    }

    obj = minimal("drift")
    obj["spec"]["monitoring"] = {"drift": {}}
    assert create(custom, ns, obj, dry_run=True)["spec"]["monitoring"] == {
        "drift": {
            "prometheus": {},
            "windowSeconds": 3600,
            "intervalSeconds": 300,
            "significance": "0.01",
            "minSamples": 200,
        }
    }

    obj = minimal("bg")
    obj["spec"]["rollout"] = {
        "strategy": "BlueGreen",
        "blueGreen": {"smokeTest": {"requests": [{"name": "one", "body": {"inputs": []}}]}},
    }
    blue_green = create(custom, ns, obj, dry_run=True)["spec"]["rollout"]["blueGreen"]
    assert blue_green == {
        "autoPromote": True,
        "scaleDownDelaySeconds": 30,
        "smokeTest": {"requests": [{"name": "one", "body": {"inputs": []}, "expectStatus": 200}]},
    }


def test_accepted_edge_values(custom: client.CustomObjectsApi, ns: str) -> None:
    """Values at the edges of the rules are accepted, so the rules are not too strict."""
    good: list[dict[str, Any]] = [
        {"model": {"uri": "pvc://model-store/iris/model.joblib"}},
        {"model": {"uri": "gs://bucket/key"}},
        {"model": {"uri": "http://10.0.0.1:8080/m.onnx"}},
        {"gpu": {"count": 16, "resource": "nvidia.com/mig-1g.10gb"}},
        {"gpu": {"count": 1, "resource": "nvidia.com/mig-3g.40gb"}},
        {"replicas": 0},
        {"autoscaling": {"minReplicas": 4, "maxReplicas": 4, "targetCPUUtilizationPercentage": 1}},
        {"resources": {"limits": {"cpu": 2, "memory": "1.5Gi", "example.com/foo": "1"}}},
        {"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}},
        {"runtime": {"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}},
        {
            "rollout": {
                "strategy": "Canary",
                "canary": {
                    "steps": [{"weight": w} for w in range(5, 101, 5)],
                    "trafficRouting": {
                        "mode": "GatewayAPI",
                        "gatewayAPI": {
                            "parentRefs": [{"name": "gw", "namespace": "infra"}],
                            "hostnames": ["*.models.example.com"],
                        },
                    },
                },
            }
        },
        {"rollout": {"strategy": "BlueGreen"}},
    ]
    for i, patch in enumerate(good):
        obj = minimal(f"edge-{i}")
        for key, value in patch.items():
            if key == "model":
                obj["spec"]["model"].update(value)
            else:
                obj["spec"][key] = value
        create(custom, ns, obj, dry_run=True)
    create(custom, ns, minimal("a" * 40), dry_run=True)


def test_explain_is_documented(cluster: Cluster, crd_installed: None) -> None:
    # The CRD's OpenAPI is published a moment after it is Established.
    deadline = time.monotonic() + 30
    while True:
        result = cluster.kubectl("explain", "md.spec.gpu", check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert result.returncode == 0, result.stderr
    assert "GPUs for each pod" in result.stdout
    assert "count" in result.stdout and "GPUs (or MIG slices) per pod" in result.stdout
    result = cluster.kubectl("explain", "md.spec.rollout.canary.steps.weight")
    assert "Percent of traffic" in result.stdout


def test_update_is_validated(cluster: Cluster, custom: client.CustomObjectsApi, ns: str) -> None:
    create(custom, ns, minimal("upd"))
    try:
        with pytest.raises(client.ApiException) as raised:
            custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                PLURAL,
                "upd",
                {"spec": {"autoscaling": {"minReplicas": 9, "maxReplicas": 3}}},
            )
        code, message = rejection(raised.value)
        assert code == 422
        assert "spec.autoscaling.minReplicas must be less than or equal to" in message
    finally:
        custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "upd")


def test_status_and_scale_subresources_and_columns(
    cluster: Cluster, custom: client.CustomObjectsApi, ns: str
) -> None:
    name = "cols"
    obj = minimal(name)
    # This test writes the status itself: a running operator must leave the object alone.
    obj["metadata"]["annotations"] = {"modelroll.io/paused": "true"}
    obj["spec"]["model"]["version"] = "1"
    created = create(custom, ns, obj)
    try:
        # Status is written through the status subresource and kept in full (never pruned).
        status: dict[str, Any] = {
            "observedGeneration": created["metadata"]["generation"],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "AllReplicasReady",
                    "message": "2/2 pods ready",
                    "observedGeneration": 1,
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                }
            ],
            "url": f"http://{name}.{ns}.svc.cluster.local/v2/models/{name}/infer",
            "selector": f"modelroll.io/deployment={name}",
            "replicas": 2,
            "readyReplicas": 2,
            "stableRevision": "r1a2b3",
            "traffic": "r1a2b3:100",
            "revisions": [
                {
                    "name": "r1a2b3",
                    "version": "1",
                    "role": "stable",
                    "replicas": 2,
                    "readyReplicas": 2,
                    "weight": 100,
                }
            ],
            "history": [{"revision": "r0", "promotedAt": "2025-01-01T00:00:00Z"}],
            "rollout": {
                "state": "Complete",
                "message": "done",
                "lastAnalysis": {"time": "2025-01-01T00:00:00Z", "passed": True, "message": "ok"},
            },
        }
        patched = cast(
            dict[str, Any],
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, ns, PLURAL, name, {"status": status}
            ),
        )
        assert patched["status"] == status
        # A status write cannot change the spec.
        assert patched["spec"]["replicas"] == 1

        table = cluster.kubectl("get", "md", "-n", ns, name).stdout.splitlines()
        header = table[0].split()
        assert header == [
            "NAME",
            "READY",
            "REPLICAS",
            "DESIRED",
            "VERSION",
            "STRATEGY",
            "STABLE",
            "TRAFFIC",
            "AGE",
        ]
        row = table[1].split()
        assert row[:8] == [name, "True", "2", "2", "1", "Rolling", "r1a2b3", "r1a2b3:100"]
        wide = cluster.kubectl("get", "md", "-n", ns, name, "-o", "wide").stdout.split("\n")[0]
        assert "CANARY" in wide and "URL" in wide

        # The scale subresource writes spec.replicas and reads the selector from status.
        cluster.kubectl("scale", "-n", ns, f"md/{name}", "--replicas=3")
        scale = cast(
            dict[str, Any],
            custom.get_namespaced_custom_object_scale(GROUP, VERSION, ns, PLURAL, name),
        )
        assert scale["spec"]["replicas"] == 3
        assert scale["status"] == {"replicas": 2, "selector": f"modelroll.io/deployment={name}"}

        # Status is fully typed: a malformed condition is rejected.
        bad = {"conditions": [{**status["conditions"][0], "status": "Yes"}]}
        with pytest.raises(client.ApiException) as raised:
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, ns, PLURAL, name, {"status": bad}
            )
        assert rejection(raised.value)[0] == 422
        assert "status.conditions[0].status: Unsupported value" in rejection(raised.value)[1]
    finally:
        custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)


def test_short_name_and_category(cluster: Cluster, ns: str) -> None:
    assert cluster.kubectl("get", "md", "-n", ns).returncode == 0
    assert cluster.kubectl("get", "modelroll", "-n", ns).returncode == 0
