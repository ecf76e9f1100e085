"""Pure rollout planning: which revisions run at what size, which get traffic, what is next.

State lives in the ModelDeployment's status (so a restarted operator resumes at the same
step); `plan` reads that state, the observed revisions and the clock, and returns the new
state plus what to actuate. It does no I/O: analysis and smoke-test results come in as
inputs, and the planner asks for them with `needs_analysis` / `needs_smoke_test`.

The state's phase (modelroll.phases) picks the transition function; a Progressing rollout
then moves as its strategy (modelroll.strategy) says. Texts come from rollout_messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from modelroll import rollout_messages as say
from modelroll.analysis import AnalysisResult
from modelroll.conditions import Condition
from modelroll.phases import (
    Aborted,
    AnalysisRecord,
    HistoryEntry,
    Phase,
    Progressing,
    RollingBack,
    RolloutState,
    SmokeRecord,
    Stable,
)
from modelroll.problems import PodProblem
from modelroll.rollout_actions import ABORT, ACTIONS, PROMOTE, RETRY, ROLLBACK
from modelroll.rollout_messages import (
    AnalysisDue,
    AwaitingPromotion,
    CanaryWait,
    Event,
    Inconclusive,
    Pausing,
    PreviewNotReady,
    PreviewNotRouted,
    PreviewWait,
    SmokeTestDue,
    SmokeTestFailed,
    WaitingForReplicas,
)
from modelroll.spec import JSON, ModelDeploymentSpec
from modelroll.strategy import BlueGreen, Canary, Rolling, Strategy, strategy_of

__all__ = [
    "ABORT",
    "ACTIONS",
    "PROMOTE",
    "RETRY",
    "ROLLBACK",
    "AnalysisRecord",
    "DeploymentPlan",
    "Event",
    "HistoryEntry",
    "Plan",
    "RevisionView",
    "RolloutInput",
    "RolloutState",
    "SmokeRecord",
    "SmokeResult",
    "canary_replicas",
    "plan",
]


@dataclass(frozen=True)
class RevisionView:
    """One revision's Deployment as observed."""

    revision: str
    replicas: int  # spec.replicas: ours, or what the HPA chose
    ready: int
    complete: bool
    problem: PodProblem | None = None
    serving: int = 0  # pods listed ready in an EndpointSlice of one of our Services


@dataclass(frozen=True)
class SmokeResult:
    passed: bool
    message: str


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
    strategy: Strategy
    state: RolloutState
    analysis: AnalysisResult | None  # taken by the step it decides: one result, one step
    events: list[Event] = field(default_factory=list)
    handled: list[str] = field(default_factory=list)

    def event(self, event: Event) -> None:
        self.events.append(event)

    def take(self, annotation: str) -> bool:
        if annotation in self.inp.annotations and annotation not in self.handled:
            self.handled.append(annotation)
            return True
        return False

    def move(self, phase: Phase) -> None:
        self.state = replace(self.state, phase=phase)

    @property
    def desired(self) -> str:
        return self.inp.desired

    @property
    def now(self) -> float:
        return self.inp.now

    def view(self, revision: str) -> RevisionView | None:
        return self.inp.observed.get(revision)

    def ready(self, revision: str) -> int:
        view = self.view(revision)
        return view.ready if view else 0

    def stable_size(self) -> int:
        """The size the stable revision runs at: what a replacement must reach."""
        inp = self.inp
        if inp.spec.autoscaling:
            view = self.view(self.state.stable)
            return view.replicas if view and view.replicas else inp.spec.autoscaling.min_replicas
        return inp.spec.replicas

    def spec_of(self, revision: str) -> JSON:
        if revision == self.desired:
            return self.inp.raw_spec
        entry = next((h for h in self.inp.state.history if h.revision == revision), None)
        return entry.spec if entry else self.inp.raw_spec

    def stable_plan(self) -> DeploymentPlan:
        stable = self.state.stable
        replicas = None if self.inp.spec.autoscaling else self.inp.spec.replicas
        return DeploymentPlan(stable, self.spec_of(stable), replicas)

    def deadline_passed(self, started_at: float) -> bool:
        return self.now - started_at > self.inp.spec.rollout.progress_deadline_seconds

    def not_ready(self, revision: str, wanted: int) -> str:
        view = self.view(revision)
        deadline = self.inp.spec.rollout.progress_deadline_seconds
        return say.not_ready(
            revision, self.ready(revision), wanted, deadline, view.problem if view else None
        )


