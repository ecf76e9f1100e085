"""Pure rollout planning: which revisions run at what size, which get traffic, what is next.

State lives in the ModelDeployment's status (so a restarted operator resumes at the same
step); `plan` reads that state, the observed revisions and the clock, and returns the new
state plus what to actuate. It does no I/O: analysis and smoke-test results come in as
inputs, and the planner asks for them with `needs_analysis` / `needs_smoke_test`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from modelroll.analysis import AnalysisResult
from modelroll.conditions import Condition
from modelroll.problems import PodProblem
from modelroll.spec import JSON, ModelDeploymentSpec

PROMOTE = "modelroll.io/promote"
ABORT = "modelroll.io/abort"
RETRY = "modelroll.io/retry"
ROLLBACK = "modelroll.io/rollback"
ACTIONS = (PROMOTE, ABORT, RETRY, ROLLBACK)

Event = tuple[str, str, str]


@dataclass(frozen=True)
class RevisionView:
    """One revision's Deployment as observed."""

    revision: str
    replicas: int  # spec.replicas: ours, or what the HPA chose
    ready: int
    complete: bool
    problem: PodProblem | None = None


@dataclass(frozen=True)
class HistoryEntry:
    revision: str
    version: str
    spec: JSON
    promoted_at: float


@dataclass(frozen=True)
class AnalysisRecord:
    step: int
    passed: bool | None
    reason: str
    message: str
    time: float


@dataclass(frozen=True)
class SmokeRecord:
    revision: str
    passed: bool
    message: str
    time: float


@dataclass(frozen=True)
class SmokeResult:
    passed: bool
    message: str


@dataclass(frozen=True)
class RolloutState:
    stable: str = ""
    canary: str = ""  # the canary, preview, or rollback target being brought up
    rollback: bool = False  # the canary field holds a rollback target, not the spec's revision
    step: int = 0
    step_started_at: float = 0.0
    analysis: AnalysisRecord | None = None
    smoke: SmokeRecord | None = None
    aborted_revision: str = ""
    abort_reason: str = ""
    abort_message: str = ""
    scale_down: tuple[tuple[str, float], ...] = ()
    history: tuple[HistoryEntry, ...] = ()


@dataclass(frozen=True)
class RolloutInput:
    spec: ModelDeploymentSpec
    raw_spec: JSON
    desired: str
    state: RolloutState
    observed: dict[str, RevisionView]
    annotations: frozenset[str]
    now: float
    analysis: AnalysisResult | None = None
    smoke: SmokeResult | None = None


@dataclass(frozen=True)
class DeploymentPlan:
    revision: str
    raw_spec: JSON
    replicas: int | None  # None: the HPA owns the count


@dataclass(frozen=True)
class Plan:
    deployments: tuple[DeploymentPlan, ...]
    keep: tuple[str, ...]  # revisions left as they are (waiting for their scale-down delay)
    service_revision: str | None  # the main Service's revision; None selects every revision
    preview_revision: str
    hpa_target: str
    route_weights: dict[str, int]  # GatewayAPI backends by revision; empty in Replicas mode
    requested_weight: int | None  # the canary weight the current step asks for
    state: RolloutState
    progressing: Condition
    degraded: Condition | None
    events: tuple[Event, ...] = ()
    handled: tuple[str, ...] = ()
    needs_analysis: bool = False
    needs_smoke_test: bool = False


def canary_replicas(stable: int, weight: int) -> int:
    """Replicas that give the canary `weight`% of the endpoints next to `stable` replicas."""
    if weight >= 100:
        return max(stable, 1)
    return max(1, math.ceil(stable * weight / (100 - weight)))


@dataclass
class _Draft:
    """Mutable scratch space for one planning pass."""

    inp: RolloutInput
    state: RolloutState
    events: list[Event] = field(default_factory=list)
    handled: list[str] = field(default_factory=list)

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def take(self, annotation: str) -> bool:
        if annotation in self.inp.annotations and annotation not in self.handled:
            self.handled.append(annotation)
            return True
        return False


