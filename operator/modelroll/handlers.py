"""kopf wiring: settings, watch caches (indexes), and the triggers that call one reconcile."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from modelroll import GROUP, PLURAL, VERSION, kube_transport
from modelroll.api import rbac
from modelroll.cached import (
    pack_child,
    pack_model_deployment,
    slim_endpoint_slice,
    slim_pod,
    unpack,
)
from modelroll.coalesce import Coalescer
from modelroll.config import config_from_env
from modelroll.kube import ApiError, Kube, RateLimiter
from modelroll.kube_transport import connect
from modelroll.metrics import (
    API_REQUESTS,
    MODEL_DEPLOYMENTS,
    RECONCILE_DURATION,
    RECONCILE_ERRORS,
    RECONCILES,
    WATCH_EVENTS,
    serve_metrics,
)
from modelroll.reconcile import Children, Reconciler
from modelroll.render import PREVIEW_SERVICE_LABEL
from modelroll.spec import JSON

MANAGED = {"app.kubernetes.io/managed-by": "modelroll"}
OWNER_LABEL = f"{GROUP}/deployment"
CHILD_KINDS = {
    "Deployment": ("apps", "v1", "deployments"),
    "Service": ("", "v1", "services"),
    "ServiceAccount": ("", "v1", "serviceaccounts"),
    "HorizontalPodAutoscaler": ("autoscaling", "v2", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("policy", "v1", "poddisruptionbudgets"),
    "NetworkPolicy": ("networking.k8s.io", "v1", "networkpolicies"),
    # Without the Gateway API CRDs kopf reports this resource unresolved and skips it.
    "HTTPRoute": ("gateway.networking.k8s.io", "v1", "httproutes"),
}


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = 8
    # Our resources are known up front; scanning would need list/watch on every CRD. Only
    # namespace patterns (globs) need it, to discover the namespaces that match.
    operator_config = config_from_env()
    settings.scanning.disabled = not operator_config.namespace_patterns()
    # Every watch event runs a handler; kopf's per-object "succeeded" lines would flood the log.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # One thread per API call in flight: reconciles, Events and reference checks share them.
    threads = operator_config.max_concurrent_reconciles + 4
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(threads))
    kube = Kube(
        connect(pool_size=threads),
        RateLimiter(operator_config.api_qps, operator_config.api_burst),
        lambda method, resource, code: API_REQUESTS.labels(method, resource, str(code)).inc(),
    )
    reconciler = Reconciler(kube, operator_config, emit=_event_poster(kube))
    reconciler.service_monitor_available = await asyncio.to_thread(
        _crd_exists, kube, rbac.SERVICE_MONITOR_CRD
    )
    reconciler.prometheus_rule_available = await asyncio.to_thread(
        _crd_exists, kube, rbac.PROMETHEUS_RULE_CRD
    )
    memo.reconciler = reconciler
    memo.config = operator_config
    memo.stale_since = None
    serve_metrics(operator_config.metrics_port, operator_config.metrics_address)


def _crd_exists(kube: Kube, name: str) -> bool:
    try:
        return kube.exists(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    except ApiError:
        return False  # without RBAC to read CRDs we simply do not render ServiceMonitors


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's watches use the credentials the reconciles use (kopf asks again after a 401,
    which rereads a rotated service-account token)."""
    return kube_transport.login().info


def _event_poster(kube: Kube) -> Any:
    """Posts Events in the background: an Event that fails must never stop a reconcile."""
    log = logging.getLogger(__name__)

    def post(body: JSON, type_: str, reason: str, message: str) -> None:
        def send() -> None:
            try:
                kube.post_event(body, type_, reason, message)
            except Exception as error:
                if isinstance(error, ApiError) and error.namespace_terminating:
                    return  # as client-go's event recorder does
                log.warning(
                    "could not post event %s for %s: %s", reason, body["metadata"]["name"], error
                )

        asyncio.get_running_loop().run_in_executor(None, send)

    return post


# Watch caches. Each maps (namespace, ModelDeployment name) to the objects seen for it.


