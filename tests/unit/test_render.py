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
from modelroll.conditions import Condition
from modelroll.config import OperatorConfig, config_from_env
from modelroll.quantity import parse_quantity
from modelroll.render import CREDENTIAL_VARIABLES, Owner, RenderContext, render_children
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
    assert kinds == ["Deployment", "ServiceAccount", "Service", "NetworkPolicy"]


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
    limits = pod["containers"][0]["resources"]["limits"]
    # cpu and memory are the operator's default limits; the only device asked for is the MIG
    assert {k: v for k, v in limits.items() if k not in ("cpu", "memory")} == {
        "nvidia.com/mig-1g.10gb": 1
    }
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
    # key by key, under the storage clients' own names: never envFrom, which would let the
    # Secret set any variable, the runtime's reserved MODELROLL_* settings included
    assert "envFrom" not in container
    from_secret = {e["name"]: e["valueFrom"] for e in container["env"] if "valueFrom" in e}
    assert set(from_secret) == set(CREDENTIAL_VARIABLES)
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"} <= set(from_secret)
    for name, source in from_secret.items():
        assert source == {"secretKeyRef": {"name": "s3-creds", "key": name, "optional": True}}
    assert not any(n.startswith("MODELROLL_") for n in from_secret)


def test_no_secret_no_credential_variables() -> None:
    container = render(BASE)[0]["spec"]["template"]["spec"]["containers"][0]
    assert "envFrom" not in container
    assert not [e for e in container["env"] if "valueFrom" in e]


def test_auth_token_comes_from_the_named_secret_key_and_is_not_optional() -> None:
    auth = {"tokenSecretRef": {"name": "iris-token", "key": "token"}}
    spec = {**BASE, "runtime": {"auth": auth}}
    container = render(spec)[0]["spec"]["template"]["spec"]["containers"][0]
    tokens = [e for e in container["env"] if e["name"] == "MODELROLL_AUTH_TOKEN"]
    # no `optional`: a pod whose token key went missing must not start serving without auth
    assert tokens == [
        {
            "name": "MODELROLL_AUTH_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "iris-token", "key": "token"}},
        }
    ]
    # the probes keep the paths that the runtime leaves open, so they need no token
    paths = {
        container[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert paths == {"/v2/health/ready", "/v2/health/live"}


def test_no_auth_no_token_variable() -> None:
    container = render(BASE)[0]["spec"]["template"]["spec"]["containers"][0]
    assert "MODELROLL_AUTH_TOKEN" not in {e["name"] for e in container["env"]}


TLS_SPEC: dict[str, Any] = {**BASE, "runtime": {"tls": {"secretRef": {"name": "iris-tls"}}}}
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def test_tls_mounts_the_secret_read_only_and_probes_speak_https() -> None:
    deployment = render(TLS_SPEC)[0]
    validate(deployment)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODELROLL_TLS_CERT_FILE"] == "/etc/modelroll/tls/tls.crt"
    assert env["MODELROLL_TLS_KEY_FILE"] == "/etc/modelroll/tls/tls.key"
    assert {"name": "tls", "mountPath": "/etc/modelroll/tls", "readOnly": True} in container[
        "volumeMounts"
    ]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    # not optional: a pod must not come up without its certificate; only the pair it serves
    assert volume["secret"] == {
        "secretName": "iris-tls",
        "defaultMode": 0o440,
        "items": [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}],
    }
    # gRPC on its port is TLS too (the runtime serves it with the same certificate)
    assert container["ports"] == [
        {"name": "https", "containerPort": 8080, "protocol": "TCP"},
        {"name": "grpc", "containerPort": 8081, "protocol": "TCP"},
    ]
    for probe in PROBES:
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
        assert container[probe]["httpGet"]["port"] == "https"
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scheme"] == (
        "https"
    )


