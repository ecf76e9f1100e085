"""Pure status derivation: observed children in, ModelDeployment status out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from modelplane.conditions import Condition, merge_conditions
from modelplane.spec import JSON

WAITING_REASONS = {
    "CrashLoopBackOff": "CrashLoopBackOff",
    "ImagePullBackOff": "ImagePullBackOff",
    "ErrImagePull": "ImagePullBackOff",
    "InvalidImageName": "ImagePullBackOff",
    "CreateContainerConfigError": "CreateContainerConfigError",
}
GPU_SHORTAGE = re.compile(r"Insufficient (nvidia\.com/[\w.\-]*[\w\-])")


@dataclass(frozen=True)
class PodProblem:
    reason: str
    message: str


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


def pod_problem(pod: JSON) -> PodProblem | None:
    """The most specific reason a pod is not serving, if it has one."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            message = str(condition.get("message", ""))
            shortage = GPU_SHORTAGE.search(message)
            if shortage:
                return PodProblem(
                    "InsufficientGPU", f"no node has a free {shortage.group(1)}: {message}"
                )
            return PodProblem("Unschedulable", message)
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("lastState") or {}).get("terminated") or {}
        recovered = container.get("ready") is True
        if not recovered and str(terminated.get("message", "")).startswith("ModelLoadFailed"):
            return PodProblem("ModelLoadFailed", str(terminated["message"]).strip())
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = WAITING_REASONS.get(str(waiting.get("reason", "")))
        if reason:
            return PodProblem(reason, str(waiting.get("message", waiting.get("reason"))))
    return None


def revision_state(deployment: JSON, pods: list[JSON]) -> RevisionState:
    metadata = deployment["metadata"]
    status = deployment.get("status") or {}
    spec = deployment.get("spec") or {}
    desired = int(spec.get("replicas", 1))
    deadline_exceeded = any(
        c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
        for c in status.get("conditions") or []
    )
    problems = tuple(p for p in (pod_problem(pod) for pod in pods) if p is not None)
    return RevisionState(
        name=metadata["name"],
        revision=metadata.get("labels", {}).get("modelplane.io/revision", ""),
        version=metadata.get("annotations", {}).get("modelplane.io/model-version", ""),
        desired=desired,
        replicas=int(status.get("replicas", 0)),
        ready=int(status.get("readyReplicas", 0)),
        available=int(status.get("availableReplicas", 0)),
        updated=int(status.get("updatedReplicas", 0)),
        up_to_date=int(status.get("observedGeneration", 0)) >= int(metadata.get("generation", 1)),
        deadline_exceeded=deadline_exceeded,
        problems=problems,
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


def _problem(revision: RevisionState | None) -> PodProblem | None:
    if revision is None:
        return None
    if revision.problems:
        return revision.problems[0]
    if revision.deadline_exceeded:
        return PodProblem(
            "ProgressDeadlineExceeded",
            f"revision {revision.revision} did not become available within the progress deadline",
        )
    return None


def rolling_conditions(observed: Observed) -> list[Condition]:
    current = next((r for r in observed.revisions if r.revision == observed.revision), None)
    older = [r for r in observed.revisions if r.revision != observed.revision]
    serving_older = [r for r in older if r.available > 0]
    problem = _problem(current)

    if observed.invalid_spec:
        ready = Condition("Ready", False, "InvalidSpec", observed.invalid_spec)
    elif current and current.complete:
        ready = Condition(
            "Ready",
            True,
            "RevisionAvailable",
            f"revision {current.revision} has {current.available}/{current.desired} replicas available",
        )
    elif serving_older:
        names = ", ".join(r.revision for r in serving_older)
        ready = Condition(
            "Ready",
            True,
            "PreviousRevisionServing",
            f"revision {names} serves while {observed.revision} rolls out",
        )
    elif problem:
        ready = Condition("Ready", False, problem.reason, problem.message)
    elif current is None:
        ready = Condition(
            "Ready",
            False,
            "DeploymentPending",
            f"the Deployment for revision {observed.revision} is not observed yet",
        )
    else:
        ready = Condition(
            "Ready",
            False,
            "PodsNotReady",
            f"revision {current.revision} has {current.available}/{current.desired} replicas available",
        )

    if current and current.complete and not older:
        progressing = Condition(
            "Progressing",
            False,
            "RolloutComplete",
            f"revision {observed.revision} is fully rolled out",
        )
    elif problem:
        progressing = Condition("Progressing", False, "RolloutStalled", problem.message)
    else:
        available = current.available if current else 0
        desired = current.desired if current else 0
        progressing = Condition(
            "Progressing",
            True,
            "RollingOut",
            f"revision {observed.revision}: {available}/{desired} replicas available",
        )

    if observed.invalid_spec:
        degraded = Condition("Degraded", True, "InvalidSpec", observed.invalid_spec)
    elif problem:
        degraded = Condition("Degraded", True, problem.reason, problem.message)
    else:
        degraded = Condition("Degraded", False, "AsExpected", "no failures observed")
    return [ready, progressing, degraded]


def compute_status(observed: Observed, url: str, selector: str, now: str) -> JSON:
    """The whole `.status` of a ModelDeployment under the Rolling strategy."""
    previous = observed.previous_status
    weights = effective_weights(observed.revisions)
    current = next((r for r in observed.revisions if r.revision == observed.revision), None)
    if current and current.complete:
        stable = current.revision
    else:
        live = {r.revision for r in observed.revisions if r.available > 0}
        stable = (
            previous.get("stableRevision", "") if previous.get("stableRevision") in live else ""
        )
    revisions = [
        {
            "name": r.revision,
            "version": r.version,
            "role": "stable"
            if r.revision == stable
            else ("canary" if r.revision == observed.revision else "old"),
            "replicas": r.replicas,
            "readyReplicas": r.ready,
            "weight": weights[r.revision],
        }
        for r in sorted(observed.revisions, key=lambda r: r.revision != observed.revision)
    ]
    status: JSON = {
        "observedGeneration": observed.generation,
        "conditions": merge_conditions(
            list(previous.get("conditions") or []),
            rolling_conditions(observed),
            observed.generation,
            now,
        ),
        "url": url,
        "selector": selector,
        "replicas": sum(r.replicas for r in observed.revisions),
        "readyReplicas": sum(r.ready for r in observed.revisions),
        "revisions": revisions,
        "traffic": " ".join(f"{r['name']}:{r['weight']}" for r in revisions) or "none",
    }
    if stable:
        status["stableRevision"] = stable
    return status
