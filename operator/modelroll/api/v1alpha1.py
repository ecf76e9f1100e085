"""ModelDeployment v1alpha1: the one definition of the spec and status.

Every field carries its description, default and bounds, and every CEL rule sits next to
the field it checks. `modelroll.api.crd` turns these models into the CRD (so the apiserver
validates and defaults with exactly these rules), `modelroll.spec` parses bodies with them,
and the offline linter reads the same CRD in memory. Nothing else may write a default.

Descriptions may wrap over several lines; the CRD gets them with whitespace collapsed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

JSON = dict[str, Any]


class _Schema:
    """An annotation that adds (or, with replace, sets) keys of the generated JSON schema."""

    def __init__(self, replace: bool = False, **keys: Any) -> None:
        self.replace = replace
        self.keys = keys

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema: JsonSchemaValue = {} if self.replace else handler(core_schema)
        return {**schema, **self.keys}


def rule(cel: str, message: str, field_path: str | None = None) -> JSON:
    """One x-kubernetes-validations entry; the message names the field it rejects."""
    entry = {"rule": " ".join(cel.split()), "message": " ".join(message.split())}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def rules(*entries: JSON) -> JSON:
    return {"x-kubernetes-validations": list(entries)}


def map_list(*keys: str) -> JSON:
    """A list of named objects that server-side apply merges by key."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


ATOMIC: JSON = {"x-kubernetes-list-type": "atomic"}
INT32: JSON = {"format": "int32"}
INT64: JSON = {"format": "int64"}
DATE_TIME: JSON = {"format": "date-time"}
# An object default of {} that the apiserver fills with the nested defaults.
EMPTY_DEFAULT: JSON = {"default": {}}

# A pass-through core/v1 (or free-form) object: kept as the user wrote it.
Opaque = Annotated[
    JSON, _Schema(replace=True, type="object", **{"x-kubernetes-preserve-unknown-fields": True})
]
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
Quantity = Annotated[
    int | str,
    _Schema(
        replace=True,
        description="A resource quantity, such as 500m, 2 or 4Gi.",
        anyOf=[{"type": "integer"}, {"type": "string"}],
        pattern=QUANTITY_PATTERN,
        **{"x-kubernetes-int-or-string": True},
    ),
]
DNS_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
LABEL_VALUE = "^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"

# Reasons the code writes into status. Tests check that the operator emits exactly these.
AnalysisReason = Literal[
    "AnalysisPassed",
    "CanaryAnalysisFailed",
    "InsufficientRequests",
    "AnalysisUnavailable",
    "PrometheusEndpointUnknown",
    "CustomChecksDisabled",
    "PredictionShift",
]
AbortReason = Literal[
    "CanaryAnalysisFailed",
    "PredictionShift",
    "AnalysisInconclusive",
    "ProgressDeadlineExceeded",
    "Aborted",
    "SmokeTestFailed",
    "PrometheusEndpointUnknown",
    "CustomChecksDisabled",
]
RevisionRole = Literal["stable", "canary", "preview", "old", "aborted"]
Strategy = Literal["Rolling", "Canary", "BlueGreen"]
Format = Literal["sklearn", "xgboost", "lightgbm", "onnx"]


class ApiModel(BaseModel):
    """Base of every API object: camelCase on the wire, snake_case in Python, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, frozen=True
    )


def default_of(model: type[BaseModel], name: str) -> Any:
    """The declared default of a field, for code that must fall back to it (never a copy)."""
    return model.model_fields[name].get_default(call_default_factory=True)


# --- spec.model ---------------------------------------------------------------------------


class SecretRef(ApiModel):
    name: str = Field(
        description="Name of the Secret.",
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    )


class Credentials(ApiModel):
    secret_ref: SecretRef = Field(
        description="""A Secret in the same namespace. Its keys named like the storage
        clients' variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
        AWS_REGION, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3,
        GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_CLOUD_PROJECT) reach the runtime as those
        variables, each one optional; no other key does, so the Secret cannot set the
        runtime's MODELROLL_* settings. GOOGLE_APPLICATION_CREDENTIALS holds the service
        account key file's contents (its JSON), not a path."""
    )


class Model(ApiModel):
    format: Format = Field(
        description="""Serialization format of the model, which selects the runtime's loader:
        sklearn (joblib/pickle), xgboost, lightgbm or onnx."""
    )
    uri: str = Field(
        description="""Where the model artifact lives: file://<path> (on the node or baked into
        the image), pvc://<claim>/<path>, http(s)://..., s3://<bucket>/<key> or
        gs://<bucket>/<key>. A URI ending in "/" names a directory.""",
        min_length=1,
        max_length=2048,
        json_schema_extra=rules(
            rule(
                """self.startsWith('file://') || self.startsWith('pvc://') ||
                self.startsWith('http://') || self.startsWith('https://') ||
                self.startsWith('s3://') || self.startsWith('gs://')""",
                """spec.model.uri must start with one of file://, pvc://, http://, https://,
                s3://, gs://""",
            ),
            rule(
                """!self.startsWith('pvc://') ||
                self.matches('^pvc://[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/[^/].*$')""",
                "spec.model.uri with the pvc scheme must be pvc://<claim>/<path>",
            ),
            rule(
                """!(self.startsWith('s3://') || self.startsWith('gs://')) ||
                self.matches('^(s3|gs)://[^/]+/?.*$')""",
                "spec.model.uri with the s3 or gs scheme must name a bucket (s3://<bucket>/<key>)",
            ),
        ),
    )
    version: str | None = Field(
        None,
        description="""A label for the model version (for example "3" or "2024-06-01.1"), with
        the syntax of a label value so that it can label the pods. It is shown in status and
        printer columns, and changing it starts a new revision.""",
        min_length=1,
        max_length=63,
        pattern=LABEL_VALUE,
    )
    sha256: str | None = Field(
        None,
        description="""Optional integrity pin: the lowercase hex SHA-256 of the artifact (of the
        single file, or of the sorted file list and contents for a directory). The runtime
        refuses to serve a mismatching artifact.""",
        pattern="^[a-f0-9]{64}$",
    )
    credentials: Credentials | None = Field(
        None,
        description="""Credentials for fetching the artifact. Secrets are only ever referenced,
        never inlined.""",
    )


