"""metav1.Condition merging: lastTransitionTime moves only when a condition's status flips."""

from __future__ import annotations

from typing import Any

from modelroll.conditions import Condition, find, merge_conditions

T0 = "2025-06-01T10:00:00Z"
T1 = "2025-06-01T10:05:00Z"


def previous() -> list[dict[str, Any]]:
    return [
        {
            "type": "Ready",
            "status": "False",
            "reason": "PodsNotReady",
            "message": "revision a1 has 0/2 replicas available",
            "observedGeneration": 1,
            "lastTransitionTime": T0,
        },
        {
            "type": "Degraded",
            "status": "False",
            "reason": "AsExpected",
            "message": "no failures observed",
            "observedGeneration": 1,
            "lastTransitionTime": T0,
        },
    ]


def test_transition_time_kept_when_status_unchanged_even_if_reason_changes() -> None:
    merged = merge_conditions(
        previous(),
        [Condition("Ready", False, "InsufficientGPU", "no node has a free nvidia.com/gpu")],
        2,
        T1,
    )
    assert merged == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "InsufficientGPU",
            "message": "no node has a free nvidia.com/gpu",
            "observedGeneration": 2,
            "lastTransitionTime": T0,
        }
    ]


def test_transition_time_updated_when_status_flips() -> None:
    merged = merge_conditions(
        previous(),
        [
            Condition("Ready", True, "RevisionAvailable", "revision a1 has 2/2 replicas available"),
            Condition("Degraded", True, "CrashLoopBackOff", "back-off 10s"),
        ],
        2,
        T1,
    )
    assert [(c["type"], c["status"], c["lastTransitionTime"]) for c in merged] == [
        ("Ready", "True", T1),
        ("Degraded", "True", T1),
    ]


def test_new_conditions_get_now_and_the_generation() -> None:
    merged = merge_conditions(
        previous(), [Condition("Progressing", True, "RollingOut", "rolling")], 5, T1
    )
    assert merged[0]["lastTransitionTime"] == T1
    assert merged[0]["observedGeneration"] == 5
    assert merge_conditions([], [Condition("Ready", True, "R", "m")], 3, T1)[0] == {
        "type": "Ready",
        "status": "True",
        "reason": "R",
        "message": "m",
        "observedGeneration": 3,
        "lastTransitionTime": T1,
    }


def test_only_wanted_conditions_remain_in_wanted_order() -> None:
    wanted = [
        Condition("Degraded", False, "AsExpected", "ok"),
        Condition("Ready", False, "PodsNotReady", "0/2"),
    ]
    merged = merge_conditions(previous(), wanted, 2, T1)
    assert [c["type"] for c in merged] == ["Degraded", "Ready"]
    assert all(c["lastTransitionTime"] == T0 for c in merged)


def test_merge_does_not_mutate_previous() -> None:
    before = previous()
    kept = previous()
    merge_conditions(kept, [Condition("Ready", True, "RevisionAvailable", "ok")], 9, T1)
    assert kept == before


def test_find_by_type() -> None:
    conditions = previous()
    assert find(conditions, "Degraded") is conditions[1]
    assert find(conditions, "Progressing") is None


def test_a_status_of_none_is_unknown_and_its_transitions_count() -> None:
    unknown = Condition("DriftDetected", None, "NotEnoughData", "not enough data")
    (first,) = merge_conditions([], [unknown], 1, T0)
    assert (first["status"], first["lastTransitionTime"]) == ("Unknown", T0)
    (same,) = merge_conditions([first], [unknown], 1, T1)
    assert same["lastTransitionTime"] == T0
    detected = Condition("DriftDetected", True, "DriftDetected", "drift in 1 of 2 features")
    (flipped,) = merge_conditions([same], [detected], 1, T1)
    assert (flipped["status"], flipped["lastTransitionTime"]) == ("True", T1)
