"""metav1.Condition helpers: lastTransitionTime changes only when the status flips."""

from __future__ import annotations

from dataclasses import dataclass

from modelroll.spec import JSON


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool | None  # None: Unknown
    reason: str
    message: str


def merge_conditions(
    previous: list[JSON], wanted: list[Condition], generation: int, now: str
) -> list[JSON]:
    """Returns new condition dicts, keeping each old lastTransitionTime when status is unchanged."""
    before = {c.get("type"): c for c in previous}
    merged = []
    for condition in wanted:
        status = {True: "True", False: "False", None: "Unknown"}[condition.status]
        old = before.get(condition.type)
        since = old["lastTransitionTime"] if old and old.get("status") == status else now
        merged.append(
            {
                "type": condition.type,
                "status": status,
                "reason": condition.reason,
                "message": condition.message,
                "observedGeneration": generation,
                "lastTransitionTime": since,
            }
        )
    return merged


def find(conditions: list[JSON], type_: str) -> JSON | None:
    return next((c for c in conditions if c.get("type") == type_), None)
