"""The observability pack queries only what the code exports.

Every PromQL expression of the Grafana dashboard and of the PrometheusRule is parsed: its
syntax by promtool (Debian's prometheus package, which hack/install-deps.sh installs), its
metric names and label matchers by the small PromQL lexer below. Each metric must be
exported by the runtime (runtime_images/modelroll_runtime/metrics.py) or the operator
(operator/modelroll/metrics.py), read from the prometheus_client collectors themselves.
The alerts are also run by `promtool test rules` on synthetic series.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import modelroll.metrics as operator_metrics
import numpy as np
import pytest
import yaml
from modelroll_runtime.metrics import RuntimeMetrics
from modelroll_runtime.profile import Profile, build
from modelroll_runtime.telemetry import DriftTelemetry
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

JSON = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
OBSERVABILITY = REPO / "observability"

# Labels Prometheus attaches at scrape time (the ServiceMonitors' target labels), plus the
# `revision` target label of the runtime's pods (docs/analysis.md, "Label contract").
TARGET_LABELS = {"namespace", "pod", "instance", "job", "service", "container", "endpoint"}
RUNTIME_TARGET_LABELS = TARGET_LABELS | {"revision"}

# Metrics the queries need that the code does not export yet.
# TODO(lead): export modelroll_operator_modeldeployment_condition{namespace, name, condition}
# (1 when the condition's status is True, 0 when False) for the ModelDeploymentNotReady alert.
NOT_YET_EXPORTED: dict[str, set[str]] = {}

GRAFANA_INTERVALS = ("$__rate_interval", "$__interval", "$__range")

FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp",
    "clamp_max", "clamp_min", "count_over_time", "day_of_month", "day_of_week", "delta",
    "deriv", "exp", "floor", "histogram_quantile", "holt_winters", "hour", "idelta",
    "increase", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10",
    "log2", "max_over_time", "min_over_time", "minute", "month", "predict_linear",
    "present_over_time", "quantile_over_time", "rate", "resets", "round", "scalar", "sgn",
    "sort", "sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time",
    "time", "timestamp", "vector", "year",
    # aggregations
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
}  # fmt: skip
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}

TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<duration>(?:\d+(?:ms|s|m|h|d|w|y))+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0x[0-9a-fA-F]+)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=@,:{}()\[\]])
    """,
    re.VERBOSE,
)


@dataclass
class Selector:
    metric: str
    matchers: dict[str, str]


@dataclass
class Parsed:
    selectors: list[Selector] = field(default_factory=list)
    grouping_labels: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)