def plan(inp: RolloutInput) -> Plan:
    draft = _Draft(inp, strategy_of(inp.spec), inp.state, inp.analysis)
    if draft.take(ROLLBACK) and draft.state.stable:
        _start_rollback(draft)
    result = _plan(draft)
    stale = [a for a in ACTIONS if a in inp.annotations and a not in result.handled]
    if not stale or result.state.canary:  # during a rollout an action may wait for its moment
        return result
    # An action with nothing to act on is consumed, so it cannot fire on a later rollout.
    events = tuple(say.action_ignored(a) for a in stale)
    return replace(result, handled=result.handled + tuple(stale), events=result.events + events)


def _plan(draft: _Draft) -> Plan:
    """One transition function per phase; each ends in a plan or moves to another phase."""
    if not draft.state.stable:
        return _first_revision(draft)
    match draft.state.phase:
        case Stable():
            return _from_stable(draft)
        case Progressing() as progressing:
            return _from_progressing(draft, progressing)
        case Aborted() as aborted:
            return _from_aborted(draft, aborted)
        case RollingBack() as rolling_back:
            return _from_rolling_back(draft, rolling_back)


# --- transitions by phase ---------------------------------------------------------------------


def _first_revision(draft: _Draft) -> Plan:
    desired = draft.desired
    view = draft.view(desired)
    if view and view.complete:
        _promote(draft, desired, 0, "RevisionAvailable")
        return _complete(draft)
    replicas = None if draft.inp.spec.autoscaling else draft.inp.spec.replicas
    deployments = [DeploymentPlan(desired, draft.inp.raw_spec, replicas)]
    return _hold(draft, deployments, desired, say.first_rollout(desired, draft.ready(desired)))


def _from_stable(draft: _Draft) -> Plan:
    if draft.desired == draft.state.stable:
        return _complete(draft)
    return _roll_out(draft)


def _from_progressing(draft: _Draft, phase: Progressing) -> Plan:
    if draft.desired == draft.state.stable:
        draft.event(say.cancelled(draft.state.stable, phase.revision))
        return _complete(draft)
    return _roll_out(draft)


def _from_aborted(draft: _Draft, phase: Aborted) -> Plan:
    if draft.desired == draft.state.stable:
        return _complete(draft)
    if draft.desired == phase.revision:
        if not draft.take(RETRY):
            return _hold_aborted(draft, phase)
        draft.event(say.retried(draft.desired))
        draft.move(Stable())
    return _roll_out(draft)


def _from_rolling_back(draft: _Draft, phase: RollingBack) -> Plan:
    size = draft.stable_size()
    target, previous = phase.target, draft.state.stable
    view = draft.view(target)
    if view and view.complete and view.ready > 0 and view.replicas >= size:
        _promote(draft, target, 0, "RolledBack")
        draft.move(Aborted(previous, "RolledBack", say.rolled_back(previous, target)))
        return _plan(draft)
    deployments = [draft.stable_plan(), DeploymentPlan(target, draft.spec_of(target), size)]
    return _hold(draft, deployments, draft.state.stable, say.rolling_back(target))


def _start_rollback(draft: _Draft) -> None:
    """Starts a return to the previous stable revision (the modelroll.io/rollback annotation)."""
    state = draft.state
    target = next((h.revision for h in state.history if h.revision != state.stable), "")
    if not target:
        draft.event(say.rollback_unavailable())
        return
    draft.move(RollingBack(target, draft.now, state.abort))
    draft.event(say.rollback_started(state.stable, target))


