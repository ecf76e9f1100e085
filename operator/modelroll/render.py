"""Pure rendering: a ModelDeployment in, its child manifests out. No I/O."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2

from modelroll import GROUP, KIND, VERSION, parsed_yaml, render_custom
from modelroll.config import OperatorConfig
from modelroll.feature_drift import recording_rules
from modelroll.quantity import parse_quantity
from modelroll.rollout import Plan
from modelroll.spec import JSON, ModelDeploymentSpec, parse_spec
from modelroll.tls import CA_KEY, CERT_FILE, CERT_KEY, KEY_FILE, KEY_KEY, MOUNT_DIR, server_name

# Package data: operator/modelroll/templates links to the repository's templates/, and
# setuptools copies the files behind the link into the wheel.
TEMPLATES = resources.files("modelroll") / "templates"
MODEL_MOUNT = "/mnt/models"
# Where remote models are downloaded (an emptyDir of config.model_volume_size) and where
# their compiled ONNX copies go (another of the same size).
DOWNLOAD_DIR = "/var/lib/modelroll/models"
CACHE_DIR = "/var/cache/modelroll"
# The variables the runtime's storage clients read (source.py: boto3 for s3://,
# google-cloud-storage for gs://). Each is taken from the credentials Secret's key of the
# same name, if it has one. Never envFrom: that would let the Secret set the runtime's own
# MODELROLL_* settings, such as the unpinned-pickle opt-in.
CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
)
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
# The runtime container's ports by role, the one list that the Deployment's containerPorts,
# the runtime's MODELROLL_*_PORT settings, the Services' ports and the NetworkPolicy's
# ingress ports all come from.
RUNTIME_PORTS = {"http": 8080, "grpc": 8081}
# Each port's Service port by name (HTTP on 80 and HTTPS on 443, as clients expect of a
# Service), and the appProtocol that tells meshes and gateways what to speak to it.
SERVICE_PORTS = {"http": 80, "https": 443, "grpc": 8081}
APP_PROTOCOLS = {"https": "https", "grpc": "grpc"}
# The port (by role) Prometheus scrapes /metrics on: the HTTP one, HTTPS with TLS.
METRICS_PORT = "http"
DEPLOYMENT_LABEL = f"{GROUP}/deployment"
REVISION_LABEL = f"{GROUP}/revision"
# On the blue-green preview Service, and copied by the EndpointSlice controller onto its
# slices: the operator watches only those slices (the flip waits for them), not every
# Service's.
PREVIEW_SERVICE_LABEL = f"{GROUP}/preview"
MODEL_VERSION_ANNOTATION = f"{GROUP}/model-version"


@dataclass(frozen=True)
class Owner:
    """What a child needs to know about its ModelDeployment."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class RenderContext:
    config: OperatorConfig
    service_monitor_available: bool = False
    prometheus_rule_available: bool = False
    # The TLS Secret's key that clients trust (tls.trust_key): the reconcile reads the
    # Secret; an offline `modelroll render` cannot, and assumes ca.crt.
    tls_trust_key: str = CA_KEY


def _template_source(name: str) -> str | None:
    template = TEMPLATES / name
    return template.read_text(encoding="utf-8") if template.is_file() else None


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_source),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


def render_template(template: str, **values: Any) -> JSON:
    text = _environment().get_template(template).render(**values)
    manifest = parsed_yaml.load(text)
    assert isinstance(manifest, dict), f"{template} did not render a mapping"
    return manifest


