"""Pure rendering of a pod around the user's own server (spec.runtime.container).

The pod keeps what every modelroll pod has (restricted Pod Security, probes, resources, GPU
placement, a read-only root filesystem); the modelroll runtime image still does two jobs in
it: an init container fetches and verifies spec.model.uri into /mnt/models
(`modelroll_runtime.fetch`), and, opted in, a sidecar proxies the Service's traffic to the
server and exports the runtime's metrics (`modelroll_runtime.proxy`).
"""

from __future__ import annotations

from dataclasses import dataclass

from modelroll.config import OperatorConfig
from modelroll.spec import JSON, Container, ModelDeploymentSpec

MODELS_DIR = "/mnt/models"
# The sidecar's HTTP port: the runtime's, so that Services, scrapes and probes of a
# sidecar pod look like those of a runtime pod.
SIDECAR_PORT = 8080
# With the sidecar, its port is named http (what the Service targets) and the server's
# port gets this name.
SERVER_PORT_NAME = "server"
FETCH_COMMAND = ["python", "-m", "modelroll_runtime.fetch"]
PROXY_COMMAND = ["python", "-m", "modelroll_runtime.proxy"]
# The Open Inference Protocol's health endpoints: the default probes of a v2 server.
OIP_HEALTH = {"liveness": "/v2/health/live", "readiness": "/v2/health/ready"}
# Pod Security "restricted", per container (the pod part is the template's).
SECURITY_CONTEXT: JSON = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}
# The proxy is small and I/O bound; a CPU limit would throttle it under load, where the
# sidecar's overhead matters most, so it has none (the server's limits bound the pod).
SIDECAR_RESOURCES: JSON = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}
# Endpoints and kube-proxy rules lag a pod's deletion: a second or so on a quiet cluster,
# longer on a busy one (with 5 s, a CI run on a loaded 2-core node left 3 of 134 requests
# unanswered across a canary whose old pod went at the flip, scaleDownDelaySeconds 0).
# Keep answering until no new connection can reach the pod, then drain on SIGTERM, well
# within terminationGracePeriodSeconds (30).
PRE_STOP: JSON = {"preStop": {"sleep": {"seconds": 10}}}


@dataclass(frozen=True)
class ModelVolume:
    """Where the model is in the pod: `uri` as the fetch init container reads it, the
    volumes behind /mnt/models and each container's mount of them."""

    uri: str
    volumes: list[JSON]
    writable_mount: JSON | None  # the fetch init container's (None: nothing to fetch into)
    read_only_mount: JSON | None


@dataclass(frozen=True)
class CustomPod:
    init_containers: list[JSON]
    containers: list[JSON]
    volumes: list[JSON]


def serving_ports(container: Container) -> dict[str, int]:
    """The pod's serving port by name: the sidecar's with it, else the server's."""
    return {"http": SIDECAR_PORT if container.metrics_sidecar else container.port}


def metrics_port(container: Container) -> int:
    """Where /metrics is scraped: the sidecar, or the server itself (if it has metrics)."""
    return serving_ports(container)["http"]


def model_volume(uri: str, pvc_volumes: list[JSON], size: str) -> ModelVolume:
    """pvc:// (already mapped by render.model_location onto a read-only /mnt/models volume)
    is verified in place; a remote URI is fetched into an emptyDir; file:// is a path in the
    server's own image, where the init container cannot see it: nothing to fetch."""
    if pvc_volumes:
        mount = {"name": pvc_volumes[0]["name"], "mountPath": MODELS_DIR, "readOnly": True}
        return ModelVolume(uri, pvc_volumes, mount, mount)
    if uri.startswith("file://"):
        return ModelVolume(uri, [], None, None)
    volume = {"name": "models", "emptyDir": {"sizeLimit": size}}
    return ModelVolume(
        uri,
        [volume],
        {"name": "models", "mountPath": MODELS_DIR},
        {"name": "models", "mountPath": MODELS_DIR, "readOnly": True},
    )


def health_probes(container: Container, port: str) -> JSON:
    """startup, readiness and liveness probes on the server's own port. A v2 server has the
    Open Inference Protocol's paths by default; v1 and none servers have no standard one,
    so without explicit paths they get a TCP connect (listening, not necessarily loaded)."""
    oip = container.protocol == "v2"
    live = container.liveness_path or (OIP_HEALTH["liveness"] if oip else "")
    ready = container.readiness_path or (OIP_HEALTH["readiness"] if oip else "")

    def check(path: str) -> JSON:
        return {"httpGet": {"path": path, "port": port}} if path else {"tcpSocket": {"port": port}}

    return {
        # servers that load large models (vLLM) may take minutes: 10 before a restart
        "startupProbe": {**check(ready), "periodSeconds": 5, "timeoutSeconds": 2,
                         "failureThreshold": 120},
        "readinessProbe": {**check(ready), "periodSeconds": 5, "timeoutSeconds": 2,
                           "failureThreshold": 3},
        "livenessProbe": {**check(live), "periodSeconds": 10, "timeoutSeconds": 2,
                          "failureThreshold": 3},
    }  # fmt: skip