def _stable_size(inp: RolloutInput, stable: str) -> int:
    view = inp.observed.get(stable)
    if inp.spec.autoscaling:
        return view.replicas if view and view.replicas else inp.spec.autoscaling.min_replicas
    return inp.spec.replicas


def _spec_of(inp: RolloutInput, revision: str) -> JSON:
    if revision == inp.desired:
        return inp.raw_spec
    entry = next((h for h in inp.state.history if h.revision == revision), None)
    return entry.spec if entry else inp.raw_spec


def _stable_plan(inp: RolloutInput, stable: str) -> DeploymentPlan:
    replicas = None if inp.spec.autoscaling else inp.spec.replicas
    return DeploymentPlan(stable, _spec_of(inp, stable), replicas)


def _promote(draft: _Draft, revision: str, delay: int, reason: str) -> None:
    """`revision` becomes stable; the previous stable waits `delay` seconds, then goes."""
    inp, state = draft.inp, draft.state
    entry = HistoryEntry(
        revision, _version(_spec_of(inp, revision)), _spec_of(inp, revision), inp.now
    )
    history = (entry, *(h for h in state.history if h.revision != revision))
    history = history[: inp.spec.rollout.revision_history_limit + 1]
    scale_down = tuple(s for s in state.scale_down if s[0] != revision)
    if state.stable and state.stable != revision:
        scale_down += ((state.stable, inp.now + delay),)
    draft.state = replace(
        state,
        stable=revision,
        canary="",
        rollback=False,
        step=0,
        step_started_at=0.0,
        analysis=None,
        history=history,
        scale_down=scale_down,
    )
    draft.event("Normal", reason, f"revision {revision} is now stable")


def _abort(draft: _Draft, reason: str, message: str) -> None:
    state = draft.state
    draft.state = replace(
        state,
        canary="",
        rollback=False,
        step=0,
        step_started_at=0.0,
        aborted_revision=state.canary,
        abort_reason=reason,
        abort_message=message,
    )
    draft.event("Warning", reason, message)


def _version(spec: JSON) -> str:
    return str((spec.get("model") or {}).get("version", ""))


def _deadline_passed(inp: RolloutInput, started_at: float) -> bool:
    return inp.now - started_at > inp.spec.rollout.progress_deadline_seconds


def _not_ready_message(inp: RolloutInput, revision: str, wanted: int) -> str:
    view = inp.observed.get(revision)
    ready = view.ready if view else 0
    detail = f": {view.problem.reason}: {view.problem.message}" if view and view.problem else ""
    return (
        f"revision {revision} had {ready}/{wanted} ready replicas after "
        f"{inp.spec.rollout.progress_deadline_seconds}s{detail}"
    )


def _rollback(draft: _Draft) -> None:
    """Starts a return to the previous stable revision (the modelroll.io/rollback annotation)."""
    state = draft.state
    target = next((h.revision for h in state.history if h.revision != state.stable), "")
    if not target:
        draft.event("Warning", "RollbackUnavailable", "no previous stable revision is recorded")
        return
    draft.state = replace(
        state, canary=target, rollback=True, step=0, step_started_at=draft.inp.now, analysis=None
    )
    draft.event("Normal", "RollbackStarted", f"rolling back from {state.stable} to {target}")


def _finish_rollback(draft: _Draft) -> None:
    inp, state = draft.inp, draft.state
    target, previous = state.canary, state.stable
    view = inp.observed.get(target)
    if not (
        view and view.complete and view.ready > 0 and view.replicas >= _stable_size(inp, previous)
    ):
        return
    _promote(draft, target, 0, "RolledBack")
    draft.state = replace(
        draft.state,
        aborted_revision=previous,
        abort_reason="RolledBack",
        abort_message=f"rolled back from {previous} to {target} by the {ROLLBACK} annotation",
    )