def owner_references(owner: Owner) -> list[JSON]:
    return [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": owner.name,
            "uid": owner.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def common_labels(owner: Owner, revision: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": owner.name,
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/part-of": "modelroll",
        "app.kubernetes.io/managed-by": "modelroll",
        DEPLOYMENT_LABEL: owner.name,
        REVISION_LABEL: revision,
    }


def deployment_name(owner_name: str, revision: str) -> str:
    return f"{owner_name}-{revision}"


def service_account_name(owner_name: str) -> str:
    """Suffixed, so that it is never a ServiceAccount users name themselves (`default`,
    or one named after their app that may carry a cloud identity). Names are at most 40
    characters (CRD), so this stays a valid DNS label."""
    return f"{owner_name}-modelroll"


def model_location(uri: str) -> tuple[str, list[JSON], list[JSON]]:
    """Maps pvc://claim/path onto a read-only volume; other URIs pass through."""
    if not uri.startswith("pvc://"):
        return uri, [], []
    claim, _, path = uri.removeprefix("pvc://").partition("/")
    volume = {
        "name": "model-store",
        "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
    }
    mount = {"name": "model-store", "mountPath": MODEL_MOUNT, "readOnly": True}
    return f"{MODEL_MOUNT}/{path}".rstrip("/"), [volume], [mount]


def credential_env(secret: str) -> list[JSON]:
    """The storage clients' variables, each from the Secret's key of that name when present."""
    return [
        {
            "name": name,
            "valueFrom": {"secretKeyRef": {"name": secret, "key": name, "optional": True}},
        }
        for name in CREDENTIAL_VARIABLES
    ]


def runtime_env(
    owner: Owner, spec: ModelDeploymentSpec, model_uri: str, config: OperatorConfig
) -> list[JSON]:
    values = {
        "MODELROLL_MODEL_NAME": owner.name,
        "MODELROLL_MODEL_URI": model_uri,
        "MODELROLL_MODEL_FORMAT": spec.model.format,
        "MODELROLL_MODEL_VERSION": spec.model.version or "1",
        "MODELROLL_MODEL_SHA256": spec.model.sha256,
        "MODELROLL_HTTP_PORT": str(RUNTIME_PORTS["http"]),
        "MODELROLL_GRPC_PORT": str(RUNTIME_PORTS["grpc"]),
        "MODELROLL_MAX_BATCH_SIZE": str(spec.runtime.batching.max_batch_size),
        "MODELROLL_WORKERS": str(spec.runtime.workers or ""),
        "MODELROLL_MODEL_DIR": DOWNLOAD_DIR,
        "MODELROLL_CACHE_DIR": CACHE_DIR,
        # the download stops, with a reason, before it could fill its emptyDir
        "MODELROLL_MAX_MODEL_BYTES": str(config.max_model_bytes()),
        "MODELROLL_EXIT_ON_LOAD_FAILURE": "true",
    }
    env: list[JSON] = [{"name": k, "value": v} for k, v in values.items() if v]
    secret = spec.model.credentials_secret
    credentials = credential_env(secret) if secret else []
    return env + credentials + auth_env(spec) + tls_env(spec) + [dict(e) for e in spec.runtime.env]


def tls_env(spec: ModelDeploymentSpec) -> list[JSON]:
    """The runtime's certificate and key, as files of the TLS Secret's volume."""
    if not spec.runtime.tls_secret:
        return []
    return [
        {"name": "MODELROLL_TLS_CERT_FILE", "value": CERT_FILE},
        {"name": "MODELROLL_TLS_KEY_FILE", "value": KEY_FILE},
    ]


def tls_volume(spec: ModelDeploymentSpec) -> tuple[list[JSON], list[JSON]]:
    """The TLS Secret, read-only and readable by the runtime's group only. Not optional: a
    pod must not come up without its certificate (the reconcile reports a missing or
    unusable Secret as InvalidSpec before it renders)."""
    if not spec.runtime.tls_secret:
        return [], []
    secret = {
        "secretName": spec.runtime.tls_secret,
        "defaultMode": 0o440,  # fsGroup owns the files
        # not ca.crt: the runtime trusts nobody, it only presents its certificate
        "items": [{"key": k, "path": k} for k in (CERT_KEY, KEY_KEY)],
    }
    volume = {"name": "tls", "secret": secret}
    mount = {"name": "tls", "mountPath": MOUNT_DIR, "readOnly": True}
    return [volume], [mount]


def scheme(spec: ModelDeploymentSpec) -> str:
    """How the runtime is reached: also the name of its container and Service ports."""
    return "https" if spec.runtime.tls_secret else "http"


def service_port(spec: ModelDeploymentSpec) -> int:
    return 443 if spec.runtime.tls_secret else 80


def tls_values(owner: Owner, spec: ModelDeploymentSpec, context: RenderContext) -> JSON | None:
    """What the Service and ServiceMonitor templates need to know of the TLS Secret."""
    if not spec.runtime.tls_secret:
        return None
    return {
        "secret": spec.runtime.tls_secret,
        "trust_key": context.tls_trust_key,
        "server_name": server_name(owner.name, owner.namespace),
    }


def auth_env(spec: ModelDeploymentSpec) -> list[JSON]:
    """The runtime's bearer token, from the Secret key the spec names. Not optional: a pod
    must not start without auth because the key went missing (the reconcile reports a
    missing Secret or key as InvalidSpec before it renders)."""
    ref = spec.runtime.auth_token
    if ref is None:
        return []
    return [
        {
            "name": "MODELROLL_AUTH_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
        }
    ]


def pod_resources(spec: ModelDeploymentSpec, config: OperatorConfig) -> JSON:
    """The user's requests and limits win, resource by resource; the operator's defaults fill
    in the rest, so that no pod runs unbounded. A default never contradicts the user: a
    default request above the user's limit is lowered to it (what Kubernetes does when only
    a limit is given), and a default limit below the request is raised to it."""
    user_requests = dict(spec.resources.get("requests") or {})
    user_limits = dict(spec.resources.get("limits") or {})
    requests = {**config.default_requests, **user_requests}
    for name, limit in user_limits.items():
        if name not in user_requests and name in requests and _above(requests[name], limit):
            requests[name] = limit
    limits = dict(user_limits)
    for name, default in config.default_limits.items():
        if name not in limits:
            request = requests.get(name)
            limits[name] = request if request is not None and _above(request, default) else default
    if spec.gpu:
        limits[spec.gpu.resource] = spec.gpu.count
    resources: JSON = {"requests": requests}
    if limits:
        resources["limits"] = limits
    return resources


def _above(quantity: object, other: object) -> bool:
    return parse_quantity(quantity) > parse_quantity(other)


def scratch_volumes(config: OperatorConfig) -> tuple[list[JSON], list[JSON]]:
    """The pod's writable emptyDirs, each with a sizeLimit (the kubelet evicts a pod past
    it), so that one ModelDeployment cannot fill its node's disk."""
    sizes = {
        "tmp": ("/tmp", config.tmp_volume_size),
        "model-download": (DOWNLOAD_DIR, config.model_volume_size),
        "model-cache": (CACHE_DIR, config.model_volume_size),
    }
    volumes = [{"name": n, "emptyDir": {"sizeLimit": size}} for n, (_, size) in sizes.items()]
    mounts = [{"name": n, "mountPath": path} for n, (path, _) in sizes.items()]
    return volumes, mounts


def placement(spec: ModelDeploymentSpec) -> tuple[JSON, list[JSON]]:
    node_selector = dict(spec.node_selector)
    tolerations = [dict(t) for t in spec.tolerations]
    if spec.gpu:
        if spec.gpu.product:
            node_selector["nvidia.com/gpu.product"] = spec.gpu.product
        if GPU_TOLERATION not in tolerations:
            tolerations.append(GPU_TOLERATION)
    return node_selector, tolerations


def render_deployment(
    owner: Owner,
    spec: ModelDeploymentSpec,
    revision: str,
    config: OperatorConfig,
    replicas: int | None,
) -> JSON:
    """One revision's Deployment; `replicas` is None when an HPA owns the count."""
    model_uri, volumes, mounts = model_location(spec.model.uri)
    node_selector, tolerations = placement(spec)
    scratch, scratch_mounts = scratch_volumes(config)
    tls, tls_mounts = tls_volume(spec)
    pod_annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(metrics_port(spec)),
        "prometheus.io/path": "/metrics",
        MODEL_VERSION_ANNOTATION: spec.model.version,
    }
    if tls:
        pod_annotations["prometheus.io/scheme"] = "https"
    pod = custom_pod_of(owner, spec, config, model_uri, volumes)
    return render_template(
        "deployment.yaml.j2",
        name=deployment_name(owner.name, revision),
        namespace=owner.namespace,
        labels=common_labels(owner, revision),
        annotations={MODEL_VERSION_ANNOTATION: spec.model.version},
        owner_references=owner_references(owner),
        replicas=replicas,
        progress_deadline_seconds=spec.rollout.progress_deadline_seconds,
        selector={DEPLOYMENT_LABEL: owner.name, REVISION_LABEL: revision},
        pre_stop=render_custom.PRE_STOP,
        pod_annotations=pod_annotations,
        service_account=service_account_name(owner.name),
        node_selector=node_selector,
        tolerations=tolerations,
        affinity=spec.affinity,
        ports=[
            {"name": name, "containerPort": port, "protocol": "TCP"}
            for name, port in port_names(spec).items()
        ],
        image=spec.runtime.image or config.runtime_image,
        image_pull_policy=spec.runtime.image_pull_policy or config.runtime_image_pull_policy,
        env=runtime_env(owner, spec, model_uri, config),
        resources=pod_resources(spec, config),
        # Model downloads and ONNX compilation can be slow: allow 10 minutes before restarts.
        startup_failure_threshold=120,
        port_name=scheme(spec),
        tls=bool(tls),
        volume_mounts=[*scratch_mounts, *mounts, *tls_mounts],
        volumes=pod.volumes if pod else [*scratch, *volumes, *tls],
        init_containers=pod.init_containers if pod else [],
        containers=pod.containers if pod else None,
    )