@kopf.index(GROUP, VERSION, PLURAL)
def model_deployments(namespace: str, name: str, body: kopf.Body, **_: Any) -> JSON:
    WATCH_EVENTS.labels("ModelDeployment").inc()
    return {(namespace, name): pack_model_deployment(body)}


def _child_index(kind: str) -> None:
    group, version, plural = CHILD_KINDS[kind]

    def index(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> JSON:
        return {(namespace, labels[OWNER_LABEL]): pack_child(body)}

    kopf.index(
        group,
        version,
        plural,
        id=f"children_{plural}",
        labels={**MANAGED, OWNER_LABEL: kopf.PRESENT},
    )(index)


for _kind in CHILD_KINDS:
    _child_index(_kind)


@kopf.index("", "v1", "pods", labels={**MANAGED, OWNER_LABEL: kopf.PRESENT})
def children_pods(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> JSON:
    return {(namespace, labels[OWNER_LABEL]): slim_pod(body)}


# The EndpointSlice controller copies a Service's labels onto its slices, ours included:
# only the preview Services' slices are watched (the blue-green flip reads no others).
ENDPOINT_SLICES = ("discovery.k8s.io", "v1", "endpointslices")
PREVIEW_SLICES = {**MANAGED, OWNER_LABEL: kopf.PRESENT, PREVIEW_SERVICE_LABEL: "true"}


@kopf.index(*ENDPOINT_SLICES, labels=PREVIEW_SLICES)
def children_endpointslices(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> JSON:
    return {(namespace, labels[OWNER_LABEL]): slim_endpoint_slice(body)}


def _load(key: tuple[str, str], indexes: dict[str, kopf.Index[Any, Any]]):  # type: ignore[no-untyped-def]
    def load() -> tuple[JSON | None, Children]:
        bodies = [unpack(b.packed) for b in indexes["model_deployments"].get(key, [])]
        children = Children(
            by_kind={
                kind: [unpack(c) for c in indexes[f"children_{plural}"].get(key, [])]
                for kind, (_, _, plural) in CHILD_KINDS.items()
            },
            pods=list(indexes["children_pods"].get(key, [])),
            endpoint_slices=list(indexes["children_endpointslices"].get(key, [])),
        )
        if not bodies or bodies[0]["metadata"].get("deletionTimestamp"):
            return None, children
        return bodies[0], children

    return load


async def _reconcile(key: tuple[str, str], memo: kopf.Memo, indexes: dict[str, Any]) -> None:
    memo.indexes_ready.set()
    started = time.perf_counter()
    try:
        ran = await memo.reconciler.trigger(key, _load(key, indexes))
    except ApiError as error:
        if error.namespace_terminating or error.namespace_gone or error.is_not_found(GROUP, PLURAL):
            # Deleted while we worked (its children's deletion is what woke us, and a
            # coalesced look may come after the namespace is gone): nothing to restore.
            # Anything else that is missing stays an error.
            logging.getLogger(__name__).info("%s/%s is being deleted", *key)
            return
        RECONCILES.labels("error").inc()
        RECONCILE_ERRORS.labels(f"http_{error.status}").inc()
        raise
    except Exception as error:
        RECONCILES.labels("error").inc()
        RECONCILE_ERRORS.labels(type(error).__name__).inc()
        raise
    if ran:
        RECONCILES.labels("success").inc()
        RECONCILE_DURATION.observe(time.perf_counter() - started)


def _indexes(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k.startswith(("children_", "model_deployments"))}


def trigger_of(body: kopf.Body) -> tuple[Any, ...]:
    """What, when it changes, calls for a reconcile: the object's identity, its spec (by its
    generation), its annotations (the rollout actions, the pause) and its deletion. A change
    of status alone (ours, mostly) does not."""
    metadata = body.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    return (
        metadata.get("uid"),
        metadata.get("generation"),
        metadata.get("deletionTimestamp"),
        tuple(sorted(annotations.items())),
    )


RETRY_SECONDS = 5.0


# A watch event handler, not kopf's create/update/resume handlers: those keep a copy of the
# spec in an annotation (one more write per object, and a diff of every event), which a
# level-triggered reconcile never reads. The initial listing, at a start or a new leader,
# reaches this handler too, which resumes every object.
@kopf.on.event(GROUP, VERSION, PLURAL)
async def model_deployment_changed(
    event: JSON, namespace: str, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    key = (namespace, name)
    looked: dict[tuple[str, str], tuple[Any, ...]] = memo.looked
    if event.get("type") == "DELETED":
        looked.pop(key, None)
    elif looked.get(key) == (trigger := trigger_of(body)):
        return
    else:
        looked[key] = trigger
    # Not awaited: kopf's worker for this object, and the whole event it holds (managedFields
    # included), would wait with it for a reconcile slot in a burst of a thousand creations;
    # the reconcile reads the compact copy in the index instead.
    memo.reconcile_soon(key, "reconcile")


def reconcile_soon_for(
    memo: kopf.Memo, indexes: dict[str, Any]
) -> Callable[[tuple[str, str], str], None]:
    """A function that starts reconciling a key in a task of its own. A failure is logged,
    forgets the trigger looked at (so the next event reconciles again), and looks again a
    little later: kopf would not retry, and the resync is slower."""
    running: set[asyncio.Task[None]] = set()

    async def reconcile(key: tuple[str, str], why: str) -> None:
        if not await _reconcile_logged(key, memo, indexes, why):
            memo.looked.pop(key, None)
            asyncio.get_running_loop().call_later(RETRY_SECONDS, memo.coalescer.schedule, key)

    def soon(key: tuple[str, str], why: str) -> None:
        task = asyncio.create_task(reconcile(key, why))
        running.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(running.discard)

    return soon


async def resync_forever(memo: kopf.Memo, indexes: dict[str, Any], interval: float) -> None:
    """Re-reconciles every ModelDeployment periodically: pauses, analysis intervals and
    deadlines pass without any watch event. One task for all objects, and unlike kopf
    timers it needs no finalizer, so deleting a ModelDeployment never waits for us."""
    # kopf runs resource handlers only once every index is filled; so do we.
    await memo.indexes_ready.wait()
    while True:
        await asyncio.sleep(interval)
        for key in list(indexes["model_deployments"]):
            await _reconcile_logged(key, memo, indexes, "resync")
        export_condition_counts(indexes["model_deployments"])


async def _reconcile_logged(
    key: tuple[str, str], memo: kopf.Memo, indexes: dict[str, Any], why: str
) -> bool:
    """Whether the reconcile ended without an error (which is logged, not raised)."""
    try:
        await _reconcile(key, memo, indexes)
    except Exception as error:  # one failing object must not stop the others
        logging.getLogger(__name__).warning("%s of %s/%s failed: %s", why, *key, error)
        return False
    return True


@kopf.on.startup()
async def start_resync(memo: kopf.Memo, **kwargs: Any) -> None:
    memo.indexes_ready = asyncio.Event()
    memo.looked = {}  # per ModelDeployment, trigger_of() at its last reconcile
    indexes = _indexes(kwargs)
    memo.resync = asyncio.create_task(
        resync_forever(memo, indexes, memo.config.timer_interval_seconds)
    )
    memo.reconcile_soon = reconcile_soon_for(memo, indexes)

    # A smoke test or analysis that ends reconciles its ModelDeployment at once, so its
    # result is recorded without waiting for the next resync.
    def wake(key: tuple[str, str]) -> None:
        memo.reconcile_soon(key, "reconcile after a check")

    memo.reconciler.checks.wake = wake
    memo.reconciler.drift_checks.wake = wake

    async def look_again(key: tuple[str, str]) -> None:
        await _reconcile_logged(key, memo, indexes, "reconcile after a child changed")

    memo.coalescer = Coalescer(look_again, memo.config.coalesce_seconds)


@kopf.on.cleanup()
async def stop_resync(memo: kopf.Memo, **_: Any) -> None:
    memo.resync.cancel()
    memo.coalescer.shutdown()
    memo.reconciler.checks.shutdown()
    memo.reconciler.drift_checks.shutdown()


def _on_child_event(
    event: JSON, namespace: str, labels: kopf.Labels, memo: kopf.Memo, kind: str
) -> None:
    WATCH_EVENTS.labels(kind).inc()
    owner = labels.get(OWNER_LABEL)
    if owner and event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
        # The burst of events one change of a child brings is one reconcile, a moment later.
        memo.coalescer.schedule((namespace, owner))


def _child_event_handler(kind: str, group: str, version: str, plural: str) -> None:
    async def handler(
        event: JSON, namespace: str, labels: kopf.Labels, memo: kopf.Memo, **_: Any
    ) -> None:
        _on_child_event(event, namespace, labels, memo, kind)

    labels = (
        PREVIEW_SLICES if plural == "endpointslices" else {**MANAGED, OWNER_LABEL: kopf.PRESENT}
    )
    kopf.on.event(group, version, plural, id=f"on_{plural}", labels=labels)(handler)


WATCHED_ONLY = {"Pod": ("", "v1", "pods"), "EndpointSlice": ENDPOINT_SLICES}
for _kind, (_group, _version, _plural) in {**CHILD_KINDS, **WATCHED_ONLY}.items():
    _child_event_handler(_kind, _group, _version, _plural)


@kopf.on.probe(id="modeldeployments")
def count_by_condition(model_deployments: kopf.Index[Any, Any], **_: Any) -> dict[str, int]:
    """Reports ModelDeployments by condition on /healthz."""
    return export_condition_counts(model_deployments)


def export_condition_counts(model_deployments: kopf.Index[Any, Any]) -> dict[str, int]:
    """Counts ModelDeployments by condition and exports the counts as a gauge."""
    tally: Tally[tuple[str, str]] = Tally()
    for key in model_deployments:
        for cached in model_deployments[key]:
            tally.update(cached.conditions)
    MODEL_DEPLOYMENTS.clear()
    for (type_, status), count in tally.items():
        MODEL_DEPLOYMENTS.labels(type_, status).set(count)
    return {f"{t}={s}": n for (t, s), n in tally.items()}


@kopf.on.probe(id="watch")
async def watch_is_fresh(memo: kopf.Memo, model_deployments: kopf.Index[Any, Any], **_: Any) -> str:
    """Fails when the apiserver holds ModelDeployment versions the watch never delivered."""
    # Named namespaces are listed one by one: a namespaced install grants nothing cluster-wide.
    paths = (
        [f"/apis/{GROUP}/{VERSION}/namespaces/{n}/{PLURAL}" for n in memo.config.namespaces]
        if memo.config.exact_namespaces()
        else [f"/apis/{GROUP}/{VERSION}/{PLURAL}"]
    )
    items: list[JSON] = []
    for path in paths:
        try:
            listed = await asyncio.to_thread(
                memo.reconciler.kube.request, "GET", path, None, [("limit", "100")]
            )
        except ApiError as error:
            # Fail the probe at once (no retries): a restart re-discovers a late-installed CRD.
            raise kopf.PermanentError(f"cannot list ModelDeployments: {error}") from error
        items += listed.get("items", [])
    versions = {
        key: c.resource_version for key in model_deployments for c in model_deployments[key]
    }
    patterns = memo.config.namespaces or ("*",)
    missing = [
        item["metadata"]["name"]
        for item in items
        if any(fnmatch.fnmatch(item["metadata"]["namespace"], p) for p in patterns)
        if versions.get((item["metadata"]["namespace"], item["metadata"]["name"]))
        != item["metadata"]["resourceVersion"]
    ]
    if not missing:
        memo.stale_since = None
        return "fresh"
    memo.stale_since = memo.stale_since or time.monotonic()
    lag = time.monotonic() - memo.stale_since
    if lag > memo.config.watch_stall_seconds:
        raise kopf.PermanentError(f"watch stalled for {lag:.0f}s: {len(missing)} objects behind")
    return f"catching up on {len(missing)} objects"
