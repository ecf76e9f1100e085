"""Operator-wide settings, read once at startup from MODELROLL_* environment variables."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from modelroll.quantity import parse_quantity


@dataclass(frozen=True)
class OperatorConfig:
    runtime_image: str = "modelroll/runtime:0.1.0"
    runtime_image_pull_policy: str = "IfNotPresent"
    cluster_domain: str = "cluster.local"
    default_requests: dict[str, str] = field(
        default_factory=lambda: {"cpu": "250m", "memory": "256Mi"}
    )
    # A pod without limits may take a whole node's memory and CPU. These apply per resource
    # where spec.resources sets no limit (render.pod_resources).
    default_limits: dict[str, str] = field(default_factory=lambda: {"cpu": "2", "memory": "2Gi"})
    # sizeLimit of the emptyDir a remote model is downloaded into, and of the one holding its
    # compiled ONNX copy; the runtime's download cap (MODELROLL_MAX_MODEL_BYTES) follows it,
    # so an oversized model fails with a reason instead of the pod being evicted.
    model_volume_size: str = "10Gi"
    # sizeLimit of /tmp (HOME, metrics files of the workers, libraries' scratch files).
    tmp_volume_size: str = "1Gi"
    metrics_port: int = 8000
    # Where the metrics listen. The installs set the pod's IP (the downward API) so they are
    # not on every interface; a NetworkPolicy admits only the monitoring namespace. Run
    # outside a cluster, the loopback address keeps them off the network.
    metrics_address: str = "127.0.0.1"
    timer_interval_seconds: float = 15.0
    # Reconciles that run at once (each holds at most one API call at a time), and the API
    # client's rate limit, as client-go's --kube-api-qps/--kube-api-burst; 0 QPS: unlimited.
    max_concurrent_reconciles: int = 16
    api_qps: float = 100.0
    api_burst: int = 200
    # How long a child's watch event waits for the others of its burst (modelroll.coalesce).
    coalesce_seconds: float = 0.25
    watch_stall_seconds: float = 120.0
    namespaces: tuple[str, ...] = ()
    # How the operator reaches a Service (smoke tests). Cluster DNS in-cluster; operators
    # run elsewhere point it at a gateway or port-forward.
    service_url_template: str = "http://{service}.{namespace}.svc.{cluster_domain}:{port}"
    # The Prometheus servers canary analysis may query, by name; a spec picks one by name
    # (or gets the default), never by URL: the platform decides where the operator connects.
    prometheus_endpoints: dict[str, str] = field(default_factory=dict)
    prometheus_default: str = ""
    # customChecks are PromQL the tenant writes, run with the operator's access to a shared
    # Prometheus: off unless the platform enables them (behind a label-enforcing proxy).
    allow_custom_checks: bool = False
    # A NetworkPolicy per ModelDeployment (render.render_network_policy): its serving port
    # is open to its own namespace, to the operator's pods (smoke tests), to the monitoring
    # namespace (metrics) and to what spec.network.allowFrom names; nothing else.
    network_policy: bool = True
    # Where the operator's own pods run and the labels they carry: the smoke tests' source.
    # Empty namespace: no rule for the operator (an operator outside the cluster).
    operator_namespace: str = ""
    operator_pod_labels: dict[str, str] = field(default_factory=dict)
    # The namespace of the platform's Prometheus, admitted to the metrics port; "": none.
    monitoring_namespace: str = ""

    def service_url(self, service: str, namespace: str, port: int = 80, https: bool = False) -> str:
        """`https`: the runtime serves TLS (spec.runtime.tls), so an http:// template is
        followed as https:// (a template that says https:// already stays as it is)."""
        url = self.service_url_template.format(
            service=service, namespace=namespace, cluster_domain=self.cluster_domain, port=port
        )
        if https and url.startswith("http://"):
            return "https://" + url.removeprefix("http://")
        return url

    def namespace_patterns(self) -> bool:
        """Whether a watched namespace is a pattern (a glob), found by listing namespaces."""
        return any(set(pattern) & set("*?[!") for pattern in self.namespaces)

    def exact_namespaces(self) -> bool:
        """Whether the operator watches named namespaces only (no pattern, not all): then it
        needs, and a namespaced install grants, access to those namespaces alone."""
        return bool(self.namespaces) and not self.namespace_patterns()

    def max_model_bytes(self) -> int:
        """The runtime's download cap: 95% of the volume, so the download fails with a reason
        before the kubelet, which measures the volume's blocks, could evict the pod."""
        size = int(parse_quantity(self.model_volume_size))
        return size - size // 20

    def prometheus_url(self, endpoint: str) -> str | None:
        """The URL of endpoint `endpoint` ("" for the default); None when not configured."""
        return self.prometheus_endpoints.get(endpoint or self.prometheus_default)