# --- moves shared by the phases ---------------------------------------------------------------


def _roll_out(draft: _Draft) -> Plan:
    """Progressing on the desired revision, as the strategy goes."""
    match draft.strategy:
        case Rolling():
            return _rolling(draft, _start(draft, "Rollout"))
        case Canary() as canary:
            return _canary(draft, canary, _start(draft, "Canary"))
        case BlueGreen() as blue_green:
            return _blue_green(draft, blue_green, _start(draft, "Preview"))


def _start(draft: _Draft, kind: str) -> Progressing:
    phase = draft.state.phase
    if isinstance(phase, Progressing):
        if phase.revision == draft.desired:
            return phase
        draft.event(say.superseded(phase.revision, draft.desired))
    started = Progressing(draft.desired, draft.now)
    draft.state = replace(draft.state, phase=started, scale_down=())
    draft.event(say.started(kind, draft.desired))
    return started


def _promote(draft: _Draft, revision: str, delay: int, reason: str) -> None:
    """`revision` becomes stable; the previous stable waits `delay` seconds, then goes."""
    state, spec = draft.state, draft.spec_of(revision)
    version = str((spec.get("model") or {}).get("version", ""))
    history = (
        HistoryEntry(revision, version, spec, draft.now),
        *(h for h in state.history if h.revision != revision),
    )
    scale_down = tuple(s for s in state.scale_down if s[0] != revision)
    if state.stable and state.stable != revision:
        scale_down += ((state.stable, draft.now + delay),)
    draft.state = RolloutState(
        stable=revision,
        phase=Stable(),
        scale_down=scale_down,
        history=history[: draft.inp.spec.rollout.revision_history_limit + 1],
    )
    draft.event(say.promoted(reason, revision))


def _abort(draft: _Draft, phase: Progressing, reason: str, message: str) -> Plan:
    aborted = Aborted(phase.revision, reason, message, phase.analysis, phase.smoke)
    draft.move(aborted)
    draft.event(say.aborted(aborted))
    return _hold_aborted(draft, aborted)


def _complete(draft: _Draft) -> Plan:
    draft.move(Stable())
    stable = draft.state.stable
    return _hold(draft, [draft.stable_plan()], stable, say.complete(stable))


def _hold_aborted(draft: _Draft, aborted: Aborted) -> Plan:
    deployments = [
        draft.stable_plan(),
        DeploymentPlan(aborted.revision, draft.spec_of(aborted.revision), 0),
    ]
    progressing, degraded = say.held_after_abort(draft.state.stable, aborted)
    return _hold(draft, deployments, draft.state.stable, progressing, degraded)


# --- Progressing, by strategy -----------------------------------------------------------------


def _rolling(draft: _Draft, phase: Progressing) -> Plan:
    desired, stable = draft.desired, draft.state.stable
    size = draft.stable_size()
    view = draft.view(desired)
    if view and view.complete and view.replicas >= size:
        _promote(draft, desired, 0, "RevisionAvailable")
        return _complete(draft)
    degraded = None
    if draft.deadline_passed(phase.started_at):
        degraded = say.deadline_exceeded(draft.not_ready(desired, size))
    progressing = say.rolling_out(desired, draft.ready(desired), size, stable)
    deployments = [draft.stable_plan(), DeploymentPlan(desired, draft.inp.raw_spec, size)]
    return _hold(draft, deployments, stable, progressing, degraded)


def _canary(draft: _Draft, canary: Canary, phase: Progressing) -> Plan:
    if draft.take(ABORT):
        return _abort(draft, phase, "Aborted", say.abort_requested())
    if draft.take(PROMOTE):
        phase = replace(phase, step=len(canary.steps))
        draft.event(say.promotion_requested(draft.desired))
    return _canary_step(draft, canary, phase)


