"""What the dashboard shows, as plain data: pure, from ModelDeployment bodies and Events.

The page template only lays these out, so everything the dashboard claims is computed here,
where unit tests reach it without a cluster or a browser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from modelroll.api import v1alpha1
from modelroll.api.v1alpha1 import default_of
from modelroll.cli.cluster import event_time
from modelroll.cli.status_view import ABNORMAL_TRUE, CONDITION_ORDER, MAX_EVENTS
from modelroll.spec import JSON


@dataclass(frozen=True)
class Row:
    """One line of the ModelDeployment list."""

    namespace: str
    name: str
    ready: str
    version: str
    strategy: str
    stable: str
    split: str
    state: str


@dataclass(frozen=True)
class Step:
    number: int
    weight: int
    pause_seconds: int
    state: str  # "done", "current" or "pending"
    remaining_seconds: int | None = None


@dataclass(frozen=True)
class Detail:
    """Everything shown for one ModelDeployment."""

    row: Row
    revisions: list[JSON]
    steps: list[Step]
    rollout: JSON
    analysis: JSON
    thresholds: list[tuple[str, str]]
    conditions: list[JSON]
    events: list[JSON]
    prometheus: str | None
    generation: str = field(default="-")


def _status(md: JSON) -> JSON:
    return md.get("status") or {}


def _spec(md: JSON) -> JSON:
    return md.get("spec") or {}


def _canary(md: JSON) -> JSON:
    return (_spec(md).get("rollout") or {}).get("canary") or {}


def condition_status(md: JSON, type_: str) -> str:
    for condition in _status(md).get("conditions") or []:
        if condition.get("type") == type_:
            return str(condition.get("status", "Unknown"))
    return "Unknown"


def traffic_split(md: JSON) -> str:
    """The effective split the operator reports, per revision: "abc 67% / def 33%"."""
    weighted = [r for r in _status(md).get("revisions") or [] if r.get("weight")]
    if not weighted:
        return str(_status(md).get("traffic") or "-")
    return " / ".join(
        f"{r['name']} ({r.get('role', '-')}) {r['weight']}%"
        for r in sorted(weighted, key=lambda r: -int(r["weight"]))
    )


def row(md: JSON) -> Row:
    metadata: JSON = md["metadata"]
    rollout: JSON = _spec(md).get("rollout") or {}
    return Row(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata["name"]),
        ready=condition_status(md, "Ready"),
        version=str((_spec(md).get("model") or {}).get("version") or "-"),
        strategy=str(rollout.get("strategy", default_of(v1alpha1.Rollout, "strategy"))),
        stable=str(_status(md).get("stableRevision") or "-"),
        split=traffic_split(md),
        state=str((_status(md).get("rollout") or {}).get("state") or "-"),
    )


def rows(items: list[JSON]) -> list[Row]:
    ordered = sorted(
        items, key=lambda md: (md["metadata"].get("namespace", ""), md["metadata"]["name"])
    )
    return [row(md) for md in ordered]


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def steps(md: JSON, now: datetime) -> list[Step]:
    """The canary's steps; while a canary runs, the current one with its remaining pause."""
    status = _status(md)
    spec_steps: list[JSON] = _canary(md).get("steps") or []
    running = bool(status.get("canaryRevision")) and "currentStep" in status
    current = int(status["currentStep"]) if running else None
    started = _parse_time((status.get("rollout") or {}).get("stepStartedAt"))
    result = []
    for index, step in enumerate(spec_steps):
        pause = int(step.get("pauseSeconds", 0))
        if current is None:
            state = "pending"
        else:
            state = "done" if index < current else "current" if index == current else "pending"
        remaining = None
        if state == "current" and started is not None:
            remaining = max(0, pause - int((now - started).total_seconds()))
        result.append(Step(index + 1, int(step["weight"]), pause, state, remaining))
    return result


