"""RolloutState to status and back: what a restarted operator reads is what was written."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from modelroll.phases import (
    Aborted,
    AnalysisRecord,
    HistoryEntry,
    Phase,
    Progressing,
    RollingBack,
    RolloutState,
    SmokeRecord,
)
from modelroll.rollout_state import from_time, state_from_status, state_to_status, to_time

T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z


def full_state(passed: bool | None = True, rollback: bool = True) -> RolloutState:
    """Every status field the phase can hold: a rollback keeps an earlier abort, with what
    that attempt last saw; without rollback, a canary at step 2 with its last results."""
    analysis = AnalysisRecord(1, passed, "AnalysisPassed", "error rate 0.0% over 240", T0 + 3)
    smoke = SmokeRecord("b2", False, "request 1: expected 200, got 500", T0 + 4)
    phase: Phase = Progressing("b2", T0 + 5, 2, analysis, smoke)
    if rollback:
        aborted = Aborted(
            "c3", "CanaryAnalysisFailed", "canary error rate 7.50% > 1%", analysis, smoke
        )
        phase = RollingBack("b2", T0 + 5, aborted)
    return RolloutState(
        stable="a1",
        phase=phase,
        scale_down=(("z9", T0 + 30), ("y8", T0 + 60)),
        history=(
            HistoryEntry("a1", "1.2.0", {"model": {"version": "1.2.0"}, "replicas": 3}, T0),
            HistoryEntry("z9", "1.1.0", {"model": {"version": "1.1.0"}}, T0 - 3600),
        ),
    )


def through_the_apiserver(state: RolloutState, state_name: str) -> RolloutState:
    status = state_to_status(state, state_name, "a message")
    return state_from_status(json.loads(json.dumps(status)))


@pytest.mark.parametrize("passed", [True, False, None])
def test_every_field_survives_the_round_trip(passed: bool | None) -> None:
    state = full_state(passed)
    assert through_the_apiserver(state, "RollingBack") == state
    progressing = full_state(passed, rollback=False)
    assert through_the_apiserver(progressing, "CanaryProgressing") == progressing


def test_rollback_flag_is_the_state_name() -> None:
    state = full_state(rollback=False)
    assert through_the_apiserver(state, "CanaryProgressing") == state
    status = state_to_status(full_state(), "RollingBack", "bringing back a1")
    assert status["rollout"] == {
        "state": "RollingBack",
        "message": "bringing back a1",
        "stepStartedAt": "2025-06-15T15:06:45Z",
        "lastAnalysis": {
            "time": "2025-06-15T15:06:43Z",
            "step": 1,
            "reason": "AnalysisPassed",
            "message": "error rate 0.0% over 240",
            "passed": True,
        },
        "smokeTest": {
            "revision": "b2",
            "passed": False,
            "message": "request 1: expected 200, got 500",
            "time": "2025-06-15T15:06:44Z",
        },
        "abortedRevision": "c3",
        "abortReason": "CanaryAnalysisFailed",
        "abortMessage": "canary error rate 7.50% > 1%",
        "scaleDown": [
            {"revision": "z9", "at": "2025-06-15T15:07:10Z"},
            {"revision": "y8", "at": "2025-06-15T15:07:40Z"},
        ],
    }
    # A rollback has no step (it writes 0); the step is that of a canary.
    canary = state_to_status(full_state(rollback=False), "CanaryProgressing", "")
    assert (canary["stableRevision"], canary["canaryRevision"], canary["currentStep"]) == (
        "a1",
        "b2",
        2,
    )
    assert [h["revision"] for h in status["history"]] == ["a1", "z9"]
    assert status["history"][0]["promotedAt"] == "2025-06-15T15:06:40Z"


def test_inconclusive_analysis_writes_no_passed_field() -> None:
    status = state_to_status(full_state(None), "CanaryProgressing", "")
    assert "passed" not in status["rollout"]["lastAnalysis"]


def test_empty_state_round_trips_and_writes_only_the_state_name() -> None:
    empty = RolloutState()
    status = state_to_status(empty, "RolloutComplete", "done")
    assert status == {"rollout": {"state": "RolloutComplete", "message": "done"}}
    assert state_from_status(status) == empty
    assert state_from_status({}) == empty


def test_steady_state_round_trips() -> None:
    steady = RolloutState(
        stable="a1", history=(HistoryEntry("a1", "1", {"model": {"version": "1"}}, T0),)
    )
    status = state_to_status(steady, "RolloutComplete", "")
    assert "canaryRevision" not in status
    assert "currentStep" not in status
    assert through_the_apiserver(steady, "RolloutComplete") == steady


def test_timestamps_are_kept_to_the_second() -> None:
    assert to_time(T0) == "2025-06-15T15:06:40Z"
    assert to_time(T0 + 0.999) == "2025-06-15T15:06:40Z"
    assert from_time("2025-06-15T15:06:40Z") == T0
    assert from_time(None) == from_time("") == 0.0
    state = RolloutState(
        stable="a1",
        phase=Progressing("b2", T0 + 0.75, step=1),
        scale_down=(("z9", T0 + 30.5),),
    )
    back = through_the_apiserver(state, "CanaryProgressing")
    assert back.step_started_at == T0
    assert back.scale_down == (("z9", T0 + 30),)


@given(st.integers(min_value=1, max_value=4_000_000_000))
def test_whole_seconds_round_trip_exactly(epoch: int) -> None:
    assert from_time(to_time(float(epoch))) == float(epoch)