def tokens(expr: str) -> list[tuple[str, str]]:
    result, position = [], 0
    while position < len(expr):
        match = TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot lex {expr[position : position + 20]!r} in {expr!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            result.append((kind, match.group()))
        position = match.end()
    return result


def parse(expr: str) -> Parsed:
    """Metric names, label matchers, grouping labels and functions of one PromQL expression."""
    toks = tokens(expr)
    parsed = Parsed()
    i = 0

    def matchers(start: int) -> tuple[dict[str, str], int]:
        assert toks[start] == ("op", "{")
        found, j = {}, start + 1
        while toks[j] != ("op", "}"):
            (kind, label), (_, operator), (value_kind, value) = toks[j : j + 3]
            assert kind == "ident" and operator in ("=", "!=", "=~", "!~"), expr
            assert value_kind == "string", expr
            found[label] = value[1:-1]
            j += 3
            if toks[j] == ("op", ","):
                j += 1
        return found, j + 1

    while i < len(toks):
        kind, text = toks[i]
        following = toks[i + 1] if i + 1 < len(toks) else ("", "")
        if kind == "ident" and text in GROUPING:
            i += 1
            if toks[i] == ("op", "("):
                i += 1
                while toks[i] != ("op", ")"):
                    if toks[i][0] == "ident":
                        parsed.grouping_labels.add(toks[i][1])
                    i += 1
                i += 1
            continue
        if kind == "ident" and text in KEYWORDS:
            i += 1
            continue
        aggregation_with_grouping = following in (("ident", "by"), ("ident", "without"))
        if kind == "ident" and (following == ("op", "(") or aggregation_with_grouping):
            assert text in FUNCTIONS, f"unknown function {text} in {expr!r}"
            parsed.functions.add(text)
            i += 1
            continue
        if kind == "ident":
            selector = Selector(text, {})
            i += 1
            if i < len(toks) and toks[i] == ("op", "{"):
                selector.matchers, i = matchers(i)
            parsed.selectors.append(selector)
            continue
        if (kind, text) == ("op", "{"):  # a selector without a name: {__name__="..."}
            found, i = matchers(i)
            assert "__name__" in found, expr
            parsed.selectors.append(Selector(found.pop("__name__"), found))
            continue
        if (kind, text) == ("op", "["):  # range or subquery: durations only
            while toks[i] != ("op", "]"):
                i += 1
        i += 1
    return parsed


# --- what the code exports ------------------------------------------------------------------


def _series(collector: MetricWrapperBase) -> dict[str, set[str]]:
    """Exported sample names of a collector with their labels (le for buckets)."""
    (metric,) = collector.describe()
    labels = set(getattr(collector, "_labelnames", ()))
    suffixes = {
        "counter": ["_total"],
        "gauge": [""],
        "histogram": ["_bucket", "_count", "_sum"],
        "summary": ["", "_count", "_sum"],
    }[metric.type]
    return {
        metric.name + suffix: labels | ({"le"} if suffix == "_bucket" else set())
        for suffix in suffixes
    }


def _collected(*objects: object) -> dict[str, set[str]]:
    series: dict[str, set[str]] = {}
    for value in [v for o in objects for v in vars(o).values()]:
        if isinstance(value, MetricWrapperBase):
            series.update(_series(value))
    return series


def telemetry_series() -> dict[str, set[str]]:
    """The drift telemetry's families, as a packaged model with a profile exports them."""
    profile = Profile.from_document(build([("x", 0, np.arange(4.0), False)], np.zeros(4), True))
    return _collected(DriftTelemetry(profile, "model", "1", CollectorRegistry(), 0))


def exported_runtime_series() -> dict[str, set[str]]:
    series = {**_collected(RuntimeMetrics("model", "1")), **telemetry_series()}
    return {name: labels | RUNTIME_TARGET_LABELS for name, labels in series.items()}


def exported_operator_series() -> dict[str, set[str]]:
    series: dict[str, set[str]] = {}
    for value in vars(operator_metrics).values():
        if isinstance(value, MetricWrapperBase):
            series.update(_series(value))
    return {name: labels | TARGET_LABELS for name, labels in series.items()}


def exported_series() -> dict[str, set[str]]:
    runtime, operator = exported_runtime_series(), exported_operator_series()
    assert not set(runtime) & set(operator)
    pending = {name: labels | TARGET_LABELS for name, labels in NOT_YET_EXPORTED.items()}
    return {**runtime, **operator, **pending}


# --- the queries ----------------------------------------------------------------------------


def dashboard() -> JSON:
    loaded: JSON = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    return loaded


def _panels(panels: list[JSON]) -> Iterator[JSON]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_expressions() -> list[str]:
    board = dashboard()
    exprs = [t["expr"] for p in _panels(board["panels"]) for t in p.get("targets", [])]
    exprs += [a["expr"] for a in board["annotations"]["list"] if "expr" in a]
    return exprs


def as_promql(grafana_expr: str) -> str:
    """Grafana's interval variables become a duration; label variables live inside strings."""
    for variable in GRAFANA_INTERVALS:
        grafana_expr = grafana_expr.replace(variable, "5m")
    outside_strings = re.sub(r'"(?:\\.|[^"\\])*"', '""', grafana_expr)
    assert "$" not in outside_strings, f"unsupported Grafana variable in {grafana_expr!r}"
    return grafana_expr


def label_values_queries() -> list[tuple[str, str]]:
    """(selector, label) of each `label_values(selector, label)` template variable."""
    found = []
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"]["query"])
        assert match, variable
        found.append((match.group(1), match.group(2)))
    return found


def prometheus_rule() -> JSON:
    loaded: JSON = yaml.safe_load((OBSERVABILITY / "prometheusrule.yaml").read_text())
    return loaded


def rule_expressions() -> list[str]:
    return [r["expr"] for g in prometheus_rule()["spec"]["groups"] for r in g["rules"]]


def all_expressions() -> list[str]:
    return [as_promql(e) for e in dashboard_expressions()] + rule_expressions()


def promtool() -> str:
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
    )
    if found is None:
        pytest.fail(
            "promtool not found: install Debian's prometheus package (hack/install-deps.sh)"
        )
    return found


