"""The three outcomes of canary analysis, predictionShift and drift as status, on the real
control plane.

A real Prometheus scrapes one scrape target per revision with the target labels the
operator's ServiceMonitor attaches (namespace, revision); each target is a counter exporter
the test drives (tests/support/exporter.py), so the test decides what each revision's pods
report: how many requests, and which predictions. The operator queries that Prometheus as
its endpoint `test`, exactly as in a cluster.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from modelroll.analysis import revision_matcher
from modelroll.feature_drift import FEATURE_METRIC, FEATURE_REFERENCE
from modelroll.prediction_shift import BIN_LABEL, PREDICTION_METRIC, bins_query, evaluate
from modelroll.revision import revision_of
from modelroll.spec import PredictionShift

from tests.integration.conftest import PROMETHEUS_ENDPOINT, Cluster, OperatorProcess
from tests.integration.helpers import apply_md, condition, eventually, get_json
from tests.support.exporter import CounterExporter, exporters
from tests.support.prometheus import PrometheusServer, require_prometheus

pytestmark = pytest.mark.integration
IMAGE = "modelroll/runtime:test"
Json = dict[str, Any]
REQUESTS = "modelroll_requests_total"
# Predictions per traffic tick (every 0.2 s), by class.
SAME = {"setosa": 5, "versicolor": 3, "virginica": 2}
SHIFTED = {"setosa": 1, "versicolor": 3, "virginica": 6}


def spec(version: str, deadline: int = 300, pause: int = 2) -> Json:
    return {
        "model": {
            "format": "sklearn",
            "uri": "https://models.example.com/iris/",
            "version": version,
        },
        "runtime": {"image": IMAGE},
        "replicas": 2,
        "rollout": {
            "strategy": "Canary",
            "progressDeadlineSeconds": deadline,
            "canary": {
                "scaleDownDelaySeconds": 5,
                "steps": [{"weight": 50, "pauseSeconds": pause}],
                "analysis": {
                    "prometheus": {"endpoint": PROMETHEUS_ENDPOINT},
                    "intervalSeconds": 5,
                    "minRequestCount": 20,
                },
            },
        },
    }


# Rows per tick by (feature, bin), and the reference profile's counts, for drift.
REFERENCE_ROWS = {("petal_length", b): 100.0 for b in "0123"} | {
    ("sepal_width", b): 100.0 for b in "0123"
}
SHIFTED_ROWS = {("petal_length", "0"): 1, ("petal_length", "3"): 7} | {
    ("sepal_width", b): 2 for b in "0123"
}


def drift_spec() -> Json:
    return {
        "model": {"format": "sklearn", "uri": "https://models.example.com/iris/", "version": "1"},
        "runtime": {"image": IMAGE},
        "monitoring": {
            "drift": {
                "prometheus": {"endpoint": PROMETHEUS_ENDPOINT},
                "windowSeconds": 60,
                "intervalSeconds": 30,
                "minSamples": 100,
            }
        },
    }


@dataclass
class Traffic:
    """Every 0.2 s, each running target gets one request per prediction of its shares, and
    the rows of its feature shares."""

    shares: dict[int, dict[str, int]] = field(default_factory=dict)  # exporter port → shares
    features: dict[int, dict[tuple[str, str], int]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, target: CounterExporter, shares: dict[str, int] | None) -> None:
        with self.lock:
            if shares is None:
                self.shares.pop(target.port, None)
            else:
                self.shares[target.port] = dict(shares)


@dataclass
class Target:
    exporter: CounterExporter
    model: str
    version: str
    revision: str


@dataclass
class World:
    namespace: str
    prometheus: PrometheusServer
    traffic: Traffic
    targets: dict[tuple[str, str], Target]  # (model, version) → its scrape target

    def target(self, model: str, version: str) -> Target:
        return self.targets[(model, version)]

    def run(self, model: str, version: str, shares: dict[str, int] | None) -> None:
        self.traffic.set(self.target(model, version).exporter, shares)


MODELS = {
    "shifty": {"1": spec("1"), "2": spec("2")},
    "quiet": {"1": spec("1"), "2": spec("2")},
    "late": {"1": spec("1"), "2": spec("2", deadline=20, pause=0)},
    "drifty": {"1": drift_spec()},
}


def _tick(world_targets: dict[int, Target], traffic: Traffic) -> None:
    with traffic.lock:
        running = dict(traffic.shares)
        rows = dict(traffic.features)
    for port, features in rows.items():
        target = world_targets[port]
        for (feature, label), count in features.items():
            labels = {"model": target.model, "version": target.version}
            target.exporter.add(FEATURE_METRIC, {**labels, "feature": feature, "bin": label}, count)
    for port, shares in running.items():
        target = world_targets[port]
        base = {"model": target.model, "version": target.version}
        target.exporter.add(
            REQUESTS, {**base, "protocol": "v2", "code": "200"}, sum(shares.values())
        )
        for label, count in shares.items():
            target.exporter.add(PREDICTION_METRIC, {**base, BIN_LABEL: label}, count)


@pytest.fixture(scope="module")
def world(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, prometheus_port: int
) -> Iterator[World]:
    require_prometheus()
    namespace = f"outcomes-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    keys = [(name, version) for name, versions in MODELS.items() for version in versions]
    with exporters(len(keys)) as started:
        targets = {
            key: Target(exporter, key[0], key[1], revision_of(MODELS[key[0]][key[1]], "unused"))
            for key, exporter in zip(keys, started, strict=True)
        }
        by_port = {t.exporter.port: t for t in targets.values()}
        drifty = targets[("drifty", "1")]
        for (feature, label), count in REFERENCE_ROWS.items():
            drifty.exporter.set(
                FEATURE_REFERENCE,
                {"model": "drifty", "version": "1", "feature": feature, "bin": label},
                count,
            )
        prometheus = PrometheusServer(
            tmp_path_factory.mktemp("outcomes") / "prometheus",
            [
                (t.exporter.address, {"namespace": namespace, "revision": t.revision})
                for t in targets.values()
            ],
            port=prometheus_port,
        ).start()
        prometheus.wait_targets_up([t.exporter.address for t in targets.values()])
        traffic = Traffic()

        def loop() -> None:
            while not traffic.stop.wait(0.2):
                _tick(by_port, traffic)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield World(namespace, prometheus, traffic, targets)
        finally:
            traffic.stop.set()
            thread.join(timeout=10)
            prometheus.stop()
            cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def md(cluster: Cluster, namespace: str, name: str) -> Json:
    return get_json(cluster, "-n", namespace, "md", name)


def stable_is(cluster: Cluster, namespace: str, name: str, revision: str) -> Json:
    current = md(cluster, namespace, name)
    status = current.get("status") or {}
    assert status.get("stableRevision") == revision, status
    assert condition(current, "Ready").get("status") == "True", status
    return current


def start_canary(cluster: Cluster, world: World, name: str) -> tuple[Target, Target]:
    stable, canary = world.target(name, "1"), world.target(name, "2")
    apply_md(cluster, world.namespace, name, MODELS[name]["1"])
    eventually(lambda: stable_is(cluster, world.namespace, name, stable.revision), timeout=90)
    apply_md(cluster, world.namespace, name, MODELS[name]["2"])
    return stable, canary


def degraded(cluster: Cluster, world: World, name: str, reason: str) -> Json:
    current = md(cluster, world.namespace, name)
    found = condition(current, "Degraded")
    assert (found.get("status"), found.get("reason")) == ("True", reason), current.get("status")
    return current


def test_shifted_predictions_abort_then_retry_analyzes_afresh_and_promotes(
    cluster: Cluster, operator: OperatorProcess, world: World
) -> None:
    """v2 answers every request, fast, with other predictions: aborted with PredictionShift,
    stable keeps all traffic. Once v2 predicts as v1 does, `retry` starts a clean analysis
    (no trace of the aborted one), which passes, and v2 is promoted."""
    ns = world.namespace
    world.run("shifty", "1", SAME)
    world.run("shifty", "2", SHIFTED)
    stable, canary = start_canary(cluster, world, "shifty")

    aborted = eventually(lambda: degraded(cluster, world, "shifty", "PredictionShift"), timeout=90)
    message = condition(aborted, "Degraded")["message"]
    assert message.startswith("prediction shift: chi-square "), message
    assert " > 9.21 (p=" in message and "significance 0.01, 3 bins), PSI " in message, message
    assert " stable predictions" in message and "(threshold " in message, message
    status = aborted["status"]
    assert status["stableRevision"] == stable.revision
    assert status["rollout"]["abortReason"] == "PredictionShift"
    assert status["rollout"]["lastAnalysis"]["reason"] == "PredictionShift"
    assert status["rollout"]["lastAnalysis"]["passed"] is False

    # v2 fixed: wait until the window no longer holds its shifted predictions.
    world.run("shifty", "2", SAME)
    client = world.prometheus.client()

    def window_is_clean() -> bool:
        def counts(revision: str) -> dict[str, float]:
            matcher = revision_matcher(ns, "shifty", revision)
            return client.query_by(bins_query(matcher, 30), BIN_LABEL)

        verdict = evaluate(PredictionShift(), counts(canary.revision), counts(stable.revision))
        return verdict is not None and verdict.passed is True

    eventually(window_is_clean, timeout=90, interval=1)
    cluster.kubectl("-n", ns, "annotate", "md", "shifty", "modelroll.io/retry=true")

    def retried() -> Json:
        current = md(cluster, ns, "shifty")
        rollout = current["status"].get("rollout") or {}
        assert current["status"].get("canaryRevision") == canary.revision, current["status"]
        assert "abortReason" not in rollout and "abortedRevision" not in rollout, rollout
        # no result of the aborted attempt carries over into the retried one
        assert (rollout.get("lastAnalysis") or {}).get("reason") != "PredictionShift", rollout
        return current

    eventually(retried, timeout=30)
    promoted = eventually(lambda: stable_is(cluster, ns, "shifty", canary.revision), timeout=90)
    assert condition(promoted, "Degraded").get("status") != "True", promoted["status"]
    reasons = [
        e["reason"]
        for e in get_json(
            cluster, "-n", ns, "events",
            "--field-selector", "involvedObject.name=shifty,involvedObject.kind=ModelDeployment",
        )["items"]
    ]  # fmt: skip
    assert {"PredictionShift", "RolloutRetried", "CanaryStepPassed", "CanaryPromoted"} <= set(
        reasons
    ), reasons


def test_a_canary_without_traffic_holds_as_inconclusive_then_promotes_once_traffic_arrives(
    cluster: Cluster, operator: OperatorProcess, world: World
) -> None:
    ns = world.namespace
    world.run("quiet", "1", SAME)
    stable, canary = start_canary(cluster, world, "quiet")

    def holding() -> Json:
        current = md(cluster, ns, "quiet")
        progressing = condition(current, "Progressing")
        assert progressing.get("reason") == "CanaryProgressing", current.get("status")
        assert "analysis inconclusive (canary served 0 requests, fewer than minRequestCount " in (
            progressing.get("message", "")
        ), progressing
        assert "aborted if still inconclusive in " in progressing["message"], progressing
        last = current["status"]["rollout"]["lastAnalysis"]
        assert last["reason"] == "InsufficientRequests" and "passed" not in last, last
        return current

    eventually(holding, timeout=90)
    held = eventually(holding, timeout=30)  # still held after more analyses
    assert held["status"]["stableRevision"] == stable.revision
    assert condition(held, "Degraded").get("status") != "True", held["status"]

    world.run("quiet", "2", SAME)
    eventually(lambda: stable_is(cluster, ns, "quiet", canary.revision), timeout=120)


def test_a_canary_without_traffic_fails_at_its_progress_deadline(
    cluster: Cluster, operator: OperatorProcess, world: World
) -> None:
    world.run("late", "1", SAME)
    stable, canary = start_canary(cluster, world, "late")
    aborted = eventually(
        lambda: degraded(cluster, world, "late", "AnalysisInconclusive"), timeout=120
    )
    message = condition(aborted, "Degraded")["message"]
    assert message.startswith(
        "analysis of step 1/1 stayed inconclusive for more than 20s (progressDeadlineSeconds): "
        "canary served 0 requests"
    ), message
    assert aborted["status"]["stableRevision"] == stable.revision
    assert aborted["status"]["rollout"]["abortedRevision"] == canary.revision


def test_a_stable_model_fed_shifted_inputs_gets_drift_detected_naming_the_feature(
    cluster: Cluster, operator: OperatorProcess, world: World
) -> None:
    """No rows yet: Unknown, NotEnoughData. Then rows whose petal_length is shifted (and
    whose sepal_width is as in the reference): DriftDetected=True naming petal_length only."""
    ns, target = world.namespace, world.target("drifty", "1")
    apply_md(cluster, ns, "drifty", MODELS["drifty"]["1"])

    def drift(status: str, reason: str) -> Json:
        current = md(cluster, ns, "drifty")
        found = condition(current, "DriftDetected")
        assert (found.get("status"), found.get("reason")) == (status, reason), current.get("status")
        return found

    unknown = eventually(lambda: drift("Unknown", "NotEnoughData"), timeout=120)
    assert unknown["message"] == (
        f"revision {target.revision} over the last 60s: not enough data for any of 2 features "
        "(0 rows, minSamples 100)"
    ), unknown
    with world.traffic.lock:
        world.traffic.features[target.exporter.port] = dict(SHIFTED_ROWS)
    detected = eventually(lambda: drift("True", "DriftDetected"), timeout=120, interval=1)
    message = detected["message"]
    assert message.startswith(
        f"revision {target.revision} over the last 60s: drift in 1 of 2 features at "
        "significance 0.01: petal_length (chi-square "
    ), message
    assert "sepal_width" not in message, message
    current = md(cluster, ns, "drifty")
    assert condition(current, "Ready").get("status") == "True"  # drift never stops serving