def plan(inp: RolloutInput) -> Plan:
    draft = _Draft(inp, inp.state)
    if draft.take(ROLLBACK) and draft.state.stable:
        _rollback(draft)
    result = _plan(draft)
    stale = [a for a in ACTIONS if a in inp.annotations and a not in result.handled]
    if not stale or result.state.canary:  # during a rollout an action may wait for its moment
        return result
    # An action with nothing to act on is consumed, so it cannot fire on a later rollout.
    events = tuple(("Normal", "ActionIgnored", f"{a}: nothing to act on") for a in stale)
    return replace(result, handled=result.handled + tuple(stale), events=result.events + events)


def _plan(draft: _Draft) -> Plan:
    inp = draft.inp
    if draft.state.rollback:
        _finish_rollback(draft)
    state = draft.state

    if not state.stable:
        return _first_revision(draft)
    if state.rollback:
        return _rolling_back(draft)
    if inp.desired == state.stable:
        return _steady(draft)
    if inp.desired == state.aborted_revision and not draft.take(RETRY):
        return _aborted(draft)
    if inp.desired == state.aborted_revision:
        draft.state = replace(
            draft.state,
            aborted_revision="",
            abort_reason="",
            abort_message="",
            canary="",
            smoke=None,
        )
        draft.event("Normal", "RolloutRetried", f"retrying revision {inp.desired}")
    strategy = inp.spec.rollout.strategy
    if strategy == "Canary" and inp.spec.rollout.canary:
        return _canary(draft)
    if strategy == "BlueGreen":
        return _blue_green(draft)
    return _rolling(draft)


def _finish(
    draft: _Draft,
    deployments: list[DeploymentPlan],
    service_revision: str | None,
    progressing: Condition,
    degraded: Condition | None = None,
    preview: str = "",
    route_weights: dict[str, int] | None = None,
    requested_weight: int | None = None,
    needs_analysis: bool = False,
    needs_smoke_test: bool = False,
) -> Plan:
    inp, state = draft.inp, draft.state
    planned = {d.revision for d in deployments}
    due = tuple((r, at) for r, at in state.scale_down if r not in planned and at > inp.now)
    gone = [r for r, at in state.scale_down if r not in planned and at <= inp.now]
    for revision in gone:
        draft.event("Normal", "RevisionScaledDown", f"removed old revision {revision}")
    draft.state = replace(state, scale_down=due)
    if (
        state.aborted_revision
        and state.aborted_revision not in planned
        and (state.aborted_revision in inp.observed)
    ):
        deployments.append(
            DeploymentPlan(state.aborted_revision, _spec_of(inp, state.aborted_revision), 0)
        )
    stable = draft.state.stable or inp.desired
    return Plan(
        deployments=tuple(deployments),
        keep=tuple(r for r, _ in due),
        service_revision=service_revision,
        preview_revision=preview,
        hpa_target=stable,
        route_weights=route_weights or {},
        requested_weight=requested_weight,
        state=draft.state,
        progressing=progressing,
        degraded=degraded,
        events=tuple(draft.events),
        handled=tuple(draft.handled),
        needs_analysis=needs_analysis,
        needs_smoke_test=needs_smoke_test,
    )


def _first_revision(draft: _Draft) -> Plan:
    inp = draft.inp
    desired = inp.desired
    view = inp.observed.get(desired)
    deployments = [
        DeploymentPlan(desired, inp.raw_spec, None if inp.spec.autoscaling else inp.spec.replicas)
    ]
    if view and view.complete:
        _promote(draft, desired, 0, "RevisionAvailable")
        return _steady(draft)
    ready = view.ready if view else 0
    progressing = Condition(
        "Progressing", True, "RollingOut", f"revision {desired}: {ready} replicas ready"
    )
    return _finish(draft, deployments, desired, progressing)


