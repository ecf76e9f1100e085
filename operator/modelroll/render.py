"""Pure rendering: a ModelDeployment in, its child manifests out. No I/O."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
import yaml

from modelroll import GROUP, KIND, VERSION
from modelroll.config import OperatorConfig
from modelroll.quantity import parse_quantity
from modelroll.rollout import Plan
from modelroll.spec import JSON, ModelDeploymentSpec, parse_spec

# libyaml's loader when present: rendering runs on every reconcile.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
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
# The runtime container's ports by name, the one list that the Deployment's containerPorts
# and the NetworkPolicy's ingress ports both come from (a gRPC port is added here).
RUNTIME_PORTS = {"http": 8080}
# The port Prometheus scrapes /metrics on.
METRICS_PORT = "http"
DEPLOYMENT_LABEL = f"{GROUP}/deployment"
REVISION_LABEL = f"{GROUP}/revision"
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
    manifest = yaml.load(text, Loader=SafeLoader)
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
    return env + credentials + auth_env(spec) + [dict(e) for e in spec.runtime.env]


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
        pod_annotations={
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(RUNTIME_PORTS[METRICS_PORT]),
            "prometheus.io/path": "/metrics",
            MODEL_VERSION_ANNOTATION: spec.model.version,
        },
        service_account=service_account_name(owner.name),
        node_selector=node_selector,
        tolerations=tolerations,
        affinity=spec.affinity,
        ports=[
            {"name": name, "containerPort": port, "protocol": "TCP"}
            for name, port in RUNTIME_PORTS.items()
        ],
        image=spec.runtime.image or config.runtime_image,
        image_pull_policy=spec.runtime.image_pull_policy or config.runtime_image_pull_policy,
        env=runtime_env(owner, spec, model_uri, config),
        resources=pod_resources(spec, config),
        # Model downloads and ONNX compilation can be slow: allow 10 minutes before restarts.
        startup_failure_threshold=120,
        volume_mounts=[*scratch_mounts, *mounts],
        volumes=[*scratch, *volumes],
    )


def network_policy_name(owner_name: str) -> str:
    """Suffixed like the ServiceAccount: users often name their own policies after the app."""
    return f"{owner_name}-modelroll"


def namespace_peer(namespace: str) -> JSON:
    # The label the apiserver puts on every namespace, so that no tenant can fake it.
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}


def network_policy_ingress(spec: ModelDeploymentSpec, config: OperatorConfig) -> list[JSON]:
    """Who may connect: the namespace itself, the operator's pods (smoke tests) and the
    spec's allowFrom to every serving port; the monitoring namespace to the metrics port."""
    ports = [{"protocol": "TCP", "port": port} for port in RUNTIME_PORTS.values()]
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
                "ports": [{"protocol": "TCP", "port": RUNTIME_PORTS[METRICS_PORT]}],
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
    host = f"http://{owner.name}.{owner.namespace}.svc.{config.cluster_domain}"
    if spec.runtime.protocol == "v1":
        return f"{host}/v1/models/{owner.name}:predict"
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
    main_selector = {DEPLOYMENT_LABEL: owner.name}
    if plan.service_revision is not None:
        main_selector[REVISION_LABEL] = plan.service_revision
    children = [
        render_template(
            "serviceaccount.yaml.j2", **{**base, "name": service_account_name(owner.name)}
        ),
        render_template("service.yaml.j2", **base, selector=main_selector),
    ]
    if plan.preview_revision:
        children.append(
            render_template(
                "service.yaml.j2",
                **{**base, "name": f"{owner.name}-preview"},
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
                    **{**base, "name": deployment_name(owner.name, revision)},
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
                    {"name": deployment_name(owner.name, revision), "port": 80, "weight": weight}
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
            )
        )
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