def _canary_step(draft: _Draft, canary: Canary, phase: Progressing) -> Plan:
    """Decides the current step: wait, pass it (and decide the next), abort, or promote."""
    draft.move(phase)
    desired, steps = draft.desired, canary.steps
    weight = canary.weight(phase.step)
    wanted = canary_replicas(draft.stable_size(), weight)
    view = draft.view(desired)
    ready = bool(view and view.complete and view.replicas == wanted)
    if not ready and draft.deadline_passed(phase.started_at):
        return _abort(draft, phase, "ProgressDeadlineExceeded", draft.not_ready(desired, wanted))
    if ready and phase.step >= len(steps):
        _promote(draft, desired, canary.scale_down_delay_seconds, "CanaryPromoted")
        return _complete(draft)
    if not ready:
        return _canary_hold(draft, canary, phase, wanted, WaitingForReplicas())
    pause_left = steps[phase.step].pause_seconds - (draft.now - phase.started_at)
    if pause_left > 0:
        return _canary_hold(draft, canary, phase, wanted, Pausing(pause_left))
    if canary.analysis is None:
        return _next_step(draft, canary, phase, say.NO_ANALYSIS)
    interval = canary.analysis.interval_seconds
    last = phase.analysis if phase.analysis and phase.analysis.step == phase.step else None
    # Inconclusive results hold the step, but no longer than the progress deadline, counted
    # from when the step's analysis became due (the end of its pause).
    deadline = draft.inp.spec.rollout.progress_deadline_seconds
    deadline_left = phase.started_at + steps[phase.step].pause_seconds + deadline - draft.now
    result, draft.analysis = draft.analysis, None
    if result is None:
        left = interval - (draft.now - last.time) if last else 0
        if last is not None and last.passed is None and deadline_left < 0:
            return _abort(draft, phase, "AnalysisInconclusive", say.inconclusive_too_long(
                phase.step, len(steps), deadline, last.message
            ))  # fmt: skip
        if last is not None and left > 0:
            wait = Inconclusive(last.message, left, deadline_left)
            return _canary_hold(draft, canary, phase, wanted, wait)
        return _canary_hold(draft, canary, phase, wanted, AnalysisDue())
    record = AnalysisRecord(phase.step, result.passed, result.reason, result.message, draft.now)
    phase = replace(phase, analysis=record)
    draft.move(phase)
    if result.passed is True:
        return _next_step(draft, canary, phase, result.message)
    if result.passed is False:
        # CanaryAnalysisFailed or PredictionShift on the metrics, or why the operator
        # refused to analyze.
        return _abort(draft, phase, result.reason, result.message)
    if deadline_left < 0:
        message = say.inconclusive_too_long(phase.step, len(steps), deadline, result.message)
        return _abort(draft, phase, "AnalysisInconclusive", message)
    wait = Inconclusive(result.message, interval, deadline_left)
    return _canary_hold(draft, canary, phase, wanted, wait)


def _next_step(draft: _Draft, canary: Canary, phase: Progressing, why: str) -> Plan:
    weight = canary.steps[phase.step].weight
    draft.event(say.step_passed(phase.step, len(canary.steps), weight, why))
    return _canary_step(draft, canary, replace(phase, step=phase.step + 1, started_at=draft.now))


