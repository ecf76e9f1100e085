"""Prediction-aware canaries and drift on the real node: packaged models on real pods, real
traffic through each Service's ClusterIP, and a real Prometheus scraping the pods.

Prometheus runs on the host and scrapes every running runtime pod's HTTP port
(tests/e2e/pod_prometheus.py); the in-cluster operator queries it as its endpoint `e2e`. The packages (`modelroll package`,
ONNX plus reference profile) reach the pods through a PersistentVolumeClaim
(`pvc://models/<package>`), bound to a hostPath volume on the node.

Every scenario has a namespace of its own, and all of them run at once against the one
operator (module fixture `scenarios`); each test waits for its own scenario's outcome.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from modelroll.render import RUNTIME_PORTS
from modelroll_runtime import packager
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.e2e.conftest import ON_REAL_NODE, cluster_ip, create_namespace, wait_ready
from tests.e2e.pod_prometheus import operator_querying, pod_prometheus
from tests.e2e.test_real_rollouts import revisions, settled_on
from tests.e2e.traffic import Answer, Load, failures, predicted_classes
from tests.integration.helpers import apply_md, condition, eventually, get_json
from tests.support.cluster import Cluster
from tests.support.prometheus import PrometheusServer

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("installed_operator")]
Json = dict[str, Any]
ENDPOINT = "e2e"
CLAIM = "models"
NAME = "iris"
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
# Every request carries all 150 iris rows: the inputs of each request, and so of any window,
# are distributed exactly as the reference profile's (all but the shifted feature of the
# drift scenario), and two revisions that predict alike answer alike in every window.
X, Y = load_iris(return_X_y=True)
ROWS = np.asarray(X, dtype=np.float64)
SHIFTED_ROWS = ROWS + np.array([0.0, 0.0, 3.0, 0.0])  # petal_length beyond the reference's max
PACE = 0.2  # seconds between a traffic thread's requests: ~5 requests, 750 rows, a second


@dataclass(frozen=True)
class Packages:
    root: Path  # the hostPath behind every namespace's claim
    digest: dict[str, str]  # package → model.sha256 (spec.model.sha256 pins the package)
    models: dict[str, LogisticRegression]


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    """`iris`: the stable model. `shifted`: trained with setosa (0) relabelled versicolor
    (1), so it answers every request, as fast, and never predicts 0: its predictions are
    distributed unlike iris's (about 0/100/50 against 50/50/50 per request). Labels moved
    by one class would not do: the prediction shift test compares distributions, and a
    permutation of balanced classes keeps them (CI saw it pass at PSI 0.003)."""
    work = tmp_path_factory.mktemp("training")
    reference = work / "reference.csv"
    lines = [",".join(FEATURES)] + [",".join(repr(float(v)) for v in row) for row in X]
    reference.write_text("\n".join(lines) + "\n")
    root = tmp_path_factory.mktemp("model-store")
    models = {
        "iris": LogisticRegression(max_iter=1000).fit(X, Y),
        "shifted": LogisticRegression(max_iter=1000).fit(X, np.where(Y == 0, 1, Y)),
    }
    digest = {}
    for name, model in models.items():
        joblib.dump(model, work / f"{name}.joblib")
        built = packager.build(work / f"{name}.joblib", reference, root / name)
        assert built.backend == "onnx", built.reason
        digest[name] = built.digest
    # The runtime runs as a non-root user: the volume must be readable by anyone.
    for directory, _, files in os.walk(root):
        os.chmod(directory, 0o755)
        for file in files:
            os.chmod(os.path.join(directory, file), 0o644)
    return Packages(root, digest, models)


@pytest.fixture(scope="module")
def prometheus(
    real_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    with pod_prometheus(
        real_cluster, tmp_path_factory.mktemp("prometheus"), RUNTIME_PORTS["http"]
    ) as server:
        yield server


@pytest.fixture(scope="module")
def operator_with_prometheus(real_cluster: Cluster, prometheus: PrometheusServer) -> Iterator[None]:
    with operator_querying(real_cluster, ENDPOINT, prometheus):
        yield


def bind_model_store(cluster: Cluster, namespace: str, root: Path) -> None:
    """The claim `models` in `namespace`, bound to the host's package directory."""
    volume = f"{namespace}-{CLAIM}"
    manifests = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume, "labels": {"modelroll-e2e/store": namespace}},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadOnlyMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(root), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": CLAIM},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": CLAIM, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadOnlyMany"],
                "storageClassName": "",
                "volumeName": volume,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    ]
    listed = {"apiVersion": "v1", "kind": "List", "items": manifests}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(listed))


def model(packages: Packages, package: str, version: str) -> Json:
    return {
        "format": "sklearn",
        "uri": f"pvc://{CLAIM}/{package}",
        "version": version,
        "sha256": packages.digest[package],
    }


