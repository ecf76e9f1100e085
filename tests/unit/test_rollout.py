"""The rollout planner as a state machine: a fake clock and hand-made observations in, plans out.

Every test drives `plan` the way reconcile does: the state of one plan is the input of the
next, the clock only moves forward, and an annotation stays set until a plan lists it in
`handled`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelroll.analysis import AnalysisResult
from modelroll.problems import PodProblem
from modelroll.rollout import (
    ABORT,
    PROMOTE,
    RETRY,
    ROLLBACK,
    DeploymentPlan,
    Plan,
    RevisionView,
    RolloutInput,
    RolloutState,
    SmokeResult,
    canary_replicas,
    plan,
)
from modelroll.rollout_state import state_from_status, state_to_status
from modelroll.spec import parse_spec

JSON = dict[str, Any]
T0 = 1_750_000_000.0  # a whole second, so state survives the status' second resolution
PROMETHEUS = {"prometheus": {"endpoint": "main"}}
GPU_SHORTAGE = PodProblem(
    "InsufficientGPU",
    "no node has a free nvidia.com/gpu: 0/6 nodes are available: 6 Insufficient nvidia.com/gpu.",
)

CANARY: JSON = {
    "strategy": "Canary",
    "progressDeadlineSeconds": 600,
    "revisionHistoryLimit": 2,
    "canary": {
        "steps": [{"weight": 10, "pauseSeconds": 60}, {"weight": 50, "pauseSeconds": 60}],
        "scaleDownDelaySeconds": 30,
        "analysis": {**PROMETHEUS, "intervalSeconds": 30},
    },
}
SMOKE_REQUESTS = [{"name": "one", "body": {"inputs": []}, "expectStatus": 200}]
BLUE_GREEN: JSON = {
    "strategy": "BlueGreen",
    "progressDeadlineSeconds": 600,
    "blueGreen": {
        "autoPromote": True,
        "scaleDownDelaySeconds": 30,
        "smokeTest": {"requests": SMOKE_REQUESTS},
    },
}
ROLLING: JSON = {"strategy": "Rolling", "progressDeadlineSeconds": 600}


def with_canary(**changes: Any) -> JSON:
    rollout = copy.deepcopy(CANARY)
    rollout["canary"].update(changes)
    return rollout


def with_blue_green(**changes: Any) -> JSON:
    rollout = copy.deepcopy(BLUE_GREEN)
    rollout["blueGreen"].update(changes)
    return rollout


def up(revision: str, replicas: int) -> RevisionView:
    """A complete Deployment: every replica ready, and in its Services' endpoints."""
    return RevisionView(revision, replicas, replicas, True, serving=replicas)


def starting(
    revision: str, replicas: int, ready: int = 0, problem: PodProblem | None = None
) -> RevisionView:
    return RevisionView(revision, replicas, ready, False, problem)


PASS = AnalysisResult(True, "AnalysisPassed", "error rate 0.0% over 240 requests")
FAIL = AnalysisResult(
    False, "CanaryAnalysisFailed", "canary error rate 7.50% > 1% (15 of 200 requests)"
)
INCONCLUSIVE = AnalysisResult(None, "InsufficientRequests", "canary had 3 of 20 requests")


@dataclass
class Driver:
    """One ModelDeployment: its spec per revision, its persisted state and a fake clock."""

    rollout: JSON
    replicas: int = 4
    autoscaling: JSON | None = None
    state: RolloutState = field(default_factory=RolloutState)
    now: float = T0
    plans: list[Plan] = field(default_factory=list)

    def raw(self, revision: str) -> JSON:
        raw: JSON = {
            "model": {"format": "onnx", "uri": f"s3://models/iris/{revision}", "version": revision},
            "replicas": self.replicas,
            "rollout": self.rollout,
        }
        if self.autoscaling:
            raw["autoscaling"] = self.autoscaling
        return raw

    def input(
        self,
        desired: str,
        observed: list[RevisionView],
        annotations: tuple[str, ...] = (),
        analysis: AnalysisResult | None = None,
        smoke: SmokeResult | None = None,
    ) -> RolloutInput:
        raw = self.raw(desired)
        return RolloutInput(
            spec=parse_spec(raw),
            raw_spec=raw,
            desired=desired,
            state=self.state,
            observed={v.revision: v for v in observed},
            annotations=frozenset(annotations),
            now=self.now,
            analysis=analysis,
            smoke=smoke,
        )

    def plan(
        self,
        desired: str,
        observed: list[RevisionView],
        annotations: tuple[str, ...] = (),
        analysis: AnalysisResult | None = None,
        smoke: SmokeResult | None = None,
    ) -> Plan:
        planned = plan(self.input(desired, observed, annotations, analysis, smoke))
        self.state = planned.state
        self.plans.append(planned)
        return planned

    def wait(self, seconds: float) -> None:
        self.now += seconds

    def stable(self, revision: str = "a1") -> Plan:
        """The first revision, up and promoted."""
        planned = self.plan(revision, [up(revision, self.replicas)])
        assert planned.state.stable == revision
        return planned


def sizes(planned: Plan) -> dict[str, int | None]:
    return {d.revision: d.replicas for d in planned.deployments}


def reasons(planned: Plan) -> list[str]:
    return [reason for _, reason, _ in planned.events]


# --- canary_replicas -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stable", "weight", "expected"),
    [
        (4, 10, 1),  # 1 of 5 endpoints: 20%, the smallest share above 10%
        (9, 10, 1),  # exactly 10%
        (10, 10, 2),
        (4, 25, 2),
        (4, 50, 4),
        (3, 50, 3),
        (4, 100, 4),
        (1, 100, 1),
        (0, 100, 1),  # never zero: a promoted canary has at least one pod
        (1, 10, 1),  # tiny stable: the canary still gets a pod
        (0, 10, 1),
        (100, 1, 2),
    ],
)
def test_canary_replicas(stable: int, weight: int, expected: int) -> None:
    assert canary_replicas(stable, weight) == expected


@given(st.integers(min_value=1, max_value=1000), st.integers(min_value=1, max_value=99))
def test_canary_replicas_give_at_least_the_requested_share(stable: int, weight: int) -> None:
    canary = canary_replicas(stable, weight)
    assert canary >= 1
    assert canary * 100 >= weight * (stable + canary)  # at least the weight asked for
    if canary > 1:
        less = canary - 1
        assert less * 100 < weight * (stable + less)  # and no more pods than that needs


# --- first revision --------------------------------------------------------------------------