def _steady(draft: _Draft) -> Plan:
    inp, state = draft.inp, draft.state
    if state.canary:
        draft.event(
            "Normal",
            "RolloutCancelled",
            f"the spec returned to stable revision {state.stable}; {state.canary} is removed",
        )
    if inp.desired == state.stable:
        draft.state = replace(
            state,
            canary="",
            step=0,
            step_started_at=0.0,
            analysis=None,
            aborted_revision="",
            abort_reason="",
            abort_message="",
            smoke=None,
        )
    progressing = Condition(
        "Progressing",
        False,
        "RolloutComplete",
        f"revision {state.stable} is stable and serves all traffic",
    )
    return _finish(draft, [_stable_plan(inp, state.stable)], state.stable, progressing)


def _aborted(draft: _Draft) -> Plan:
    inp, state = draft.inp, draft.state
    deployments = [
        _stable_plan(inp, state.stable),
        DeploymentPlan(state.aborted_revision, inp.raw_spec, 0),
    ]
    message = (
        f"revision {state.aborted_revision} was aborted ({state.abort_reason}); stable "
        f"{state.stable} serves all traffic until the spec changes or {RETRY} is set"
    )
    progressing = Condition("Progressing", False, "RolloutAborted", message)
    degraded = Condition("Degraded", True, state.abort_reason, state.abort_message)
    return _finish(draft, deployments, state.stable, progressing, degraded)


def _rolling_back(draft: _Draft) -> Plan:
    inp, state = draft.inp, draft.state
    size = _stable_size(inp, state.stable)
    deployments = [
        _stable_plan(inp, state.stable),
        DeploymentPlan(state.canary, _spec_of(inp, state.canary), size),
    ]
    progressing = Condition(
        "Progressing",
        True,
        "RollingBack",
        f"bringing back revision {state.canary} before switching traffic to it",
    )
    return _finish(draft, deployments, state.stable, progressing)


def _start(draft: _Draft, kind: str) -> None:
    inp, state = draft.inp, draft.state
    if state.canary == inp.desired:
        return
    if state.canary:
        draft.event(
            "Normal",
            "RolloutSuperseded",
            f"revision {state.canary} is replaced by {inp.desired} before promotion",
        )
    draft.state = replace(
        state,
        canary=inp.desired,
        rollback=False,
        step=0,
        step_started_at=inp.now,
        analysis=None,
        smoke=None,
        scale_down=(),
        aborted_revision="",
        abort_reason="",
        abort_message="",
    )
    draft.event("Normal", f"{kind}Started", f"rolling out revision {inp.desired} as {kind.lower()}")


def _rolling(draft: _Draft) -> Plan:
    inp = draft.inp
    _start(draft, "Rollout")
    state = draft.state
    size = _stable_size(inp, state.stable)
    view = inp.observed.get(inp.desired)
    if view and view.complete and view.replicas >= size:
        _promote(draft, inp.desired, 0, "RevisionAvailable")
        return _steady(draft)
    degraded = None
    if _deadline_passed(inp, state.step_started_at):
        degraded = Condition(
            "Degraded", True, "ProgressDeadlineExceeded", _not_ready_message(inp, inp.desired, size)
        )
    ready = view.ready if view else 0
    progressing = Condition(
        "Progressing",
        True,
        "RollingOut",
        f"revision {inp.desired}: {ready}/{size} replicas ready; {state.stable} serves until then",
    )
    deployments = [_stable_plan(inp, state.stable), DeploymentPlan(inp.desired, inp.raw_spec, size)]
    return _finish(draft, deployments, state.stable, progressing, degraded)


