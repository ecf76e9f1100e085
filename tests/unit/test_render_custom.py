"""Pure rendering of spec.runtime.container: the user's server, the model-fetch init
container and the metrics sidecar, and what the shared children make of them."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
from modelroll.config import OperatorConfig
from modelroll.problems import PodProblem, pod_problem
from modelroll.render import Owner, RenderContext, render_children, service_url
from modelroll.revision import revision_of
from modelroll.spec import parse_spec

OWNER = Owner("iris", "models", "0b7c3b9e-0000-4000-8000-000000000001")
CONFIG = OperatorConfig(operator_namespace="modelroll-system", monitoring_namespace="monitoring")
CONTEXT = RenderContext(CONFIG, service_monitor_available=True)
SHA = "a" * 64
SPEC: dict[str, Any] = {
    "model": {
        "format": "sklearn",
        "uri": "https://models.example.com/iris/3/model.joblib",
        "version": "3",
        "sha256": SHA,
        "credentials": {"secretRef": {"name": "store-creds"}},
    },
    "runtime": {
        "container": {
            "image": "registry.example.com/iris-fastapi:1",
            "port": 8000,
            "env": [{"name": "MODEL_PATH", "value": "/mnt/models/model.joblib"}],
        }
    },
    "replicas": 2,
}


def with_container(**fields: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    spec["runtime"]["container"].update(fields)
    return spec


def children(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rendered = render_children(OWNER, spec, revision_of(spec, "img"), CONTEXT)
    for child in rendered:
        if child["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(child, "1.34.0", strict=True)
    return {child["kind"]: child for child in rendered}


def pod(spec: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = children(spec)["Deployment"]["spec"]["template"]["spec"]
    return result


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_users_server_replaces_the_runtime_with_the_restricted_security_context() -> None:
    spec = pod(with_container(command=["uvicorn"], args=["app:app", "--port", "8000"]))
    (server,) = spec["containers"]
    assert server["name"] == "model-server"
    assert server["image"] == "registry.example.com/iris-fastapi:1"
    assert "imagePullPolicy" not in server  # Kubernetes' own default for the user's image
    assert server["command"] == ["uvicorn"]
    assert server["args"] == ["app:app", "--port", "8000"]
    assert server["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert env_of(server) == {"MODEL_PATH": "/mnt/models/model.joblib"}
    assert server["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = by_name(server["volumeMounts"])
    assert mounts["models"] == {"name": "models", "mountPath": "/mnt/models", "readOnly": True}
    assert mounts["tmp"]["mountPath"] == "/tmp"


def test_the_model_is_fetched_by_an_init_container_with_the_credentials() -> None:
    spec = pod(SPEC)
    (fetch,) = spec["initContainers"]
    assert fetch["name"] == "model-fetch"
    assert fetch["image"] == CONFIG.runtime_image
    assert fetch["command"] == ["python", "-m", "modelroll_runtime.fetch"]
    env = env_of(fetch)
    assert env["MODELROLL_MODEL_URI"] == SPEC["model"]["uri"]
    assert env["MODELROLL_MODEL_SHA256"] == SHA
    assert env["MODELROLL_MODEL_DIR"] == "/mnt/models"
    assert env["AWS_ACCESS_KEY_ID"] == {
        "secretKeyRef": {"name": "store-creds", "key": "AWS_ACCESS_KEY_ID", "optional": True}
    }
    assert by_name(fetch["volumeMounts"])["models"] == {
        "name": "models",
        "mountPath": "/mnt/models",
    }
    volumes = by_name(spec["volumes"])
    assert volumes["models"] == {"name": "models", "emptyDir": {"sizeLimit": "10Gi"}}
    # the Secret reaches the fetch only, never the user's server
    (server,) = spec["containers"]
    assert not any(e["name"].startswith("AWS_") for e in server["env"])


def test_a_pvc_model_is_mounted_read_only_and_verified_in_place() -> None:
    spec = copy.deepcopy(SPEC)
    spec["model"]["uri"] = "pvc://models/iris/3"
    rendered = pod(spec)
    (fetch,) = rendered["initContainers"]
    assert env_of(fetch)["MODELROLL_MODEL_URI"] == "/mnt/models/iris/3"
    claim = by_name(rendered["volumes"])["model-store"]
    assert claim["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    for container in (fetch, *rendered["containers"]):
        assert by_name(container["volumeMounts"])["model-store"]["readOnly"] is True


def test_a_file_uri_is_the_servers_own_and_nothing_is_fetched() -> None:
    spec = copy.deepcopy(SPEC)
    spec["model"]["uri"] = "file:///models/iris.joblib"
    rendered = pod(spec)
    assert "initContainers" not in rendered
    assert [v["name"] for v in rendered["volumes"]] == ["tmp"]


def test_v2_probes_default_to_the_open_inference_protocol_paths() -> None:
    (server,) = pod(SPEC)["containers"]
    assert server["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert server["startupProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}


@pytest.mark.parametrize("protocol", ["v1", "none"])
def test_without_a_standard_health_path_the_probes_connect_over_tcp(protocol: str) -> None:
    (server,) = pod(with_container(protocol=protocol))["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["tcpSocket"] == {"port": "http"}
        assert "httpGet" not in server[probe]


def test_explicit_health_paths_win() -> None:
    health = {"livenessPath": "/v1/models/iris", "readinessPath": "/v1/models/iris"}
    (server,) = pod(with_container(protocol="v1", health=health))["containers"]
    assert server["readinessProbe"]["httpGet"] == {"path": "/v1/models/iris", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/v1/models/iris", "port": "http"}


def test_without_the_sidecar_service_scrape_and_policy_target_the_servers_port() -> None:
    rendered = children(SPEC)
    template = rendered["Deployment"]["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "8000"
    assert rendered["Service"]["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    serving, monitoring = rendered["NetworkPolicy"]["spec"]["ingress"]
    assert serving["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert monitoring["ports"] == [{"protocol": "TCP", "port": 8000}]


def test_the_metrics_sidecar_fronts_the_server_with_the_agreed_settings() -> None:
    rendered = children(with_container(protocol="v1", metrics={"sidecar": True}))
    spec = rendered["Deployment"]["spec"]["template"]["spec"]
    server, sidecar = spec["containers"]
    assert server["ports"] == [{"name": "server", "containerPort": 8000, "protocol": "TCP"}]
    assert server["readinessProbe"]["tcpSocket"] == {"port": "server"}
    assert sidecar["name"] == "metrics-proxy"
    assert sidecar["image"] == CONFIG.runtime_image
    assert sidecar["command"] == ["python", "-m", "modelroll_runtime.proxy"]
    assert sidecar["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert env_of(sidecar) == {
        "MODELROLL_HTTP_PORT": "8080",
        "MODELROLL_PROXY_UPSTREAM": "http://127.0.0.1:8000",
        "MODELROLL_PROXY_PROTOCOL": "v1",
        "MODELROLL_MODEL_NAME": "iris",
        "MODELROLL_MODEL_VERSION": "3",
        "MODELROLL_MODEL_DIR": "/mnt/models",
    }
    assert by_name(sidecar["volumeMounts"])["models"]["readOnly"] is True
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    annotations = rendered["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8080"
    assert rendered["Service"]["spec"]["ports"][0]["targetPort"] == "http"  # the sidecar's
    serving, monitoring = rendered["NetworkPolicy"]["spec"]["ingress"]
    assert serving["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert monitoring["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert rendered["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == "http"


def test_gpus_go_to_the_server_only_and_placement_is_unchanged() -> None:
    spec = copy.deepcopy(SPEC)
    spec["gpu"] = {"count": 1, "product": "NVIDIA-A100-SXM4-80GB"}
    rendered = pod(spec)
    (server,) = rendered["containers"]
    (fetch,) = rendered["initContainers"]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in fetch["resources"]["limits"]
    assert fetch["resources"]["requests"] == server["resources"]["requests"]
    assert rendered["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in rendered[
        "tolerations"
    ]


def test_hpa_and_pdb_work_unchanged() -> None:
    spec = copy.deepcopy(SPEC)
    spec["autoscaling"] = {"minReplicas": 2, "maxReplicas": 4, "targetCPUUtilizationPercentage": 70}
    rendered = children(spec)
    assert "replicas" not in rendered["Deployment"]["spec"]
    target = rendered["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"]
    assert target == rendered["Deployment"]["metadata"]["name"]
    pdb = rendered["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]
    assert pdb == rendered["Service"]["spec"]["selector"]


def test_the_protocol_of_the_container_decides_the_service_url() -> None:
    for protocol, path in (("v2", "/v2/models/iris/infer"), ("v1", "/v1/models/iris:predict")):
        spec = parse_spec(with_container(protocol=protocol))
        assert service_url(OWNER, spec, CONFIG).endswith(path)
    none = parse_spec(with_container(protocol="none"))
    assert service_url(OWNER, none, CONFIG) == "http://iris.models.svc.cluster.local"


def test_a_changed_container_is_a_new_revision() -> None:
    other = with_container(image="registry.example.com/iris-fastapi:2")
    assert revision_of(SPEC, "img") != revision_of(other, "img")


def init_status(state: dict[str, Any], last: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "status": {
            "initContainerStatuses": [
                {"name": "model-fetch", "state": state, "lastState": last or {}, "ready": False}
            ],
            "containerStatuses": [
                {"name": "model-server", "state": {"waiting": {"reason": "PodInitializing"}}}
            ],
        }
    }


def test_a_failed_fetch_is_the_pods_problem_with_its_reason() -> None:
    message = "ModelFetchFailed: sha256 mismatch for model.joblib: expected aaaa, got bbbb\n"
    crashing = init_status(
        {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
        {"terminated": {"exitCode": 1, "reason": "Error", "message": message}},
    )
    assert pod_problem(crashing) == PodProblem("ModelFetchFailed", message.strip())
    first_try = init_status({"terminated": {"exitCode": 1, "message": message}})
    assert pod_problem(first_try) == PodProblem("ModelFetchFailed", message.strip())


def test_a_fetch_that_finished_is_no_problem() -> None:
    healed = init_status(
        {"terminated": {"exitCode": 0, "reason": "Completed"}},
        {"terminated": {"exitCode": 1, "message": "ModelFetchFailed: download failed"}},
    )
    assert pod_problem(healed) is None
    running = init_status({"running": {"startedAt": "2026-12-02T03:00:00Z"}})
    assert pod_problem(running) is None


def test_an_init_image_that_cannot_be_pulled_is_reported() -> None:
    pulling = init_status({"waiting": {"reason": "ErrImagePull", "message": "not found"}})
    assert pod_problem(pulling) == PodProblem("ImagePullBackOff", "not found")
