"""The rich view of one ModelDeployment: pure, from its body and Events to renderables."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from modelroll.api import v1alpha1
from modelroll.api.v1alpha1 import default_of
from modelroll.cli.cluster import event_time
from modelroll.spec import JSON

CONDITION_ORDER = ("Ready", "Progressing", "Degraded", "Reconciling", "Stalled")
ABNORMAL_TRUE = frozenset({"Degraded", "Stalled"})  # conditions that are good when False
ROLE_STYLES = {"stable": "green", "canary": "yellow", "preview": "cyan", "aborted": "red"}
MAX_EVENTS = 10


def _condition_style(condition: JSON) -> str:
    good = condition.get("status") == (
        "False" if condition.get("type") in ABNORMAL_TRUE else "True"
    )
    if condition.get("type") in ("Progressing", "Reconciling"):
        return "yellow" if condition.get("status") == "True" else "dim"
    return "green" if good else "red"


def header(md: JSON) -> Table:
    spec: JSON = md.get("spec") or {}
    status: JSON = md.get("status") or {}
    metadata: JSON = md["metadata"]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    namespace = metadata.get("namespace")
    grid.add_row(
        "ModelDeployment", f"{namespace}/{metadata['name']}" if namespace else metadata["name"]
    )
    grid.add_row("Model", f"{spec.get('model', {}).get('format', '?')} version {_version(spec)}")
    strategy = (spec.get("rollout") or {}).get("strategy", default_of(v1alpha1.Rollout, "strategy"))
    grid.add_row("Strategy", str(strategy))
    grid.add_row("Stable", str(status.get("stableRevision", "-")))
    grid.add_row("Canary", str(status.get("canaryRevision", "-")))
    grid.add_row("Traffic", str(status.get("traffic", "-")))
    grid.add_row("URL", str(status.get("url", "-")))
    observed = status.get("observedGeneration", "-")
    grid.add_row("Generation", f"{metadata.get('generation', '-')} (observed {observed})")
    return grid


def _version(spec: JSON) -> str:
    return str((spec.get("model") or {}).get("version") or "-")


def revisions_table(md: JSON) -> Table:
    table = Table(title="Revisions", title_justify="left", expand=False)
    for column in ("Revision", "Version", "Role", "Ready/Desired", "Weight"):
        table.add_column(column)
    for revision in (md.get("status") or {}).get("revisions") or []:
        role = str(revision.get("role", "-"))
        table.add_row(
            str(revision["name"]),
            str(revision.get("version", "-")),
            Text(role, style=ROLE_STYLES.get(role, "")),
            f"{revision.get('readyReplicas', 0)}/{revision.get('replicas', 0)}",
            f"{revision.get('weight', 0)}%",
        )
    return table


def rollout_lines(md: JSON) -> Table:
    status: JSON = md.get("status") or {}
    rollout: JSON = status.get("rollout") or {}
    steps: list[JSON] = (((md.get("spec") or {}).get("rollout") or {}).get("canary") or {}).get(
        "steps"
    ) or []
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("Rollout", str(rollout.get("state", "-")))
    if rollout.get("message"):
        grid.add_row("", str(rollout["message"]))
    if "currentStep" in status and steps:
        index = int(status["currentStep"])
        weight = steps[index]["weight"] if index < len(steps) else 100
        grid.add_row("Step", f"{index + 1}/{len(steps)} (canary weight {weight}%)")
    analysis: JSON = rollout.get("lastAnalysis") or {}
    if analysis:
        passed = analysis.get("passed")
        verdict = "inconclusive" if passed is None else "passed" if passed else "failed"
        grid.add_row(
            "Analysis", f"{verdict} {analysis.get('reason', '')}: {analysis.get('message', '')}"
        )
    smoke: JSON = rollout.get("smokeTest") or {}
    if smoke:
        verdict = "passed" if smoke.get("passed") else "failed"
        grid.add_row(
            "Smoke test", f"{verdict} on {smoke.get('revision')}: {smoke.get('message', '')}"
        )
    if rollout.get("abortedRevision"):
        grid.add_row(
            "Aborted",
            f"{rollout['abortedRevision']} ({rollout.get('abortReason', '')}) "
            f"{rollout.get('abortMessage', '')}".strip(),
        )
    return grid


def conditions_table(md: JSON) -> Table:
    table = Table(title="Conditions", title_justify="left")
    for column in ("Type", "Status", "Reason", "Message"):
        table.add_column(column)
    conditions: list[JSON] = (md.get("status") or {}).get("conditions") or []
    rank = {name: i for i, name in enumerate(CONDITION_ORDER)}
    for condition in sorted(conditions, key=lambda c: rank.get(c.get("type", ""), 99)):
        table.add_row(
            str(condition.get("type")),
            Text(str(condition.get("status")), style=_condition_style(condition)),
            str(condition.get("reason", "")),
            str(condition.get("message", "")),
        )
    return table


def events_table(events: list[JSON]) -> Table:
    table = Table(title="Events", title_justify="left")
    for column in ("Last seen", "Type", "Reason", "Count", "Message"):
        table.add_column(column)
    for event in events[-MAX_EVENTS:]:
        kind = str(event.get("type", ""))
        table.add_row(
            event_time(event),
            Text(kind, style="red" if kind == "Warning" else ""),
            str(event.get("reason", "")),
            str(event.get("count", 1)),
            str(event.get("message", "")),
        )
    return table


def status_view(md: JSON, events: list[JSON]) -> RenderableType:
    parts: list[Any] = [
        header(md),
        revisions_table(md),
        rollout_lines(md),
        conditions_table(md),
        events_table(events),
    ]
    return Group(*parts)