# --- spec.runtime -------------------------------------------------------------------------


class EnvVar(ApiModel):
    """A core/v1 EnvVar, passed through unchanged."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="Name of the environment variable.", min_length=1, max_length=256)
    value: str | None = Field(None, description="Literal value of the variable.")
    value_from: Opaque | None = Field(
        None,
        description="""Source for the value (secretKeyRef, configMapKeyRef, fieldRef,
        resourceFieldRef), as in core/v1 EnvVarSource.""",
    )


class Batching(ApiModel):
    max_batch_size: int = Field(32, description="Largest batch, in requests.", ge=1, le=1024)


class SecretKeyRef(SecretRef):
    key: str = Field(
        description="Key of the Secret's data that holds the value.",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
    )


class Auth(ApiModel):
    token_secret_ref: SecretKeyRef = Field(
        description="""A key of a Secret in the same namespace holding the bearer token. The
        runtime then answers model endpoints and GET /v2 only with `Authorization: Bearer
        <token>` (401 otherwise); health endpoints and /metrics stay open. The operator's
        smoke tests and `modelroll predict` read the token from this Secret and send it."""
    )


class Tls(ApiModel):
    secret_ref: SecretRef = Field(
        description="""A `kubernetes.io/tls` Secret in the same namespace (keys `tls.crt`,
        `tls.key`, and optionally `ca.crt`). The runtime then serves HTTPS only, on the
        Service's port 443 (named https); plain HTTP gets no answer. The certificate must name
        `<name>.<namespace>.svc`: the operator's smoke tests, the ServiceMonitor and
        `modelroll predict` verify it under that name, against `ca.crt` or, without it,
        against `tls.crt` itself (pinned). A renewed certificate is served after the pods
        restart."""
    )


RESERVED_ENV_RULE = "self.all(e, !e.name.startsWith('MODELROLL_'))"
HEALTH_PATH = r"^/[^\s?#]*$"
Protocol = Literal["v2", "v1", "none"]


class ContainerHealth(ApiModel):
    liveness_path: str | None = Field(
        None,
        description="""HTTP path of the liveness probe, on spec.runtime.container.port. Default:
        /v2/health/live with protocol v2; with v1 or none, a TCP connect to the port.""",
        max_length=256,
        pattern=HEALTH_PATH,
    )
    readiness_path: str | None = Field(
        None,
        description="""HTTP path of the startup and readiness probes (2xx or 3xx means ready).
        Default: /v2/health/ready with protocol v2; with v1 or none, a TCP connect to the
        port, which only says the server listens, not that its model is loaded.""",
        max_length=256,
        pattern=HEALTH_PATH,
    )


class ContainerMetrics(ApiModel):
    sidecar: bool = Field(
        False,
        description="""Run the modelroll runtime image in proxy mode beside the container: it
        listens on port 8080, forwards every request to the container's port, and exports
        the runtime's request, latency, status and (for v2 and v1 answers) prediction
        metrics with the model and version labels. The Service and the metrics scrape then
        target it. Canary analysis needs it.""",
    )


class Container(ApiModel):
    """Your own serving container in place of the modelroll runtime."""

    image: str = Field(description="The serving image.", min_length=1, max_length=512)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        None, description="Image pull policy for this container (Kubernetes' default if unset)."
    )
    command: tuple[Annotated[str, _Schema(description="One word of the entrypoint.")], ...] = Field(
        default_factory=tuple,
        description="The entrypoint, as in core/v1 Container.command (the image's if empty).",
        max_length=64,
        json_schema_extra=ATOMIC,
    )
    args: tuple[Annotated[str, _Schema(description="One argument.")], ...] = Field(
        default_factory=tuple,
        description="Arguments to the entrypoint, as in core/v1 Container.args.",
        max_length=256,
        json_schema_extra=ATOMIC,
    )
    port: int = Field(
        description="""The port the server answers HTTP on: the Service, probes,
        NetworkPolicy and smoke tests reach it (through the metrics sidecar when that is
        on).""",
        ge=1,
        le=65535,
    )
    protocol: Protocol = Field(
        "v2",
        description="""What the server speaks: v2 (Open Inference Protocol), v1
        (TensorFlow-Serving style :predict) or none. It sets the default health paths, the
        smoke tests' and `modelroll predict`'s paths, and what the metrics sidecar decodes
        for prediction metrics. With a container it replaces spec.runtime.protocol.""",
    )
    health: ContainerHealth = Field(
        default_factory=ContainerHealth,
        description="The probes' HTTP paths.",
        json_schema_extra=EMPTY_DEFAULT,
    )
    env: tuple[EnvVar, ...] = Field(
        default_factory=tuple,
        description="""Environment variables for the container, in the core EnvVar shape.
        Names starting with MODELROLL_ are reserved for the operator. A credentials Secret
        (spec.model.credentials) reaches only the fetch init container, not this one.""",
        max_length=64,
        json_schema_extra={
            **map_list("name"),
            **rules(
                rule(
                    RESERVED_ENV_RULE,
                    "spec.runtime.container.env must not set MODELROLL_* variables",
                )
            ),
        },
    )
    metrics: ContainerMetrics = Field(
        default_factory=ContainerMetrics,
        description="The opt-in metrics sidecar.",
        json_schema_extra=EMPTY_DEFAULT,
    )


# Fields of spec.runtime that configure the modelroll runtime itself: meaningless for a
# container of the user's, so CEL refuses them beside spec.runtime.container.
RUNTIME_ONLY_FIELDS = ("env", "workers", "auth", "tls")


def _container_exclusive(field: str) -> JSON:
    return rule(
        f"!has(self.container) || !has(self.{field})",
        f"""spec.runtime.{field} configures the modelroll runtime and is not allowed with
        spec.runtime.container""",
        f".{field}",
    )


class Runtime(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=rules(*(_container_exclusive(f) for f in RUNTIME_ONLY_FIELDS))
    )

    image: str | None = Field(
        None,
        description="""Serving runtime image. Defaults to the generic modelroll runtime image
        configured in the operator. With spec.runtime.container, the image of the model
        fetch init container and of the metrics sidecar.""",
        min_length=1,
        max_length=512,
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        None, description="Image pull policy for the runtime container."
    )
    protocol: Literal["v2", "v1"] = Field(
        "v2",
        description="""Inference protocol: v2 (Open Inference Protocol, POST
        /v2/models/<name>/infer) or v1 (TensorFlow-Serving style, POST
        /v1/models/<name>:predict). Ignored with spec.runtime.container, whose own protocol
        field says what it speaks.""",
    )
    env: tuple[EnvVar, ...] = Field(
        default_factory=tuple,
        description="""Extra environment variables for the runtime container, in the core
        EnvVar shape (name, value, valueFrom). Names starting with MODELROLL_ are reserved for
        the operator.""",
        max_length=64,
        json_schema_extra={
            **map_list("name"),
            **rules(
                rule(
                    RESERVED_ENV_RULE,
                    "spec.runtime.env must not set MODELROLL_* variables; use the typed fields",
                )
            ),
        },
    )
    workers: int | None = Field(
        None, description="Worker processes per pod. Defaults to the runtime's choice.", ge=1, le=64
    )
    batching: Batching = Field(
        default_factory=Batching,
        description="""Adaptive batching: requests that arrive while a batch runs are grouped,
        up to maxBatchSize; a lone request is never held back to wait for others.""",
    )
    auth: Auth | None = Field(
        None,
        description="""Bearer-token auth for the inference endpoints. Unset, they are open to
        every caller that can reach the pods.""",
    )
    tls: Tls | None = Field(
        None,
        description="""HTTPS for every endpoint of the runtime (API, health, /metrics). Unset,
        it serves plain HTTP on the Service's port 80.""",
    )
    container: Container | None = Field(
        None,
        description="""Your own serving container (a FastAPI app, Triton, TF Serving, vLLM)
        in place of the modelroll runtime, with the same rollouts, probes, autoscaling and
        GPU placement. spec.model.uri still applies: an init container (the runtime image in
        fetch mode) downloads the model into /mnt/models, verifying the sha256 pin or the
        package manifest, and the container gets it there read-only.""",
    )