# --- tests ----------------------------------------------------------------------------------


def test_the_lexer_reads_selectors_grouping_and_functions() -> None:
    parsed = parse(
        'histogram_quantile(0.99, sum by (le, revision) (rate(a_bucket{x="1",y=~"b.*"}[5m])))'
        ' / on (revision) group_left max(b) > 0.5 or absent(c offset 10m) unless {__name__="d"}'
    )
    assert [s.metric for s in parsed.selectors] == ["a_bucket", "b", "c", "d"]
    assert parsed.selectors[0].matchers == {"x": "1", "y": "b.*"}
    assert parsed.grouping_labels == {"le", "revision"}
    assert parsed.functions == {"histogram_quantile", "sum", "rate", "max", "absent"}


def test_exported_names_come_from_the_collectors() -> None:
    runtime = exported_runtime_series()
    assert "modelroll_requests_total" in runtime
    assert {"model", "version", "protocol", "code", "revision"} <= runtime[
        "modelroll_requests_total"
    ]
    assert "le" in runtime["modelroll_request_duration_seconds_bucket"]
    operator = exported_operator_series()
    assert "modelroll_operator_reconcile_total" in operator
    assert "modelroll_operator_reconcile_duration_seconds_bucket" in operator
    assert "modelroll_operator_traffic_weight" in operator
    assert {"model", "version", "feature", "bin"} <= runtime["modelroll_feature_values_total"]
    assert {"model", "version", "bin"} <= runtime["modelroll_prediction_values_total"]
    assert "modelroll_feature_reference" in runtime and "modelroll_drift_rows_total" in runtime


def test_not_yet_exported_metrics_are_really_missing() -> None:
    """When the lead adds one, this fails until it is removed from NOT_YET_EXPORTED."""
    exported = {**exported_runtime_series(), **exported_operator_series()}
    assert not set(NOT_YET_EXPORTED) & set(exported)


@pytest.mark.parametrize("expr", all_expressions())
def test_every_query_uses_only_exported_metrics_and_labels(expr: str) -> None:
    exported = exported_series()
    parsed = parse(expr)
    assert parsed.selectors, f"no metric in {expr!r}"
    labels_in_scope: set[str] = set()
    for selector in parsed.selectors:
        assert selector.metric in exported, f"{selector.metric} is not exported by the code"
        labels = exported[selector.metric]
        unknown = set(selector.matchers) - labels
        assert not unknown, f"{selector.metric} has no label {unknown}"
        labels_in_scope |= labels
    unknown_grouping = parsed.grouping_labels - labels_in_scope
    assert not unknown_grouping, f"grouping by labels no series has: {unknown_grouping}"


def test_template_variables_read_exported_labels() -> None:
    exported = exported_series()
    for selector, label in label_values_queries():
        parsed = parse(as_promql(selector))
        (only,) = parsed.selectors
        assert label in exported[only.metric]