@pytest.mark.parametrize("rollout", [ROLLING, CANARY, BLUE_GREEN], ids=["rolling", "canary", "bg"])
def test_first_revision_becomes_stable_only_when_complete(rollout: JSON) -> None:
    d = Driver(rollout)
    first = d.plan("a1", [])
    assert first.state.stable == ""
    assert first.state.history == ()
    assert first.deployments == (DeploymentPlan("a1", d.raw("a1"), 4),)
    assert first.service_revision == "a1"
    assert (first.progressing.status, first.progressing.reason) == (True, "RollingOut")
    assert first.needs_analysis is first.needs_smoke_test is False

    half = d.plan("a1", [starting("a1", 4, ready=2)])
    assert half.state.stable == ""
    assert "2 replicas ready" in half.progressing.message

    done = d.plan("a1", [up("a1", 4)])
    assert done.state.stable == "a1"
    assert [h.revision for h in done.state.history] == ["a1"]
    assert done.state.history[0].version == "a1"
    assert done.state.history[0].spec == d.raw("a1")
    assert done.state.history[0].promoted_at == d.now
    assert (done.progressing.status, done.progressing.reason) == (False, "RolloutComplete")
    assert done.degraded is None
    assert done.service_revision == "a1"
    assert done.deployments == (DeploymentPlan("a1", d.raw("a1"), 4),)
    assert reasons(done) == ["RevisionAvailable"]

    again = d.plan("a1", [up("a1", 4)])
    assert again.state == done.state
    assert again.events == ()


def test_first_revision_under_autoscaling_leaves_the_count_to_the_hpa() -> None:
    d = Driver(ROLLING, autoscaling={"minReplicas": 2, "maxReplicas": 10})
    planned = d.plan("a1", [])
    assert planned.deployments == (DeploymentPlan("a1", d.raw("a1"), None),)
    assert planned.hpa_target == "a1"


# --- Rolling ---------------------------------------------------------------------------------


def test_rolling_sizes_the_new_revision_from_stable_and_flips_when_complete() -> None:
    d = Driver(ROLLING)
    d.stable()
    d.wait(10)
    started = d.plan("b2", [up("a1", 4)])
    assert sizes(started) == {"a1": 4, "b2": 4}
    assert started.service_revision == "a1"
    assert started.state.stable == "a1"
    assert started.state.canary == "b2"
    assert started.hpa_target == "a1"
    assert (started.progressing.status, started.progressing.reason) == (True, "RollingOut")
    assert "RolloutStarted" in reasons(started)

    d.wait(10)
    almost = d.plan("b2", [up("a1", 4), starting("b2", 4, ready=3)])
    assert almost.service_revision == "a1"
    assert almost.state.stable == "a1"
    assert almost.degraded is None

    d.wait(10)
    done = d.plan("b2", [up("a1", 4), up("b2", 4)])
    assert done.state.stable == "b2"
    assert done.service_revision == "b2"
    assert sizes(done) == {"b2": 4}
    assert done.keep == ()  # Rolling has no scale-down delay: the old Deployment goes now
    assert done.state.scale_down == ()
    assert [h.revision for h in done.state.history] == ["b2", "a1"]
    assert (done.progressing.status, done.progressing.reason) == (False, "RolloutComplete")
    assert "RevisionScaledDown" in reasons(done)


def test_rolling_is_sized_from_the_count_the_hpa_chose() -> None:
    d = Driver(ROLLING, autoscaling={"minReplicas": 2, "maxReplicas": 10})
    d.plan("a1", [up("a1", 2)])
    hpa_scaled = RevisionView("a1", 7, 7, True)
    started = d.plan("b2", [hpa_scaled])
    assert sizes(started) == {"a1": None, "b2": 7}
    assert started.hpa_target == "a1"
    not_enough = d.plan("b2", [hpa_scaled, up("b2", 2)])
    assert not_enough.state.stable == "a1"  # complete, but smaller than what serves now
    done = d.plan("b2", [hpa_scaled, up("b2", 7)])
    assert done.state.stable == "b2"
    assert sizes(done) == {"b2": None}
    assert done.hpa_target == "b2"


def test_rolling_progress_deadline_degrades_while_stable_still_serves() -> None:
    d = Driver(ROLLING)
    d.stable()
    d.plan("b2", [up("a1", 4)])
    stuck = [up("a1", 4), starting("b2", 4, problem=GPU_SHORTAGE)]
    d.wait(600)
    before = d.plan("b2", stuck)
    assert before.degraded is None
    d.wait(1)
    late = d.plan("b2", stuck)
    assert late.degraded is not None
    assert late.degraded.reason == "ProgressDeadlineExceeded"
    assert "InsufficientGPU" in late.degraded.message
    assert "0/4" in late.degraded.message
    assert late.service_revision == "a1"
    assert late.state.stable == "a1"
    assert sizes(late) == {"a1": 4, "b2": 4}


def test_history_is_newest_first_and_bounded() -> None:
    d = Driver({**ROLLING, "revisionHistoryLimit": 1})
    d.stable("a1")
    for revision, previous in (("b2", "a1"), ("c3", "b2"), ("d4", "c3")):
        d.plan(revision, [up(previous, 4)])
        done = d.plan(revision, [up(previous, 4), up(revision, 4)])
        assert done.state.stable == revision
    assert [h.revision for h in d.state.history] == ["d4", "c3"]


# --- Canary, Replicas mode -------------------------------------------------------------------


def canary_at_step(d: Driver, step: int) -> Plan:
    """a1 stable at 4, b2 a ready canary whose current step's pause is over."""
    d.stable()
    d.plan("b2", [up("a1", 4)])
    for _ in range(step):
        replicas = sizes(d.plans[-1])["b2"]
        assert replicas is not None
        d.wait(60)
        due = d.plan("b2", [up("a1", 4), up("b2", replicas)])
        assert due.needs_analysis
        d.plan("b2", [up("a1", 4), up("b2", replicas)], analysis=PASS)
    replicas = sizes(d.plans[-1])["b2"]
    assert replicas is not None
    d.wait(60)
    due = d.plan("b2", [up("a1", 4), up("b2", replicas)])
    assert due.needs_analysis
    assert due.state.step == step
    return due


