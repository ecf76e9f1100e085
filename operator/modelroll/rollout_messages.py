"""What the rollout planner tells people: event texts and the Progressing / Degraded conditions.

The planner decides (which phase, what to wait for) and hands the decision here as data; every
human-readable sentence about a rollout is written in this module and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelroll.conditions import Condition
from modelroll.phases import Aborted, SmokeRecord
from modelroll.problems import PodProblem
from modelroll.rollout_actions import ABORT, PROMOTE, RETRY, ROLLBACK

Event = tuple[str, str, str]  # (type, reason, message)


# --- what a canary step waits for -------------------------------------------------------------


@dataclass(frozen=True)
class WaitingForReplicas:
    pass


@dataclass(frozen=True)
class Pausing:
    seconds_left: float


@dataclass(frozen=True)
class Inconclusive:
    message: str  # the analysis' own explanation
    next_in: float  # seconds until the next analysis
    deadline_in: float  # seconds until the canary is aborted if the analysis stays inconclusive


@dataclass(frozen=True)
class AnalysisDue:
    pass


CanaryWait = WaitingForReplicas | Pausing | Inconclusive | AnalysisDue


# --- what a blue-green preview waits for ------------------------------------------------------


@dataclass(frozen=True)
class PreviewNotReady:
    ready: int
    wanted: int


@dataclass(frozen=True)
class PreviewNotRouted:
    """Ready, but the preview Service's EndpointSlices do not list every pod as ready yet:
    a smoke test or a flip now could find no endpoint."""

    routed: int
    wanted: int


@dataclass(frozen=True)
class SmokeTestDue:
    pass


@dataclass(frozen=True)
class SmokeTestFailed:
    message: str


@dataclass(frozen=True)
class AwaitingPromotion:
    pass


PreviewWait = (
    PreviewNotReady | PreviewNotRouted | SmokeTestDue | SmokeTestFailed | AwaitingPromotion
)


# --- events -----------------------------------------------------------------------------------


def promoted(reason: str, revision: str) -> Event:
    return ("Normal", reason, f"revision {revision} is now stable")


def aborted(abort: Aborted) -> Event:
    return ("Warning", abort.reason, abort.message)


def started(kind: str, revision: str) -> Event:
    """`kind` is Rollout, Canary or Preview."""
    return ("Normal", f"{kind}Started", f"rolling out revision {revision} as {kind.lower()}")


def superseded(old: str, new: str) -> Event:
    return ("Normal", "RolloutSuperseded", f"revision {old} is replaced by {new} before promotion")


def cancelled(stable: str, canary: str) -> Event:
    return (
        "Normal",
        "RolloutCancelled",
        f"the spec returned to stable revision {stable}; {canary} is removed",
    )


def retried(revision: str) -> Event:
    return ("Normal", "RolloutRetried", f"retrying revision {revision}")


def promotion_requested(revision: str) -> Event:
    return ("Normal", "PromotionRequested", f"promoting {revision} on request")


def step_passed(step: int, steps: int, weight: int, why: str) -> Event:
    """`step` counts from 0."""
    return ("Normal", "CanaryStepPassed", f"step {step + 1}/{steps} at {weight}% passed: {why}")


def smoke_tested(smoke: SmokeRecord) -> Event:
    if smoke.passed:
        return ("Normal", "SmokeTestPassed", smoke.message)
    return ("Warning", "SmokeTestFailed", smoke.message)


def rollback_started(stable: str, target: str) -> Event:
    return ("Normal", "RollbackStarted", f"rolling back from {stable} to {target}")


def rollback_unavailable() -> Event:
    return ("Warning", "RollbackUnavailable", "no previous stable revision is recorded")


def scaled_down(revision: str) -> Event:
    return ("Normal", "RevisionScaledDown", f"removed old revision {revision}")


def action_ignored(action: str) -> Event:
    return ("Normal", "ActionIgnored", f"{action}: nothing to act on")


# --- abort messages (kept in the status) ------------------------------------------------------

NO_ANALYSIS = "no analysis configured"  # why a step passed without analysis


def abort_requested() -> str:
    return f"aborted by the {ABORT} annotation"


def not_ready(
    revision: str, ready: int, wanted: int, deadline: int, problem: PodProblem | None
) -> str:
    detail = f": {problem.reason}: {problem.message}" if problem else ""
    return f"revision {revision} had {ready}/{wanted} ready replicas after {deadline}s{detail}"


def inconclusive_too_long(step: int, steps: int, deadline: int, last: str) -> str:
    """`step` counts from 0; `last` is the last inconclusive analysis' message."""
    return (
        f"analysis of step {step + 1}/{steps} stayed inconclusive for more than {deadline}s "
        f"(progressDeadlineSeconds): {last}"
    )


