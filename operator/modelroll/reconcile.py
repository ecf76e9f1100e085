"""One reconcile of one ModelDeployment: render, apply what differs, prune, report status."""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Protocol, cast

from modelroll import GROUP, VERSION
from modelroll.analysis import analyze, refusal
from modelroll.bearer import token_of, token_problem
from modelroll.cached import pack_model_deployment, unpack
from modelroll.checks import Checks
from modelroll.conditions import Condition
from modelroll.config import OperatorConfig
from modelroll.drift import foreign_keys_patch, needs_apply, stamp
from modelroll.feature_drift import measure as measure_drift
from modelroll.feature_drift import previous as previous_drift
from modelroll.feature_drift import refused as drift_refused
from modelroll.kube import ApiError, Kube, object_path
from modelroll.metrics import CONDITION, ROLLOUT_ABORTS, TRAFFIC_WEIGHT
from modelroll.ownership import conflict_message, controlled_by
from modelroll.prediction_shift import BIN_LABEL
from modelroll.problems import GPU_PRODUCT_LABEL
from modelroll.prometheus import PrometheusClient
from modelroll.render import (
    DEPLOYMENT_LABEL,
    REVISION_LABEL,
    Owner,
    RenderContext,
    deployment_name,
    render_plan,
    service_port,
    service_url,
)
from modelroll.revision import revision_of
from modelroll.rollout import ACTIONS, Plan, RolloutInput, SmokeResult
from modelroll.rollout import plan as plan_rollout
from modelroll.rollout_state import state_from_status
from modelroll.smoke import run_smoke_tests
from modelroll.spec import JSON, ModelDeploymentSpec, parse_spec
from modelroll.status import (
    Observed,
    compute_status,
    revision_state,
    revision_view,
    unscheduled_gpu_products,
    with_products_not_offered,
)
from modelroll.status_changes import existed_before, ignoring_times, status_patch, transition_events
from modelroll.tls import CA_KEY, Trust, tls_problem, trust_of
from modelroll.tls import trust_key as tls_trust_key

# The shared children a plan can stop wanting, pruned then. Not the ServiceAccount: every
# plan wants it, so the operator has no delete on ServiceAccounts (modelroll.api.rbac).
SHARED_KINDS = (
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "ServiceMonitor",
)


LOG = logging.getLogger(__name__)
PAUSED = "modelroll.io/paused"


class EventSink(Protocol):
    def __call__(self, body: JSON, type_: str, reason: str, message: str) -> None: ...


@dataclass
class Children:
    """A ModelDeployment's observed children, taken from the watch caches."""

    by_kind: dict[str, list[JSON]] = field(default_factory=dict)
    pods: list[JSON] = field(default_factory=list)
    endpoint_slices: list[JSON] = field(default_factory=list)  # cached.slim_endpoint_slice

    def routable_pods(self) -> frozenset[str]:
        return frozenset(name for s in self.endpoint_slices for name in s["readyPods"])

    def find(self, kind: str, name: str) -> JSON | None:
        return next((c for c in self.by_kind.get(kind, []) if c["metadata"]["name"] == name), None)


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class References:
    """What the referenced objects say: a problem ("" when none), and which key of the TLS
    Secret clients trust (ca.crt, or tls.crt when it has none)."""

    problem: str = ""
    tls_trust_key: str = CA_KEY


def check_references(kube: Kube, namespace: str, spec: ModelDeploymentSpec) -> References:
    """What the schema cannot check: referenced Secrets and claims must exist and fit."""
    secret = spec.model.credentials_secret
    if secret and not kube.exists(f"/api/v1/namespaces/{namespace}/secrets/{secret}"):
        return References(
            f"spec.model.credentials.secretRef: Secret {namespace}/{secret} not found"
        )
    if ref := spec.runtime.auth_token:
        token_secret = kube.get(f"/api/v1/namespaces/{namespace}/secrets/{ref.name}")
        if problem := token_problem(token_secret, namespace, ref):
            return References(problem)
    trust_key = CA_KEY
    if name := spec.runtime.tls_secret:
        tls_secret = kube.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        if problem := tls_problem(tls_secret, namespace, name):
            return References(problem)
        assert tls_secret is not None  # tls_problem reports a missing Secret
        trust_key = tls_trust_key(tls_secret)
    if spec.model.uri.startswith("pvc://"):
        claim = spec.model.uri.removeprefix("pvc://").split("/", 1)[0]
        path = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}"
        if not kube.exists(path):
            return References(
                f"spec.model.uri: PersistentVolumeClaim {namespace}/{claim} not found"
            )
    return References(tls_trust_key=trust_key)