def custom_pod_of(
    owner: Owner, spec: ModelDeploymentSpec, config: OperatorConfig, uri: str, pvc: list[JSON]
) -> render_custom.CustomPod | None:
    """The user's server with its fetch init container (and sidecar), or None for a runtime pod."""
    container = spec.runtime.container
    if container is None:
        return None
    secret = spec.model.credentials_secret
    tmp = {"name": "tmp", "emptyDir": {"sizeLimit": config.tmp_volume_size}}
    return render_custom.custom_pod(
        owner.name,
        spec,
        container,
        config,
        render_custom.model_volume(uri, pvc, config.model_volume_size),
        pod_resources(spec, config),
        credential_env(secret) if secret else [],
        (tmp, {"name": "tmp", "mountPath": "/tmp"}),
    )


def metrics_port(spec: ModelDeploymentSpec) -> int:
    container = spec.runtime.container
    return render_custom.metrics_port(container) if container else RUNTIME_PORTS[METRICS_PORT]


def port_names(spec: ModelDeploymentSpec) -> dict[str, int]:
    """The runtime's container ports by name: the HTTP one is `https` with TLS, so that a
    Service, a probe or a NetworkPolicy naming it cannot speak the wrong scheme to it. A
    user's container serves one HTTP port (its own, or the metrics sidecar's)."""
    if spec.runtime.container:
        return render_custom.serving_ports(spec.runtime.container)
    return {scheme(spec): RUNTIME_PORTS["http"], "grpc": RUNTIME_PORTS["grpc"]}