def resource_list(variable: str, raw: str) -> dict[str, str]:
    """ "cpu=2,memory=2Gi" as a resource list; "" is no entry. ValueError names the variable."""
    resources: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, equals, value = (s.strip() for s in item.partition("="))
        if not (name and equals and value):
            raise ValueError(f"{variable}: {item!r} is not name=quantity")
        resources[name] = quantity(variable, value)
    return resources


ENDPOINT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# No query and no fragment: the client appends /api/v1/query to it.
ENDPOINT_URL = re.compile(r"https?://[^/?#\s]+(/[^?#\s]*)?")


def prometheus_endpoints(variable: str, raw: str) -> dict[str, str]:
    """ "main=http://prometheus:9090,other=https://…" as name → URL. ValueError names the
    variable."""
    endpoints: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, equals, url = (s.strip() for s in item.partition("="))
        if not (equals and ENDPOINT_NAME.fullmatch(name)):
            raise ValueError(f"{variable}: {item!r} is not name=url with a DNS-label name")
        if not ENDPOINT_URL.fullmatch(url):
            raise ValueError(
                f"{variable}: {name}: {url!r} is not an http:// or https:// URL "
                "without query or fragment"
            )
        if name in endpoints:
            raise ValueError(f"{variable}: endpoint {name!r} is named twice")
        endpoints[name] = url.rstrip("/")
    return endpoints


def default_endpoint(variable: str, raw: str | None, endpoints: dict[str, str]) -> str:
    """The endpoint a spec without `prometheus.endpoint` uses: `raw`, else the first one."""
    if not raw:
        return next(iter(endpoints), "")
    if raw not in endpoints:
        raise ValueError(f"{variable}: {raw!r} is not one of MODELROLL_PROMETHEUS_ENDPOINTS")
    return raw


LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


def labels(variable: str, raw: str) -> dict[str, str]:
    """ "app.kubernetes.io/name=modelroll,tier=x" as a label map. ValueError names the
    variable."""
    found: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, equals, value = (s.strip() for s in item.partition("="))
        if not (equals and LABEL_KEY.fullmatch(key) and LABEL_VALUE.fullmatch(value)):
            raise ValueError(f"{variable}: {item!r} is not key=value with a valid label")
        found[key] = value
    return found


def namespace(variable: str, raw: str) -> str:
    if raw and not ENDPOINT_NAME.fullmatch(raw):
        raise ValueError(f"{variable}: {raw!r} is not a namespace name")
    return raw


def flag(variable: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"{variable}: {raw!r} is not true or false")
    return value == "true"


def quantity(variable: str, value: str) -> str:
    try:
        parsed = parse_quantity(value)
    except ValueError:
        raise ValueError(f"{variable}: {value!r} is not a Kubernetes quantity") from None
    if parsed <= 0:
        raise ValueError(f"{variable}: {value!r} must be positive")
    return value