# --- spec.resources, gpu, autoscaling -----------------------------------------------------

NO_GPU_RESOURCES = "!self.exists(k, k == 'nvidia.com/gpu' || k.startsWith('nvidia.com/mig-'))"


class Resources(ApiModel):
    requests: dict[str, Quantity] | None = Field(
        None,
        description="""Minimum resources, by resource name (cpu, memory, ...). A resource
        left out takes the operator's default request (MODELROLL_DEFAULT_REQUESTS, by default
        cpu 250m and memory 256Mi), lowered to this resource's limit when that is smaller.""",
        max_length=32,
        json_schema_extra=rules(
            rule(
                NO_GPU_RESOURCES,
                """spec.resources.requests must not contain nvidia.com/gpu or nvidia.com/mig-*
                resources; use spec.gpu""",
            )
        ),
    )
    limits: dict[str, Quantity] | None = Field(
        None,
        description="""Maximum resources, by resource name (cpu, memory, ...). A resource
        left out takes the operator's default limit (MODELROLL_DEFAULT_LIMITS, by default cpu
        2 and memory 2Gi), raised to this resource's request when that is larger.""",
        max_length=32,
        json_schema_extra=rules(
            rule(
                NO_GPU_RESOURCES,
                """spec.resources.limits must not contain nvidia.com/gpu or nvidia.com/mig-*
                resources; use spec.gpu""",
            )
        ),
    )


class Gpu(ApiModel):
    count: int = Field(description="GPUs (or MIG slices) per pod.", ge=1, le=16)
    resource: str = Field(
        "nvidia.com/gpu",
        description="""The extended resource to request: nvidia.com/gpu for whole GPUs, or
        nvidia.com/mig-<profile> (for example nvidia.com/mig-1g.10gb) for a MIG slice.""",
        max_length=63,
        json_schema_extra=rules(
            rule(
                r"self == 'nvidia.com/gpu' || self.matches('^nvidia\\.com/mig-[0-9]+(c\\.[0-9]+)?g\\.[0-9]+gb$')",
                """spec.gpu.resource must be nvidia.com/gpu or nvidia.com/mig-<profile> (for
                example nvidia.com/mig-1g.10gb)""",
            )
        ),
    )
    product: str | None = Field(
        None,
        description="""GPU model to schedule on, matched against the nvidia.com/gpu.product node
        label (for example NVIDIA-A100-SXM4-80GB).""",
        min_length=1,
        max_length=63,
        pattern=LABEL_VALUE,
    )