def service_ports(spec: ModelDeploymentSpec) -> list[JSON]:
    """A Service's ports: one per runtime port, by name (probes stay on http(s))."""
    ports: list[JSON] = []
    for name in port_names(spec):
        port: JSON = {
            "name": name, "port": SERVICE_PORTS[name], "targetPort": name, "protocol": "TCP"
        }  # fmt: skip
        if name in APP_PROTOCOLS:
            port["appProtocol"] = APP_PROTOCOLS[name]
        ports.append(port)
    return ports


def network_policy_name(owner_name: str) -> str:
    """Suffixed like the ServiceAccount: users often name their own policies after the app."""
    return f"{owner_name}-modelroll"


def namespace_peer(namespace: str) -> JSON:
    # The label the apiserver puts on every namespace, so that no tenant can fake it.
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}


def network_policy_ingress(spec: ModelDeploymentSpec, config: OperatorConfig) -> list[JSON]:
    """Who may connect: the namespace itself, the operator's pods (smoke tests) and the
    spec's allowFrom to every serving port; the monitoring namespace to the metrics port."""
    ports = [{"protocol": "TCP", "port": port} for port in port_names(spec).values()]
    callers: list[JSON] = [{"podSelector": {}}]
    if config.operator_namespace:
        operator = namespace_peer(config.operator_namespace)
        operator["podSelector"] = {"matchLabels": dict(config.operator_pod_labels)}
        callers.append(operator)
    callers += [dict(peer) for peer in spec.allow_from]
    ingress = [{"from": callers, "ports": ports}]
    if config.monitoring_namespace:
        ingress.append(
            {
                "from": [namespace_peer(config.monitoring_namespace)],
                "ports": [{"protocol": "TCP", "port": metrics_port(spec)}],
            }
        )
    return ingress


def render_network_policy(
    owner: Owner, spec: ModelDeploymentSpec, config: OperatorConfig, labels: dict[str, str]
) -> JSON:
    """The fence around every revision's pods (ingress only: downloads and DNS stay open)."""
    return render_template(
        "networkpolicy.yaml.j2",
        name=network_policy_name(owner.name),
        namespace=owner.namespace,
        labels=labels,
        owner_references=owner_references(owner),
        selector={DEPLOYMENT_LABEL: owner.name},
        ingress=network_policy_ingress(spec, config),
    )


def service_url(owner: Owner, spec: ModelDeploymentSpec, config: OperatorConfig) -> str:
    host = f"{scheme(spec)}://{owner.name}.{owner.namespace}.svc.{config.cluster_domain}"
    if spec.runtime.protocol == "v1":
        return f"{host}/v1/models/{owner.name}:predict"
    if spec.runtime.protocol == "none":  # a server of its own paths
        return host
    return f"{host}/v2/models/{owner.name}/infer"