def test_canary_happy_path_steps_10_then_50_then_promotion() -> None:
    d = Driver(CANARY)
    d.stable()
    d.wait(5)
    step1 = d.plan("b2", [up("a1", 4)])
    assert reasons(step1) == ["CanaryStarted"]
    assert step1.state.canary == "b2"
    assert step1.state.step == 0
    assert step1.state.step_started_at == d.now
    assert sizes(step1) == {"a1": 4, "b2": canary_replicas(4, 10)}
    assert step1.service_revision is None  # the main Service selects both revisions
    assert step1.requested_weight == 10
    assert step1.route_weights == {}
    assert step1.hpa_target == "a1"
    assert step1.progressing.reason == "CanaryProgressing"
    assert step1.progressing.message.startswith("step 1/2: canary b2 at 0% (requested 10%)")
    assert not step1.needs_analysis

    observed = [up("a1", 4), up("b2", 1)]
    d.wait(30)
    pausing = d.plan("b2", observed)
    assert not pausing.needs_analysis
    assert "next check in 30s" in pausing.progressing.message

    d.wait(30)
    due = d.plan("b2", observed)
    assert due.needs_analysis
    assert due.state.step == 0
    passed = d.plan("b2", observed, analysis=PASS)
    assert passed.state.step == 1
    assert passed.state.step_started_at == d.now
    assert passed.state.analysis is not None
    assert (passed.state.analysis.step, passed.state.analysis.passed) == (0, True)
    assert not passed.needs_analysis
    assert sizes(passed) == {"a1": 4, "b2": canary_replicas(4, 50)}
    assert passed.requested_weight == 50
    assert passed.service_revision is None
    assert reasons(passed) == ["CanaryStepPassed"]
    assert (
        "step 2/2: canary b2 at" in passed.progressing.message
        and "(requested 50%)" in passed.progressing.message
    )

    observed = [up("a1", 4), up("b2", 4)]
    d.wait(59)
    assert not d.plan("b2", observed).needs_analysis
    d.wait(1)
    assert d.plan("b2", observed).needs_analysis
    promoted = d.plan("b2", observed, analysis=PASS)
    # 50% of 4 is already the full size, so the promotion happens at once.
    assert reasons(promoted) == ["CanaryStepPassed", "CanaryPromoted"]
    assert promoted.state.stable == "b2"
    assert promoted.state.canary == ""
    assert promoted.service_revision == "b2"
    assert sizes(promoted) == {"b2": 4}
    assert promoted.keep == ("a1",)
    assert promoted.state.scale_down == (("a1", d.now + 30),)
    assert [h.revision for h in promoted.state.history] == ["b2", "a1"]
    assert (promoted.progressing.status, promoted.progressing.reason) == (False, "RolloutComplete")

    d.wait(29)
    waiting = d.plan("b2", [up("a1", 4), up("b2", 4)])
    assert waiting.keep == ("a1",)
    assert "a1" not in sizes(waiting)
    d.wait(1)  # scaleDownDelaySeconds after the promotion
    gone = d.plan("b2", [up("a1", 4), up("b2", 4)])
    assert gone.keep == ()
    assert gone.state.scale_down == ()
    assert reasons(gone) == ["RevisionScaledDown"]
    assert sizes(gone) == {"b2": 4}


def test_promotion_scales_the_canary_to_full_before_it_becomes_stable() -> None:
    d = Driver(with_canary(steps=[{"weight": 10}, {"weight": 30}], analysis=None))
    d.stable()
    d.plan("b2", [up("a1", 4)])
    step2 = d.plan("b2", [up("a1", 4), up("b2", 1)])
    assert step2.state.step == 1
    assert sizes(step2)["b2"] == 2
    full = d.plan("b2", [up("a1", 4), up("b2", 2)])
    assert full.state.stable == "a1"
    assert full.requested_weight == 100
    assert sizes(full) == {"a1": 4, "b2": 4}
    assert full.progressing.message.startswith("promotion: canary b2 at 33% (requested 100%)")
    assert full.service_revision is None
    promoted = d.plan("b2", [up("a1", 4), up("b2", 4)])
    assert promoted.state.stable == "b2"


def test_one_analysis_result_advances_one_step_only() -> None:
    # Two steps at the same weight and no pause: after the first passes, the canary is
    # already the size the second asks for, and that step still needs its own analysis.
    d = Driver(with_canary(steps=[{"weight": 10}, {"weight": 10}, {"weight": 50}]))
    d.stable()
    d.plan("b2", [up("a1", 4)])
    observed = [up("a1", 4), up("b2", 1)]
    assert d.plan("b2", observed).needs_analysis
    passed = d.plan("b2", observed, analysis=PASS)
    assert passed.state.step == 1
    assert passed.needs_analysis  # asks again, for step 2
    assert reasons(passed) == ["CanaryStepPassed"]
    again = d.plan("b2", observed, analysis=PASS)
    assert again.state.step == 2


def test_no_analysis_before_the_pause_or_before_the_canary_is_ready() -> None:
    d = Driver(CANARY)
    d.stable()
    d.plan("b2", [up("a1", 4)])
    d.wait(120)
    not_ready = d.plan("b2", [up("a1", 4), starting("b2", 1)])
    assert not not_ready.needs_analysis
    assert "waiting for canary replicas" in not_ready.progressing.message
    # A result that arrives anyway does not count before the canary is ready.
    ignored = d.plan("b2", [up("a1", 4), starting("b2", 1)], analysis=PASS)
    assert ignored.state.step == 0
    assert ignored.state.analysis is None
    # The wrong size is not ready either (a stale count from before the step).
    wrong_size = d.plan("b2", [up("a1", 4), up("b2", 2)])
    assert not wrong_size.needs_analysis
    assert d.plan("b2", [up("a1", 4), up("b2", 1)]).needs_analysis


def test_a_result_during_the_pause_does_not_count() -> None:
    d = Driver(CANARY)
    d.stable()
    d.plan("b2", [up("a1", 4)])
    d.wait(10)
    early = d.plan("b2", [up("a1", 4), up("b2", 1)], analysis=PASS)
    assert early.state.step == 0
    assert early.state.analysis is None


def test_failed_analysis_aborts_to_stable() -> None:
    d = Driver(CANARY)
    canary_at_step(d, 1)
    failed = d.plan("b2", [up("a1", 4), up("b2", 4)], analysis=FAIL)
    assert failed.state.aborted_revision == "b2"
    assert failed.state.abort_reason == "CanaryAnalysisFailed"
    assert failed.state.canary == ""
    assert failed.state.stable == "a1"
    assert failed.degraded is not None
    assert failed.degraded.reason == "CanaryAnalysisFailed"
    assert failed.degraded.message == FAIL.message
    assert (failed.progressing.status, failed.progressing.reason) == (False, "RolloutAborted")
    assert sizes(failed) == {"a1": 4, "b2": 0}
    assert failed.service_revision == "a1"
    assert failed.requested_weight is None
    assert ("Warning", "CanaryAnalysisFailed", FAIL.message) in failed.events
    assert not failed.needs_analysis


