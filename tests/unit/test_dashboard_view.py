"""The dashboard's pure parts: list rows, step timeline, analysis, metrics rates, escaping."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from modelroll.cli.dashboard_data import RevisionMetrics, metrics_unavailable
from modelroll.cli.dashboard_metrics import Counts, Rate, counts, rate
from modelroll.cli.dashboard_page import detail_html, list_html
from modelroll.cli.dashboard_view import detail, recent_events, row, rows, steps, traffic_split

NOW = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)


def canary_md(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "iris", "namespace": "ml", "uid": "u", "generation": 2},
        "spec": {
            "model": {"format": "sklearn", "version": "2"},
            "rollout": {
                "strategy": "Canary",
                "canary": {
                    "steps": [{"weight": 10, "pauseSeconds": 60}, {"weight": 50}],
                    "analysis": {
                        "prometheus": {"endpoint": "main"},
                        "maxErrorPercent": 5,
                        "maxP99LatencyMs": 250,
                    },
                },
            },
        },
        "status": {
            "stableRevision": "aaa",
            "canaryRevision": "bbb",
            "currentStep": 0,
            "conditions": [
                {"type": "Degraded", "status": "False", "reason": "AsExpected"},
                {"type": "Ready", "status": "True", "reason": "Available"},
            ],
            "revisions": [
                {"name": "aaa", "version": "1", "role": "stable", "replicas": 2,
                 "readyReplicas": 2, "weight": 67},
                {"name": "bbb", "version": "2", "role": "canary", "replicas": 1,
                 "readyReplicas": 1, "weight": 33},
            ],
            "rollout": {
                "state": "Progressing",
                "stepStartedAt": "2026-12-01T12:00:00Z",
                "lastAnalysis": {"passed": True, "step": 0, "reason": "Passed",
                                 "message": "error 0.0% <= 5%"},
            },
            **status,
        },
    }  # fmt: skip


def test_the_row_shows_ready_version_strategy_stable_and_the_effective_split() -> None:
    md = canary_md()
    before = copy.deepcopy(md)
    line = row(md)
    assert (line.namespace, line.name, line.ready, line.version) == ("ml", "iris", "True", "2")
    assert (line.strategy, line.stable, line.state) == ("Canary", "aaa", "Progressing")
    assert line.split == "aaa (stable) 67% / bbb (canary) 33%"
    assert md == before  # the view never changes what it was given


def test_without_weights_the_split_falls_back_to_the_status_traffic_line() -> None:
    md = canary_md(revisions=[], traffic="100% aaa")
    assert traffic_split(md) == "100% aaa"
    assert traffic_split({"metadata": {"name": "x"}}) == "-"


def test_rows_are_sorted_by_namespace_then_name_and_default_the_strategy() -> None:
    bare = {"metadata": {"name": "a", "namespace": "z"}, "spec": {}}
    listed = rows([bare, canary_md()])
    assert [(r.namespace, r.name) for r in listed] == [("ml", "iris"), ("z", "a")]
    assert listed[1].strategy == "Rolling" and listed[1].ready == "Unknown"


def test_the_current_step_counts_its_pause_down_from_when_it_started() -> None:
    timeline = steps(canary_md(), NOW)
    assert [(s.number, s.weight, s.state) for s in timeline] == [
        (1, 10, "current"),
        (2, 50, "pending"),
    ]
    assert timeline[0].remaining_seconds == 30
    later = steps(canary_md(currentStep=1), NOW)
    assert [s.state for s in later] == ["done", "current"]
    assert later[1].remaining_seconds == 0  # no pause: nothing left


def test_without_a_running_canary_no_step_is_current() -> None:
    md = canary_md()
    del md["status"]["canaryRevision"]
    assert {s.state for s in steps(md, NOW)} == {"pending"}


def test_detail_carries_analysis_verdict_thresholds_and_ordered_conditions() -> None:
    view = detail(canary_md(), [], NOW)
    assert view.analysis["verdict"] == "passed"
    assert ("max error percent", "5") in view.thresholds
    assert ("max p99 latency ms", "250") in view.thresholds
    assert ("min request count", "20") in view.thresholds  # the API's default
    assert [c["type"] for c in view.conditions] == ["Ready", "Degraded"]
    assert [c["health"] for c in view.conditions] == ["good", "good"]
    assert view.prometheus == "endpoint main"
    assert [(r["name"], r["ready"], r["replicas"]) for r in view.revisions] == [
        ("aaa", 2, 2),
        ("bbb", 1, 1),
    ]


def test_recent_events_are_the_last_ones_newest_first() -> None:
    listed = [
        {"metadata": {}, "lastTimestamp": f"2026-12-01T12:00:{i:02d}Z", "reason": f"R{i}"}
        for i in range(15)
    ]
    shown = recent_events(listed)
    assert [e["reason"] for e in shown] == [f"R{i}" for i in range(14, 4, -1)]


EXPOSITION = """\
# TYPE modelroll_requests_total counter
modelroll_requests_total{{model="iris",version="2",protocol="v2",code="200"}} {ok}
modelroll_requests_total{{model="iris",version="2",protocol="v2",code="503"}} {bad}
# TYPE modelroll_inflight gauge
modelroll_inflight 3
"""


def test_counts_sum_the_request_counter_over_pods_and_count_5xx_as_errors() -> None:
    total = counts([EXPOSITION.format(ok=90, bad=10), EXPOSITION.format(ok=5, bad=0)], at=1.0)
    assert total == Counts(1.0, 105.0, 10.0)


def test_the_rate_is_the_growth_between_two_scrapes() -> None:
    first = counts([EXPOSITION.format(ok=100, bad=0)], at=10.0)
    second = counts([EXPOSITION.format(ok=118, bad=2)], at=12.0)
    assert rate(first, second) == Rate(requests_per_second=10.0, error_percent=10.0)
    assert rate(second, second) is None  # no window
    assert rate(second, first) is None  # a pod restarted: its counter went back
    idle = rate(first, Counts(11.0, first.total, first.errors))
    assert idle == Rate(0.0, None)


def test_fragments_escape_everything_from_the_cluster() -> None:
    hostile = "<script>alert(1)</script>"
    md = canary_md()
    md["status"]["conditions"][0]["message"] = hostile
    md["metadata"]["name"] = '"><img src=x onerror=alert(1)>'
    events = [{"metadata": {}, "message": hostile, "reason": "R", "type": "Warning"}]
    html = detail_html(
        detail(md, events, NOW), [RevisionMetrics("aaa", 1, Rate(2.5, 0.0))], "-"
    ) + list_html(rows([md]), ("ml", "x"), None)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&#34;&gt;&lt;img" in html
    assert "2.50" in html and "0.0%" in html  # the measured rate of the stable revision
    for action in ("promote", "abort", "retry", "rollback"):
        assert f'data-action="{action}"' in html


def test_a_custom_container_without_the_sidecar_has_no_metrics_to_scrape() -> None:
    """Its /metrics is the user's server's, if any: the dashboard says so, not a 404."""
    runtime = {"container": {"image": "triton", "port": 8000}}
    md = {"metadata": {"name": "t", "namespace": "n"}, "spec": {"runtime": runtime}}
    assert metrics_unavailable(md) == (
        "no request metrics: your own container, without the metrics sidecar"
    )
    runtime["container"]["metrics"] = {"sidecar": True}
    assert metrics_unavailable(md) is None
    assert metrics_unavailable({"spec": {"model": {"format": "sklearn"}}}) is None