def test_dashboard_covers_requests_errors_latency_weights_and_reconciles() -> None:
    exprs = "\n".join(dashboard_expressions())
    for needed in (
        "modelroll_requests_total",
        'code=~"5.."',
        "histogram_quantile(0.5, sum by (namespace, model, revision, le)",
        "histogram_quantile(0.99, sum by (namespace, model, revision, le)",
        "modelroll_operator_traffic_weight",
        "modelroll_operator_reconcile_total",
        "modelroll_operator_reconcile_errors_total",
        "modelroll_operator_reconcile_duration_seconds_bucket",
    ):
        assert needed in exprs
    board = dashboard()
    ids = [p["id"] for p in _panels(board["panels"])]
    assert len(ids) == len(set(ids))
    assert board["uid"] == "modelroll-overview"


def row_panels(title_prefix: str) -> list[JSON]:
    """The panels under the row whose title starts so (up to the next row)."""
    panels, inside = [], False
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            inside = panel["title"].startswith(title_prefix)
        elif inside:
            panels.append(panel)
    return panels


def test_the_drift_row_shows_every_telemetry_family_per_version_and_the_condition() -> None:
    """Feature PSI, prediction shift, prediction shares, missing and out-of-range values and
    the sampled rows, per model and version, from the families the runtime's drift
    telemetry really exports (docs/drift.md), plus the operator's DriftDetected condition."""
    panels = row_panels("Drift")
    assert len(panels) >= 5, [p["title"] for p in panels]
    exprs = [as_promql(t["expr"]) for p in panels for t in p["targets"]]
    shown = {s.metric for e in exprs for s in parse(e).selectors}
    # The reference's row count is not needed: PSI compares shares of the reference counts.
    missing = set(telemetry_series()) - shown - {"modelroll_reference_rows"}
    assert not missing, f"drift telemetry not on the dashboard: {sorted(missing)}"
    titles = " ".join(p["title"] for p in panels)
    assert "Feature PSI" in titles and "Prediction shift" in titles, titles
    by_feature = [e for e in exprs if "modelroll_feature_values_total" in e]
    assert by_feature and all(
        {"feature", "version"} <= parse(e).grouping_labels for e in by_feature
    )
    by_version = [e for e in exprs if "modelroll_prediction_values_total" in e]
    assert by_version and all("version" in parse(e).grouping_labels for e in by_version)
    assert any(
        s.metric == "modelroll_operator_modeldeployment_condition"
        and s.matchers.get("condition") == "DriftDetected"
        for e in exprs
        for s in parse(e).selectors
    ), exprs