def runtime_trust(kube: Kube, owner: Owner, spec: ModelDeploymentSpec) -> Trust | str | None:
    """What the runtime's certificate is verified with (None: it serves plain HTTP), or
    why its TLS Secret cannot tell."""
    name = spec.runtime.tls_secret
    if not name:
        return None
    secret = kube.get(f"/api/v1/namespaces/{owner.namespace}/secrets/{name}")
    if problem := tls_problem(secret, owner.namespace, name):
        return problem
    assert secret is not None  # tls_problem reports a missing Secret
    return trust_of(secret, owner.name, owner.namespace)


def smoke_test(kube: Kube, owner: Owner, spec: ModelDeploymentSpec, url: str) -> SmokeResult:
    """The smoke tests, sending the runtime's bearer token when auth is on and verifying
    its certificate when it serves TLS. Both Secrets are read here, in the check's thread;
    the token lives only in the request's header."""
    tests = spec.rollout.blue_green.smoke_tests if spec.rollout.blue_green else ()
    namespace = owner.namespace
    trust = runtime_trust(kube, owner, spec)
    if isinstance(trust, str):
        return SmokeResult(False, trust)
    ref = spec.runtime.auth_token
    if ref is None:
        return run_smoke_tests(url, owner.name, tests, trust=trust)
    secret = kube.get(f"/api/v1/namespaces/{namespace}/secrets/{ref.name}")
    if problem := token_problem(secret, namespace, ref):
        return SmokeResult(False, problem)
    assert secret is not None  # token_problem reports a missing Secret
    return run_smoke_tests(url, owner.name, tests, token=token_of(secret, ref.key), trust=trust)


def products_not_offered(kube: Kube, products: frozenset[str]) -> frozenset[str]:
    """The GPU products no node carries. Without RBAC to list nodes nothing is known absent,
    and the pods' problem stays what the scheduler says."""
    absent = set()
    for product in products:
        query = [("labelSelector", f"{GPU_PRODUCT_LABEL}={product}"), ("limit", "1")]
        try:
            nodes = kube.request("GET", "/api/v1/nodes", query=query)
        except ApiError as error:
            LOG.debug("cannot list nodes for GPU product %s: %s", product, error)
            continue
        if not nodes.get("items"):
            absent.add(product)
    return frozenset(absent)