def thresholds(md: JSON) -> list[tuple[str, str]]:
    """The analysis' pass limits from the spec, next to the measured values in its status."""
    analysis: JSON = _canary(md).get("analysis") or {}
    if not analysis:
        return []
    limits = [
        (
            "max error percent",
            str(
                analysis.get("maxErrorPercent", default_of(v1alpha1.Analysis, "max_error_percent"))
            ),
        ),
        (
            "min request count",
            str(
                analysis.get("minRequestCount", default_of(v1alpha1.Analysis, "min_request_count"))
            ),
        ),
    ]
    for key, label in (
        ("maxP99LatencyMs", "max p99 latency ms"),
        ("maxP99LatencyIncreasePercent", "max p99 latency increase percent"),
    ):
        if key in analysis:
            limits.append((label, str(analysis[key])))
    limits += [
        (f"check {c['name']} max", str(c["maxValue"])) for c in analysis.get("customChecks") or []
    ]
    return limits


def _condition_health(condition: JSON) -> str:
    if condition.get("type") in ("Progressing", "Reconciling"):
        return "busy" if condition.get("status") == "True" else "idle"
    good = condition.get("status") == (
        "False" if condition.get("type") in ABNORMAL_TRUE else "True"
    )
    return "good" if good else "bad"


def conditions(md: JSON) -> list[JSON]:
    rank = {name: i for i, name in enumerate(CONDITION_ORDER)}
    listed: list[JSON] = _status(md).get("conditions") or []
    return [
        {
            "type": str(c.get("type", "")),
            "status": str(c.get("status", "")),
            "reason": str(c.get("reason", "")),
            "message": str(c.get("message", "")),
            "health": _condition_health(c),
        }
        for c in sorted(listed, key=lambda c: rank.get(c.get("type", ""), 99))
    ]


def recent_events(events: list[JSON]) -> list[JSON]:
    """The last Events, newest first."""
    return [
        {
            "time": event_time(e),
            "type": str(e.get("type", "")),
            "reason": str(e.get("reason", "")),
            "count": int(e.get("count") or 1),
            "message": str(e.get("message", "")),
        }
        for e in reversed(sorted(events, key=event_time)[-MAX_EVENTS:])
    ]


def revisions(md: JSON) -> list[JSON]:
    return [
        {
            "name": str(r["name"]),
            "version": str(r.get("version") or "-"),
            "role": str(r.get("role") or "-"),
            "replicas": int(r.get("replicas") or 0),
            "ready": int(r.get("readyReplicas") or 0),
            "weight": int(r.get("weight") or 0),
        }
        for r in _status(md).get("revisions") or []
    ]


def prometheus_endpoint(md: JSON) -> str | None:
    """The operator's Prometheus endpoint the analysis uses, by name; None without analysis."""
    analysis = _canary(md).get("analysis")
    if not analysis:
        return None
    endpoint = (analysis.get("prometheus") or {}).get("endpoint")
    return f"endpoint {endpoint}" if endpoint else "the operator's default endpoint"


def detail(md: JSON, events: list[JSON], now: datetime) -> Detail:
    status = _status(md)
    rollout: JSON = status.get("rollout") or {}
    analysis: JSON = dict(rollout.get("lastAnalysis") or {})
    if analysis:
        passed = analysis.get("passed")
        analysis["verdict"] = "inconclusive" if passed is None else "passed" if passed else "failed"
    observed = status.get("observedGeneration", "-")
    return Detail(
        row=row(md),
        revisions=revisions(md),
        steps=steps(md, now),
        rollout={
            key: str(rollout[key])
            for key in ("state", "message", "abortedRevision", "abortReason", "abortMessage")
            if rollout.get(key)
        },
        analysis=analysis,
        thresholds=thresholds(md),
        conditions=conditions(md),
        events=recent_events(events),
        prometheus=prometheus_endpoint(md),
        generation=f"{md['metadata'].get('generation', '-')} (observed {observed})",
    )