def config_from_env(env: dict[str, str] | None = None) -> OperatorConfig:
    env = dict(os.environ) if env is None else env
    defaults = OperatorConfig()
    namespaces = tuple(n for n in env.get("MODELROLL_NAMESPACES", "").split(",") if n)
    lists = {
        variable: resource_list(variable, env[variable])
        for variable in ("MODELROLL_DEFAULT_REQUESTS", "MODELROLL_DEFAULT_LIMITS")
        if variable in env
    }
    endpoints = prometheus_endpoints(
        "MODELROLL_PROMETHEUS_ENDPOINTS", env.get("MODELROLL_PROMETHEUS_ENDPOINTS", "")
    )
    return OperatorConfig(
        runtime_image=env.get("MODELROLL_RUNTIME_IMAGE", defaults.runtime_image),
        runtime_image_pull_policy=env.get(
            "MODELROLL_RUNTIME_IMAGE_PULL_POLICY", defaults.runtime_image_pull_policy
        ),
        cluster_domain=env.get("MODELROLL_CLUSTER_DOMAIN", defaults.cluster_domain),
        metrics_port=int(env.get("MODELROLL_METRICS_PORT", defaults.metrics_port)),
        metrics_address=env.get("MODELROLL_METRICS_ADDRESS") or defaults.metrics_address,
        timer_interval_seconds=float(
            env.get("MODELROLL_TIMER_INTERVAL_SECONDS", defaults.timer_interval_seconds)
        ),
        watch_stall_seconds=float(
            env.get("MODELROLL_WATCH_STALL_SECONDS", defaults.watch_stall_seconds)
        ),
        max_concurrent_reconciles=int(
            env.get("MODELROLL_MAX_CONCURRENT_RECONCILES", defaults.max_concurrent_reconciles)
        ),
        api_qps=float(env.get("MODELROLL_API_QPS", defaults.api_qps)),
        api_burst=int(env.get("MODELROLL_API_BURST", defaults.api_burst)),
        coalesce_seconds=float(env.get("MODELROLL_COALESCE_SECONDS", defaults.coalesce_seconds)),
        namespaces=namespaces,
        default_requests=lists.get("MODELROLL_DEFAULT_REQUESTS", defaults.default_requests),
        default_limits=lists.get("MODELROLL_DEFAULT_LIMITS", defaults.default_limits),
        model_volume_size=quantity(
            "MODELROLL_MODEL_VOLUME_SIZE",
            env.get("MODELROLL_MODEL_VOLUME_SIZE", defaults.model_volume_size),
        ),
        tmp_volume_size=quantity(
            "MODELROLL_TMP_VOLUME_SIZE",
            env.get("MODELROLL_TMP_VOLUME_SIZE", defaults.tmp_volume_size),
        ),
        service_url_template=env.get(
            "MODELROLL_SERVICE_URL_TEMPLATE", defaults.service_url_template
        ),
        prometheus_endpoints=endpoints,
        prometheus_default=default_endpoint(
            "MODELROLL_PROMETHEUS_DEFAULT", env.get("MODELROLL_PROMETHEUS_DEFAULT"), endpoints
        ),
        allow_custom_checks=flag(
            "MODELROLL_ALLOW_CUSTOM_CHECKS", env.get("MODELROLL_ALLOW_CUSTOM_CHECKS", "false")
        ),
        network_policy=flag(
            "MODELROLL_NETWORK_POLICY", env.get("MODELROLL_NETWORK_POLICY", "true")
        ),
        operator_namespace=namespace(
            "MODELROLL_OPERATOR_NAMESPACE", env.get("MODELROLL_OPERATOR_NAMESPACE", "")
        ),
        operator_pod_labels=labels(
            "MODELROLL_OPERATOR_POD_LABELS", env.get("MODELROLL_OPERATOR_POD_LABELS", "")
        ),
        monitoring_namespace=namespace(
            "MODELROLL_MONITORING_NAMESPACE", env.get("MODELROLL_MONITORING_NAMESPACE", "")
        ),
    )