def test_an_analysis_the_operator_refuses_aborts_with_its_own_reason() -> None:
    refused = AnalysisResult(False, "CustomChecksDisabled", "customChecks (peek) are disabled")
    d = Driver(CANARY)
    canary_at_step(d, 0)
    failed = d.plan("b2", [up("a1", 4), up("b2", 1)], analysis=refused)
    assert failed.state.aborted_revision == "b2" and failed.state.stable == "a1"
    assert failed.state.abort_reason == "CustomChecksDisabled"
    assert failed.degraded is not None
    assert (failed.degraded.reason, failed.degraded.message) == (
        "CustomChecksDisabled",
        refused.message,
    )
    assert sizes(failed) == {"a1": 4, "b2": 0}
    assert ("Warning", "CustomChecksDisabled", refused.message) in failed.events
    assert not any(e[1] == "CanaryStepPassed" for e in failed.events)


def test_aborted_canary_is_not_retried_until_asked() -> None:
    d = Driver(CANARY)
    canary_at_step(d, 0)
    d.plan("b2", [up("a1", 4), up("b2", 1)], analysis=FAIL)
    for _ in range(3):
        d.wait(700)
        held = d.plan("b2", [up("a1", 4), RevisionView("b2", 0, 0, True)])
        assert held.state.aborted_revision == "b2"
        assert sizes(held) == {"a1": 4, "b2": 0}
        assert held.service_revision == "a1"
        assert held.events == ()
        assert not held.needs_analysis

    retried = d.plan("b2", [up("a1", 4), RevisionView("b2", 0, 0, True)], (RETRY,))
    assert retried.handled == (RETRY,)
    assert reasons(retried) == ["RolloutRetried", "CanaryStarted"]
    assert retried.state.aborted_revision == ""
    assert retried.state.step == 0
    assert retried.state.step_started_at == d.now
    assert retried.state.analysis is None
    assert sizes(retried) == {"a1": 4, "b2": 1}
    assert retried.degraded is None


def test_abort_annotation_then_a_new_spec_starts_a_new_canary() -> None:
    d = Driver(CANARY)
    d.stable()
    d.plan("b2", [up("a1", 4)])
    aborted = d.plan("b2", [up("a1", 4), up("b2", 1)], (ABORT,))
    assert aborted.handled == (ABORT,)
    assert aborted.degraded is not None
    assert aborted.degraded.reason == "Aborted"
    assert aborted.state.abort_reason == "Aborted"
    assert sizes(aborted) == {"a1": 4, "b2": 0}
    assert aborted.service_revision == "a1"
    assert [e[:2] for e in aborted.events] == [("Warning", "Aborted")]

    still = d.plan("b2", [up("a1", 4), RevisionView("b2", 0, 0, True)])
    assert still.state.aborted_revision == "b2"
    assert "CanaryStarted" not in reasons(still)

    changed = d.plan("c3", [up("a1", 4), RevisionView("b2", 0, 0, True)])
    assert changed.state.canary == "c3"
    assert changed.state.aborted_revision == ""
    assert sizes(changed) == {"a1": 4, "c3": 1}  # b2 is not planned: it is removed
    assert "b2" not in changed.keep
    assert changed.degraded is None
    assert reasons(changed) == ["CanaryStarted"]


def test_spec_back_to_stable_cancels_the_canary() -> None:
    d = Driver(CANARY)
    d.stable()
    d.plan("b2", [up("a1", 4)])
    back = d.plan("a1", [up("a1", 4), up("b2", 1)])
    assert reasons(back) == ["RolloutCancelled"]
    assert back.state.canary == ""
    assert sizes(back) == {"a1": 4}
    assert back.service_revision == "a1"


def test_inconclusive_analysis_waits_one_interval() -> None:
    d = Driver(CANARY)
    canary_at_step(d, 0)
    observed = [up("a1", 4), up("b2", 1)]
    inconclusive = d.plan("b2", observed, analysis=INCONCLUSIVE)
    assert inconclusive.state.step == 0
    assert inconclusive.state.aborted_revision == ""
    assert inconclusive.state.analysis is not None
    assert inconclusive.state.analysis.passed is None
    assert not inconclusive.needs_analysis
    assert "next analysis in 30s" in inconclusive.progressing.message
    d.wait(29)
    waiting = d.plan("b2", observed)
    assert not waiting.needs_analysis
    assert "next analysis in 1s" in waiting.progressing.message
    d.wait(1)
    assert d.plan("b2", observed).needs_analysis


def test_inconclusive_analysis_holds_the_step_until_the_progress_deadline_then_aborts() -> None:
    """The deadline counts from the end of the step's pause: T0 + 60 + 600."""
    d = Driver(CANARY)
    canary_at_step(d, 0)  # now T0 + 60: the analysis is due
    observed = [up("a1", 4), up("b2", 1)]
    while d.now + 30 <= T0 + 660:
        held = d.plan("b2", observed, analysis=INCONCLUSIVE)
        assert held.state.aborted_revision == "" and held.state.step == 0
        assert held.degraded is None and sizes(held) == {"a1": 4, "b2": 1}
        left = int(T0 + 660 - d.now)
        assert held.progressing.message.endswith(
            f"analysis inconclusive (canary had 3 of 20 requests), next analysis in 30s, "
            f"aborted if still inconclusive in {left}s"
        ), held.progressing.message
        d.wait(30)
        assert d.plan("b2", observed).needs_analysis
    d.wait(T0 + 661 - d.now)
    late = d.plan("b2", observed, analysis=INCONCLUSIVE)
    assert late.state.aborted_revision == "b2" and late.state.stable == "a1"
    assert late.state.abort_reason == "AnalysisInconclusive"
    assert late.degraded is not None and late.degraded.reason == "AnalysisInconclusive"
    assert late.degraded.message == (
        "analysis of step 1/2 stayed inconclusive for more than 600s "
        "(progressDeadlineSeconds): canary had 3 of 20 requests"
    )
    assert sizes(late) == {"a1": 4, "b2": 0} and late.service_revision == "a1"
    assert ("Warning", "AnalysisInconclusive", late.degraded.message) in late.events


def test_inconclusive_analysis_past_the_deadline_aborts_without_waiting_for_a_result() -> None:
    d = Driver(CANARY)
    canary_at_step(d, 0)
    observed = [up("a1", 4), up("b2", 1)]
    d.plan("b2", observed, analysis=INCONCLUSIVE)
    d.wait(601)  # the operator was down: no analysis ran meanwhile
    late = d.plan("b2", observed)
    assert late.state.abort_reason == "AnalysisInconclusive"
    assert not late.needs_analysis


def test_inconclusive_analysis_then_traffic_arrives_and_the_step_passes() -> None:
    d = Driver(CANARY)
    canary_at_step(d, 0)
    observed = [up("a1", 4), up("b2", 1)]
    for _ in range(5):
        assert d.plan("b2", observed, analysis=INCONCLUSIVE).state.step == 0
        d.wait(30)
    passed = d.plan("b2", observed, analysis=PASS)
    assert passed.state.step == 1 and passed.state.aborted_revision == ""
    assert "CanaryStepPassed" in reasons(passed)