def _canary_hold(
    draft: _Draft, canary: Canary, phase: Progressing, wanted: int, wait: CanaryWait
) -> Plan:
    desired, stable, steps = draft.desired, draft.state.stable, canary.steps
    weight = canary.weight(phase.step)
    deployments = [draft.stable_plan(), DeploymentPlan(desired, draft.inp.raw_spec, wanted)]
    view = draft.view(desired)
    route_weights: dict[str, int] = {}
    if canary.gateway:
        # A step's weight applies once its replicas are ready; until then the previous one.
        previous = steps[phase.step - 1].weight if 0 < phase.step <= len(steps) else 0
        ready = bool(view and view.complete and view.replicas == wanted)
        canary_weight = min(weight, steps[-1].weight) if ready else previous
        if not (view and view.ready > 0):
            canary_weight = 0  # never route to a revision without ready pods
        route_weights = {stable: 100 - canary_weight, desired: canary_weight}
        effective = canary_weight
    else:
        ready_total = draft.ready(desired) + draft.ready(stable)
        effective = (draft.ready(desired) * 100 // ready_total) if ready_total else 0
    progressing = say.canary_progressing(desired, phase.step, len(steps), effective, weight, wait)
    degraded = say.pod_problem("canary", desired, view.problem) if view and view.problem else None
    return _hold(
        draft,
        deployments,
        stable if canary.gateway else None,
        progressing,
        degraded,
        route_weights=route_weights,
        requested_weight=weight,
        needs_analysis=isinstance(wait, AnalysisDue),
    )


def _blue_green(draft: _Draft, blue_green: BlueGreen, phase: Progressing) -> Plan:
    if draft.take(ABORT):
        return _abort(draft, phase, "Aborted", say.abort_requested())
    desired = draft.desired
    size = draft.stable_size()
    view = draft.view(desired)
    ready = bool(view and view.complete and view.replicas >= size)
    routed = bool(view and view.serving >= size)
    if not (ready and routed) and draft.deadline_passed(phase.started_at):
        return _abort(draft, phase, "ProgressDeadlineExceeded", draft.not_ready(desired, size))
    wait: PreviewWait
    if not ready:
        wait = PreviewNotReady(draft.ready(desired), size)
    elif not routed:
        wait = PreviewNotRouted(view.serving if view else 0, size)
    else:
        smoke = phase.smoke if phase.smoke and phase.smoke.revision == desired else None
        if smoke and not smoke.passed and draft.take(RETRY):
            smoke = None
            phase = replace(phase, smoke=None)
            draft.move(phase)
        result = draft.inp.smoke
        if blue_green.smoke_tests and smoke is None and result is not None:
            smoke = SmokeRecord(desired, result.passed, result.message, draft.now)
            draft.move(replace(phase, smoke=smoke))
            draft.event(say.smoke_tested(smoke))
        if blue_green.smoke_tests and smoke is None:
            wait = SmokeTestDue()
        elif smoke and not smoke.passed:
            wait = SmokeTestFailed(smoke.message)
        elif blue_green.auto_promote or draft.take(PROMOTE):
            _promote(draft, desired, blue_green.scale_down_delay_seconds, "PreviewPromoted")
            return _complete(draft)
        else:
            wait = AwaitingPromotion()
    progressing, degraded = say.preview_progressing(desired, wait)
    if view and view.problem and degraded is None:
        degraded = say.pod_problem("preview", desired, view.problem)
    deployments = [draft.stable_plan(), DeploymentPlan(desired, draft.inp.raw_spec, size)]
    return _hold(
        draft,
        deployments,
        draft.state.stable,
        progressing,
        degraded,
        preview=desired,
        needs_smoke_test=isinstance(wait, SmokeTestDue),
    )


# --- the plan ---------------------------------------------------------------------------------


def _hold(
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
    """The plan for the state the pass ended in: also retires old revisions whose delay is over."""
    inp, state = draft.inp, draft.state
    planned = {d.revision for d in deployments}
    due = tuple((r, at) for r, at in state.scale_down if r not in planned and at > inp.now)
    for revision, at in state.scale_down:
        if revision not in planned and at <= inp.now:
            draft.event(say.scaled_down(revision))
    draft.state = replace(state, scale_down=due)
    aborted = state.aborted_revision
    if aborted and aborted not in planned and aborted in inp.observed:
        # An earlier abort still shown during a rollback: its Deployment stays, at zero.
        deployments.append(DeploymentPlan(aborted, draft.spec_of(aborted), 0))
    return Plan(
        deployments=tuple(deployments),
        keep=tuple(r for r, _ in due),
        service_revision=service_revision,
        preview_revision=preview,
        hpa_target=draft.state.stable or inp.desired,
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