class Reconciler:
    def __init__(self, kube: Kube, config: OperatorConfig, emit: EventSink) -> None:
        self.kube = kube
        self.config = config
        self.emit = emit
        self.service_monitor_available = False
        self.prometheus_rule_available = False
        self.clock: Callable[[], float] = time.time
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        # Bounded: a burst of thousands of objects queues here rather than in the API client.
        self._slots = asyncio.Semaphore(config.max_concurrent_reconciles)
        self._pending: set[tuple[str, str]] = set()
        # What our own writes answered, per ModelDeployment, until the watch cache has caught
        # up with them: the cache can lag behind our writes, and planning from an older
        # status would repeat a step that was already taken. (version, packed JSON)
        self._newest: dict[tuple[str, str], tuple[int, str]] = {}
        self._weights_reported: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self.checks = Checks()
        # Drift evaluations, in a pool of their own so that they never hold up an analysis;
        # the last evaluation asked for per ModelDeployment (revision, period, settings).
        self.drift_checks = Checks(workers=2)
        self._drift_done: dict[tuple[str, str], Hashable] = {}

    async def trigger(
        self, key: tuple[str, str], load: Callable[[], tuple[JSON | None, Children]]
    ) -> bool:
        """Reconciles `key` once; triggers that arrive while one waits are coalesced into it."""
        if key in self._pending:
            return False
        self._pending.add(key)
        async with self._slots:
            lock = self._locks.setdefault(key, asyncio.Lock())
            async with lock:
                self._pending.discard(key)
                body, children = load()
                if body is None:
                    self._locks.pop(key, None)
                    self._newest.pop(key, None)
                    self.checks.forget(key)
                    self.drift_checks.forget(key)
                    self._drift_done.pop(key, None)
                    return False
                body = self._prefer_newest(key, body)
                await self.reconcile(body, children)
        return True

    def _prefer_newest(self, key: tuple[str, str], body: JSON) -> JSON:
        known = self._newest.get(key)
        if known is None:
            return body
        version, packed = known
        if version > _version(body) >= 0:
            return unpack(packed)
        del self._newest[key]  # the cache has caught up
        return body

    def _remember(self, written: JSON) -> None:
        """Keeps what a write answered, as the watch cache would keep it: the answer carries
        managedFields, several times the rest of the object."""
        metadata = written["metadata"]
        key = (metadata["namespace"], metadata["name"])
        version = _version(written)
        if version > self._newest.get(key, (-1, ""))[0]:
            self._newest[key] = (version, pack_model_deployment(written).packed)

    async def reconcile(self, body: JSON, children: Children) -> None:
        metadata = body["metadata"]
        if (metadata.get("annotations") or {}).get(PAUSED) == "true":
            return  # hands off: nothing is applied, pruned or reported until unpaused
        owner = Owner(metadata["name"], metadata["namespace"], metadata["uid"])
        spec = parse_spec(body["spec"])
        revision = revision_of(body["spec"], self.config.runtime_image)
        references = References()
        runtime = spec.runtime
        if (
            spec.model.credentials_secret
            or runtime.auth_token
            or runtime.tls_secret
            or spec.model.uri.startswith("pvc://")
        ):
            references = await asyncio.to_thread(check_references, self.kube, owner.namespace, spec)
        invalid = references.problem
        routable = children.routable_pods()
        states = tuple(
            revision_state(d, [p for p in children.pods if _revision(p) == _revision(d)], routable)
            for d in children.by_kind.get("Deployment", [])
        )
        if waiting := unscheduled_gpu_products(states):
            absent = await asyncio.to_thread(products_not_offered, self.kube, waiting)
            states = with_products_not_offered(states, absent)
        annotations = metadata.get("annotations") or {}
        inp = RolloutInput(
            spec=spec,
            raw_spec=body["spec"],
            desired=revision,
            state=state_from_status(body.get("status") or {}),
            observed={s.revision: revision_view(s) for s in states},
            annotations=frozenset(a for a in ACTIONS if a in annotations),
            now=self.clock(),
        )
        if invalid:
            # Keep serving what runs; change nothing until the spec can be realized.
            inp = replace(inp, annotations=frozenset())
        context = RenderContext(
            self.config,
            self.service_monitor_available,
            self.prometheus_rule_available,
            references.tls_trust_key,
        )
        planned = plan_rollout(inp)
        looked_up: dict[tuple[str, str], JSON | None] = {}
        conflict = ""
        wanted: list[JSON] = []
        if not invalid:
            wanted = [stamp(m) for m in render_plan(owner, spec, planned, context)]
            conflict = await self.child_conflict(owner, wanted, children, looked_up)
        if conflict:
            # As for an invalid spec, and no check runs against an object not ours.
            plan = plan_rollout(replace(inp, annotations=frozenset()))
        else:
            plan = await self.plan(owner, spec, inp, planned)
        LOG.debug(
            "planned %s/%s at %s: stable=%s canary=%s step=%s aborted=%s actions=%s handled=%s",
            owner.namespace,
            owner.name,
            metadata.get("resourceVersion"),
            plan.state.stable,
            plan.state.canary,
            plan.state.step,
            plan.state.aborted_revision,
            sorted(inp.annotations),
            plan.handled,
        )
        observed = Observed(
            generation=int(metadata.get("generation", 1)),
            revision=revision,
            revisions=states,
            previous_status=dict(body.get("status") or {}),
            invalid_spec=invalid,
            child_conflict=conflict,
            drift=self.drift(owner, spec, plan.state.stable, body.get("status") or {}),
        )
        # Record the decision before acting on it, so a restart resumes from it.
        written = await self.report_status(body, owner, spec, observed, plan)
        before = body
        if written:
            self._remember(written)
            body = written
        if not invalid and not conflict:
            if plan is not planned:  # a check's result changed the plan
                wanted = [stamp(m) for m in render_plan(owner, spec, plan, context)]
            await self.apply_children(before, owner, plan, wanted, children, looked_up)
        if plan.handled:
            written = await asyncio.to_thread(
                self.kube.merge_patch,
                _as_ref(body),
                {"metadata": {"annotations": {a: None for a in plan.handled}}},
            )
            self._remember(written)
        for type_, reason, message in plan.events:
            self.emit(body, type_, reason, message)

    async def plan(
        self, owner: Owner, spec: ModelDeploymentSpec, inp: RolloutInput, planned: Plan
    ) -> Plan:
        """Plans with the analysis or smoke test result the plan asks for, once that check
        has ended. Checks run beside the reconciles (`modelroll.checks`): while one runs,
        the plan without its result (`planned`) stands, and its end wakes this object."""
        key = (owner.namespace, owner.name)
        canary = spec.rollout.canary
        if planned.needs_analysis and canary and canary.analysis:
            analysis = canary.analysis
            candidate, stable = planned.state.canary, planned.state.stable
            config = self.config
            # What the operator's configuration refuses is decided here, before a check
            # starts: such an analysis sends nothing to any Prometheus.
            result = refusal(
                analysis,
                config.prometheus_endpoints,
                config.prometheus_default,
                config.allow_custom_checks,
            )
            url = config.prometheus_url(analysis.prometheus_endpoint)
            if result is None and url is not None:
                prometheus = PrometheusClient(url)
                result = self.checks.result(
                    key,
                    # The step's start time tells a retried (or restarted) step from the one
                    # before it: a result of the aborted attempt is never read by the new one.
                    # Whole seconds, as the status stores it.
                    (
                        "analysis",
                        candidate,
                        planned.state.step,
                        int(planned.state.step_started_at),
                    ),
                    lambda: analyze(
                        analysis,
                        owner.namespace,
                        owner.name,
                        candidate,
                        stable,
                        prometheus.query,
                        lambda promql: prometheus.query_by(promql, BIN_LABEL),
                    ),
                )
            if result is not None:
                planned = plan_rollout(replace(inp, analysis=result))
        blue_green = spec.rollout.blue_green
        if planned.needs_smoke_test and blue_green:
            url = self.config.service_url(
                f"{owner.name}-preview",
                owner.namespace,
                service_port(spec),
                https=bool(spec.runtime.tls_secret),
            )
            smoke = self.checks.result(
                key, ("smoke", inp.desired), lambda: smoke_test(self.kube, owner, spec, url)
            )
            if smoke is not None:
                planned = plan_rollout(replace(inp, smoke=smoke))
        return planned

    async def child_conflict(
        self,
        owner: Owner,
        desired: list[JSON],
        children: Children,
        looked_up: dict[tuple[str, str], JSON | None],
    ) -> str:
        """The message naming the first desired child whose name an object we do not own
        holds, or "". The watch caches show the children we labelled; only a name missing
        there costs a GET (once per reconcile, kept in `looked_up`), as before a create."""
        for manifest in desired:
            found = await self._existing(manifest, children, looked_up)
            if found is not None and not controlled_by(found, owner.uid):
                return conflict_message(manifest)
        return ""

    async def _existing(
        self, manifest: JSON, children: Children, looked_up: dict[tuple[str, str], JSON | None]
    ) -> JSON | None:
        kind, metadata = manifest["kind"], manifest["metadata"]
        cached = children.find(kind, metadata["name"])
        if cached is not None:
            return cached
        if (kind, metadata["name"]) not in looked_up:
            path = object_path(
                manifest["apiVersion"], kind, metadata["namespace"], metadata["name"]
            )
            looked_up[(kind, metadata["name"])] = await asyncio.to_thread(self.kube.get, path)
        return looked_up[(kind, metadata["name"])]

    async def apply_children(
        self,
        body: JSON,
        owner: Owner,
        plan: Plan,
        desired: list[JSON],
        children: Children,
        looked_up: dict[tuple[str, str], JSON | None],
    ) -> None:
        """Writes the rendered children that differ from the cache, and prunes ours that
        the plan no longer wants."""
        for manifest in desired:
            observed = children.find(manifest["kind"], manifest["metadata"]["name"])
            if not needs_apply(manifest, observed):
                continue
            existing = await self._existing(manifest, children, looked_up)
            if existing is not None and not controlled_by(existing, owner.uid):
                # Named only by the plan after its checks: reported on the next reconcile.
                LOG.warning("%s: not applied", conflict_message(manifest))
                continue
            created = await asyncio.to_thread(self.kube.apply, manifest)
            foreign = foreign_keys_patch(manifest, observed)
            if foreign is not None:
                await asyncio.to_thread(self.kube.merge_patch, manifest, foreign)
            # A lagging watch cache also shows no child: only the server knows it was gone.
            if created and existed_before(body, manifest):
                self.emit(
                    body,
                    "Normal",
                    "ChildRestored",
                    f"recreated {manifest['kind']} {manifest['metadata']['name']} after it was deleted",
                )
            elif observed is not None and _spec_hash(observed) == _spec_hash(manifest):
                self.emit(
                    body,
                    "Normal",
                    "DriftReverted",
                    f"reverted a manual change to {manifest['kind']} {manifest['metadata']['name']}",
                )
        wanted = {(m["kind"], m["metadata"]["name"]) for m in desired}
        wanted |= {("Deployment", deployment_name(owner.name, r)) for r in plan.keep}
        for kind in ("Deployment", *SHARED_KINDS):
            for child in children.by_kind.get(kind, []):
                name = child["metadata"]["name"]
                if (
                    (kind, name) not in wanted
                    and not child["metadata"].get("deletionTimestamp")
                    and controlled_by(child, owner.uid)  # a label alone does not make it ours
                ):
                    await asyncio.to_thread(
                        self.kube.delete, child["apiVersion"], kind, owner.namespace, name
                    )

    def drift(
        self, owner: Owner, spec: ModelDeploymentSpec, stable: str, status: JSON
    ) -> Condition | None:
        """The DriftDetected condition (None without spec.monitoring.drift): a new evaluation
        once per intervalSeconds, run beside the reconciles; the last one meanwhile."""
        settings = spec.drift
        if settings is None:
            return None
        if not stable:
            return None  # nothing serves yet: the condition comes with the first stable revision
        endpoint = settings.prometheus_endpoint or self.config.prometheus_default
        url = self.config.prometheus_url(settings.prometheus_endpoint)
        if endpoint not in self.config.prometheus_endpoints or url is None:
            return drift_refused(endpoint, sorted(self.config.prometheus_endpoints))
        key = (owner.namespace, owner.name)
        what = ("drift", stable, int(self.clock() // settings.interval_seconds), settings)
        if self._drift_done.get(key) != what:
            prometheus = PrometheusClient(url)
            result = self.drift_checks.result(
                key,
                what,
                lambda: measure_drift(
                    settings, owner.namespace, owner.name, stable, prometheus.query_by_labels
                ),
            )
            if result is not None:
                self._drift_done[key] = what
                return cast(Condition, result)
        return previous_drift(status, stable)

    async def report_status(
        self, body: JSON, owner: Owner, spec: ModelDeploymentSpec, observed: Observed, plan: Plan
    ) -> JSON | None:
        """Writes the status if it changed; returns the object as written."""
        previous = observed.previous_status
        status = compute_status(
            observed,
            plan,
            url=service_url(owner, spec, self.config),
            selector=f"{DEPLOYMENT_LABEL}={owner.name}",
            now=now_iso(),
        )
        self.export_weights(owner, status)
        if plan.state.aborted_revision and plan.state.aborted_revision != (
            previous.get("rollout") or {}
        ).get("abortedRevision"):
            ROLLOUT_ABORTS.labels(owner.namespace, owner.name, plan.state.abort_reason).inc()
        if ignoring_times(status) == ignoring_times(previous):
            return None
        written = await asyncio.to_thread(
            self.kube.patch_status, owner.namespace, owner.name, status_patch(previous, status)
        )
        planned = {reason for _, reason, _ in plan.events}  # the plan already tells these
        for type_, reason, message in transition_events(previous, status):
            if reason not in planned:
                self.emit(body, type_, reason, message)
        return written

    def export_weights(self, owner: Owner, status: JSON) -> None:
        key = (owner.namespace, owner.name)
        current = {(r["name"], r["role"]) for r in status.get("revisions", [])}
        for revision, role in self._weights_reported.get(key, set()) - current:
            TRAFFIC_WEIGHT.remove(owner.namespace, owner.name, revision, role)
        for item in status.get("revisions", []):
            TRAFFIC_WEIGHT.labels(owner.namespace, owner.name, item["name"], item["role"]).set(
                item["weight"]
            )
        self._weights_reported[key] = current
        for condition in status.get("conditions", []):
            CONDITION.labels(owner.namespace, owner.name, condition["type"]).set(
                1 if condition["status"] == "True" else 0
            )


def _version(body: JSON) -> int:
    """etcd's resourceVersions are integers that grow; -1 where one is not (never preferred)."""
    version = str(body["metadata"].get("resourceVersion", ""))
    return int(version) if version.isdigit() else -1


def _as_ref(body: JSON) -> JSON:
    return {
        "apiVersion": body.get("apiVersion", f"{GROUP}/{VERSION}"),
        "kind": body.get("kind", "ModelDeployment"),
        "metadata": {"name": body["metadata"]["name"], "namespace": body["metadata"]["namespace"]},
    }


def _revision(obj: JSON) -> str:
    return str(obj["metadata"].get("labels", {}).get(REVISION_LABEL, ""))


def _spec_hash(obj: JSON) -> str:
    return str(obj["metadata"].get("annotations", {}).get("modelroll.io/spec-hash", ""))