def render_shared_children(
    owner: Owner,
    spec: ModelDeploymentSpec,
    plan: Plan,
    context: RenderContext,
) -> list[JSON]:
    """Children shared by the revisions: Services, ServiceAccount, route, NetworkPolicy, HPA,
    PDB, monitor."""
    labels = common_labels(owner, plan.hpa_target)
    base = {
        "name": owner.name,
        "namespace": owner.namespace,
        "labels": labels,
        "owner_references": owner_references(owner),
    }
    tls = tls_values(owner, spec, context)
    services = {**base, "ports": service_ports(spec)}
    main_selector = {DEPLOYMENT_LABEL: owner.name}
    if plan.service_revision is not None:
        main_selector[REVISION_LABEL] = plan.service_revision
    children = [
        render_template(
            "serviceaccount.yaml.j2", **{**base, "name": service_account_name(owner.name)}
        ),
        render_template("service.yaml.j2", **services, selector=main_selector),
    ]
    if plan.preview_revision:
        preview_labels = {**labels, PREVIEW_SERVICE_LABEL: "true"}
        children.append(
            render_template(
                "service.yaml.j2",
                **{**services, "name": f"{owner.name}-preview", "labels": preview_labels},
                selector={DEPLOYMENT_LABEL: owner.name, REVISION_LABEL: plan.preview_revision},
            )
        )
    canary = spec.rollout.canary
    if canary and canary.traffic_routing_mode == "GatewayAPI":
        # The route outlives rollouts: between them it sends everything to the stable revision.
        route_weights = plan.route_weights or {plan.hpa_target: 100}
        for revision in route_weights:
            children.append(
                render_template(
                    "service.yaml.j2",
                    **{**services, "name": deployment_name(owner.name, revision)},
                    selector={DEPLOYMENT_LABEL: owner.name, REVISION_LABEL: revision},
                )
            )
        children.append(
            render_template(
                "httproute.yaml.j2",
                **base,
                parent_refs=[dict(p) for p in canary.parent_refs],
                hostnames=list(canary.hostnames),
                backend_refs=[
                    {
                        "name": deployment_name(owner.name, revision),
                        "port": service_port(spec),
                        "weight": weight,
                    }
                    for revision, weight in route_weights.items()
                ],
            )
        )
    if context.config.network_policy:
        children.append(render_network_policy(owner, spec, context.config, labels))
    if spec.autoscaling:
        children.append(
            render_template(
                "hpa.yaml.j2",
                **base,
                target=deployment_name(owner.name, plan.hpa_target),
                autoscaling=spec.autoscaling,
            )
        )
    if spec.min_replicas > 1:
        children.append(render_template("pdb.yaml.j2", **base, selector=main_selector))
    if context.service_monitor_available:
        children.append(
            render_template(
                "servicemonitor.yaml.j2",
                **base,
                selector={
                    DEPLOYMENT_LABEL: owner.name,
                    "app.kubernetes.io/managed-by": "modelroll",
                },
                tls=tls,
            )
        )
    if context.prometheus_rule_available and spec.drift:
        rules = recording_rules(owner.namespace, owner.name, spec.drift.window_seconds)
        children.append(render_template("prometheusrule.yaml.j2", **base, rules=rules))
    return children


def render_plan(
    owner: Owner, spec: ModelDeploymentSpec, plan: Plan, context: RenderContext
) -> list[JSON]:
    """Every child the plan calls for: one Deployment per planned revision, then the rest."""
    deployments = [
        render_deployment(owner, parse_spec(d.raw_spec), d.revision, context.config, d.replicas)
        for d in plan.deployments
    ]
    return deployments + render_shared_children(owner, spec, plan, context)


def render_children(
    owner: Owner, raw_spec: JSON, revision: str, context: RenderContext
) -> list[JSON]:
    """The children of a settled ModelDeployment whose only revision is `revision`."""
    from modelroll.rollout import RevisionView, RolloutInput, RolloutState
    from modelroll.rollout import plan as plan_rollout

    spec = parse_spec(raw_spec)
    raw = raw_spec
    settled = plan_rollout(
        RolloutInput(
            spec=spec,
            raw_spec=raw,
            desired=revision,
            state=RolloutState(),
            observed={revision: RevisionView(revision, spec.replicas, spec.replicas, True)},
            annotations=frozenset(),
            now=0.0,
        )
    )
    return render_plan(owner, spec, settled, context)
