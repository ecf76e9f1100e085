"""Pure status derivation: observed children in, ModelDeployment status out."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from modelroll.conditions import Condition, merge_conditions
from modelroll.problems import (
    GPU_PRODUCT_LABEL,
    SCHEDULING_REASONS,
    PodProblem,
    gpu_not_offered,
    pod_problem,
)
from modelroll.rollout import Plan, RevisionView
from modelroll.rollout_state import state_to_status
from modelroll.spec import JSON


@dataclass(frozen=True)
class RevisionState:
    """One revision's Deployment as observed."""

    name: str
    revision: str
    version: str
    desired: int
    replicas: int
    ready: int
    available: int
    updated: int
    up_to_date: bool
    deadline_exceeded: bool
    problems: tuple[PodProblem, ...] = ()
    gpu_product: str = ""  # the GPU product its pods select, if any
    serving: int = 0  # its pods listed ready in an EndpointSlice of one of our Services

    @property
    def complete(self) -> bool:
        return self.up_to_date and self.updated >= self.desired and self.available >= self.desired


@dataclass(frozen=True)
class Observed:
    """What reconcile saw, reduced to what status needs."""

    generation: int
    revision: str
    revisions: tuple[RevisionState, ...]
    previous_status: JSON = field(default_factory=dict)
    invalid_spec: str = ""
    child_conflict: str = ""  # a child's name is taken by an object this one does not own
    drift: Condition | None = None  # DriftDetected, with spec.monitoring.drift


def revision_state(
    deployment: JSON, pods: list[JSON], routable: frozenset[str] = frozenset()
) -> RevisionState:
    """`pods` are the revision's pods; `routable`, the names of the pods our Services'
    EndpointSlices list as ready."""
    metadata = deployment["metadata"]
    status = deployment.get("status") or {}
    spec = deployment.get("spec") or {}
    desired = int(spec.get("replicas", 1))
    deadline_exceeded = any(
        c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
        for c in status.get("conditions") or []
    )
    problems = tuple(p for p in (pod_problem(pod) for pod in pods) if p is not None)
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    return RevisionState(
        name=metadata["name"],
        revision=metadata.get("labels", {}).get("modelroll.io/revision", ""),
        version=metadata.get("annotations", {}).get("modelroll.io/model-version", ""),
        desired=desired,
        replicas=int(status.get("replicas", 0)),
        ready=int(status.get("readyReplicas", 0)),
        available=int(status.get("availableReplicas", 0)),
        updated=int(status.get("updatedReplicas", 0)),
        up_to_date=int(status.get("observedGeneration", 0)) >= int(metadata.get("generation", 1)),
        deadline_exceeded=deadline_exceeded,
        problems=problems,
        gpu_product=str((pod_spec.get("nodeSelector") or {}).get(GPU_PRODUCT_LABEL, "")),
        serving=sum(1 for pod in pods if pod["metadata"]["name"] in routable),
    )


def _unscheduled(state: RevisionState) -> bool:
    return any(p.reason in SCHEDULING_REASONS for p in state.problems)


def unscheduled_gpu_products(states: tuple[RevisionState, ...]) -> frozenset[str]:
    """The GPU products selected by revisions whose pods the scheduler cannot place: only
    for these is it worth asking whether any node offers the product at all."""
    return frozenset(s.gpu_product for s in states if s.gpu_product and _unscheduled(s))


def with_products_not_offered(
    states: tuple[RevisionState, ...], absent: frozenset[str]
) -> tuple[RevisionState, ...]:
    """Revisions waiting for a GPU product that no node has: that, not a shortage of free
    devices or some other scheduling failure, is their problem, and it does not pass."""
    return tuple(
        replace(
            s,
            problems=(
                gpu_not_offered(s.gpu_product),
                *(p for p in s.problems if p.reason not in SCHEDULING_REASONS),
            ),
        )
        if s.gpu_product in absent and _unscheduled(s)
        else s
        for s in states
    )