class Autoscaling(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                "!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
                """spec.autoscaling.minReplicas must be less than or equal to
                spec.autoscaling.maxReplicas""",
                ".minReplicas",
            ),
            rule(
                "has(self.targetCPUUtilizationPercentage) || has(self.targetRequestsPerSecond)",
                """spec.autoscaling must set targetCPUUtilizationPercentage or
                targetRequestsPerSecond (or both)""",
            ),
        )
    )

    min_replicas: int = Field(1, description="Fewest pods the HPA may scale to.", ge=1, le=1000)
    max_replicas: int = Field(description="Most pods the HPA may scale to.", ge=1, le=1000)
    target_cpu_utilization_percentage: int | None = Field(
        None,
        alias="targetCPUUtilizationPercentage",
        description="Target average CPU utilization, in percent of the CPU request.",
        ge=1,
        le=100,
    )
    target_requests_per_second: int | None = Field(
        None,
        description="""Target average inference requests per second per pod, as the Pods metric
        modelroll_requests_per_second (needs a custom metrics adapter).""",
        ge=1,
        le=1000000,
    )


# --- spec.rollout -------------------------------------------------------------------------


class ParentRef(ApiModel):
    """A Gateway API ParentReference."""

    name: str = Field(
        description="Name of the parent (usually a Gateway).", min_length=1, max_length=253
    )
    namespace: str | None = Field(
        None,
        description="Namespace of the parent. Defaults to the ModelDeployment's namespace.",
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL,
    )
    section_name: str | None = Field(
        None, description="A listener name of the parent Gateway.", min_length=1, max_length=253
    )
    group: str | None = Field(
        None,
        description="API group of the parent. Defaults to gateway.networking.k8s.io.",
        max_length=253,
    )
    kind: str | None = Field(
        None, description="Kind of the parent. Defaults to Gateway.", min_length=1, max_length=63
    )


Hostname = Annotated[
    str,
    Field(
        min_length=1,
        max_length=253,
        pattern=r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    ),
    _Schema(description='A DNS name, optionally with a leading "*." wildcard label.'),
]


class GatewayApi(ApiModel):
    parent_refs: tuple[ParentRef, ...] = Field(
        description="Gateways (or other parents) the HTTPRoute attaches to.",
        min_length=1,
        max_length=32,
        json_schema_extra=ATOMIC,
    )
    hostnames: tuple[Hostname, ...] = Field(
        default_factory=tuple,
        description="Hostnames the HTTPRoute matches. Empty means all of the listener's.",
        max_length=16,
        json_schema_extra=ATOMIC,
    )


class TrafficRouting(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                "!has(self.mode) || self.mode != 'GatewayAPI' || has(self.gatewayAPI)",
                """spec.rollout.canary.trafficRouting.gatewayAPI.parentRefs is required when
                spec.rollout.canary.trafficRouting.mode is GatewayAPI""",
                ".gatewayAPI",
            ),
            rule(
                "!has(self.gatewayAPI) || (has(self.mode) && self.mode == 'GatewayAPI')",
                """spec.rollout.canary.trafficRouting.gatewayAPI is only allowed when
                spec.rollout.canary.trafficRouting.mode is GatewayAPI""",
                ".gatewayAPI",
            ),
        )
    )

    mode: Literal["Replicas", "GatewayAPI"] = Field(
        "Replicas",
        description="""Replicas (no mesh needed): one Service selects both revisions and the
        share follows ready replica counts. GatewayAPI: an operator-owned HTTPRoute splits
        traffic by exact weights.""",
    )
    gateway_api: GatewayApi | None = Field(
        None, alias="gatewayAPI", description="Settings for the HTTPRoute in GatewayAPI mode."
    )


class CanaryStep(ApiModel):
    """One traffic step."""

    weight: int = Field(
        description="Percent of traffic sent to the canary in this step.", ge=1, le=100
    )
    pause_seconds: int = Field(
        0,
        description="""Seconds to hold this weight (once the canary is ready) before analysis
        runs and the next step begins.""",
        ge=0,
        le=86400,
    )


class Prometheus(ApiModel):
    """Which of the operator's Prometheus endpoints the analysis queries. The platform names
    them in the operator's configuration (MODELROLL_PROMETHEUS_ENDPOINTS); a spec cannot
    name a URL, so a tenant cannot point the operator at an address of its choosing."""

    endpoint: str | None = Field(
        None,
        description="""Name of a Prometheus endpoint configured in the operator. Unset: the
        operator's default endpoint.""",
        max_length=63,
        pattern=DNS_LABEL,
    )


class CustomCheck(ApiModel):
    """One custom check."""

    name: str = Field(
        description="Name of the check, shown in status and Events.",
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL,
    )
    query: str = Field(
        description="""PromQL query. $canary and $stable are replaced with label matchers for
        the revisions' pods.""",
        min_length=1,
        max_length=2048,
    )
    max_value: str = Field(
        description='Largest passing value, a decimal number written as a string (for example "0.5").',
        max_length=32,
        pattern=r"^-?[0-9]+(\.[0-9]+)?$",
    )


def significance_field(path: str) -> Any:
    """A significance level: a decimal string in (0, 0.5], "0.01" unless set."""
    return Field(
        "0.01",
        description="""False-alarm rate of the test: it fails when a chi-square test rejects
        "same distribution" at this level. A decimal string in (0, 0.5].""",
        max_length=8,
        pattern=r"^0\.[0-9]{1,6}$",
        json_schema_extra=rules(
            rule("double(self) > 0.0 && double(self) <= 0.5", f"{path} must lie in (0, 0.5]")
        ),
    )


class PredictionShift(ApiModel):
    """Compares the canary's distribution of predictions with the stable revision's over the
    analysis window (a chi-square test on the runtime's prediction counters, which a model
    packaged with a reference profile exports). Models without those counters skip it."""

    enabled: bool = Field(True, description="Run the check; on unless set to false.")
    significance: str = significance_field(
        "spec.rollout.canary.analysis.predictionShift.significance"
    )
    min_samples: int = Field(
        100,
        description="""Fewest predictions each revision must have made in the window for the
        check to decide; with fewer it is inconclusive and the step waits.""",
        ge=10,
        le=1000000000,
    )


