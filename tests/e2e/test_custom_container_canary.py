"""A canary of your own server, analyzed on real traffic: the FastAPI image of
examples/custom-fastapi behind the metrics sidecar (spec.runtime.container.metrics.sidecar),
a host Prometheus scraping the sidecars, and the in-cluster operator analyzing from it.

One stable version, then a canary of a second version that answers as well: promoted. Then a
third whose model expects three features, so the naive server answers every iris request
with HTTP 500: the analysis sees the sidecar's 5xx count and aborts it; the stable keeps
all traffic."""

from __future__ import annotations

import hashlib
import http.server
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.e2e.conftest import (
    HOST_IP,
    ModelStore,
    QuietHandler,
    cluster_ip,
    iris_rows,
    model_deployment_from_example,
    wait_ready,
)
from tests.e2e.pod_prometheus import operator_querying, pod_prometheus
from tests.e2e.traffic import Answer, Load
from tests.integration.helpers import apply, condition, eventually, get_json
from tests.support.cluster import Cluster
from tests.support.prometheus import PrometheusServer

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("installed_operator")]

NAME = "fastapi-canary"
ENDPOINT = "e2e"
SIDECAR_PORT = 8080  # render_custom.SIDECAR_PORT: where the sidecar serves /metrics
ROWS = iris_rows(1)
Json = dict[str, Any]


@dataclass(frozen=True)
class BrokenModel:
    uri: str
    sha256: str


@pytest.fixture(scope="module")
def broken_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokenModel]:
    """An iris model fitted on three features, served like the model store: the FastAPI
    app's model.predict raises on the four-feature rows, so it answers 500."""
    root = tmp_path_factory.mktemp("broken")
    x, y = load_iris(return_X_y=True)
    path = root / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=1000).fit(x[:, :3], y), path)
    server = http.server.ThreadingHTTPServer(
        (HOST_IP, 0), partial(QuietHandler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield BrokenModel(
        f"http://{HOST_IP}:{server.server_address[1]}/model.joblib",
        hashlib.sha256(path.read_bytes()).hexdigest(),
    )
    server.shutdown()


@pytest.fixture(scope="module")
def prometheus(
    real_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    with pod_prometheus(
        real_cluster, tmp_path_factory.mktemp("prometheus"), SIDECAR_PORT
    ) as server:
        yield server


@pytest.fixture(scope="module")
def operator_with_prometheus(real_cluster: Cluster, prometheus: PrometheusServer) -> Iterator[None]:
    with operator_querying(real_cluster, ENDPOINT, prometheus):
        yield


def canary_body(store: ModelStore, version: str, broken: BrokenModel | None = None) -> Json:
    """The FastAPI example with the sidecar: one pod, one step at 50% (one stable and one
    canary pod), analyzed every 10 s; no latency thresholds (the node is shared)."""
    body = model_deployment_from_example("custom-fastapi.yaml", store, "1")
    body["metadata"]["name"] = NAME
    model = body["spec"]["model"]
    model["version"] = version  # version 1's model file: the same answers
    if broken:
        model.update(uri=broken.uri, sha256=broken.sha256)
    body["spec"]["replicas"] = 1
    container = body["spec"]["runtime"]["container"]
    container["metrics"] = {"sidecar": True}
    container["env"] = [{"name": "MODEL_VERSION", "value": version}]
    body["spec"]["rollout"] = {
        "strategy": "Canary",
        "progressDeadlineSeconds": 300,
        "canary": {
            "trafficRouting": {"mode": "Replicas"},
            "scaleDownDelaySeconds": 0,
            "steps": [{"weight": 50, "pauseSeconds": 5}],
            "analysis": {
                "prometheus": {"endpoint": ENDPOINT},
                "intervalSeconds": 10,
                "minRequestCount": 10,
            },
        },
    }
    return body


def revisions(md: Json) -> dict[str, Json]:
    return {r["version"]: r for r in md.get("status", {}).get("revisions", [])}


def settled_on(load: Load, version: str, last: int = 20) -> bool:
    answers = load.answers[-last:]
    return len(answers) == last and all(a.version == version for a in answers)


def test_a_canary_of_the_fastapi_server_promotes_and_one_that_answers_500_is_aborted(
    real_cluster: Cluster,
    restricted_namespace: str,
    model_store: ModelStore,
    broken_model: BrokenModel,
    operator_with_prometheus: None,
) -> None:
    ns = restricted_namespace

    def md() -> Json:
        return dict(get_json(real_cluster, "-n", ns, "modeldeployment", NAME))

    def stable_is(version: str) -> Json:
        current = md()
        revision = revisions(current).get(version, {})
        assert (revision.get("role"), revision.get("weight")) == ("stable", 100), current["status"]
        assert condition(current, "Ready").get("status") == "True", current["status"]
        return current

    def aborted() -> Json:
        current = md()
        degraded = condition(current, "Degraded")
        assert (degraded.get("status"), degraded.get("reason")) == (
            "True",
            "CanaryAnalysisFailed",
        ), current["status"]
        return current

    apply(real_cluster, ns, canary_body(model_store, "1"))
    wait_ready(real_cluster, ns, NAME, timeout=240)
    host = cluster_ip(real_cluster, ns, NAME)

    with Load(host, NAME, ROWS, threads=1) as load:
        apply(real_cluster, ns, canary_body(model_store, "2"))
        promoted = eventually(lambda: stable_is("2"), timeout=300, interval=1)
        eventually(lambda: settled_on(load, "2"), timeout=60)
        promotion: list[Answer] = list(load.answers)
    served = Counter(a.version for a in promotion)
    assert served["1"] > 0 and served["2"] > 0, served  # the sidecar's version header
    assert all(a.status == 200 for a in promotion), Counter(a.status for a in promotion)
    assert condition(promoted, "Degraded").get("status") != "True", promoted["status"]
    events = get_json(
        real_cluster, "-n", ns, "events",
        "--field-selector", f"involvedObject.name={NAME},involvedObject.kind=ModelDeployment",
    )["items"]  # fmt: skip
    reasons = [e["reason"] for e in events]
    assert "CanaryStepPassed" in reasons and "CanaryPromoted" in reasons, reasons

    with Load(host, NAME, ROWS, threads=1) as load:
        apply(real_cluster, ns, canary_body(model_store, "3", broken_model))
        final = eventually(aborted, timeout=300, interval=1)
        eventually(lambda: settled_on(load, "2"), timeout=60)
        time.sleep(2)
        abort: list[Answer] = list(load.answers)
    status = final["status"]
    assert status["rollout"]["abortReason"] == "CanaryAnalysisFailed", status
    assert status["rollout"]["lastAnalysis"]["passed"] is False, status
    assert revisions(final)["2"]["role"] == "stable", status
    assert revisions(final)["2"]["weight"] == 100, status
    by_version = Counter((a.version, a.status) for a in abort)
    # The canary really answered 5xx: the server's 500 (a plain-text page), through the
    # sidecar; a 502 only if the server dropped a connection twice. None came from the stable.
    assert sum(n for (v, code), n in by_version.items() if v == "3" and code >= 500), by_version
    assert not [a for a in abort if a.version == "3" and a.status < 500], by_version
    assert by_version[("2", 200)] > 0, by_version
    assert not [a for a in abort if a.version == "2" and a.status != 200], by_version