def test_analysis_abort_then_retry_starts_a_clean_analysis_and_the_canary_is_promoted() -> None:
    """Abort on analysis, hold, retry, analyze afresh (the deadline and the last result of
    the aborted attempt are gone), pass every step, promote."""
    d = Driver(CANARY)
    canary_at_step(d, 0)
    d.plan("b2", [up("a1", 4), up("b2", 1)], analysis=INCONCLUSIVE)
    d.wait(30)
    shifted = AnalysisResult(False, "PredictionShift", "prediction shift: chi-square 175 > 9.21")
    aborted = d.plan("b2", [up("a1", 4), up("b2", 1)], analysis=shifted)
    assert aborted.state.abort_reason == "PredictionShift"
    assert aborted.degraded is not None and aborted.degraded.reason == "PredictionShift"
    d.wait(900)  # far past the aborted attempt's deadline

    retried = d.plan("b2", [up("a1", 4), RevisionView("b2", 0, 0, True)], (RETRY,))
    assert reasons(retried) == ["RolloutRetried", "CanaryStarted"]
    assert retried.state.analysis is None and retried.state.step == 0
    assert retried.degraded is None
    observed = [up("a1", 4), up("b2", 1)]
    pausing = d.plan("b2", observed)
    assert not pausing.needs_analysis  # the step's pause runs again
    d.wait(60)
    assert d.plan("b2", observed).needs_analysis
    held = d.plan("b2", observed, analysis=INCONCLUSIVE)  # a fresh deadline: not aborted
    assert held.state.aborted_revision == "" and "in 600s" in held.progressing.message
    d.wait(30)
    step_two = d.plan("b2", observed, analysis=PASS)
    assert step_two.state.step == 1
    d.wait(60)
    bigger = [up("a1", 4), up("b2", 4)]
    assert d.plan("b2", bigger).needs_analysis
    done = d.plan("b2", bigger, analysis=PASS)  # the last step passed, b2 already at full size
    assert done.state.stable == "b2" and done.state.aborted_revision == ""
    assert done.state.analysis is None and done.degraded is None
    assert reasons(done)[-1] == "CanaryPromoted"


def test_promote_annotation_skips_the_remaining_steps() -> None:
    d = Driver(CANARY)
    d.stable()
    d.plan("b2", [up("a1", 4)])
    promoting = d.plan("b2", [up("a1", 4), up("b2", 1)], (PROMOTE,))
    assert promoting.handled == (PROMOTE,)
    assert "PromotionRequested" in reasons(promoting)
    assert promoting.requested_weight == 100
    assert sizes(promoting) == {"a1": 4, "b2": 4}
    assert not promoting.needs_analysis
    assert promoting.state.stable == "a1"
    done = d.plan("b2", [up("a1", 4), up("b2", 4)])
    assert done.state.stable == "b2"
    assert done.keep == ("a1",)


def test_canary_never_ready_is_aborted_at_the_progress_deadline() -> None:
    d = Driver(CANARY)
    d.stable()
    d.plan("b2", [up("a1", 4)])
    stuck = [up("a1", 4), starting("b2", 1, problem=GPU_SHORTAGE)]
    d.wait(600)
    waiting = d.plan("b2", stuck)
    assert waiting.state.aborted_revision == ""
    assert waiting.degraded is not None
    assert waiting.degraded.reason == "InsufficientGPU"  # shown before the deadline
    assert sizes(waiting) == {"a1": 4, "b2": 1}
    d.wait(1)
    late = d.plan("b2", stuck)
    assert late.state.aborted_revision == "b2"
    assert late.degraded is not None
    assert late.degraded.reason == "ProgressDeadlineExceeded"
    assert "InsufficientGPU" in late.degraded.message
    assert "0/1" in late.degraded.message
    assert sizes(late) == {"a1": 4, "b2": 0}
    assert late.service_revision == "a1"
    assert ("Warning", "ProgressDeadlineExceeded") in {e[:2] for e in late.events}


def test_progress_deadline_counts_from_the_start_of_each_step() -> None:
    d = Driver(CANARY)
    canary_at_step(d, 0)
    d.wait(500)  # well into the deadline, but the step passes
    d.plan("b2", [up("a1", 4), up("b2", 1)], analysis=PASS)
    d.wait(500)
    step2 = d.plan("b2", [up("a1", 4), starting("b2", 4, ready=1)])
    assert step2.state.aborted_revision == ""
    d.wait(101)
    late = d.plan("b2", [up("a1", 4), starting("b2", 4, ready=1)])
    assert late.state.aborted_revision == "b2"


def test_canary_under_autoscaling_is_sized_from_the_hpa_count() -> None:
    d = Driver(CANARY, autoscaling={"minReplicas": 2, "maxReplicas": 20})
    d.plan("a1", [up("a1", 2)])
    started = d.plan("b2", [RevisionView("a1", 9, 9, True)])
    assert sizes(started) == {"a1": None, "b2": canary_replicas(9, 10)}
    assert started.hpa_target == "a1"


# --- Canary, GatewayAPI mode -----------------------------------------------------------------


