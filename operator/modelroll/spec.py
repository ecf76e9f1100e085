"""The operator's view of a ModelDeployment spec, parsed with the typed API.

`modelroll.api.v1alpha1` is the one definition of fields, defaults and bounds; parse_spec
validates the body with it and flattens it into the frozen shape the renderers and the
rollout planner read. Defaults here are read from the typed model, never written again.
Pass-through core/v1 objects (env, tolerations, affinity, parent refs, smoke requests)
stay plain JSON, in their wire spelling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelroll.api import v1alpha1 as api
from modelroll.api.v1alpha1 import default_of

JSON = dict[str, Any]
Strategy = api.Strategy


@dataclass(frozen=True)
class Model:
    format: str
    uri: str
    version: str = ""  # "" when unset (a label value is never empty)
    sha256: str = ""
    credentials_secret: str = ""


@dataclass(frozen=True)
class Batching:
    max_batch_size: int = default_of(api.Batching, "max_batch_size")


@dataclass(frozen=True)
class SecretKey:
    """One key of a Secret in the ModelDeployment's namespace."""

    name: str
    key: str


@dataclass(frozen=True)
class Container:
    """spec.runtime.container: the user's server in place of the modelroll runtime."""

    image: str
    port: int
    image_pull_policy: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    protocol: str = default_of(api.Container, "protocol")
    liveness_path: str = ""  # "": the protocol's default (render.health_probes)
    readiness_path: str = ""
    env: tuple[JSON, ...] = ()
    metrics_sidecar: bool = default_of(api.ContainerMetrics, "sidecar")


@dataclass(frozen=True)
class Runtime:
    image: str = ""  # "" when unset: the operator's configured image
    image_pull_policy: str = ""
    protocol: str = default_of(api.Runtime, "protocol")
    env: tuple[JSON, ...] = ()
    workers: int | None = None
    batching: Batching = field(default_factory=Batching)
    auth_token: SecretKey | None = None  # set: the runtime's bearer-token auth is on
    tls_secret: str = ""  # a kubernetes.io/tls Secret's name: the runtime serves HTTPS
    container: Container | None = None  # set: the user's server replaces the runtime


@dataclass(frozen=True)
class Gpu:
    count: int
    resource: str = default_of(api.Gpu, "resource")
    product: str = ""


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int
    target_cpu_utilization_percentage: int | None = None
    target_requests_per_second: int | None = None


@dataclass(frozen=True)
class CanaryStep:
    weight: int
    pause_seconds: int = default_of(api.CanaryStep, "pause_seconds")


@dataclass(frozen=True)
class PredictionShift:
    enabled: bool = default_of(api.PredictionShift, "enabled")
    significance: str = default_of(api.PredictionShift, "significance")
    min_samples: int = default_of(api.PredictionShift, "min_samples")


@dataclass(frozen=True)
class Analysis:
    prometheus_endpoint: str = ""  # a name from the operator's configuration; "": its default
    interval_seconds: int = default_of(api.Analysis, "interval_seconds")
    max_error_percent: int = default_of(api.Analysis, "max_error_percent")
    max_p99_latency_ms: int | None = None
    max_p99_latency_increase_percent: int | None = None
    min_request_count: int = default_of(api.Analysis, "min_request_count")
    custom_checks: tuple[JSON, ...] = ()
    prediction_shift: PredictionShift = field(default_factory=PredictionShift)


@dataclass(frozen=True)
class Canary:
    steps: tuple[CanaryStep, ...]
    traffic_routing_mode: str = default_of(api.TrafficRouting, "mode")
    parent_refs: tuple[JSON, ...] = ()
    hostnames: tuple[str, ...] = ()
    analysis: Analysis | None = None
    scale_down_delay_seconds: int = default_of(api.Canary, "scale_down_delay_seconds")


@dataclass(frozen=True)
class BlueGreen:
    auto_promote: bool = default_of(api.BlueGreen, "auto_promote")
    scale_down_delay_seconds: int = default_of(api.BlueGreen, "scale_down_delay_seconds")
    # Each request as on the wire, with its defaults (expectStatus) filled in.
    smoke_tests: tuple[JSON, ...] = ()


@dataclass(frozen=True)
class Rollout:
    strategy: Strategy = default_of(api.Rollout, "strategy")
    progress_deadline_seconds: int = default_of(api.Rollout, "progress_deadline_seconds")
    revision_history_limit: int = default_of(api.Rollout, "revision_history_limit")
    canary: Canary | None = None
    blue_green: BlueGreen | None = None


@dataclass(frozen=True)
class Drift:
    prometheus_endpoint: str = ""  # a name from the operator's configuration; "": its default
    window_seconds: int = default_of(api.Drift, "window_seconds")
    interval_seconds: int = default_of(api.Drift, "interval_seconds")
    significance: str = default_of(api.Drift, "significance")
    min_samples: int = default_of(api.Drift, "min_samples")