def _canary(draft: _Draft) -> Plan:
    inp = draft.inp
    canary_spec = inp.spec.rollout.canary
    assert canary_spec is not None
    _start(draft, "Canary")
    if draft.take(ABORT):
        _abort(draft, "Aborted", f"aborted by the {ABORT} annotation")
        return _aborted(draft)
    if draft.take(PROMOTE):
        draft.state = replace(draft.state, step=len(canary_spec.steps))
        draft.event("Normal", "PromotionRequested", f"promoting {inp.desired} on request")
    state = draft.state
    steps = canary_spec.steps
    stable_size = _stable_size(inp, state.stable)
    weight = steps[state.step].weight if state.step < len(steps) else 100
    wanted = canary_replicas(stable_size, weight)
    view = inp.observed.get(inp.desired)
    ready = bool(view and view.complete and view.replicas == wanted)

    if not ready and _deadline_passed(inp, state.step_started_at):
        _abort(draft, "ProgressDeadlineExceeded", _not_ready_message(inp, inp.desired, wanted))
        return _aborted(draft)

    needs_analysis = False
    label = f"step {state.step + 1}/{len(steps)}" if state.step < len(steps) else "promotion"
    detail = "waiting for canary replicas to be ready"
    if ready and state.step >= len(steps):
        _promote(draft, inp.desired, canary_spec.scale_down_delay_seconds, "CanaryPromoted")
        return _steady(draft)
    if ready:
        pause_left = steps[state.step].pause_seconds - (inp.now - state.step_started_at)
        if pause_left > 0:
            detail = f"pausing, next check in {math.ceil(pause_left)}s"
        elif canary_spec.analysis is None:
            return _advance(draft, "no analysis configured")
        else:
            last = state.analysis if state.analysis and state.analysis.step == state.step else None
            wait = canary_spec.analysis.interval_seconds - (inp.now - last.time) if last else 0
            if inp.analysis is not None:
                result = inp.analysis
                draft.inp = replace(inp, analysis=None)  # one result counts for one step only
                draft.state = replace(
                    draft.state,
                    analysis=AnalysisRecord(
                        state.step, result.passed, result.reason, result.message, inp.now
                    ),
                )
                if result.passed is True:
                    return _advance(draft, result.message)
                if result.passed is False:
                    _abort(draft, "CanaryAnalysisFailed", result.message)
                    return _aborted(draft)
                detail = f"analysis inconclusive ({result.message}), next analysis in {canary_spec.analysis.interval_seconds}s"
            elif wait > 0 and last is not None:
                detail = (
                    f"analysis inconclusive ({last.message}), next analysis in {math.ceil(wait)}s"
                )
            else:
                needs_analysis = True
                detail = "analysis due"
    return _canary_plan(draft, weight, wanted, label, detail, needs_analysis)


def _advance(draft: _Draft, why: str) -> Plan:
    inp, state = draft.inp, draft.state
    canary_spec = inp.spec.rollout.canary
    assert canary_spec is not None
    steps = canary_spec.steps
    draft.event(
        "Normal",
        "CanaryStepPassed",
        f"step {state.step + 1}/{len(steps)} at {steps[state.step].weight}% passed: {why}",
    )
    draft.state = replace(state, step=state.step + 1, step_started_at=inp.now)
    return _canary(draft)


