"""`modelroll promote|abort|retry|rollback`: the annotations the operator acts on."""

from __future__ import annotations

from modelroll import GROUP
from modelroll.cli.cluster import Target, get_model_deployment
from modelroll.spec import JSON

ACTIONS = ("promote", "abort", "retry", "rollback")


def annotation(action: str) -> str:
    return f"{GROUP}/{action}"


def describe(action: str, md: JSON) -> str:
    """What the operator will do with the annotation, given the current status."""
    status: JSON = md.get("status") or {}
    rollout: JSON = status.get("rollout") or {}
    canary = status.get("canaryRevision")
    stable = status.get("stableRevision", "the stable revision")
    aborted = rollout.get("abortedRevision")
    history: list[JSON] = status.get("history") or []
    if action == "promote":
        if not canary:
            return "No rollout is in progress: the operator will drop the annotation."
        return (
            f"{canary} skips its remaining steps and analysis (or, blue-green, its wait for "
            f"promotion) and takes all traffic once ready; {stable} is scaled down after the "
            "scale-down delay."
        )
    if action == "abort":
        if not canary:
            return "No rollout is in progress: the operator will drop the annotation."
        return (
            f"{canary} is scaled down and all traffic returns to {stable}; Degraded becomes "
            "True with reason Aborted until the spec changes or `modelroll retry`."
        )
    if action == "retry":
        if not aborted:
            return "No rollout was aborted: the operator will drop the annotation."
        return f"The aborted revision {aborted} is rolled out again from the first step."
    previous = next((h for h in history if h.get("revision") != stable), None)
    if previous is None:
        return "There is no previous stable revision: the operator will drop the annotation."
    return (
        f"Traffic returns to the previous stable revision {previous.get('revision')} "
        f"(version {previous.get('version', '?')}), replacing {stable}."
    )


def request(target: Target, action: str) -> str:
    """Sets the annotation with a merge patch; returns the description of its effect."""
    md = get_model_deployment(target)
    patch = {"metadata": {"annotations": {annotation(action): "true"}}}
    target.kube.merge_patch(target.ref, patch)
    return describe(action, md)
