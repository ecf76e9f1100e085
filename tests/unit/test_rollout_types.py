"""The rollout's strategy and phase types: read from the spec and from statuses already written."""

from __future__ import annotations

from typing import Any

from modelroll.phases import (
    Aborted,
    AnalysisRecord,
    Progressing,
    RollingBack,
    RolloutState,
    SmokeRecord,
    Stable,
)
from modelroll.rollout_state import state_from_status
from modelroll.spec import parse_spec
from modelroll.strategy import BlueGreen, Canary, Rolling, Step, strategy_of

T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z
JSON = dict[str, Any]


def spec(rollout: JSON) -> Any:
    return parse_spec({"model": {"format": "onnx", "uri": "s3://m/iris"}, "rollout": rollout})


def test_canary_strategy_carries_its_block() -> None:
    strategy = strategy_of(
        spec(
            {
                "strategy": "Canary",
                "canary": {
                    "steps": [{"weight": 10, "pauseSeconds": 60}, {"weight": 50}],
                    "scaleDownDelaySeconds": 5,
                    "trafficRouting": {
                        "mode": "GatewayAPI",
                        "gatewayAPI": {"parentRefs": [{"name": "gw"}]},
                    },
                    "analysis": {"prometheus": {"endpoint": "main"}, "intervalSeconds": 7},
                },
            }
        )
    )
    assert isinstance(strategy, Canary)
    assert strategy.steps == (Step(10, 60), Step(50, 0))
    assert strategy.gateway
    assert strategy.scale_down_delay_seconds == 5
    assert strategy.analysis is not None
    assert strategy.analysis.interval_seconds == 7
    assert [strategy.weight(step) for step in range(3)] == [10, 50, 100]


def test_canary_in_replicas_mode_without_analysis() -> None:
    strategy = strategy_of(spec({"strategy": "Canary", "canary": {"steps": [{"weight": 20}]}}))
    assert strategy == Canary((Step(20, 0),), None, "Replicas", 30)
    assert not strategy.gateway


def test_blue_green_without_its_block_takes_the_defaults() -> None:
    assert strategy_of(spec({"strategy": "BlueGreen"})) == BlueGreen(True, 30, ())
    requests: list[JSON] = [{"name": "one", "body": {"inputs": []}, "expectStatus": 200}]
    settings = {
        "autoPromote": False,
        "scaleDownDelaySeconds": 0,
        "smokeTest": {"requests": requests},
    }
    strategy = strategy_of(spec({"strategy": "BlueGreen", "blueGreen": settings}))
    assert strategy == BlueGreen(False, 0, tuple(requests))


def test_rolling_is_the_default_and_a_canary_without_its_block_rolls() -> None:
    assert strategy_of(spec({})) == Rolling()
    assert strategy_of(spec({"strategy": "Rolling"})) == Rolling()
    # The schema refuses Canary without spec.rollout.canary; parsed anyway, it rolls out.
    assert strategy_of(spec({"strategy": "Canary"})) == Rolling()


# --- statuses written before the phases were types ---------------------------------------------

ANALYSIS: JSON = {
    "time": "2025-06-15T15:06:43Z",
    "step": 1,
    "reason": "CanaryAnalysisFailed",
    "message": "canary error rate 7.50% > 1%",
    "passed": False,
}
SMOKE: JSON = {
    "revision": "b2",
    "passed": False,
    "message": "got 500",
    "time": "2025-06-15T15:06:44Z",
}


def test_a_status_without_a_rollout_is_stable() -> None:
    state = state_from_status({"stableRevision": "a1", "rollout": {"state": "RolloutComplete"}})
    assert state == RolloutState(stable="a1", phase=Stable())
    assert (state.canary, state.step, state.aborted_revision, state.rollback) == ("", 0, "", False)


def test_a_canary_status_is_progressing_at_its_step() -> None:
    status = {
        "stableRevision": "a1",
        "canaryRevision": "b2",
        "currentStep": 1,
        "rollout": {
            "state": "CanaryProgressing",
            "stepStartedAt": "2025-06-15T15:06:40Z",
            "lastAnalysis": {**ANALYSIS, "passed": True, "step": 0},
        },
    }
    phase = state_from_status(status).phase
    assert phase == Progressing(
        "b2", T0, 1, AnalysisRecord(0, True, "CanaryAnalysisFailed", ANALYSIS["message"], T0 + 3)
    )


def test_an_aborted_status_keeps_what_the_attempt_saw() -> None:
    status = {
        "stableRevision": "a1",
        "rollout": {
            "state": "RolloutAborted",
            "lastAnalysis": ANALYSIS,
            "smokeTest": SMOKE,
            "abortedRevision": "b2",
            "abortReason": "CanaryAnalysisFailed",
            "abortMessage": "canary error rate 7.50% > 1%",
        },
    }
    state = state_from_status(status)
    assert state.phase == Aborted(
        "b2",
        "CanaryAnalysisFailed",
        "canary error rate 7.50% > 1%",
        AnalysisRecord(1, False, "CanaryAnalysisFailed", ANALYSIS["message"], T0 + 3),
        SmokeRecord("b2", False, "got 500", T0 + 4),
    )
    assert (state.canary, state.aborted_revision, state.abort_reason) == (
        "",
        "b2",
        "CanaryAnalysisFailed",
    )


def test_a_rollback_status_keeps_an_earlier_abort_and_drops_a_stale_smoke_test() -> None:
    rollback: JSON = {"state": "RollingBack", "stepStartedAt": "2025-06-15T15:06:40Z"}
    plain = {"stableRevision": "b2", "canaryRevision": "a1", "currentStep": 0, "rollout": rollback}
    # The planner before these types left the smoke test of an interrupted preview here.
    stale = {**plain, "rollout": {**rollback, "smokeTest": SMOKE}}
    assert state_from_status(stale) == state_from_status(plain)
    state = state_from_status(stale)
    assert state.phase == RollingBack("a1", T0)
    assert (state.rollback, state.canary, state.step, state.smoke) == (True, "a1", 0, None)
    aborted = {
        **plain,
        "rollout": {
            **rollback,
            "abortedRevision": "c3",
            "abortReason": "Aborted",
            "abortMessage": "m",
        },
    }
    assert state_from_status(aborted).phase == RollingBack("a1", T0, Aborted("c3", "Aborted", "m"))