def _canary_plan(
    draft: _Draft, weight: int, wanted: int, label: str, detail: str, needs_analysis: bool
) -> Plan:
    inp, state = draft.inp, draft.state
    canary_spec = inp.spec.rollout.canary
    assert canary_spec is not None
    deployments = [
        _stable_plan(inp, state.stable),
        DeploymentPlan(inp.desired, inp.raw_spec, wanted),
    ]
    view = inp.observed.get(inp.desired)
    gateway = canary_spec.traffic_routing_mode == "GatewayAPI"
    route_weights: dict[str, int] = {}
    if gateway:
        # A step's weight applies once its replicas are ready; until then the previous one.
        steps = canary_spec.steps
        previous = steps[state.step - 1].weight if 0 < state.step <= len(steps) else 0
        ready = bool(view and view.complete and view.replicas == wanted)
        canary_weight = min(weight, steps[-1].weight) if ready else previous
        if not (view and view.ready > 0):
            canary_weight = 0  # never route to a revision without ready pods
        route_weights = {state.stable: 100 - canary_weight, inp.desired: canary_weight}
    if gateway:
        effective = route_weights[inp.desired]
    else:
        stable_view = inp.observed.get(state.stable)
        ready_total = (view.ready if view else 0) + (stable_view.ready if stable_view else 0)
        effective = (view.ready * 100 // ready_total) if view and ready_total else 0
    progressing = Condition(
        "Progressing",
        True,
        "CanaryProgressing",
        f"{label}: canary {inp.desired} at {effective}% (requested {weight}%), {detail}",
    )
    degraded = None
    if view and view.problem:
        degraded = Condition(
            "Degraded", True, view.problem.reason, f"canary {inp.desired}: {view.problem.message}"
        )
    return _finish(
        draft,
        deployments,
        state.stable if gateway else None,
        progressing,
        degraded,
        route_weights=route_weights,
        requested_weight=weight,
        needs_analysis=needs_analysis,
    )


def _blue_green(draft: _Draft) -> Plan:
    inp = draft.inp
    settings = inp.spec.rollout.blue_green
    auto_promote = settings.auto_promote if settings else True
    delay = settings.scale_down_delay_seconds if settings else 30
    smoke_tests = settings.smoke_tests if settings else ()
    _start(draft, "Preview")
    if draft.take(ABORT):
        _abort(draft, "Aborted", f"aborted by the {ABORT} annotation")
        return _aborted(draft)
    state = draft.state
    size = _stable_size(inp, state.stable)
    view = inp.observed.get(inp.desired)
    ready = bool(view and view.complete and view.replicas >= size)
    if not ready and _deadline_passed(inp, state.step_started_at):
        _abort(draft, "ProgressDeadlineExceeded", _not_ready_message(inp, inp.desired, size))
        return _aborted(draft)

    degraded = None
    needs_smoke = False
    if not ready:
        detail = f"preview {inp.desired}: {view.ready if view else 0}/{size} replicas ready"
        reason = "PreviewProgressing"
    else:
        smoke = state.smoke if state.smoke and state.smoke.revision == inp.desired else None
        if smoke and not smoke.passed and draft.take(RETRY):
            smoke = None
            draft.state = replace(draft.state, smoke=None)
        if smoke_tests and smoke is None and inp.smoke is not None:
            smoke = SmokeRecord(inp.desired, inp.smoke.passed, inp.smoke.message, inp.now)
            draft.state = replace(draft.state, smoke=smoke)
            draft.event(
                "Normal" if smoke.passed else "Warning",
                "SmokeTestPassed" if smoke.passed else "SmokeTestFailed",
                smoke.message,
            )
        if smoke_tests and smoke is None:
            needs_smoke = True
            detail, reason = f"preview {inp.desired} is ready; smoke test due", "SmokeTesting"
        elif smoke and not smoke.passed:
            detail, reason = (
                f"smoke test of {inp.desired} failed: {smoke.message}",
                "SmokeTestFailed",
            )
            degraded = Condition("Degraded", True, "SmokeTestFailed", smoke.message)
        elif auto_promote or draft.take(PROMOTE):
            _promote(draft, inp.desired, delay, "PreviewPromoted")
            return _steady(draft)
        else:
            detail = f"preview {inp.desired} is ready; set {PROMOTE} to switch traffic"
            reason = "AwaitingPromotion"
    if view and view.problem and degraded is None:
        degraded = Condition(
            "Degraded", True, view.problem.reason, f"preview {inp.desired}: {view.problem.message}"
        )
    active = reason not in ("SmokeTestFailed",)
    progressing = Condition("Progressing", active, reason, detail)
    deployments = [_stable_plan(inp, state.stable), DeploymentPlan(inp.desired, inp.raw_spec, size)]
    return _finish(
        draft,
        deployments,
        state.stable,
        progressing,
        degraded,
        preview=inp.desired,
        needs_smoke_test=needs_smoke,
    )
