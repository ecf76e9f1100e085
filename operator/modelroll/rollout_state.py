"""RolloutState to and from the ModelDeployment's status (where it survives restarts)."""

from __future__ import annotations

import copy
import datetime

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
from modelroll.spec import JSON


def to_time(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_time(text: str | None) -> float:
    if not text:
        return 0.0
    parsed = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    return parsed.replace(tzinfo=datetime.UTC).timestamp()


def state_from_status(status: JSON) -> RolloutState:
    rollout = status.get("rollout") or {}
    analysis = _analysis(rollout.get("lastAnalysis"))
    smoke = _smoke(rollout.get("smokeTest"))
    stable = str(status.get("stableRevision", ""))
    canary = str(status.get("canaryRevision", ""))
    started_at = from_time(rollout.get("stepStartedAt"))
    aborted = rollout.get("abortedRevision")
    abort = (
        Aborted(
            revision=str(aborted),
            reason=str(rollout.get("abortReason", "")),
            message=str(rollout.get("abortMessage", "")),
            analysis=analysis,
            smoke=smoke,
        )
        if aborted
        else None
    )
    phase: Phase
    # The phase is not written as such: the status' state name (the Progressing reason)
    # tells a rollback, a canary revision tells a rollout, an aborted revision an abort.
    if canary and rollout.get("state") == "RollingBack":
        phase = RollingBack(canary, started_at, abort)
    elif canary:
        phase = Progressing(canary, started_at, int(status.get("currentStep", 0)), analysis, smoke)
    elif abort:
        phase = abort
    else:
        phase = Stable()
    return RolloutState(
        stable=stable,
        phase=phase,
        scale_down=tuple(
            (str(item["revision"]), from_time(item["at"]))
            for item in rollout.get("scaleDown") or []
        ),
        history=tuple(
            HistoryEntry(
                revision=str(item["revision"]),
                version=str(item.get("version", "")),
                spec=copy.deepcopy(item.get("spec") or {}),
                promoted_at=from_time(item.get("promotedAt")),
            )
            for item in status.get("history") or []
        ),
    )


def _analysis(raw: JSON | None) -> AnalysisRecord | None:
    if not raw:
        return None
    return AnalysisRecord(
        step=int(raw.get("step", 0)),
        passed=raw.get("passed"),
        reason=str(raw.get("reason", "")),
        message=str(raw.get("message", "")),
        time=from_time(raw.get("time")),
    )


def _smoke(raw: JSON | None) -> SmokeRecord | None:
    if not raw:
        return None
    return SmokeRecord(
        revision=str(raw.get("revision", "")),
        passed=bool(raw.get("passed")),
        message=str(raw.get("message", "")),
        time=from_time(raw.get("time")),
    )


def state_to_status(state: RolloutState, state_name: str, message: str) -> JSON:
    """The status fields that hold the rollout state; absent fields are cleared by the caller."""
    rollout: JSON = {"state": state_name, "message": message}
    if state.step_started_at:
        rollout["stepStartedAt"] = to_time(state.step_started_at)
    if state.analysis:
        rollout["lastAnalysis"] = {
            "time": to_time(state.analysis.time),
            "step": state.analysis.step,
            "reason": state.analysis.reason,
            "message": state.analysis.message,
        }
        if state.analysis.passed is not None:
            rollout["lastAnalysis"]["passed"] = state.analysis.passed
    if state.smoke:
        rollout["smokeTest"] = {
            "revision": state.smoke.revision,
            "passed": state.smoke.passed,
            "message": state.smoke.message,
            "time": to_time(state.smoke.time),
        }
    if state.aborted_revision:
        rollout["abortedRevision"] = state.aborted_revision
        rollout["abortReason"] = state.abort_reason
        rollout["abortMessage"] = state.abort_message
    if state.scale_down:
        rollout["scaleDown"] = [{"revision": r, "at": to_time(at)} for r, at in state.scale_down]
    status: JSON = {"rollout": rollout}
    if state.stable:
        status["stableRevision"] = state.stable
    if state.canary:
        status["canaryRevision"] = state.canary
        status["currentStep"] = state.step
    if state.history:
        status["history"] = [
            {
                "revision": h.revision,
                "version": h.version,
                "spec": copy.deepcopy(h.spec),
                "promotedAt": to_time(h.promoted_at),
            }
            for h in state.history
        ]
    return status