class Analysis(ApiModel):
    prometheus: Prometheus = Field(
        description="""The Prometheus server that scrapes the runtime pods, chosen by name
        among the operator's endpoints ({} for its default)."""
    )
    interval_seconds: int = Field(
        30, description="Length of the window each analysis looks at, in seconds.", ge=5, le=3600
    )
    max_error_percent: int = Field(
        1,
        description="Highest share of canary responses with a 5xx status, in percent, that passes.",
        ge=0,
        le=100,
    )
    max_p99_latency_ms: int | None = Field(
        None,
        description="Highest canary p99 latency, in milliseconds, that passes.",
        ge=1,
        le=3600000,
    )
    max_p99_latency_increase_percent: int | None = Field(
        None,
        description="""Highest increase of the canary's p99 latency over the stable revision's,
        in percent, that passes.""",
        ge=0,
        le=10000,
    )
    min_request_count: int = Field(
        20,
        description="""Fewest canary requests in the window for the analysis to decide; with
        fewer, the analysis waits for more traffic until the progress deadline.""",
        ge=0,
        le=1000000000,
    )
    custom_checks: tuple[CustomCheck, ...] = Field(
        default_factory=tuple,
        description="""Extra PromQL checks. Each query must return one scalar or a
        single-sample vector; the check fails when the value exceeds maxValue. Refused
        (the canary is aborted, reason CustomChecksDisabled) unless the operator allows
        them (MODELROLL_ALLOW_CUSTOM_CHECKS).""",
        max_length=10,
        json_schema_extra=map_list("name"),
    )
    prediction_shift: PredictionShift = Field(
        default_factory=PredictionShift,
        description="""The canary's predictions against the stable revision's; aborts with
        reason PredictionShift when they differ.""",
        json_schema_extra=EMPTY_DEFAULT,
    )


class Canary(ApiModel):
    traffic_routing: TrafficRouting = Field(
        default_factory=TrafficRouting,
        description="How the canary's traffic share is realized.",
        json_schema_extra=EMPTY_DEFAULT,
    )
    scale_down_delay_seconds: int = Field(
        30,
        description="""Seconds the previous stable revision stays up after promotion, for an
        instant rollback, before it is removed.""",
        ge=0,
        le=86400,
    )
    steps: tuple[CanaryStep, ...] = Field(
        description="Traffic steps, in order. After the last step the canary is promoted to 100%.",
        min_length=1,
        max_length=20,
        json_schema_extra={
            **ATOMIC,
            **rules(
                rule(
                    """self.map(s, s.weight).isSorted() &&
                    self.all(s, self.exists_one(t, t.weight == s.weight))""",
                    "spec.rollout.canary.steps weights must strictly increase",
                )
            ),
        },
    )
    analysis: Analysis | None = Field(
        None,
        description="""Automatic analysis, run after each step's pause. It compares the canary
        with the stable revision on the runtime's own metrics and rolls back on failure.""",
    )


class SmokeRequest(ApiModel):
    """One smoke-test request."""

    name: str = Field(
        description="Name of the request, shown in status and Events.",
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL,
    )
    body: Opaque = Field(
        description="""The JSON request body in the deployment's protocol (a V2 inference
        request with "inputs", or a V1 request with "instances")."""
    )
    expect_status: int = Field(
        200, description="The HTTP status the response must have.", ge=100, le=599
    )
    expect_outputs: Opaque | None = Field(
        None,
        description="""A subset the response JSON must contain (for example its "outputs" or
        "predictions"). Omit to check only the status.""",
    )


class SmokeTest(ApiModel):
    requests: tuple[SmokeRequest, ...] = Field(
        description="The requests, sent in order; all must pass.",
        min_length=1,
        max_length=10,
        json_schema_extra=map_list("name"),
    )


class BlueGreen(ApiModel):
    auto_promote: bool = Field(
        True,
        description="""Flip traffic as soon as the preview is ready and the smoke test passes.
        When false, wait for the modelroll.io/promote annotation.""",
    )
    scale_down_delay_seconds: int = Field(
        30,
        description="""Seconds the previous revision stays up after the flip, so that the
        rollback annotation can flip back instantly.""",
        ge=0,
        le=86400,
    )
    smoke_test: SmokeTest | None = Field(
        None, description="Sample requests sent to the preview Service before promotion."
    )


class Rollout(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                "!has(self.strategy) || self.strategy != 'Canary' || has(self.canary)",
                "spec.rollout.canary is required when spec.rollout.strategy is Canary",
                ".canary",
            ),
            rule(
                "!has(self.canary) || (has(self.strategy) && self.strategy == 'Canary')",
                "spec.rollout.canary is only allowed when spec.rollout.strategy is Canary",
                ".canary",
            ),
            rule(
                "!has(self.blueGreen) || (has(self.strategy) && self.strategy == 'BlueGreen')",
                "spec.rollout.blueGreen is only allowed when spec.rollout.strategy is BlueGreen",
                ".blueGreen",
            ),
        )
    )

    strategy: Strategy = Field(
        "Rolling",
        description="""Rolling replaces pods as a Deployment rollout does. Canary shifts traffic
        in steps with analysis. BlueGreen brings the new revision up behind a preview Service
        and flips traffic at once.""",
    )
    progress_deadline_seconds: int = Field(
        600,
        description="""Seconds a new revision may take to become ready before the rollout is
        aborted (Canary, BlueGreen) or reported as failed (Rolling).""",
        ge=10,
        le=86400,
    )
    revision_history_limit: int = Field(
        3, description="Previous stable revisions kept in status.history for rollback.", ge=1, le=10
    )
    canary: Canary | None = Field(
        None,
        description="""Canary settings; required with strategy Canary and not allowed
        otherwise. Traffic moves through the steps, then to 100%.""",
    )
    blue_green: BlueGreen | None = Field(
        None,
        description="""Blue-green settings; only allowed with strategy BlueGreen. The new
        revision comes up at full size behind the <name>-preview Service.""",
    )