@dataclass(frozen=True)
class ModelDeploymentSpec:
    model: Model
    runtime: Runtime = field(default_factory=Runtime)
    resources: JSON = field(default_factory=dict)
    gpu: Gpu | None = None
    node_selector: JSON = field(default_factory=dict)
    tolerations: tuple[JSON, ...] = ()
    affinity: JSON = field(default_factory=dict)
    replicas: int = default_of(api.ModelDeploymentSpec, "replicas")
    autoscaling: Autoscaling | None = None
    rollout: Rollout = field(default_factory=Rollout)
    drift: Drift | None = None  # spec.monitoring.drift
    # spec.network.allowFrom as NetworkPolicyPeers, in their wire spelling.
    allow_from: tuple[JSON, ...] = ()

    @property
    def min_replicas(self) -> int:
        """The replica count that must stay available: drives the PDB."""
        return self.autoscaling.min_replicas if self.autoscaling else self.replicas


def _wire(value: api.ApiModel) -> JSON:
    """A pass-through object back in its wire spelling, unset optionals left out."""
    return value.model_dump(by_alias=True, exclude_none=True)


def _model(m: api.Model) -> Model:
    secret = m.credentials.secret_ref.name if m.credentials else ""
    return Model(m.format, m.uri, m.version or "", m.sha256 or "", secret)


def _container(c: api.Container | None) -> Container | None:
    if c is None:
        return None
    return Container(
        image=c.image,
        port=c.port,
        image_pull_policy=c.image_pull_policy or "",
        command=c.command,
        args=c.args,
        protocol=c.protocol,
        liveness_path=c.health.liveness_path or "",
        readiness_path=c.health.readiness_path or "",
        env=tuple(_wire(e) for e in c.env),
        metrics_sidecar=c.metrics.sidecar,
    )


def _runtime(r: api.Runtime) -> Runtime:
    return Runtime(
        image=r.image or "",
        image_pull_policy=r.image_pull_policy or "",
        # what the pods speak: the user's container says so itself
        protocol=r.container.protocol if r.container else r.protocol,
        env=tuple(_wire(e) for e in r.env),
        workers=r.workers,
        batching=Batching(max_batch_size=r.batching.max_batch_size),
        auth_token=SecretKey(r.auth.token_secret_ref.name, r.auth.token_secret_ref.key)
        if r.auth
        else None,
        tls_secret=r.tls.secret_ref.name if r.tls else "",
        container=_container(r.container),
    )


def _analysis(a: api.Analysis | None) -> Analysis | None:
    if a is None:
        return None
    return Analysis(
        prometheus_endpoint=a.prometheus.endpoint or "",
        interval_seconds=a.interval_seconds,
        max_error_percent=a.max_error_percent,
        max_p99_latency_ms=a.max_p99_latency_ms,
        max_p99_latency_increase_percent=a.max_p99_latency_increase_percent,
        min_request_count=a.min_request_count,
        custom_checks=tuple(_wire(c) for c in a.custom_checks),
        prediction_shift=PredictionShift(
            a.prediction_shift.enabled,
            a.prediction_shift.significance,
            a.prediction_shift.min_samples,
        ),
    )


def _canary(c: api.Canary | None) -> Canary | None:
    if c is None:
        return None
    gateway = c.traffic_routing.gateway_api
    return Canary(
        steps=tuple(CanaryStep(s.weight, s.pause_seconds) for s in c.steps),
        traffic_routing_mode=c.traffic_routing.mode,
        parent_refs=tuple(_wire(p) for p in gateway.parent_refs) if gateway else (),
        hostnames=gateway.hostnames if gateway else (),
        analysis=_analysis(c.analysis),
        scale_down_delay_seconds=c.scale_down_delay_seconds,
    )


def _blue_green(b: api.BlueGreen | None) -> BlueGreen | None:
    if b is None:
        return None
    requests = b.smoke_test.requests if b.smoke_test else ()
    return BlueGreen(b.auto_promote, b.scale_down_delay_seconds, tuple(_wire(r) for r in requests))


def _rollout(r: api.Rollout) -> Rollout:
    return Rollout(
        strategy=r.strategy,
        progress_deadline_seconds=r.progress_deadline_seconds,
        revision_history_limit=r.revision_history_limit,
        canary=_canary(r.canary),
        blue_green=_blue_green(r.blue_green),
    )


def parse_spec(raw: JSON) -> ModelDeploymentSpec:
    """Reads a ModelDeployment's `spec` into the typed model (pydantic.ValidationError if invalid)."""
    s = api.ModelDeploymentSpec.model_validate(raw)
    gpu = s.gpu
    scaling = s.autoscaling
    return ModelDeploymentSpec(
        model=_model(s.model),
        runtime=_runtime(s.runtime),
        resources=_wire(s.resources),
        gpu=Gpu(gpu.count, gpu.resource, gpu.product or "") if gpu else None,
        node_selector=dict(s.node_selector),
        tolerations=s.tolerations,
        affinity=dict(s.affinity),
        replicas=s.replicas,
        autoscaling=Autoscaling(
            scaling.min_replicas,
            scaling.max_replicas,
            scaling.target_cpu_utilization_percentage,
            scaling.target_requests_per_second,
        )
        if scaling
        else None,
        rollout=_rollout(s.rollout),
        drift=_drift(s.monitoring.drift if s.monitoring else None),
        # without empty defaults: `namespaceSelector: {}` (every namespace) stays just that
        allow_from=tuple(
            p.model_dump(by_alias=True, exclude_defaults=True) for p in s.network.allow_from
        ),
    )


def _drift(d: api.Drift | None) -> Drift | None:
    if d is None:
        return None
    return Drift(
        d.prometheus.endpoint or "",
        d.window_seconds,
        d.interval_seconds,
        d.significance,
        d.min_samples,
    )
