"""Canary and blue-green rollouts on the real control plane, analysed on real metrics.

kwok pods never run, so real runtime processes play the revisions' pods: a real Prometheus
scrapes them with the target labels that the operator's ServiceMonitor would attach
(namespace, model, revision), and a loopback router plays cluster DNS for smoke tests.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client
from modelroll.revision import revision_of

from tests.integration.conftest import PROMETHEUS_ENDPOINT, Cluster, OperatorProcess
from tests.integration.helpers import apply_md, condition, eventually, get_json
from tests.runtime.models import train_sklearn
from tests.runtime.runtime_process import RuntimeProcess
from tests.support.endpoints import EndpointWatcher
from tests.support.prometheus import (
    PrometheusServer,
    drive_traffic,
    require_prometheus,
    start_runtime,
)
from tests.support.router import Router

pytestmark = pytest.mark.integration
IMAGE = "modelroll/runtime:test"
SETOSA = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}
    ]
}
BODY = json.dumps(SETOSA).encode()
Json = dict[str, Any]


def spec(version: str, rollout: Json, replicas: int = 2, **extra: Any) -> Json:
    return {
        "model": {
            "format": "sklearn",
            "uri": "https://models.example.com/iris/",
            "version": version,
        },
        "runtime": {"image": IMAGE},
        "replicas": replicas,
        "rollout": rollout,
        **extra,
    }


def canary_rollout(deadline: int = 120) -> Json:
    return {
        "strategy": "Canary",
        "progressDeadlineSeconds": deadline,
        "canary": {
            "scaleDownDelaySeconds": 5,
            "steps": [{"weight": 10, "pauseSeconds": 3}, {"weight": 50, "pauseSeconds": 2}],
            "analysis": {
                # the operator is configured with the test Prometheus as endpoint `test`
                "prometheus": {"endpoint": PROMETHEUS_ENDPOINT},
                "intervalSeconds": 5,
                "maxErrorPercent": 5,
                "minRequestCount": 10,
            },
        },
    }


@dataclass
class MetricsWorld:
    namespace: str
    prometheus: PrometheusServer
    healthy: RuntimeProcess
    overloaded: RuntimeProcess


@pytest.fixture(scope="module")
def world(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, prometheus_port: int
) -> Iterator[MetricsWorld]:
    require_prometheus()  # before starting anything for it to scrape
    namespace = f"rollouts-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    work = tmp_path_factory.mktemp("rollouts")
    model = train_sklearn(work / "model")
    healthy = start_runtime(
        model.directory, work / "healthy.log", work / "cache", model_name="iris"
    )
    overloaded = start_runtime(
        model.directory,
        work / "overloaded.log",
        work / "cache",
        model_name="iris",
        MODELROLL_MAX_INFLIGHT="1",
    )
    healthy.wait_ready()
    overloaded.wait_ready()
    revisions = {
        (name, version): revision_of(spec(version, canary_rollout()), "unused")
        for name in ("happy", "sad")
        for version in ("1", "2")
    }
    targets = [
        (
            f"127.0.0.1:{healthy.port}",
            {"namespace": namespace, "model": "happy", "revision": revisions[("happy", "1")]},
        ),
        (
            f"127.0.0.1:{healthy.port}",
            {"namespace": namespace, "model": "happy", "revision": revisions[("happy", "2")]},
        ),
        (
            f"127.0.0.1:{healthy.port}",
            {"namespace": namespace, "model": "sad", "revision": revisions[("sad", "1")]},
        ),
        (
            f"127.0.0.1:{overloaded.port}",
            {"namespace": namespace, "model": "sad", "revision": revisions[("sad", "2")]},
        ),
    ]
    prometheus = PrometheusServer(work / "prometheus", targets, port=prometheus_port).start()
    prometheus.wait_targets_up([t for t, _ in targets])
    stop = threading.Event()

    def traffic() -> None:
        deadline = time.monotonic() + 600
        while not stop.is_set() and time.monotonic() < deadline:
            drive_traffic(
                healthy.port, "/v2/models/iris/infer", BODY, requests=30, threads=2, max_seconds=3
            )
            drive_traffic(
                overloaded.port,
                "/v2/models/iris/infer",
                BODY,
                requests=60,
                threads=8,
                max_seconds=3,
            )
            stop.wait(0.3)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        yield MetricsWorld(namespace, prometheus, healthy, overloaded)
    finally:
        stop.set()
        thread.join(timeout=15)
        prometheus.stop()
        healthy.stop()
        overloaded.stop()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def md(cluster: Cluster, namespace: str, name: str) -> Json:
    return get_json(cluster, "-n", namespace, "md", name)


def stable_is(cluster: Cluster, namespace: str, name: str, revision: str) -> Json:
    current = md(cluster, namespace, name)
    status = current.get("status") or {}
    assert status.get("stableRevision") == revision, status
    assert condition(current, "Ready").get("status") == "True", status
    return current


def weight_of(status: Json, revision: str) -> int | None:
    return next((r["weight"] for r in status.get("revisions", []) if r["name"] == revision), None)


def events(cluster: Cluster, namespace: str, name: str) -> list[Json]:
    return get_json(
        cluster,
        "-n",
        namespace,
        "events",
        "--field-selector",
        f"involvedObject.name={name},involvedObject.kind=ModelDeployment",
    )["items"]


def deployment_replicas(cluster: Cluster, namespace: str, name: str) -> int | None:
    result = cluster.kubectl("-n", namespace, "get", "deployment", name, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    return int(json.loads(result.stdout)["spec"].get("replicas", 0))


def test_happy_canary_moves_through_steps_and_survives_an_operator_restart(
    cluster: Cluster, operator: OperatorProcess, api_client: client.ApiClient, world: MetricsWorld
) -> None:
    ns = world.namespace
    v1, v2 = spec("1", canary_rollout()), spec("2", canary_rollout())
    r1, r2 = revision_of(v1, "unused"), revision_of(v2, "unused")
    apply_md(cluster, ns, "happy", v1)
    eventually(lambda: stable_is(cluster, ns, "happy", r1), timeout=90)
    watcher = EndpointWatcher(api_client, ns, "happy").start()

    apply_md(cluster, ns, "happy", v2)
    seen: list[tuple[int, int | None, str]] = []
    restarted = False
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = md(cluster, ns, "happy").get("status") or {}
        if status.get("stableRevision") == r2:
            break
        if status.get("canaryRevision") == r2:
            step = int(status.get("currentStep", 0))
            seen.append(
                (
                    step,
                    weight_of(status, r2),
                    condition({"status": status}, "Progressing").get("message", ""),
                )
            )
            if step == 1 and not restarted and weight_of(status, r2) == 50:
                started_at = status["rollout"]["stepStartedAt"]
                operator.kill()
                operator.start()
                restarted = True
                after = md(cluster, ns, "happy")["status"]
                if after.get("stableRevision") != r2:
                    assert after["currentStep"] == 1, after
                    assert after["rollout"]["stepStartedAt"] == started_at, after
        time.sleep(0.3)
    final = eventually(lambda: stable_is(cluster, ns, "happy", r2), timeout=10)["status"]

    assert (0, 33) in {(s, w) for s, w, _ in seen}, seen  # 1 canary pod next to 2 stable: 33%
    assert any("requested 10%" in message for s, _, message in seen if s == 0), seen
    assert (1, 50) in {(s, w) for s, w, _ in seen}, seen  # 2 canary pods next to 2 stable
    assert restarted, "the operator was restarted during step 2"
    assert final["history"][0]["revision"] == r2
    eventually(
        lambda: "CanaryPromoted" in [e["reason"] for e in events(cluster, ns, "happy")], timeout=15
    )
    assert "ChildRestored" not in [e["reason"] for e in events(cluster, ns, "happy")]
    # Events are posted asynchronously, so the kill may swallow step 1's; step 2 ran after it.
    step_two = [
        e
        for e in events(cluster, ns, "happy")
        if e["reason"] == "CanaryStepPassed" and "step 2/2" in e["message"]
    ]
    assert len(step_two) == 1 and step_two[0].get("count", 1) == 1, step_two

    # The old revision stays for the scale-down delay, then goes.
    eventually(lambda: deployment_replicas(cluster, ns, f"happy-{r1}") is None, timeout=60)
    assert weight_of(md(cluster, ns, "happy")["status"], r2) == 100
    watcher.assert_never_empty()


def test_bad_canary_is_rolled_back_by_analysis_and_stable_is_untouched(
    cluster: Cluster, operator: OperatorProcess, api_client: client.ApiClient, world: MetricsWorld
) -> None:
    ns = world.namespace
    v1, v2 = spec("1", canary_rollout()), spec("2", canary_rollout())
    r1, r2 = revision_of(v1, "unused"), revision_of(v2, "unused")
    apply_md(cluster, ns, "sad", v1)
    eventually(lambda: stable_is(cluster, ns, "sad", r1), timeout=90)
    watcher = EndpointWatcher(api_client, ns, "sad").start()
    stable_sizes: list[int | None] = []

    apply_md(cluster, ns, "sad", v2)

    def aborted() -> Json:
        stable_sizes.append(deployment_replicas(cluster, ns, f"sad-{r1}"))
        current = md(cluster, ns, "sad")
        degraded = condition(current, "Degraded")
        assert degraded.get("reason") == "CanaryAnalysisFailed", current.get("status")
        return current

    current = eventually(aborted, timeout=180, interval=0.5)
    status = current["status"]
    degraded = condition(current, "Degraded")
    assert degraded["status"] == "True"
    assert "error rate" in degraded["message"], degraded
    assert condition(current, "Ready")["status"] == "True"
    assert status["stableRevision"] == r1
    assert status["rollout"]["abortedRevision"] == r2
    assert set(stable_sizes) == {2}, stable_sizes
    eventually(lambda: deployment_replicas(cluster, ns, f"sad-{r2}") == 0, timeout=30)
    eventually(lambda: weight_of(md(cluster, ns, "sad")["status"], r1) == 100, timeout=30)
    warnings = eventually(
        lambda: [e for e in events(cluster, ns, "sad") if e["reason"] == "CanaryAnalysisFailed"],
        timeout=15,
    )
    assert warnings[0]["type"] == "Warning"

    # Not retried on its own ...
    time.sleep(8)
    later = md(cluster, ns, "sad")["status"]
    assert later["rollout"]["abortedRevision"] == r2 and "canaryRevision" not in later
    # ... but on the retry annotation, which the operator consumes.
    cluster.kubectl("-n", ns, "annotate", "md", "sad", "modelroll.io/retry=true")
    eventually(
        lambda: (
            "modelroll.io/retry" not in md(cluster, ns, "sad")["metadata"].get("annotations", {})
        ),
        timeout=30,
    )
    eventually(
        lambda: any(e["reason"] == "RolloutRetried" for e in events(cluster, ns, "sad")), timeout=15
    )
    watcher.assert_never_empty()


def test_unschedulable_canary_is_rolled_back_at_the_progress_deadline(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    rollout = {
        "strategy": "Canary",
        "progressDeadlineSeconds": 10,
        "canary": {"steps": [{"weight": 50}]},
    }
    v1 = spec("1", rollout, replicas=1)
    v2 = spec("2", rollout, replicas=1, gpu={"count": 16})
    apply_md(cluster, namespace, "stuck", v1)
    eventually(lambda: stable_is(cluster, namespace, "stuck", revision_of(v1, "x")), timeout=90)
    apply_md(cluster, namespace, "stuck", v2)

    def aborted() -> Json:
        current = md(cluster, namespace, "stuck")
        assert condition(current, "Degraded").get("reason") == "ProgressDeadlineExceeded", (
            current.get("status")
        )
        return current

    current = eventually(aborted, timeout=90)
    message = condition(current, "Degraded")["message"]
    assert "InsufficientGPU" in message and "nvidia.com/gpu" in message, message
    assert condition(current, "Ready")["status"] == "True"
    assert current["status"]["stableRevision"] == revision_of(v1, "x")


def blue_green(smoke_expect: int, auto_promote: bool = True) -> Json:
    return {
        "strategy": "BlueGreen",
        "blueGreen": {
            "autoPromote": auto_promote,
            "scaleDownDelaySeconds": 120,
            "smokeTest": {
                "requests": [
                    {
                        "name": "setosa",
                        "body": SETOSA,
                        "expectOutputs": {"outputs": [{"name": "predict", "data": [smoke_expect]}]},
                    }
                ]
            },
        },
    }


def selector_revision(cluster: Cluster, namespace: str, service: str) -> str:
    return str(
        get_json(cluster, "-n", namespace, "service", service)["spec"]["selector"].get(
            "modelroll.io/revision"
        )
    )


def test_blue_green_smoke_test_flip_and_rollback(
    cluster: Cluster,
    operator: OperatorProcess,
    api_client: client.ApiClient,
    namespace: str,
    router: Router,
    world: MetricsWorld,
) -> None:
    router.route(namespace, "bg-preview", world.healthy.port, "iris")
    v1, v2 = spec("1", blue_green(0)), spec("2", blue_green(0))
    r1, r2 = revision_of(v1, "x"), revision_of(v2, "x")
    apply_md(cluster, namespace, "bg", v1)
    eventually(lambda: stable_is(cluster, namespace, "bg", r1), timeout=90)
    assert selector_revision(cluster, namespace, "bg") == r1
    watcher = EndpointWatcher(api_client, namespace, "bg").start()

    apply_md(cluster, namespace, "bg", v2)
    eventually(lambda: stable_is(cluster, namespace, "bg", r2), timeout=120)
    eventually(lambda: selector_revision(cluster, namespace, "bg") == r2, timeout=15)
    assert any(r.startswith(f"{namespace}/bg-preview/v2/models/bg/infer") for r in router.requests)
    eventually(
        lambda: (
            {"SmokeTestPassed", "PreviewPromoted"}
            <= {e["reason"] for e in events(cluster, namespace, "bg")}
        ),
        timeout=15,
    )
    assert deployment_replicas(cluster, namespace, f"bg-{r1}") == 2  # kept for instant rollback

    cluster.kubectl("-n", namespace, "annotate", "md", "bg", "modelroll.io/rollback=true")
    current = eventually(lambda: stable_is(cluster, namespace, "bg", r1), timeout=30)
    eventually(lambda: selector_revision(cluster, namespace, "bg") == r1, timeout=15)
    assert condition(current, "Degraded")["reason"] == "RolledBack"
    eventually(
        lambda: (
            "modelroll.io/rollback"
            not in md(cluster, namespace, "bg")["metadata"].get("annotations", {})
        ),
        timeout=30,
    )
    watcher.assert_never_empty()


def test_blue_green_smoke_test_failure_blocks_promotion(
    cluster: Cluster, operator: OperatorProcess, namespace: str, router: Router, world: MetricsWorld
) -> None:
    router.route(namespace, "bgbad-preview", world.healthy.port, "iris")
    v1, v2 = spec("1", blue_green(2)), spec("2", blue_green(2))
    r1 = revision_of(v1, "x")
    apply_md(cluster, namespace, "bgbad", v1)
    eventually(lambda: stable_is(cluster, namespace, "bgbad", r1), timeout=90)
    apply_md(cluster, namespace, "bgbad", v2)

    def blocked() -> Json:
        current = md(cluster, namespace, "bgbad")
        assert condition(current, "Degraded").get("reason") == "SmokeTestFailed", current.get(
            "status"
        )
        return current

    current = eventually(blocked, timeout=120)
    assert "unexpected outputs" in condition(current, "Degraded")["message"]
    progressing = condition(current, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "SmokeTestFailed")
    assert current["status"]["stableRevision"] == r1
    assert selector_revision(cluster, namespace, "bgbad") == r1
    time.sleep(5)
    assert md(cluster, namespace, "bgbad")["status"]["stableRevision"] == r1


def test_gateway_api_mode_sets_exact_route_weights(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    rollout = {
        "strategy": "Canary",
        "canary": {
            "trafficRouting": {
                "mode": "GatewayAPI",
                "gatewayAPI": {"parentRefs": [{"name": "public"}]},
            },
            "steps": [{"weight": 20, "pauseSeconds": 3600}],
        },
    }
    v1, v2 = spec("1", rollout), spec("2", rollout)
    r1, r2 = revision_of(v1, "x"), revision_of(v2, "x")
    apply_md(cluster, namespace, "gw", v1)
    eventually(lambda: stable_is(cluster, namespace, "gw", r1), timeout=90)

    def route() -> dict[str, int]:
        backends = get_json(cluster, "-n", namespace, "httproute", "gw")["spec"]["rules"][0][
            "backendRefs"
        ]
        return {b["name"]: b["weight"] for b in backends}

    assert eventually(route, timeout=30) == {f"gw-{r1}": 100}
    apply_md(cluster, namespace, "gw", v2)
    eventually(lambda: route() == {f"gw-{r1}": 80, f"gw-{r2}": 20}, timeout=60)
    status = md(cluster, namespace, "gw")["status"]
    assert weight_of(status, r2) == 20 and weight_of(status, r1) == 80
    assert (
        get_json(cluster, "-n", namespace, "httproute", "gw")["spec"]["parentRefs"][0]["name"]
        == "public"
    )
    assert selector_revision(cluster, namespace, "gw") == r1

    cluster.kubectl("-n", namespace, "annotate", "md", "gw", "modelroll.io/promote=true")
    eventually(lambda: stable_is(cluster, namespace, "gw", r2), timeout=60)
    eventually(lambda: route() == {f"gw-{r2}": 100}, timeout=30)


def test_abort_then_retry_at_once_restarts_the_canary_and_promote_finishes_it(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    rollout = {"strategy": "Canary", "canary": {"steps": [{"weight": 25, "pauseSeconds": 3600}]}}
    v1, v2 = spec("1", rollout), spec("2", rollout)
    r1, r2 = revision_of(v1, "x"), revision_of(v2, "x")
    apply_md(cluster, namespace, "again", v1)
    eventually(lambda: stable_is(cluster, namespace, "again", r1), timeout=90)
    apply_md(cluster, namespace, "again", v2)
    eventually(
        lambda: md(cluster, namespace, "again")["status"].get("canaryRevision") == r2, timeout=60
    )

    cluster.kubectl("-n", namespace, "annotate", "md", "again", "modelroll.io/abort=true")
    eventually(
        lambda: condition(md(cluster, namespace, "again"), "Degraded").get("reason") == "Aborted",
        timeout=30,
    )
    # The retry races the operator's removal of the abort annotation on purpose.
    cluster.kubectl("-n", namespace, "annotate", "md", "again", "modelroll.io/retry=true")

    def restarted() -> Json:
        current = md(cluster, namespace, "again")
        annotations = current["metadata"].get("annotations", {})
        assert "modelroll.io/retry" not in annotations and "modelroll.io/abort" not in annotations
        assert current["status"].get("canaryRevision") == r2, current["status"]
        assert condition(current, "Degraded").get("status") == "False", current["status"]
        return current

    eventually(restarted, timeout=30)
    time.sleep(6)  # two resync periods: nothing may abort it again
    restarted()
    cluster.kubectl("-n", namespace, "annotate", "md", "again", "modelroll.io/promote=true")
    eventually(lambda: stable_is(cluster, namespace, "again", r2), timeout=60)