def test_without_tls_the_runtime_is_plain_http_on_port_80() -> None:
    children = render(BASE, RenderContext(OperatorConfig(), service_monitor_available=True))
    (container,) = children[0]["spec"]["template"]["spec"]["containers"]
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "grpc", "containerPort": 8081, "protocol": "TCP"},
    ]
    assert all("scheme" not in container[p]["httpGet"] for p in PROBES)
    assert not any(e["name"].startswith("MODELROLL_TLS_") for e in container["env"])
    service = next(c for c in children if c["kind"] == "Service")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
        {"name": "grpc", "port": 8081, "targetPort": "grpc", "protocol": "TCP",
         "appProtocol": "grpc"},
    ]  # fmt: skip
    monitor = next(c for c in children if c["kind"] == "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert "tlsConfig" not in monitor["spec"]["endpoints"][0]


HTTPS_PORT = {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP",
              "appProtocol": "https"}  # fmt: skip
GRPC_PORT = {"name": "grpc", "port": 8081, "targetPort": "grpc", "protocol": "TCP",
             "appProtocol": "grpc"}  # fmt: skip


def test_tls_services_serve_https_on_443_for_main_preview_and_route_backends() -> None:
    from modelroll.render import render_shared_children
    from modelroll.rollout import Plan, RolloutState
    from modelroll.spec import parse_spec

    canary = {
        **TLS_SPEC,
        "rollout": {
            "strategy": "Canary",
            "canary": {
                "steps": [{"weight": 50}],
                "trafficRouting": {
                    "mode": "GatewayAPI",
                    "gatewayAPI": {"parentRefs": [{"name": "gw"}]},
                },
            },
        },
    }
    # mid-rollout: a preview Service and two weighted revision Services behind the route
    ready = Condition("Progressing", True, "Rollout", "")
    plan = Plan((), (), "r1", "r2", "r1", {"r1": 50, "r2": 50}, 50, RolloutState(), ready, None)
    children = render_shared_children(OWNER, parse_spec(canary), plan, CONTEXT)
    services = [c for c in children if c["kind"] == "Service"]
    names = {s["metadata"]["name"] for s in services}
    assert names == {"iris", "iris-preview", "iris-r1", "iris-r2"}
    for service in services:
        validate(service)
        assert service["spec"]["ports"] == [HTTPS_PORT, GRPC_PORT]
    route = next(c for c in children if c["kind"] == "HTTPRoute")
    assert {b["port"] for b in route["spec"]["rules"][0]["backendRefs"]} == {443}


@pytest.mark.parametrize("trust_key", ["ca.crt", "tls.crt"])
def test_tls_service_monitor_verifies_with_the_secret_never_skipping(trust_key: str) -> None:
    context = RenderContext(OperatorConfig(), True, tls_trust_key=trust_key)
    monitor = next(c for c in render(TLS_SPEC, context) if c["kind"] == "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["scheme"], endpoint["path"]) == (
        "https",
        "https",
        "/metrics",
    )
    assert endpoint["tlsConfig"] == {
        "ca": {"secret": {"name": "iris-tls", "key": trust_key}},
        "serverName": "iris.models.svc",
    }


def test_tls_status_url_and_smoke_url_are_https() -> None:
    from modelroll.render import service_url
    from modelroll.spec import parse_spec

    config = OperatorConfig()
    url = service_url(OWNER, parse_spec(TLS_SPEC), config)
    assert url == "https://iris.models.svc.cluster.local/v2/models/iris/infer"
    assert config.service_url("iris-preview", "models", 443, https=True) == (
        "https://iris-preview.models.svc.cluster.local:443"
    )
    routed = OperatorConfig(service_url_template="http://127.0.0.1:9/{namespace}/{service}")
    assert (
        routed.service_url("iris", "models", 443, https=True) == "https://127.0.0.1:9/models/iris"
    )
    assert routed.service_url("iris", "models") == "http://127.0.0.1:9/models/iris"


def test_default_limits_sit_next_to_the_default_requests() -> None:
    resources = render(BASE)[0]["spec"]["template"]["spec"]["containers"][0]["resources"]
    config = OperatorConfig()
    assert resources == {"requests": config.default_requests, "limits": config.default_limits}
    assert set(config.default_limits) == {"cpu", "memory"}


def test_the_users_resources_win_resource_by_resource() -> None:
    spec = {**BASE, "resources": {"requests": {"memory": "1Gi"}, "limits": {"cpu": "4"}}}
    resources = render(spec)[0]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {
        "requests": {"cpu": "250m", "memory": "1Gi"},
        "limits": {"cpu": "4", "memory": "2Gi"},
    }


def test_defaults_never_contradict_the_user() -> None:
    # a request above the default limit raises that limit; a limit below the default request
    # lowers that request (as Kubernetes does when a container gives only a limit)
    spec = {**BASE, "resources": {"requests": {"memory": "8Gi"}, "limits": {"cpu": "100m"}}}
    resources = render(spec)[0]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {
        "requests": {"cpu": "100m", "memory": "8Gi"},
        "limits": {"cpu": "100m", "memory": "8Gi"},
    }


def test_operator_configuration_sets_the_defaults() -> None:
    config = config_from_env(
        {
            "MODELROLL_DEFAULT_REQUESTS": "cpu=1, memory=1Gi",
            "MODELROLL_DEFAULT_LIMITS": "memory=3Gi",
            "MODELROLL_MODEL_VOLUME_SIZE": "2Gi",
            "MODELROLL_TMP_VOLUME_SIZE": "64Mi",
        }
    )
    pod = render(BASE, RenderContext(config))[0]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # no cpu entry in MODELROLL_DEFAULT_LIMITS: no default cpu limit
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"memory": "3Gi"},
    }
    sizes = {v["name"]: v["emptyDir"]["sizeLimit"] for v in pod["volumes"] if "emptyDir" in v}
    assert sizes == {"tmp": "64Mi", "model-download": "2Gi", "model-cache": "2Gi"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert int(env["MODELROLL_MAX_MODEL_BYTES"]) == 2 * 2**30 - (2 * 2**30) // 20


@pytest.mark.parametrize(
    "variable, value",
    [
        ("MODELROLL_DEFAULT_LIMITS", "cpu"),
        ("MODELROLL_DEFAULT_LIMITS", "memory=lots"),
        ("MODELROLL_DEFAULT_REQUESTS", "cpu=-1"),
        ("MODELROLL_MODEL_VOLUME_SIZE", "10 GB"),
        ("MODELROLL_TMP_VOLUME_SIZE", "0"),
    ],
)
def test_invalid_quota_settings_stop_the_operator(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        config_from_env({variable: value})


def test_every_emptydir_has_a_size_limit_and_the_download_cap_fits_it() -> None:
    pod = render(BASE)[0]["spec"]["template"]["spec"]
    empty_dirs = {v["name"]: v["emptyDir"] for v in pod["volumes"] if "emptyDir" in v}
    assert set(empty_dirs) == {"tmp", "model-download", "model-cache"}
    assert all(parse_quantity(e["sizeLimit"]) > 0 for e in empty_dirs.values())
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    # the runtime downloads into the capped volume, and stops before it is full
    assert mounts[env["MODELROLL_MODEL_DIR"]] == "model-download"
    assert mounts[env["MODELROLL_CACHE_DIR"]] == "model-cache"
    cap = int(env["MODELROLL_MAX_MODEL_BYTES"])
    assert 0 < cap < parse_quantity(empty_dirs["model-download"]["sizeLimit"])


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
                "auth": st.builds(
                    lambda n, k: {"tokenSecretRef": {"name": n, "key": k}}, names, names
                ),
                "tls": st.builds(lambda n: {"secretRef": {"name": n}}, names),
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
    pod = children[0]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "envFrom" not in container
    assert all(v["emptyDir"].get("sizeLimit") for v in pod["volumes"] if "emptyDir" in v)
    # the apiserver refuses a request above its limit: the defaults never cause one (only a
    # user who sets both, inconsistently, can)
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["limits"])
    user = spec.get("resources", {})
    for name, request in resources["requests"].items():
        if name in user.get("requests", {}) and name in user.get("limits", {}):
            continue
        assert parse_quantity(request) <= parse_quantity(resources["limits"][name]), resources


def test_the_grpc_port_is_on_the_container_and_the_service_and_probes_stay_http() -> None:
    deployment, *shared = render(BASE)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "grpc", "containerPort": 8081, "protocol": "TCP"},
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["MODELROLL_HTTP_PORT"], env["MODELROLL_GRPC_PORT"]) == ("8080", "8081")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "http"
    service = next(c for c in shared if c["kind"] == "Service")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
        {"name": "grpc", "port": 8081, "targetPort": "grpc", "protocol": "TCP",
         "appProtocol": "grpc"},
    ]  # fmt: skip
    validate(service)