def fetch_env(
    name: str, spec: ModelDeploymentSpec, uri: str, config: OperatorConfig, credentials: list[JSON]
) -> list[JSON]:
    """The runtime settings the fetch reads (config.Settings), and the storage credentials,
    which reach only this container: the user's server never sees the Secret."""
    values = {
        "MODELROLL_MODEL_NAME": name,
        "MODELROLL_MODEL_URI": uri,
        "MODELROLL_MODEL_FORMAT": spec.model.format,
        "MODELROLL_MODEL_VERSION": spec.model.version or "1",
        "MODELROLL_MODEL_SHA256": spec.model.sha256,
        "MODELROLL_MODEL_DIR": MODELS_DIR,
        "MODELROLL_MAX_MODEL_BYTES": str(config.max_model_bytes()),
    }
    return [{"name": k, "value": v} for k, v in values.items() if v] + credentials


def sidecar_env(name: str, spec: ModelDeploymentSpec, container: Container) -> list[JSON]:
    values = {
        "MODELROLL_HTTP_PORT": str(SIDECAR_PORT),
        "MODELROLL_PROXY_UPSTREAM": f"http://127.0.0.1:{container.port}",
        "MODELROLL_PROXY_PROTOCOL": container.protocol,
        "MODELROLL_MODEL_NAME": name,
        "MODELROLL_MODEL_VERSION": spec.model.version or "1",
        "MODELROLL_MODEL_DIR": MODELS_DIR,
    }
    return [{"name": k, "value": v} for k, v in values.items()]


def custom_pod(
    name: str,
    spec: ModelDeploymentSpec,
    container: Container,
    config: OperatorConfig,
    model: ModelVolume,
    resources: JSON,
    credentials: list[JSON],
    tmp: tuple[JSON, JSON],
) -> CustomPod:
    """The pod's containers and volumes; `resources` are the server's (GPUs included),
    `tmp` the /tmp emptyDir and its mount, which every container gets."""
    tmp_volume, tmp_mount = tmp
    runtime_image = spec.runtime.image or config.runtime_image
    runtime_pull = spec.runtime.image_pull_policy or config.runtime_image_pull_policy
    read_only = [model.read_only_mount] if model.read_only_mount else []
    server_port = SERVER_PORT_NAME if container.metrics_sidecar else "http"
    server: JSON = {
        "name": "model-server",
        "image": container.image,
        **({"imagePullPolicy": container.image_pull_policy} if container.image_pull_policy else {}),
        **({"command": list(container.command)} if container.command else {}),
        **({"args": list(container.args)} if container.args else {}),
        "ports": [{"name": server_port, "containerPort": container.port, "protocol": "TCP"}],
        "env": [dict(e) for e in container.env],
        "resources": resources,
        "securityContext": SECURITY_CONTEXT,
        **health_probes(container, server_port),
        "lifecycle": PRE_STOP,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [tmp_mount, *read_only],
    }
    containers = [server]
    if container.metrics_sidecar:
        containers.append(
            {
                "name": "metrics-proxy",
                "image": runtime_image,
                "imagePullPolicy": runtime_pull,
                "command": PROXY_COMMAND,
                "ports": [{"name": "http", "containerPort": SIDECAR_PORT, "protocol": "TCP"}],
                "env": sidecar_env(name, spec, container),
                "resources": SIDECAR_RESOURCES,
                "securityContext": SECURITY_CONTEXT,
                # ready when it listens: the server's own probes say whether it can answer
                "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 5},
                "lifecycle": PRE_STOP,
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [tmp_mount, *read_only],
            }
        )
    init: list[JSON] = []
    if model.writable_mount is not None:
        init.append(
            {
                "name": "model-fetch",
                "image": runtime_image,
                "imagePullPolicy": runtime_pull,
                "command": FETCH_COMMAND,
                "env": fetch_env(name, spec, model.uri, config, credentials),
                # the server's requests, less its GPUs: the pod's request does not grow
                # (Kubernetes takes the larger of the init and the serving containers')
                "resources": _without_gpu(resources, spec),
                "securityContext": SECURITY_CONTEXT,
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [tmp_mount, model.writable_mount],
            }
        )
    return CustomPod(init, containers, [tmp_volume, *model.volumes])


def _without_gpu(resources: JSON, spec: ModelDeploymentSpec) -> JSON:
    if not spec.gpu:
        return resources
    limits = {k: v for k, v in resources.get("limits", {}).items() if k != spec.gpu.resource}
    return {**resources, "limits": limits}