GATEWAY = with_canary(
    trafficRouting={"mode": "GatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
)


def test_gateway_weights_only_go_to_a_canary_with_ready_pods() -> None:
    d = Driver(GATEWAY)
    d.stable()
    started = d.plan("b2", [up("a1", 4)])
    assert started.route_weights == {"a1": 100, "b2": 0}
    assert started.service_revision == "a1"
    assert started.requested_weight == 10
    starting_up = d.plan("b2", [up("a1", 4), starting("b2", 1)])
    assert starting_up.route_weights == {"a1": 100, "b2": 0}
    live = d.plan("b2", [up("a1", 4), up("b2", 1)])
    assert live.route_weights == {"a1": 90, "b2": 10}
    assert live.service_revision == "a1"
    d.wait(60)
    d.plan("b2", [up("a1", 4), up("b2", 1)], analysis=PASS)
    step2 = d.plan("b2", [up("a1", 4), up("b2", 1)])
    assert step2.requested_weight == 50
    # The step's weight waits for the step's replicas; until then the previous weight holds.
    assert step2.route_weights == {"a1": 90, "b2": 10}
    scaled = d.plan("b2", [up("a1", 4), up("b2", 4)])
    assert scaled.route_weights == {"a1": 50, "b2": 50}
    assert step2.service_revision == "a1"
    aborted = d.plan("b2", [up("a1", 4), up("b2", 4)], (ABORT,))
    assert aborted.route_weights == {}
    assert aborted.service_revision == "a1"


def test_gateway_promotion_keeps_stable_traffic_until_the_canary_is_full() -> None:
    rollout = copy.deepcopy(GATEWAY)
    rollout["canary"].update(steps=[{"weight": 10}], analysis=None)
    d = Driver(rollout)
    d.stable()
    d.plan("b2", [up("a1", 4)])
    promoting = d.plan("b2", [up("a1", 4), up("b2", 1)])  # step 1 passes, no analysis
    assert promoting.requested_weight == 100
    assert sizes(promoting) == {"a1": 4, "b2": 4}
    # 1 canary pod of 5: it should not take all of the traffic yet.
    assert promoting.route_weights["a1"] > 0


# --- rollback --------------------------------------------------------------------------------


def promoted_canary(d: Driver) -> None:
    """a1 then b2 promoted by canary; a1 waits for its scale-down delay."""
    d.stable()
    d.plan("b2", [up("a1", 4)])
    d.plan("b2", [up("a1", 4), up("b2", 1)], (PROMOTE,))
    done = d.plan("b2", [up("a1", 4), up("b2", 4)])
    assert done.state.stable == "b2"


def test_rollback_flips_at_once_to_a_previous_revision_that_is_still_up() -> None:
    d = Driver(CANARY)
    promoted_canary(d)
    d.wait(5)
    back = d.plan("b2", [up("a1", 4), up("b2", 4)], (ROLLBACK,))
    assert back.handled == (ROLLBACK,)
    assert back.state.stable == "a1"
    assert back.service_revision == "a1"
    assert back.state.aborted_revision == "b2"
    assert back.state.abort_reason == "RolledBack"
    assert back.degraded is not None
    assert back.degraded.reason == "RolledBack"
    assert sizes(back) == {"a1": 4, "b2": 0}
    # a1 runs its own spec, from history, not the spec's (b2's).
    assert back.deployments[0] == DeploymentPlan("a1", d.raw("a1"), 4)
    assert back.keep == ()
    assert [h.revision for h in back.state.history] == ["a1", "b2"]
    assert {"RollbackStarted", "RolledBack"} <= set(reasons(back))

    # The spec still names b2, which is not brought back on the next plan.
    after = d.plan("b2", [up("a1", 4), RevisionView("b2", 0, 0, True)])
    assert after.state.stable == "a1"
    assert sizes(after) == {"a1": 4, "b2": 0}
    assert "CanaryStarted" not in reasons(after)


def test_rollback_brings_a_removed_revision_up_before_switching() -> None:
    d = Driver(ROLLING)
    d.stable()
    d.plan("b2", [up("a1", 4)])
    d.plan("b2", [up("a1", 4), up("b2", 4)])
    assert d.state.stable == "b2"
    d.wait(100)
    rolling_back = d.plan("b2", [up("b2", 4)], (ROLLBACK,))
    assert rolling_back.handled == (ROLLBACK,)
    assert rolling_back.state.stable == "b2"
    assert rolling_back.state.rollback
    assert rolling_back.state.canary == "a1"
    assert rolling_back.service_revision == "b2"
    assert (rolling_back.progressing.status, rolling_back.progressing.reason) == (
        True,
        "RollingBack",
    )
    assert list(rolling_back.deployments) == [
        DeploymentPlan("b2", d.raw("b2"), 4),
        DeploymentPlan("a1", d.raw("a1"), 4),  # its own spec, from history
    ]
    half = d.plan("b2", [up("b2", 4), starting("a1", 4, ready=2)])
    assert half.service_revision == "b2"
    assert half.progressing.reason == "RollingBack"
    flipped = d.plan("b2", [up("b2", 4), up("a1", 4)])
    assert flipped.state.stable == "a1"
    assert flipped.service_revision == "a1"
    assert flipped.state.aborted_revision == "b2"
    assert sizes(flipped) == {"a1": 4, "b2": 0}


def test_rollback_without_history_is_refused() -> None:
    d = Driver(ROLLING)
    d.stable()
    refused = d.plan("a1", [up("a1", 4)], (ROLLBACK,))
    assert refused.handled == (ROLLBACK,)
    assert refused.state.stable == "a1"
    assert ("Warning", "RollbackUnavailable") in {e[:2] for e in refused.events}


def test_rollback_to_a_revision_scaled_to_zero_brings_it_up_first() -> None:
    d = Driver(CANARY)
    promoted_canary(d)
    d.plan("b2", [up("a1", 4), up("b2", 4)], (ROLLBACK,))  # back to a1; b2 goes to 0
    assert d.state.stable == "a1"
    # A Deployment scaled to 0 is complete (0 of 0 available), as status.revision_view says.
    b2_at_zero = RevisionView("b2", 0, 0, True)
    again = d.plan("b2", [up("a1", 4), b2_at_zero], (ROLLBACK,))  # undo: back to b2
    assert again.service_revision == "a1"  # b2 has no pods yet
    assert again.progressing.reason == "RollingBack"
    assert sizes(again) == {"a1": 4, "b2": 4}


# --- BlueGreen -------------------------------------------------------------------------------


def test_blue_green_smoke_test_failure_blocks_until_retry_then_promotes() -> None:
    d = Driver(BLUE_GREEN)
    d.stable()
    preview = d.plan("b2", [up("a1", 4)])
    assert reasons(preview) == ["PreviewStarted"]
    assert preview.preview_revision == "b2"
    assert preview.service_revision == "a1"
    assert sizes(preview) == {"a1": 4, "b2": 4}
    assert preview.progressing.reason == "PreviewProgressing"
    assert not preview.needs_smoke_test

    partly = d.plan("b2", [up("a1", 4), starting("b2", 4, ready=3)])
    assert not partly.needs_smoke_test
    ready = [up("a1", 4), up("b2", 4)]
    due = d.plan("b2", ready)
    assert due.needs_smoke_test
    assert due.progressing.reason == "SmokeTesting"

    failed = d.plan("b2", ready, smoke=SmokeResult(False, "request 1: expected 200, got 500"))
    assert failed.degraded is not None
    assert failed.degraded.reason == "SmokeTestFailed"
    assert failed.degraded.message == "request 1: expected 200, got 500"
    assert (failed.progressing.status, failed.progressing.reason) == (False, "SmokeTestFailed")
    assert failed.state.stable == "a1"
    assert failed.service_revision == "a1"
    assert not failed.needs_smoke_test
    assert ("Warning", "SmokeTestFailed") in {e[:2] for e in failed.events}

    d.wait(3600)
    blocked = d.plan("b2", ready)
    assert not blocked.needs_smoke_test
    assert blocked.state.stable == "a1"
    assert blocked.degraded is not None
    assert blocked.degraded.reason == "SmokeTestFailed"
    # Another result that arrives unasked does not replace the failure either.
    unasked = d.plan("b2", ready, smoke=SmokeResult(True, "ok"))
    assert unasked.state.stable == "a1"

    # As reconcile does: plan, run the smoke test asked for, plan again from the same state.
    retry = plan(d.input("b2", ready, (RETRY,)))
    assert retry.handled == (RETRY,)
    assert retry.needs_smoke_test
    passed = d.plan("b2", ready, (RETRY,), smoke=SmokeResult(True, "2 of 2 requests passed"))
    assert passed.handled == (RETRY,)
    assert passed.state.stable == "b2"
    assert passed.service_revision == "b2"
    assert passed.preview_revision == ""
    assert passed.keep == ("a1",)
    assert passed.state.scale_down == (("a1", d.now + 30),)
    assert "PreviewPromoted" in reasons(passed)
    d.wait(31)
    gone = d.plan("b2", ready)
    assert gone.keep == ()
    assert sizes(gone) == {"b2": 4}


def test_blue_green_without_auto_promote_waits_for_the_annotation() -> None:
    d = Driver(with_blue_green(autoPromote=False, smokeTest=None))
    d.stable()
    d.plan("b2", [up("a1", 4)])
    ready = [up("a1", 4), up("b2", 4)]
    waiting = d.plan("b2", ready)
    assert not waiting.needs_smoke_test
    assert (waiting.progressing.status, waiting.progressing.reason) == (True, "AwaitingPromotion")
    assert waiting.service_revision == "a1"
    d.wait(3600)  # waiting for a person is not a progress-deadline failure
    assert d.plan("b2", ready).progressing.reason == "AwaitingPromotion"
    promoted = d.plan("b2", ready, (PROMOTE,))
    assert promoted.handled == (PROMOTE,)
    assert promoted.state.stable == "b2"
    assert promoted.service_revision == "b2"
    assert promoted.keep == ("a1",)


def test_blue_green_rollback_flips_back_to_the_kept_revision() -> None:
    d = Driver(with_blue_green(smokeTest=None))
    d.stable()
    d.plan("b2", [up("a1", 4)])
    flipped = d.plan("b2", [up("a1", 4), up("b2", 4)])
    assert flipped.service_revision == "b2"
    d.wait(10)
    back = d.plan("b2", [up("a1", 4), up("b2", 4)], (ROLLBACK,))
    assert back.service_revision == "a1"
    assert back.state.stable == "a1"
    assert sizes(back) == {"a1": 4, "b2": 0}


def test_blue_green_preview_never_ready_is_aborted_at_the_deadline() -> None:
    d = Driver(BLUE_GREEN)
    d.stable()
    d.plan("b2", [up("a1", 4)])
    d.wait(601)
    late = d.plan("b2", [up("a1", 4), starting("b2", 4, ready=1, problem=GPU_SHORTAGE)])
    assert late.state.aborted_revision == "b2"
    assert late.degraded is not None
    assert late.degraded.reason == "ProgressDeadlineExceeded"
    assert "InsufficientGPU" in late.degraded.message
    assert late.service_revision == "a1"
    assert sizes(late) == {"a1": 4, "b2": 0}


# --- restart safety --------------------------------------------------------------------------


def restarted(state: RolloutState, planned: Plan) -> RolloutState:
    status = state_to_status(state, planned.progressing.reason, planned.progressing.message)
    return state_from_status(copy.deepcopy(status))


def test_restart_mid_step_resumes_at_the_same_step() -> None:
    d = Driver(CANARY)
    canary_at_step(d, 1)
    observed = [up("a1", 4), up("b2", 4)]
    inconclusive = d.plan("b2", observed, analysis=INCONCLUSIVE)
    state = restarted(d.state, inconclusive)
    assert state == d.state

    for elapsed in (0, 10, 29, 30, 31):
        inp = replace(d.input("b2", observed), now=d.now + elapsed)
        before = plan(inp)
        after = plan(replace(inp, state=state))
        assert after == before
        assert after.state.step == 1
        assert after.needs_analysis is (elapsed >= 30)


def test_restart_after_a_passed_step_does_not_repeat_or_skip_analysis() -> None:
    d = Driver(CANARY)
    canary_at_step(d, 0)
    passed = d.plan("b2", [up("a1", 4), up("b2", 1)], analysis=PASS)
    state = restarted(d.state, passed)
    assert state == d.state
    assert state.step == 1
    observed = [up("a1", 4), up("b2", 4)]
    inp = replace(d.input("b2", observed), state=state)
    assert not plan(inp).needs_analysis  # the new step's pause starts over, once
    later = replace(inp, now=d.now + 60)
    due = plan(later)
    assert due.needs_analysis
    assert due.state.step == 1


@pytest.mark.parametrize("scenario", ["paused", "aborted", "rolling-back", "scale-down", "smoke"])
def test_restart_at_any_point_plans_the_same(scenario: str) -> None:
    if scenario == "smoke":
        d = Driver(BLUE_GREEN)
        d.stable()
        d.plan("b2", [up("a1", 4)])
        observed = [up("a1", 4), up("b2", 4)]
        d.plan("b2", observed, smoke=SmokeResult(False, "got 500"))
    elif scenario == "rolling-back":
        d = Driver(ROLLING)
        d.stable()
        d.plan("b2", [up("a1", 4)])
        d.plan("b2", [up("a1", 4), up("b2", 4)])
        observed = [up("b2", 4)]
        d.plan("b2", observed, (ROLLBACK,))
    else:
        d = Driver(CANARY)
        if scenario == "scale-down":
            promoted_canary(d)
            observed = [up("a1", 4), up("b2", 4)]
        else:
            d.stable()
            d.plan("b2", [up("a1", 4)])
            observed = [up("a1", 4), up("b2", 1)]
            if scenario == "aborted":
                d.plan("b2", observed, (ABORT,))
    last = d.plans[-1]
    state = restarted(d.state, last)
    assert state == d.state
    for elapsed in (0, 15, 45, 700):
        inp = replace(d.input("b2", observed), now=d.now + elapsed)
        assert plan(replace(inp, state=state)) == plan(inp)


# --- no downtime, over random histories ------------------------------------------------------

REVISIONS = ("a1", "b2", "c3")
ANNOTATIONS = (PROMOTE, ABORT, RETRY, ROLLBACK)
ACTIONS = ("converge", "converge", "progress", "fail", "spec", "annotate", "wait")


@dataclass
class Cluster:
    """Deployments that do what they are told, at the pace the test chooses."""

    views: dict[str, RevisionView] = field(default_factory=dict)
    targets: dict[str, int] = field(default_factory=dict)

    def apply(self, planned: Plan, default: int) -> None:
        self.targets = {}
        for d in planned.deployments:
            replicas = d.replicas
            if replicas is None:
                view = self.views.get(d.revision)
                replicas = view.replicas if view and view.replicas else default
            self.targets[d.revision] = replicas
        for revision in list(self.views):
            if revision not in self.targets and revision not in planned.keep:
                del self.views[revision]
        # A Deployment scaled to 0 is modelled as gone: the case where it is observed as
        # complete at 0 replicas is test_rollback_to_a_revision_scaled_to_zero_brings_it_up_first.
        for revision, replicas in self.targets.items():
            if replicas == 0:
                self.views.pop(revision, None)

    def converge(self) -> None:
        for revision, replicas in self.targets.items():
            if replicas > 0:
                self.views[revision] = up(revision, replicas)

    def progress(self, revision: str, ready: int, problem: PodProblem | None) -> None:
        replicas = self.targets.get(revision, 0)
        if replicas > 0:
            self.views[revision] = starting(revision, replicas, min(ready, replicas), problem)


def check_no_downtime(
    planned: Plan, desired: str, observed: dict[str, RevisionView], previous_stable: str
) -> None:
    def ready(revision: str) -> int:
        view = observed.get(revision)
        return view.ready if view else 0

    stable = planned.state.stable
    if stable:
        stable_plans = [d for d in planned.deployments if d.revision == stable]
        assert len(stable_plans) == 1, f"stable {stable} is not planned: {planned.deployments}"
        assert stable_plans[0].replicas is None or stable_plans[0].replicas > 0
    assert len({d.revision for d in planned.deployments}) == len(planned.deployments)
    if planned.service_revision is not None:
        assert planned.service_revision == (stable or desired)
        if previous_stable and ready(previous_stable) > 0:
            assert ready(planned.service_revision) > 0, (
                f"the Service moves from {previous_stable} to {planned.service_revision}, "
                f"which has no ready pods"
            )
    if planned.route_weights:
        assert sum(planned.route_weights.values()) == 100
        for revision, weight in planned.route_weights.items():
            if weight > 0 and revision != stable:
                assert ready(revision) > 0, f"route sends {weight}% to {revision} with no pods"


def run_history(rollout: JSON, data: st.DataObject) -> None:
    d = Driver(rollout, replicas=data.draw(st.integers(1, 5), label="replicas"))
    cluster = Cluster()
    desired = "a1"
    annotations: set[str] = set()
    d.stable("a1")
    cluster.apply(d.plans[-1], d.replicas)
    for _ in range(data.draw(st.integers(1, 30), label="steps")):
        action = data.draw(st.sampled_from(ACTIONS))
        if action == "converge":
            cluster.converge()
        elif action in ("progress", "fail"):
            candidates = sorted(r for r in cluster.targets if r != d.state.stable)
            if candidates:
                revision = data.draw(st.sampled_from(candidates))
                ready = data.draw(st.integers(0, 5))
                cluster.progress(revision, ready, GPU_SHORTAGE if action == "fail" else None)
        elif action == "spec":
            desired = data.draw(st.sampled_from(REVISIONS))
        elif action == "annotate":
            annotations.add(data.draw(st.sampled_from(ANNOTATIONS)))
        d.wait(data.draw(st.sampled_from([0, 1, 30, 61, 601]), label="seconds"))

        observed = dict(cluster.views)
        previous = d.state
        inp = d.input(desired, list(observed.values()), tuple(sorted(annotations)))
        planned = plan(inp)
        if planned.needs_analysis:
            result = data.draw(st.sampled_from([PASS, FAIL, INCONCLUSIVE]))
            planned = plan(replace(inp, analysis=result))
        if planned.needs_smoke_test:
            passed = data.draw(st.booleans(), label="smoke passes")
            planned = plan(replace(inp, smoke=SmokeResult(passed, "smoke")))

        check_no_downtime(planned, desired, observed, previous.stable)
        # Restart safety: the state as the status holds it plans exactly the same.
        assert restarted(planned.state, planned) == planned.state
        assert plan(replace(inp, state=restarted(previous, d.plans[-1]))) == plan(inp)

        d.state = planned.state
        d.plans.append(planned)
        annotations -= set(planned.handled)
        cluster.apply(planned, d.replicas)


HISTORY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@HISTORY_SETTINGS
@given(st.data())
def test_canary_never_sends_traffic_to_a_revision_without_ready_pods(data: st.DataObject) -> None:
    run_history(with_canary(steps=[{"weight": 10, "pauseSeconds": 30}, {"weight": 50}]), data)


@HISTORY_SETTINGS
@given(st.data())
def test_gateway_canary_never_sends_traffic_to_a_revision_without_ready_pods(
    data: st.DataObject,
) -> None:
    run_history(GATEWAY, data)


@HISTORY_SETTINGS
@given(st.data())
def test_blue_green_never_sends_traffic_to_a_revision_without_ready_pods(
    data: st.DataObject,
) -> None:
    run_history(BLUE_GREEN, data)


@HISTORY_SETTINGS
@given(st.data())
def test_blue_green_without_smoke_tests_never_drops_traffic(data: st.DataObject) -> None:
    run_history(with_blue_green(autoPromote=False, smokeTest=None), data)


def test_blue_green_waits_for_the_preview_service_endpoints_before_testing_or_flipping() -> None:
    """Ready pods the EndpointSlice controller has not seen Ready yet are not routable: a
    smoke test would find no endpoint, and a flip would leave the main Service with none."""
    for blue_green in (BLUE_GREEN, with_blue_green(smokeTest=None)):
        d = Driver(blue_green)
        d.stable()
        d.plan("b2", [up("a1", 4)])
        lagging = replace(up("b2", 4), serving=3)
        held = d.plan("b2", [up("a1", 4), lagging])
        assert not held.needs_smoke_test
        assert held.service_revision == "a1"
        assert held.state.stable == "a1"
        assert held.progressing.reason == "PreviewProgressing"
        assert held.progressing.message == (
            "preview b2 is ready; 3/4 replicas in its Service's endpoints"
        )
        moved = d.plan("b2", [up("a1", 4), up("b2", 4)])
        assert moved.needs_smoke_test or moved.service_revision == "b2"
    # Endpoints that never come are a failed rollout at the deadline, like pods never ready.
    d = Driver(with_blue_green(smokeTest=None))
    d.stable()
    d.plan("b2", [up("a1", 4)])
    d.wait(700)
    aborted = d.plan("b2", [up("a1", 4), replace(up("b2", 4), serving=0)])
    assert aborted.state.aborted_revision == "b2"
    assert aborted.service_revision == "a1"
