"""How a newly computed status differs from the one written before: pure, no I/O.

The merge patch that writes it, whether anything but transition times changed, the Events
that its condition changes call for, and whether a child shows as created already.
"""

from __future__ import annotations

from modelroll.render import REVISION_LABEL
from modelroll.spec import JSON

# Passing states of a revision coming up: shown in conditions, not worth an Event.
QUIET_REASONS = frozenset({"DeploymentPending", "PodsNotReady"})
# Conditions whose changes tell no news: Progressing's steps have their own Events, and
# Reconciling and Stalled only restate Ready, Progressing and Degraded for kstatus.
DERIVED = frozenset({"Progressing", "Reconciling", "Stalled"})


def status_patch(previous: JSON, status: JSON) -> JSON:
    """A merge patch that also clears fields we no longer report, at every depth: a merge
    patch merges nested objects, so a key left out would otherwise survive."""
    patch: JSON = {key: None for key in previous if key not in status}
    for key, value in status.items():
        old = previous.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            patch[key] = status_patch(old, value)
        else:
            patch[key] = value
    return patch


def ignoring_times(status: JSON) -> JSON:
    """The status less its conditions' lastTransitionTime, to compare two statuses."""
    conditions = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in status.get("conditions") or []
    ]
    return {**status, "conditions": conditions}


def transition_events(previous: JSON, status: JSON) -> list[tuple[str, str, str]]:
    """(type, reason, message) for each condition whose status or reason changed."""
    before = {c["type"]: c for c in previous.get("conditions") or []}
    events: list[tuple[str, str, str]] = []
    for condition in status["conditions"]:
        old = before.get(condition["type"])
        if old and (old["status"], old["reason"]) == (condition["status"], condition["reason"]):
            continue
        if condition["type"] in DERIVED or condition["reason"] in QUIET_REASONS:
            continue
        bad = (condition["type"] == "Ready") == (condition["status"] == "False")
        if not old and not bad:
            continue
        event = ("Warning" if bad else "Normal", condition["reason"], condition["message"])
        if not any(e[:2] == event[:2] for e in events):  # Ready and Degraded often agree
            events.append(event)
    return events


def existed_before(body: JSON, manifest: JSON) -> bool:
    """Whether status shows that this child had been created already (so it was deleted)."""
    previous = body.get("status") or {}
    if manifest["kind"] == "Deployment":
        revision = manifest["metadata"]["labels"].get(REVISION_LABEL)
        return any(r.get("name") == revision for r in previous.get("revisions") or [])
    # The NetworkPolicy is rendered with the Service (only right after the operator's setting
    # is turned on does its first creation also read as a restore).
    shared = ("Service", "ServiceAccount", "NetworkPolicy")
    return manifest["kind"] in shared and bool(previous.get("url"))
