"""The typed ModelDeployment spec, parsed from the (schema-defaulted) object body.

The CRD schema is the source of validation; parsing here only reads what the
apiserver already accepted, so defaults below mirror the schema's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

JSON = dict[str, Any]
Strategy = Literal["Rolling", "Canary", "BlueGreen"]


@dataclass(frozen=True)
class Model:
    format: str
    uri: str
    version: str = ""
    sha256: str = ""
    credentials_secret: str = ""


@dataclass(frozen=True)
class Batching:
    max_batch_size: int = 32
    max_latency_ms: int = 5


@dataclass(frozen=True)
class Runtime:
    image: str = ""
    image_pull_policy: str = ""
    protocol: str = "v2"
    env: tuple[JSON, ...] = ()
    workers: int | None = None
    batching: Batching = field(default_factory=Batching)


@dataclass(frozen=True)
class Gpu:
    count: int
    resource: str = "nvidia.com/gpu"
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
    pause_seconds: int = 0


@dataclass(frozen=True)
class Analysis:
    prometheus_address: str
    interval_seconds: int = 30
    max_error_percent: int = 1
    max_p99_latency_ms: int | None = None
    max_p99_latency_increase_percent: int | None = None
    min_request_count: int = 20
    custom_checks: tuple[JSON, ...] = ()


@dataclass(frozen=True)
class Canary:
    steps: tuple[CanaryStep, ...]
    traffic_routing_mode: str = "Replicas"
    parent_refs: tuple[JSON, ...] = ()
    hostnames: tuple[str, ...] = ()
    analysis: Analysis | None = None
    scale_down_delay_seconds: int = 30


@dataclass(frozen=True)
class BlueGreen:
    auto_promote: bool = True
    scale_down_delay_seconds: int = 30
    smoke_tests: tuple[JSON, ...] = ()


@dataclass(frozen=True)
class Rollout:
    strategy: Strategy = "Rolling"
    progress_deadline_seconds: int = 600
    revision_history_limit: int = 3
    canary: Canary | None = None
    blue_green: BlueGreen | None = None


@dataclass(frozen=True)
class ModelDeploymentSpec:
    model: Model
    runtime: Runtime = field(default_factory=Runtime)
    resources: JSON = field(default_factory=dict)
    gpu: Gpu | None = None
    node_selector: JSON = field(default_factory=dict)
    tolerations: tuple[JSON, ...] = ()
    affinity: JSON = field(default_factory=dict)
    replicas: int = 1
    autoscaling: Autoscaling | None = None
    rollout: Rollout = field(default_factory=Rollout)

    @property
    def min_replicas(self) -> int:
        """The replica count that must stay available: drives the PDB."""
        return self.autoscaling.min_replicas if self.autoscaling else self.replicas


def _analysis(raw: JSON | None) -> Analysis | None:
    if not raw:
        return None
    return Analysis(
        prometheus_address=str(raw.get("prometheus", {}).get("address", "")),
        interval_seconds=int(raw.get("intervalSeconds", 30)),
        max_error_percent=int(raw.get("maxErrorPercent", 1)),
        max_p99_latency_ms=raw.get("maxP99LatencyMs"),
        max_p99_latency_increase_percent=raw.get("maxP99LatencyIncreasePercent"),
        min_request_count=int(raw.get("minRequestCount", 20)),
        custom_checks=tuple(raw.get("customChecks", ())),
    )


def _rollout(raw: JSON) -> Rollout:
    canary_raw = raw.get("canary")
    canary = None
    if canary_raw:
        routing = canary_raw.get("trafficRouting", {})
        gateway = routing.get("gatewayAPI", {})
        canary = Canary(
            steps=tuple(
                CanaryStep(int(s["weight"]), int(s.get("pauseSeconds", 0)))
                for s in canary_raw.get("steps", ())
            ),
            traffic_routing_mode=str(routing.get("mode", "Replicas")),
            parent_refs=tuple(gateway.get("parentRefs", ())),
            hostnames=tuple(gateway.get("hostnames", ())),
            analysis=_analysis(canary_raw.get("analysis")),
            scale_down_delay_seconds=int(canary_raw.get("scaleDownDelaySeconds", 30)),
        )
    bg_raw = raw.get("blueGreen")
    blue_green = None
    if bg_raw is not None:
        blue_green = BlueGreen(
            auto_promote=bool(bg_raw.get("autoPromote", True)),
            scale_down_delay_seconds=int(bg_raw.get("scaleDownDelaySeconds", 30)),
            smoke_tests=tuple(bg_raw.get("smokeTest", {}).get("requests", ())),
        )
    return Rollout(
        strategy=raw.get("strategy", "Rolling"),
        progress_deadline_seconds=int(raw.get("progressDeadlineSeconds", 600)),
        revision_history_limit=int(raw.get("revisionHistoryLimit", 3)),
        canary=canary,
        blue_green=blue_green,
    )


def parse_spec(raw: JSON) -> ModelDeploymentSpec:
    """Reads a ModelDeployment's `spec` into the typed model."""
    model = raw["model"]
    runtime = raw.get("runtime", {})
    batching = runtime.get("batching", {})
    gpu = raw.get("gpu")
    autoscaling = raw.get("autoscaling")
    return ModelDeploymentSpec(
        model=Model(
            format=str(model["format"]),
            uri=str(model["uri"]),
            version=str(model.get("version", "")),
            sha256=str(model.get("sha256", "")),
            credentials_secret=str(
                model.get("credentials", {}).get("secretRef", {}).get("name", "")
            ),
        ),
        runtime=Runtime(
            image=str(runtime.get("image", "")),
            image_pull_policy=str(runtime.get("imagePullPolicy", "")),
            protocol=str(runtime.get("protocol", "v2")),
            env=tuple(runtime.get("env", ())),
            workers=runtime.get("workers"),
            batching=Batching(
                max_batch_size=int(batching.get("maxBatchSize", 32)),
                max_latency_ms=int(batching.get("maxLatencyMs", 5)),
            ),
        ),
        resources=dict(raw.get("resources", {})),
        gpu=Gpu(
            count=int(gpu["count"]),
            resource=str(gpu.get("resource", "nvidia.com/gpu")),
            product=str(gpu.get("product", "")),
        )
        if gpu
        else None,
        node_selector=dict(raw.get("nodeSelector", {})),
        tolerations=tuple(raw.get("tolerations", ())),
        affinity=dict(raw.get("affinity", {})),
        replicas=int(raw.get("replicas", 1)),
        autoscaling=Autoscaling(
            min_replicas=int(autoscaling.get("minReplicas", 1)),
            max_replicas=int(autoscaling["maxReplicas"]),
            target_cpu_utilization_percentage=autoscaling.get("targetCPUUtilizationPercentage"),
            target_requests_per_second=autoscaling.get("targetRequestsPerSecond"),
        )
        if autoscaling
        else None,
        rollout=_rollout(raw.get("rollout", {})),
    )