def rolled_back(previous: str, target: str) -> str:
    return f"rolled back from {previous} to {target} by the {ROLLBACK} annotation"


# --- conditions -------------------------------------------------------------------------------


def first_rollout(revision: str, ready: int) -> Condition:
    return Condition(
        "Progressing", True, "RollingOut", f"revision {revision}: {ready} replicas ready"
    )


def complete(stable: str) -> Condition:
    return Condition(
        "Progressing",
        False,
        "RolloutComplete",
        f"revision {stable} is stable and serves all traffic",
    )


def held_after_abort(stable: str, abort: Aborted) -> tuple[Condition, Condition]:
    """Progressing and Degraded while an aborted revision waits for a spec change or a retry."""
    message = (
        f"revision {abort.revision} was aborted ({abort.reason}); stable "
        f"{stable} serves all traffic until the spec changes or {RETRY} is set"
    )
    return (
        Condition("Progressing", False, "RolloutAborted", message),
        Condition("Degraded", True, abort.reason, abort.message),
    )


def rolling_back(target: str) -> Condition:
    return Condition(
        "Progressing",
        True,
        "RollingBack",
        f"bringing back revision {target} before switching traffic to it",
    )


def rolling_out(revision: str, ready: int, wanted: int, stable: str) -> Condition:
    return Condition(
        "Progressing",
        True,
        "RollingOut",
        f"revision {revision}: {ready}/{wanted} replicas ready; {stable} serves until then",
    )


def deadline_exceeded(message: str) -> Condition:
    return Condition("Degraded", True, "ProgressDeadlineExceeded", message)


def pod_problem(role: str, revision: str, problem: PodProblem) -> Condition:
    """`role` is canary or preview."""
    return Condition("Degraded", True, problem.reason, f"{role} {revision}: {problem.message}")


def canary_progressing(
    revision: str, step: int, steps: int, effective: int, requested: int, wait: CanaryWait
) -> Condition:
    label = f"step {step + 1}/{steps}" if step < steps else "promotion"
    match wait:
        case WaitingForReplicas():
            detail = "waiting for canary replicas to be ready"
        case Pausing(seconds_left=left):
            detail = f"pausing, next check in {math.ceil(left)}s"
        case Inconclusive(message=message, next_in=next_in, deadline_in=deadline_in):
            detail = (
                f"analysis inconclusive ({message}), next analysis in {math.ceil(next_in)}s, "
                f"aborted if still inconclusive in {max(math.ceil(deadline_in), 0)}s"
            )
        case AnalysisDue():
            detail = "analysis due"
    return Condition(
        "Progressing",
        True,
        "CanaryProgressing",
        f"{label}: canary {revision} at {effective}% (requested {requested}%), {detail}",
    )


def preview_progressing(revision: str, wait: PreviewWait) -> tuple[Condition, Condition | None]:
    """Progressing, and Degraded when the wait is a failure that needs a person."""
    match wait:
        case PreviewNotReady(ready=ready, wanted=wanted):
            reason, detail = (
                "PreviewProgressing",
                f"preview {revision}: {ready}/{wanted} replicas ready",
            )
        case PreviewNotRouted(routed=routed, wanted=wanted):
            reason, detail = (
                "PreviewProgressing",
                f"preview {revision} is ready; {routed}/{wanted} replicas in its Service's "
                "endpoints",
            )
        case SmokeTestDue():
            reason, detail = "SmokeTesting", f"preview {revision} is ready; smoke test due"
        case SmokeTestFailed(message=message):
            progressing = Condition(
                "Progressing",
                False,
                "SmokeTestFailed",
                f"smoke test of {revision} failed: {message}",
            )
            return progressing, Condition("Degraded", True, "SmokeTestFailed", message)
        case AwaitingPromotion():
            reason = "AwaitingPromotion"
            detail = f"preview {revision} is ready; set {PROMOTE} to switch traffic"
    return Condition("Progressing", True, reason, detail), None