class Drift(ApiModel):
    """Compares the stable revision's live inputs, per feature, with the reference profile
    of its packaged model, and reports the result as the DriftDetected condition."""

    prometheus: Prometheus = Field(
        default_factory=Prometheus,
        description="""The Prometheus server that scrapes the runtime pods, chosen by name
        among the operator's endpoints (unset: its default).""",
        json_schema_extra=EMPTY_DEFAULT,
    )
    window_seconds: int = Field(
        3600,
        description="Length of the window of live traffic compared with the reference, in seconds.",
        ge=60,
        le=604800,
    )
    interval_seconds: int = Field(
        300, description="Seconds between two evaluations.", ge=30, le=86400
    )
    significance: str = significance_field("spec.monitoring.drift.significance")
    min_samples: int = Field(
        200,
        description="""Fewest rows in the window for a feature to be tested; with fewer the
        condition is Unknown (NotEnoughData).""",
        ge=10,
        le=1000000000,
    )


class Monitoring(ApiModel):
    drift: Drift | None = Field(
        None,
        description="""Drift detection against the packaged model's reference profile: the
        DriftDetected condition names the worst features and their scores.""",
    )


# --- spec -----------------------------------------------------------------------------------


# --- spec.network -------------------------------------------------------------------------


class LabelSelectorRequirement(ApiModel):
    """A metav1.LabelSelectorRequirement."""

    key: str = Field(description="The label key.", min_length=1, max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the label's value relates to values."
    )
    values: tuple[
        Annotated[str, Field(max_length=63), _Schema(description="A label value.")], ...
    ] = Field(
        default_factory=tuple,
        description="Label values (In, NotIn); empty for Exists and DoesNotExist.",
        max_length=64,
        json_schema_extra=ATOMIC,
    )


class LabelSelector(ApiModel):
    """A metav1.LabelSelector. An empty selector ({}) selects everything."""

    match_labels: dict[
        str,
        Annotated[str, Field(max_length=63), _Schema(description="Required label value.")],
    ] = Field(
        default_factory=dict,
        description="Labels that must have exactly these values.",
        max_length=64,
    )
    match_expressions: tuple[LabelSelectorRequirement, ...] = Field(
        default_factory=tuple,
        description="Label requirements, all of which must hold.",
        max_length=16,
        json_schema_extra=ATOMIC,
    )


def _values_match_operator(selector: str) -> JSON:
    """As the apiserver checks a LabelSelector: values for In and NotIn, none otherwise."""
    return rule(
        f"""!has(self.{selector}) || !has(self.{selector}.matchExpressions) ||
        self.{selector}.matchExpressions.all(e,
          (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))""",
        f"""spec.network.allowFrom.{selector}.matchExpressions values must be non-empty for
        the operators In and NotIn, and empty for Exists and DoesNotExist""",
        f".{selector}",
    )


class NetworkPeer(ApiModel):
    """Callers admitted to the serving port: a networking/v1 NetworkPolicyPeer."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                "has(self.namespaceSelector) || has(self.podSelector)",
                "spec.network.allowFrom entries need a namespaceSelector, a podSelector, or both",
            ),
            *(
                _values_match_operator(selector)
                for selector in ("namespaceSelector", "podSelector")
            ),
        )
    )

    namespace_selector: LabelSelector | None = Field(
        None,
        description="""Namespaces whose pods may call ({} for all namespaces). Without it, the
        podSelector selects pods of the ModelDeployment's own namespace.""",
    )
    pod_selector: LabelSelector | None = Field(
        None,
        description="""Pods that may call, in the namespaces the namespaceSelector selects.
        Without it, every pod of those namespaces may.""",
    )


class Network(ApiModel):
    allow_from: tuple[NetworkPeer, ...] = Field(
        default_factory=tuple,
        description="""Callers outside the namespace that may reach the serving port, besides
        the ones the operator always admits (the same namespace, the operator for smoke tests,
        the platform's monitoring namespace for metrics). Only in effect while the operator
        renders NetworkPolicies (MODELROLL_NETWORK_POLICY, on by default) and the cluster's
        network plugin enforces them.""",
        max_length=32,
        json_schema_extra=ATOMIC,
    )


class ModelDeploymentSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                """!has(self.gpu) || !has(self.gpu.product) || !has(self.nodeSelector) ||
                !('nvidia.com/gpu.product' in self.nodeSelector)""",
                """spec.nodeSelector must not set nvidia.com/gpu.product when spec.gpu.product
                is set; use spec.gpu.product""",
                ".nodeSelector",
            ),
            rule(
                """!has(self.runtime) || !has(self.runtime.container) ||
                (has(self.runtime.container.metrics) && self.runtime.container.metrics.sidecar)
                || !has(self.rollout) || !has(self.rollout.canary) ||
                !has(self.rollout.canary.analysis)""",
                """spec.rollout.canary.analysis needs spec.runtime.container.metrics.sidecar:
                true; analysis reads the runtime's metrics, which only the sidecar exports for
                your own container""",
                ".rollout.canary.analysis",
            ),
            rule(
                """!has(self.runtime) || !has(self.runtime.container) ||
                !has(self.runtime.container.metrics) || !self.runtime.container.metrics.sidecar
                || self.runtime.container.port != 8080""",
                """spec.runtime.container.port must not be 8080 with the metrics sidecar,
                which listens on 8080 in the same pod""",
                ".runtime.container.port",
            ),
        )
    )

    model: Model = Field(description="The model artifact to serve.")
    runtime: Runtime = Field(
        default_factory=Runtime,
        description="""The serving runtime. Every field is optional; what is unset comes from the
        operator's configuration.""",
        json_schema_extra=EMPTY_DEFAULT,
    )
    resources: Resources = Field(
        default_factory=Resources,
        description="""Compute resources of the runtime container (core/v1 ResourceRequirements
        requests and limits). GPUs are requested through spec.gpu, not here.""",
    )
    gpu: Gpu | None = Field(
        None,
        description="""GPUs for each pod. The operator sets the GPU resource limit, the
        nvidia.com/gpu.product node selector and the nvidia.com/gpu NoSchedule toleration.""",
    )
    node_selector: dict[
        str, Annotated[str, _Schema(description="Required value of the node label.")]
    ] = Field(
        default_factory=dict,
        description="Node labels the pods must match, merged with the GPU product selector.",
        max_length=64,
    )
    tolerations: tuple[Annotated[Opaque, _Schema(description="A core/v1 Toleration.")], ...] = (
        Field(
            default_factory=tuple,
            description="core/v1 Tolerations for the pods, passed through unchanged.",
            max_length=64,
            json_schema_extra=ATOMIC,
        )
    )
    affinity: Opaque = Field(
        default_factory=dict, description="core/v1 Affinity for the pods, passed through unchanged."
    )
    replicas: int = Field(
        1,
        description="""Pods of the stable revision. Ignored when spec.autoscaling is set (the HPA
        owns the count then). The scale subresource writes this field.""",
        ge=0,
        le=1000,
    )
    autoscaling: Autoscaling | None = Field(
        None,
        description="""Horizontal pod autoscaling. When set, the operator creates an HPA and
        spec.replicas is ignored.""",
    )
    rollout: Rollout = Field(
        default_factory=Rollout,
        description="""How a new revision (a change to the model, image, env, resources or gpu)
        replaces the stable one.""",
        json_schema_extra=EMPTY_DEFAULT,
    )
    monitoring: Monitoring | None = Field(
        None, description="What the operator watches on the running model."
    )
    network: Network = Field(
        default_factory=Network,
        description="""Who may reach the pods, through the NetworkPolicy the operator renders
        for each ModelDeployment.""",
    )


# --- status ---------------------------------------------------------------------------------