def base_spec(packages: Packages, package: str, version: str) -> Json:
    return {
        "model": model(packages, package, version),
        "replicas": 1,
        **ON_REAL_NODE,
        "resources": {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    }


def canary_spec(
    packages: Packages, package: str, version: str, deadline: int = 600, pause: int = 5
) -> Json:
    """One step at 50% (one stable and one canary pod, so kube-proxy splits requests evenly),
    analyzed every 10 s over a 30 s window; no latency thresholds (the node is shared)."""
    return {
        **base_spec(packages, package, version),
        "rollout": {
            "strategy": "Canary",
            "progressDeadlineSeconds": deadline,
            "canary": {
                "trafficRouting": {"mode": "Replicas"},
                "scaleDownDelaySeconds": 0,
                "steps": [{"weight": 50, "pauseSeconds": pause}],
                "analysis": {
                    "prometheus": {"endpoint": ENDPOINT},
                    "intervalSeconds": 10,
                    "minRequestCount": 10,
                },
            },
        },
    }


def drift_spec(packages: Packages) -> Json:
    return {
        **base_spec(packages, "iris", "1"),
        "monitoring": {
            "drift": {
                "prometheus": {"endpoint": ENDPOINT},
                "windowSeconds": 60,
                "intervalSeconds": 30,
                # Both sides need minSamples: the reference is iris's 150 rows.
                "minSamples": 100,
            }
        },
    }


@dataclass
class Scenario:
    cluster: Cluster
    namespace: str
    packages: Packages

    def md(self) -> Json:
        return dict(get_json(self.cluster, "-n", self.namespace, "modeldeployment", NAME))

    def apply(self, spec: Json) -> None:
        apply_md(self.cluster, self.namespace, NAME, spec)

    def start_stable(self, spec: Json) -> Json:
        self.apply(spec)
        return wait_ready(self.cluster, self.namespace, NAME)

    def host(self) -> str:
        return cluster_ip(self.cluster, self.namespace, NAME)

    def condition_is(self, type_: str, status: str, reason: str) -> Json:
        current = self.md()
        found = condition(current, type_)
        status_now = current.get("status") or {}
        # on a timeout, say where the rollout stands: each condition and the last analysis
        where = (
            [
                (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
                for c in status_now.get("conditions") or []
            ],
            status_now.get("rollout"),
        )
        assert (found.get("status"), found.get("reason")) == (status, reason), where
        return current

    def stable_is(self, version: str) -> Json:
        current = self.md()
        revision = revisions(current).get(version, {})
        assert (revision.get("role"), revision.get("weight")) == ("stable", 100), current.get(
            "status"
        )
        assert condition(current, "Ready").get("status") == "True", current.get("status")
        return current

    def event_reasons(self) -> list[str]:
        events = get_json(
            self.cluster, "-n", self.namespace, "events",
            "--field-selector", f"involvedObject.name={NAME},involvedObject.kind=ModelDeployment",
        )["items"]  # fmt: skip
        return [f"{e['reason']}: {e.get('message', '')}" for e in events]

    def event_timeline(self) -> list[str]:
        """The ModelDeployment's and its pods' Events with their times, oldest first."""
        events = get_json(self.cluster, "-n", self.namespace, "events")["items"]
        stamped = [(e.get("lastTimestamp") or e.get("eventTime") or "", e) for e in events]
        return [
            f"{when} {e['involvedObject']['kind']}/{e['involvedObject']['name']} "
            f"{e['reason']}: {e.get('message', '')[:160]}"
            for when, e in sorted(stamped, key=lambda pair: pair[0])
        ]


@dataclass
class Shifted:
    aborted: Json
    stable: str  # the stable revision's name before the canary
    during: list[Answer]  # every answer while the canary ran
    after: list[Answer]  # answers once the Service's endpoints settled after the abort
    final: Json
    timeline: list[str]  # the namespace's Events, for a failure's message


def shifted_canary(s: Scenario) -> Shifted:
    stable = s.start_stable(canary_spec(s.packages, "iris", "1"))["status"]["stableRevision"]
    with Load(s.host(), NAME, ROWS, threads=1, pause=PACE) as load:
        s.apply(canary_spec(s.packages, "shifted", "2"))
        try:
            aborted = eventually(
                lambda: s.condition_is("Degraded", "True", "PredictionShift"),
                timeout=300,
                interval=1,
            )
        except AssertionError as error:
            # the whole status and the Events: pytest shortens the condition tuples
            status = json.dumps(s.md().get("status"), indent=1)
            raise AssertionError(f"{error}\n{status}\n" + "\n".join(s.event_timeline())) from None
        at_abort = load.count()
        eventually(lambda: settled_on(load, "1", last=20), timeout=60)
        settled = load.count()
        time.sleep(5)
        answers = list(load.answers)
    return Shifted(
        aborted, stable, answers[:at_abort], answers[settled:], s.md(), s.event_timeline()
    )


@dataclass
class Promoted:
    promoted: Json
    answers: list[Answer]
    events: list[str]
    timeline: list[str]


def identical_canary(s: Scenario) -> Promoted:
    s.start_stable(canary_spec(s.packages, "iris", "1"))
    with Load(s.host(), NAME, ROWS, threads=1, pause=PACE) as load:
        s.apply(canary_spec(s.packages, "iris", "2"))
        promoted = eventually(lambda: s.stable_is("2"), timeout=300, interval=1)
        eventually(lambda: settled_on(load, "2", last=20), timeout=60)
        answers = list(load.answers)
    return Promoted(promoted, answers, s.event_reasons(), s.event_timeline())


@dataclass
class Quiet:
    held: list[Json]  # two observations of the held step, an analysis apart
    promoted: Json
    answers: list[Answer]
    timeline: list[str]


def holding(s: Scenario) -> Json:
    current = s.md()
    progressing = condition(current, "Progressing")
    assert progressing.get("reason") == "CanaryProgressing", current.get("status")
    assert "analysis inconclusive (canary served 0 requests, fewer than minRequestCount 10" in (
        progressing.get("message", "")
    ), progressing
    last = current["status"]["rollout"]["lastAnalysis"]
    assert last["reason"] == "InsufficientRequests" and "passed" not in last, last
    return current


def quiet_canary(s: Scenario) -> Quiet:
    s.start_stable(canary_spec(s.packages, "iris", "1"))
    s.apply(canary_spec(s.packages, "iris", "2"))
    first = eventually(lambda: holding(s), timeout=300, interval=1)
    started = first["status"]["rollout"]["lastAnalysis"].get("time")

    def next_analysis() -> Json:
        current = holding(s)
        assert current["status"]["rollout"]["lastAnalysis"].get("time") != started
        return current

    # Still held one analysis later (10 s): waiting, neither failed nor promoted.
    second = eventually(next_analysis, timeout=60, interval=1)
    with Load(s.host(), NAME, ROWS, threads=1, pause=PACE) as load:
        promoted = eventually(lambda: s.stable_is("2"), timeout=300, interval=1)
        answers = list(load.answers)
    return Quiet([first, second], promoted, answers, s.event_timeline())


LATE_DEADLINE = 90


def late_canary(s: Scenario) -> Json:
    s.start_stable(canary_spec(s.packages, "iris", "1", deadline=LATE_DEADLINE))
    s.apply(canary_spec(s.packages, "iris", "2", deadline=LATE_DEADLINE, pause=0))
    return eventually(
        lambda: s.condition_is("Degraded", "True", "AnalysisInconclusive"),
        timeout=LATE_DEADLINE + 300,
        interval=1,
    )


@dataclass
class Drift:
    revision: str
    before: Json  # the condition before any traffic
    detected: Json
    final: Json


def drifting_stable(s: Scenario) -> Drift:
    revision = s.start_stable(drift_spec(s.packages))["status"]["stableRevision"]

    def drift(status: str, reason: str) -> Json:
        return condition(s.condition_is("DriftDetected", status, reason), "DriftDetected")

    before = eventually(lambda: drift("Unknown", "NotEnoughData"), timeout=120, interval=1)
    with Load(s.host(), NAME, SHIFTED_ROWS, threads=1, pause=PACE):
        detected = eventually(lambda: drift("True", "DriftDetected"), timeout=240, interval=1)
    return Drift(revision, before, detected, s.md())


SCENARIOS: dict[str, Callable[[Scenario], Any]] = {
    "shifted": shifted_canary,
    "identical": identical_canary,
    "quiet": quiet_canary,
    "late": late_canary,
    "drift": drifting_stable,
}


@pytest.fixture(scope="module")
def scenarios(
    real_cluster: Cluster, packages: Packages, operator_with_prometheus: None
) -> Iterator[dict[str, Future[Any]]]:
    """Starts every scenario at once, each in its own namespace with its own claim."""
    suffix = uuid.uuid4().hex[:6]
    namespaces = {name: f"e2e-pred-{name}-{suffix}" for name in SCENARIOS}
    for namespace in namespaces.values():
        create_namespace(real_cluster, namespace)
        bind_model_store(real_cluster, namespace, packages.root)
    with ThreadPoolExecutor(len(SCENARIOS)) as pool:
        futures = {
            name: pool.submit(run, Scenario(real_cluster, namespaces[name], packages))
            for name, run in SCENARIOS.items()
        }
        try:
            yield futures
        finally:
            for future in futures.values():
                future.exception()  # wait for the scenario to end, whatever it did
            # Not waited for: the pods end within seconds, and waiting costs the CI minutes.
            real_cluster.kubectl("delete", "namespace", *namespaces.values(), "--wait=false")
            real_cluster.kubectl(
                "delete", "pv", "-l", "modelroll-e2e/store", "--wait=false", check=False
            )


def expected(packages: Packages, package: str, rows: np.ndarray) -> list[int]:
    return [int(v) for v in packages.models[package].predict(rows)]


def test_a_canary_with_shifted_predictions_is_aborted_and_stable_keeps_all_traffic(
    scenarios: dict[str, Future[Any]], packages: Packages
) -> None:
    """v2 answers 200, as fast, with other classes: the analysis aborts it with
    PredictionShift (score, threshold and counts in the message), and afterwards every
    request is answered by v1 again."""
    outcome: Shifted = scenarios["shifted"].result(timeout=600)
    message = condition(outcome.aborted, "Degraded")["message"]
    assert message.startswith("prediction shift: chi-square "), message
    assert " > 9.21 (p=" in message and "significance 0.01, 3 bins), PSI " in message, message
    assert "(threshold " in message and " canary and " in message, message
    assert " stable predictions" in message, message
    status = outcome.final["status"]
    assert status["stableRevision"] == outcome.stable
    assert status["rollout"]["abortReason"] == "PredictionShift"
    assert status["rollout"]["lastAnalysis"]["passed"] is False
    assert revisions(outcome.final)["1"]["weight"] == 100, status
    assert revisions(outcome.final).get("2", {}).get("weight", 0) == 0, status
    # The canary really served, and really answered differently from the stable model.
    served = Counter(a.version for a in outcome.during)
    assert served["2"] > 0 and served["1"] > 0, served
    for answer in outcome.during:
        package = "shifted" if answer.version == "2" else "iris"
        assert predicted_classes(answer) == expected(packages, package, ROWS)
    assert not failures(outcome.during + outcome.after), (
        failures(outcome.during + outcome.after),
        outcome.timeline,
    )
    assert outcome.after and {a.version for a in outcome.after} == {"1"}, Counter(
        a.version for a in outcome.after
    )


def test_an_identical_canary_is_promoted(scenarios: dict[str, Future[Any]]) -> None:
    outcome: Promoted = scenarios["identical"].result(timeout=600)
    assert condition(outcome.promoted, "Degraded").get("status") != "True", outcome.promoted
    passed = [e for e in outcome.events if e.startswith("CanaryStepPassed: ")]
    assert passed, outcome.events
    # The step passed on the prediction test too, not only on the request counts.
    assert "prediction shift: chi-square " in passed[0] and " <= " in passed[0], passed
    assert any(e.startswith("CanaryPromoted: ") for e in outcome.events), outcome.events
    served = Counter(a.version for a in outcome.answers)
    assert served["1"] > 0 and served["2"] > 0, served
    assert not failures(outcome.answers), (failures(outcome.answers), outcome.timeline)


def test_a_canary_without_traffic_holds_as_inconclusive_then_promotes_once_traffic_arrives(
    scenarios: dict[str, Future[Any]],
) -> None:
    outcome: Quiet = scenarios["quiet"].result(timeout=600)
    for held in outcome.held:
        assert condition(held, "Degraded").get("status") != "True", held["status"]
        assert revisions(held)["1"]["role"] == "stable", held["status"]
        assert "aborted if still inconclusive in " in condition(held, "Progressing")["message"]
    assert condition(outcome.promoted, "Degraded").get("status") != "True"
    assert not failures(outcome.answers), (failures(outcome.answers), outcome.timeline)


def test_a_canary_without_traffic_fails_at_its_progress_deadline(
    scenarios: dict[str, Future[Any]],
) -> None:
    aborted: Json = scenarios["late"].result(timeout=600)
    message = condition(aborted, "Degraded")["message"]
    assert message.startswith(
        f"analysis of step 1/1 stayed inconclusive for more than {LATE_DEADLINE}s "
        "(progressDeadlineSeconds): canary served 0 requests"
    ), message
    assert revisions(aborted)["1"]["weight"] == 100, aborted["status"]
    assert aborted["status"]["rollout"]["abortReason"] == "AnalysisInconclusive"


def test_a_stable_model_fed_shifted_inputs_gets_drift_detected_naming_the_feature(
    scenarios: dict[str, Future[Any]],
) -> None:
    outcome: Drift = scenarios["drift"].result(timeout=600)
    message = outcome.detected["message"]
    assert message.startswith(
        f"revision {outcome.revision} over the last 60s: drift in 1 of 4 features at "
        "significance 0.01: petal_length (chi-square "
    ), message
    for unshifted in ("sepal_length", "sepal_width", "petal_width"):
        assert unshifted not in message.split(" not enough data")[0], message
    # Drift is a report: the model keeps serving.
    assert condition(outcome.final, "Ready").get("status") == "True", outcome.final["status"]