def effective_weights(revisions: tuple[RevisionState, ...]) -> dict[str, int]:
    """Traffic share per revision behind one Service: proportional to ready endpoints."""
    total = sum(r.ready for r in revisions)
    if total == 0:
        return {r.revision: 0 for r in revisions}
    weights = {r.revision: r.ready * 100 // total for r in revisions}
    # Hand the rounding remainder to the largest share, so the weights add up to 100.
    largest = max(revisions, key=lambda r: r.ready).revision
    weights[largest] += 100 - sum(weights.values())
    return weights


def revision_view(state: RevisionState) -> RevisionView:
    return RevisionView(
        revision=state.revision,
        replicas=state.desired,
        ready=state.ready,
        complete=state.complete,
        problem=state.problems[0] if state.problems else _deadline_problem(state),
        serving=state.serving,
    )


def _deadline_problem(state: RevisionState) -> PodProblem | None:
    if not state.deadline_exceeded:
        return None
    return PodProblem(
        "ProgressDeadlineExceeded",
        f"revision {state.revision} did not become available within the progress deadline",
    )


def traffic_weights(plan: Plan, revisions: tuple[RevisionState, ...]) -> dict[str, int]:
    """The effective share of each revision, from what actually has ready endpoints."""
    if plan.route_weights:
        ready = {r.revision for r in revisions if r.ready > 0}
        weights = {r.revision: plan.route_weights.get(r.revision, 0) for r in revisions}
        live = {k: v for k, v in weights.items() if k in ready}
        total = sum(live.values())
        if total == 0:
            return {r.revision: 0 for r in revisions}
        return {k: (live.get(k, 0) * 100 // total) for k in weights}
    if plan.service_revision is None:
        return effective_weights(revisions)
    return {
        r.revision: 100 if r.revision == plan.service_revision and r.ready > 0 else 0
        for r in revisions
    }


def _role(revision: str, plan: Plan) -> str:
    state = plan.state
    if revision == state.stable:
        return "stable"
    if revision == plan.preview_revision:
        return "preview"
    if revision == state.canary:
        return "canary"
    if revision == state.aborted_revision:
        return "aborted"
    return "old"


def conditions(observed: Observed, plan: Plan) -> list[Condition]:
    serving = plan.state.stable or observed.revision
    current = next((r for r in observed.revisions if r.revision == serving), None)
    problem = revision_view(current).problem if current else None
    others = [revision_view(r).problem for r in observed.revisions if r.revision != serving]
    other_problem = next((p for p in others if p), None)

    if observed.invalid_spec:
        ready = Condition("Ready", False, "InvalidSpec", observed.invalid_spec)
    elif observed.child_conflict:
        ready = Condition("Ready", False, "ChildConflict", observed.child_conflict)
    elif current and current.complete and (current.ready > 0 or current.desired == 0):
        ready = Condition(
            "Ready",
            True,
            "RevisionAvailable",
            f"revision {serving} serves with {current.ready}/{current.desired} replicas ready",
        )
    elif problem:
        ready = Condition("Ready", False, problem.reason, problem.message)
    elif current is None:
        ready = Condition(
            "Ready",
            False,
            "DeploymentPending",
            f"the Deployment for revision {serving} is not observed yet",
        )
    else:
        ready = Condition(
            "Ready",
            False,
            "PodsNotReady",
            f"revision {serving} has {current.available}/{current.desired} replicas available",
        )

    if observed.invalid_spec:
        degraded = Condition("Degraded", True, "InvalidSpec", observed.invalid_spec)
    elif observed.child_conflict:
        degraded = Condition("Degraded", True, "ChildConflict", observed.child_conflict)
    elif plan.degraded:
        degraded = plan.degraded
    elif problem or other_problem:
        found = problem or other_problem
        assert found is not None
        degraded = Condition("Degraded", True, found.reason, found.message)
    else:
        degraded = Condition("Degraded", False, "AsExpected", "no failures observed")
    return [ready, plan.progressing, degraded]


# Failures that waiting does not heal: Ready=False or Degraded=True with one of these reasons
# needs a change (to the spec, the cluster or an annotation) first. kstatus reads Stalled=True
# as Failed, so Flux fails at once instead of at its timeout. A shortage of free GPUs
# (InsufficientGPU), a crash loop or an image pull back-off may pass and stays InProgress,
# except that a revision past its progress deadline is Stalled, as kstatus's own rule for a
# Deployment says (Progressing=False, ProgressDeadlineExceeded: Failed).
STALLED_REASONS = frozenset({"InvalidSpec", "GPUNotOffered", "ProgressDeadlineExceeded"})
# Rollouts stopped until the spec changes or modelroll.io/retry is set (Progressing=False).
STOPPED_ROLLOUTS = frozenset({"RolloutAborted", "SmokeTestFailed"})


def _stall(ready: Condition, progressing: Condition, degraded: Condition) -> Condition | None:
    if not ready.status and ready.reason in STALLED_REASONS:
        return Condition("Stalled", True, ready.reason, ready.message)
    if not progressing.status and progressing.reason in STOPPED_ROLLOUTS:
        return Condition("Stalled", True, progressing.reason, progressing.message)
    if degraded.status and degraded.reason in STALLED_REASONS:
        return Condition("Stalled", True, degraded.reason, degraded.message)
    return None


def kstatus_conditions(
    ready: Condition, progressing: Condition, degraded: Condition
) -> list[Condition]:
    """Reconciling and Stalled, the abnormal-true conditions kstatus (Flux, kpt, cli-utils)
    reads, derived from our own: never both True, since kstatus takes the first True one."""
    stalled = _stall(ready, progressing, degraded)
    if stalled:
        return [
            Condition("Reconciling", False, stalled.reason, f"stalled: {stalled.message}"),
            stalled,
        ]
    if progressing.status:
        reconciling = Condition("Reconciling", True, progressing.reason, progressing.message)
    elif not ready.status:  # the serving revision is coming up or scaling up
        reconciling = Condition("Reconciling", True, ready.reason, ready.message)
    else:
        reconciling = Condition("Reconciling", False, "Reconciled", ready.message)
    return [
        reconciling,
        Condition("Stalled", False, "AsExpected", "no failure that needs a change"),
    ]


def compute_status(observed: Observed, plan: Plan, url: str, selector: str, now: str) -> JSON:
    """The whole `.status` of a ModelDeployment, derived from what was observed and planned."""
    previous = observed.previous_status
    weights = traffic_weights(plan, observed.revisions)
    ready, progressing, degraded = conditions(observed, plan)
    ordered = sorted(
        observed.revisions, key=lambda r: (r.revision != plan.state.stable, r.revision)
    )
    revisions = [
        {
            "name": r.revision,
            "version": r.version,
            "role": _role(r.revision, plan),
            "replicas": r.replicas,
            "readyReplicas": r.ready,
            "weight": weights.get(r.revision, 0),
        }
        for r in ordered
    ]
    status: JSON = {
        "observedGeneration": observed.generation,
        "conditions": merge_conditions(
            list(previous.get("conditions") or []),
            [
                ready,
                progressing,
                degraded,
                *kstatus_conditions(ready, progressing, degraded),
                *([observed.drift] if observed.drift else []),
            ],
            observed.generation,
            now,
        ),
        "url": url,
        "selector": selector,
        "replicas": sum(r.replicas for r in observed.revisions),
        "readyReplicas": sum(r.ready for r in observed.revisions),
        "revisions": revisions,
        "traffic": " ".join(f"{r['name']}:{r['weight']}" for r in revisions) or "none",
        **state_to_status(plan.state, plan.progressing.reason, plan.progressing.message),
    }
    return status