class Condition(ApiModel):
    """A metav1.Condition."""

    type: str = Field(
        description="Type of the condition, an adjective in CamelCase (Ready, Progressing, Degraded, Reconciling, Stalled, DriftDetected).",
        min_length=1,
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="Status of the condition.")
    reason: str = Field(
        description="A CamelCase reason for the last transition.",
        min_length=1,
        max_length=1024,
        pattern="^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    )
    message: str = Field(
        description="A human-readable message about the transition.", max_length=32768
    )
    observed_generation: int | None = Field(
        None,
        description="The metadata.generation the condition was set for.",
        ge=0,
        json_schema_extra=INT64,
    )
    last_transition_time: str = Field(
        description="When the status of the condition last changed.", json_schema_extra=DATE_TIME
    )


class RevisionStatus(ApiModel):
    """One live revision."""

    name: str = Field(description="Revision name (a hash of the pod-affecting spec).")
    version: str | None = Field(None, description="The spec.model.version of this revision.")
    role: RevisionRole | None = Field(None, description="Role of the revision in the rollout.")
    replicas: int | None = Field(
        None, description="Pods the revision should run.", json_schema_extra=INT32
    )
    ready_replicas: int | None = Field(
        None, description="Ready pods of the revision.", json_schema_extra=INT32
    )
    weight: int | None = Field(
        None,
        description="Effective share of traffic in percent, measured from ready endpoints.",
        json_schema_extra=INT32,
    )


class HistoryEntry(ApiModel):
    """One previously stable revision."""

    revision: str = Field(description="Revision name.")
    version: str | None = Field(None, description="The spec.model.version of this revision.")
    promoted_at: str | None = Field(
        None, description="When the revision became stable.", json_schema_extra=DATE_TIME
    )
    spec: Opaque | None = Field(
        None,
        description="""The spec this revision was rendered from (already validated when it was
        applied), so that rollback can recreate it.""",
    )


class AnalysisStatus(ApiModel):
    time: str | None = Field(
        None, description="When the analysis ran.", json_schema_extra=DATE_TIME
    )
    passed: bool | None = Field(
        None, description="Whether the analysis passed; absent while inconclusive."
    )
    step: int | None = Field(None, description="The canary step the analysis belongs to.")
    reason: str | None = Field(
        None, description=f"CamelCase result ({', '.join(get_args(AnalysisReason))})."
    )
    message: str | None = Field(None, description="The measured values and thresholds.")


class SmokeTestStatus(ApiModel):
    revision: str | None = Field(None, description="The preview revision that was tested.")
    passed: bool | None = Field(
        None, description="Whether every smoke request got the expected answer."
    )
    message: str | None = Field(
        None,
        description="Which request failed and which expectation it missed: status codes only, never the bytes of the answer.",
    )
    time: str | None = Field(
        None, description="When the smoke test ran.", json_schema_extra=DATE_TIME
    )


class ScaleDown(ApiModel):
    """An old revision waiting for its scale-down delay."""

    revision: str = Field(description="Revision name.")
    at: str = Field(description="When the revision is removed.", json_schema_extra=DATE_TIME)


class RolloutStatus(ApiModel):
    state: str | None = Field(
        None,
        description="""Machine-readable state of the rollout (for example Progressing, Paused,
        Analyzing, Promoting, Aborted, Complete). Informational; conditions are the
        contract.""",
    )
    message: str | None = Field(None, description="Human-readable account of the rollout's state.")
    step_started_at: str | None = Field(
        None, description="When the current canary step began.", json_schema_extra=DATE_TIME
    )
    last_analysis: AnalysisStatus | None = Field(
        None, description="The result of the latest analysis."
    )
    aborted_revision: str | None = Field(
        None,
        description="""The revision whose rollout was aborted; not retried until the spec
        changes or the modelroll.io/retry annotation is set.""",
    )
    abort_reason: str | None = Field(
        None, description=f"CamelCase reason of the abort ({', '.join(get_args(AbortReason))})."
    )
    abort_message: str | None = Field(
        None, description="What was measured or observed when the rollout was aborted."
    )
    smoke_test: SmokeTestStatus | None = Field(
        None, description="The latest blue-green smoke test of the preview revision."
    )
    scale_down: tuple[ScaleDown, ...] = Field(
        default_factory=tuple,
        description="Old revisions kept for instant rollback, and when they go.",
        json_schema_extra=ATOMIC,
    )


class ModelDeploymentStatus(ApiModel):
    observed_generation: int | None = Field(
        None, description="The metadata.generation this status describes.", json_schema_extra=INT64
    )
    conditions: tuple[Condition, ...] = Field(
        default_factory=tuple,
        description="""Conditions: Ready (the stable revision serves), Progressing (a rollout is
        under way) and Degraded (something needs attention, such as an aborted rollout); and,
        for kstatus (Flux), Reconciling (a rollout or scale-up is under way) and Stalled (a
        failure that waiting does not heal, with the reason of Ready or Degraded).""",
        max_length=16,
        json_schema_extra=map_list("type"),
    )
    url: str | None = Field(
        None, description="In-cluster URL of the inference endpoint for the configured protocol."
    )
    selector: str | None = Field(
        None, description="Label selector of the pods, in string form, for the scale subresource."
    )
    replicas: int | None = Field(
        None,
        description="Pods the stable revision should run (for the scale subresource).",
        json_schema_extra=INT32,
    )
    ready_replicas: int | None = Field(
        None, description="Ready pods across all live revisions.", json_schema_extra=INT32
    )
    stable_revision: str | None = Field(
        None, description="The revision that serves production traffic."
    )
    canary_revision: str | None = Field(
        None, description="The revision being rolled out (canary or blue-green preview), if any."
    )
    current_step: int | None = Field(
        None,
        description="""Index into spec.rollout.canary.steps of the running step. Absent when no
        canary rollout is running.""",
        json_schema_extra=INT32,
    )
    traffic: str | None = Field(
        None, description='Effective traffic split, for example "r1a2b3:90 r4c5d6:10".'
    )
    revisions: tuple[RevisionStatus, ...] = Field(
        default_factory=tuple,
        description="Every live revision and its effective traffic.",
        json_schema_extra=map_list("name"),
    )
    history: tuple[HistoryEntry, ...] = Field(
        default_factory=tuple,
        description="""Previous stable revisions, newest first, at most
        spec.rollout.revisionHistoryLimit, for the rollback annotation.""",
        json_schema_extra=ATOMIC,
    )
    rollout: RolloutStatus | None = Field(None, description="State of the current or last rollout.")


# --- the object -----------------------------------------------------------------------------


class ModelDeployment(ApiModel):
    """ModelDeployment serves one machine-learning model over HTTP (Open Inference Protocol V2
    or V1) and rolls out new model versions with a Rolling, Canary or BlueGreen strategy. The
    operator renders a Deployment per revision, a Service, and, as configured, an HPA, a
    PodDisruptionBudget and an HTTPRoute."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                "size(self.metadata.name) <= 40",
                "metadata.name must be at most 40 characters: child object names add suffixes",
            ),
            rule(
                "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                """metadata.name must be a DNS-1035 label (lowercase letters, digits and '-',
                starting with a letter): it also names the Service""",
            ),
        )
    )

    api_version: str | None = Field(
        None,
        description="""APIVersion defines the versioned schema of this representation of an
        object. More info:
        https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources""",
    )
    kind: str | None = Field(
        None,
        description="""Kind is a string value representing the REST resource this object
        represents. More info:
        https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds""",
    )
    metadata: Annotated[JSON, _Schema(replace=True, type="object")] = Field(default_factory=dict)
    spec: ModelDeploymentSpec = Field(
        description="Spec is the desired state of the model deployment."
    )
    status: ModelDeploymentStatus | None = Field(
        None,
        description="""Status is the observed state, written only by the operator. Until its
        first write the apiserver shows observedGeneration 0, so that kstatus (Flux) reads a
        new ModelDeployment as InProgress, not as Current.""",
        json_schema_extra={"default": {"observedGeneration": 0}},
    )


# --- how the apiserver serves it ------------------------------------------------------------

SHORT_NAMES = ("md",)
CATEGORIES = ("modelroll",)
SUBRESOURCES: JSON = {
    "status": {},
    "scale": {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    },
}


def _column(name: str, kind: str, description: str, path: str, priority: int = 0) -> JSON:
    column: JSON = {"name": name, "type": kind, "description": description, "jsonPath": path}
    return {**column, "priority": priority} if priority else column


PRINTER_COLUMNS: tuple[JSON, ...] = (
    _column(
        "Ready",
        "string",
        "Status of the Ready condition.",
        '.status.conditions[?(@.type=="Ready")].status',
    ),
    _column(
        "Replicas", "integer", "Ready pods across all live revisions.", ".status.readyReplicas"
    ),
    _column("Desired", "integer", "Pods the stable revision should run.", ".status.replicas"),
    _column(
        "Version",
        "string",
        "The model version label from spec.model.version.",
        ".spec.model.version",
    ),
    _column("Strategy", "string", "The rollout strategy.", ".spec.rollout.strategy"),
    _column(
        "Stable", "string", "The revision that serves production traffic.", ".status.stableRevision"
    ),
    _column(
        "Canary", "string", "The revision being rolled out, if any.", ".status.canaryRevision", 1
    ),
    _column("Traffic", "string", "Effective traffic split by revision.", ".status.traffic"),
    _column("URL", "string", "In-cluster inference URL.", ".status.url", 1),
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)