def test_promtool_accepts_every_expression(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": prometheus_rule()["spec"]["groups"]}))
    dashboard_rules = tmp_path / "dashboard.yaml"
    dashboard_rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "dashboard",
                        "rules": [
                            {"record": f"dashboard:query_{n}", "expr": as_promql(e)}
                            for n, e in enumerate(dashboard_expressions())
                        ],
                    }
                ]
            }
        )
    )
    checked = subprocess.run(
        [promtool(), "check", "rules", str(rules), str(dashboard_rules)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_alerts_cover_aborts_not_ready_and_error_rate() -> None:
    alerts = {r["alert"]: r for g in prometheus_rule()["spec"]["groups"] for r in g["rules"]}
    assert {
        "ModelrollCanaryAborted",
        "ModelDeploymentNotReady",
        "ModelServingHighErrorRate",
    } <= set(alerts)
    for alert in alerts.values():
        assert alert["labels"]["severity"] in ("warning", "critical")
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


ALERT_TESTS = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  # a canary aborted at minute 15: a brand-new counter series
  - series: 'modelroll_operator_rollout_aborts_total{namespace="models",name="iris",reason="CanaryAnalysisFailed"}'
    values: '_x14 1x40'
  # a second abort of a series that already existed
  - series: 'modelroll_operator_rollout_aborts_total{namespace="models",name="fraud",reason="ProgressDeadlineExceeded"}'
    values: '1x20 2x20'
  # a user rollback is not an alert
  - series: 'modelroll_operator_rollout_aborts_total{namespace="models",name="rec",reason="RolledBack"}'
    values: '_x14 1x40'
  alert_rule_test:
  - {eval_time: 17m, alertname: ModelrollCanaryAborted, exp_alerts: [{exp_labels: {severity: warning, namespace: models, name: iris, reason: CanaryAnalysisFailed}}]}
  - {eval_time: 25m, alertname: ModelrollCanaryAborted, exp_alerts: [{exp_labels: {severity: warning, namespace: models, name: fraud, reason: ProgressDeadlineExceeded}}]}
  - {eval_time: 40m, alertname: ModelrollCanaryAborted, exp_alerts: []}
- interval: 1m
  input_series:
  - series: 'modelroll_operator_modeldeployment_condition{namespace="models",name="iris",condition="Ready",pod="op-1"}'
    values: '0x30'
  - series: 'modelroll_operator_modeldeployment_condition{namespace="models",name="ok",condition="Ready",pod="op-1"}'
    values: '1x30'
  alert_rule_test:
  - {eval_time: 10m, alertname: ModelDeploymentNotReady, exp_alerts: []}
  - {eval_time: 20m, alertname: ModelDeploymentNotReady, exp_alerts: [{exp_labels: {severity: warning, namespace: models, name: iris}}]}
- interval: 1m
  input_series:
  # drift detected at minute 10 (Unknown and False export 0)
  - series: 'modelroll_operator_modeldeployment_condition{namespace="models",name="iris",condition="DriftDetected",pod="op-1"}'
    values: '0x9 1x60'
  - series: 'modelroll_operator_modeldeployment_condition{namespace="models",name="ok",condition="DriftDetected",pod="op-1"}'
    values: '0x70'
  alert_rule_test:
  - {eval_time: 30m, alertname: ModelDriftDetected, exp_alerts: []}
  - {eval_time: 45m, alertname: ModelDriftDetected, exp_alerts: [{exp_labels: {severity: warning, namespace: models, name: iris}}]}
- interval: 15s
  input_series:
  # 10 req/s with 1 in 10 answered 503 on revision b2; revision a1 is clean
  - series: 'modelroll_requests_total{namespace="models",model="iris",revision="b2",code="200",protocol="v2",pod="p1"}'
    values: '0+135x80'
  - series: 'modelroll_requests_total{namespace="models",model="iris",revision="b2",code="503",protocol="v2",pod="p1"}'
    values: '0+15x80'
  - series: 'modelroll_requests_total{namespace="models",model="iris",revision="a1",code="200",protocol="v2",pod="p2"}'
    values: '0+150x80'
  # a revision with almost no traffic: one failed request is not an alert
  - series: 'modelroll_requests_total{namespace="models",model="iris",revision="c3",code="500",protocol="v2",pod="p3"}'
    values: '0+1x80'
  alert_rule_test:
  - {eval_time: 4m, alertname: ModelServingHighErrorRate, exp_alerts: []}
  - {eval_time: 15m, alertname: ModelServingHighErrorRate, exp_alerts: [{exp_labels: {severity: critical, namespace: models, model: iris, revision: b2}}]}
- interval: 1m
  input_series:
  - series: 'modelroll_operator_reconcile_total{result="success"}'
    values: '0+40x30'
  - series: 'modelroll_operator_reconcile_total{result="error"}'
    values: '0+20x30'
  - series: 'modelroll_operator_reconcile_errors_total{error="http_403"}'
    values: '0+20x30'
  alert_rule_test:
  - {eval_time: 20m, alertname: ModelrollOperatorReconcileErrors, exp_alerts: [{exp_labels: {severity: warning}}]}
"""


def test_alerts_fire_on_synthetic_series(tmp_path: Path) -> None:
    """promtool runs the rules (annotations left out: they are templates for humans)."""
    groups = prometheus_rule()["spec"]["groups"]
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    (tmp_path / "tests.yaml").write_text(ALERT_TESTS)
    tested = subprocess.run(
        [promtool(), "test", "rules", "tests.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
