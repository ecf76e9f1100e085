"""A tenant aims canary analysis past its own namespace (issue 12, attack 3), against the
real apiserver, the real operator and a real Prometheus whose query log shows every
expression the operator sent.

- A free `prometheus.address` is refused at apply time: the spec can only name one of the
  operator's endpoints (the shared invalid cases cover the message; here `kubectl apply`).
- An endpoint name the operator does not configure aborts the canary once, with reason
  PrometheusEndpointUnknown and one Event, and is not retried.
- `customChecks` naming another namespace are refused by an operator that does not allow
  them: the canary is aborted with reason CustomChecksDisabled, and Prometheus was asked
  nothing. An operator started with MODELROLL_ALLOW_CUSTOM_CHECKS=true runs the same check.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.helpers import condition, eventually, get_json
from tests.support.prometheus import PrometheusServer, require_prometheus

pytestmark = pytest.mark.integration
Json = dict[str, Any]
PEEK = 'sum(modelroll_requests_total{namespace="victim-team"}) or vector(0)'


def spec(version: str, custom_checks: bool = True) -> Json:
    analysis: Json = {"prometheus": {}, "intervalSeconds": 5, "minRequestCount": 0}
    if custom_checks:
        analysis["customChecks"] = [{"name": "peek", "query": PEEK, "maxValue": "1"}]
    return {
        "model": {
            "format": "sklearn",
            "uri": "https://models.example.com/iris/",
            "version": version,
        },
        "replicas": 2,
        "rollout": {
            "strategy": "Canary",
            "progressDeadlineSeconds": 120,
            "canary": {
                "scaleDownDelaySeconds": 0,
                "steps": [{"weight": 50, "pauseSeconds": 1}],
                "analysis": analysis,
            },
        },
    }


def manifest(namespace: str, name: str, body_spec: Json) -> str:
    return json.dumps(
        {
            "apiVersion": "modelroll.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": body_spec,
        }
    )


def apply_md(cluster: Cluster, namespace: str, name: str, body_spec: Json) -> None:
    cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=test",
        "-f",
        "-",
        input=manifest(namespace, name, body_spec),
    )


def md(cluster: Cluster, namespace: str, name: str) -> Json:
    return get_json(cluster, "-n", namespace, "md", name)


def stable(cluster: Cluster, namespace: str, name: str) -> str:
    current = md(cluster, namespace, name)
    assert condition(current, "Ready").get("status") == "True", current.get("status")
    revision = (current.get("status") or {}).get("stableRevision")
    assert revision, current.get("status")
    return str(revision)


def events(cluster: Cluster, namespace: str, name: str) -> list[Json]:
    selector = f"involvedObject.name={name},involvedObject.kind=ModelDeployment"
    found = get_json(cluster, "-n", namespace, "events", "--field-selector", selector)
    return list(found["items"])


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, prometheus_port: int
) -> Iterator[PrometheusServer]:
    """The operator's endpoint `test`: a real Prometheus with its query log on."""
    require_prometheus()
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), [], port=prometheus_port)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def ns(cluster: Cluster) -> Iterator[str]:
    name = f"tenant-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def test_a_free_prometheus_address_is_refused_at_apply_time(
    cluster: Cluster, crd_installed: None, ns: str
) -> None:
    body = spec("1", custom_checks=False)
    body["rollout"]["canary"]["analysis"]["prometheus"] = {
        "address": "http://169.254.169.254/latest/meta-data#"
    }
    result = cluster.kubectl("apply", "-f", "-", input=manifest(ns, "free", body), check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.rollout.canary.analysis.prometheus.address"' in result.stderr
    assert cluster.kubectl("-n", ns, "get", "md", "free", check=False).returncode != 0


def test_custom_checks_naming_another_namespace_are_refused_and_never_queried(
    cluster: Cluster, operator: OperatorProcess, prometheus: PrometheusServer, ns: str
) -> None:
    apply_md(cluster, ns, "peek", spec("1"))
    r1 = eventually(lambda: stable(cluster, ns, "peek"), timeout=90)
    apply_md(cluster, ns, "peek", spec("2"))

    def refused() -> Json:
        current = md(cluster, ns, "peek")
        assert condition(current, "Degraded").get("reason") == "CustomChecksDisabled", current
        return current

    current = eventually(refused, timeout=120, interval=0.5)
    status, degraded = current["status"], condition(current, "Degraded")
    assert degraded["status"] == "True"
    assert "customChecks (peek)" in degraded["message"], degraded
    assert "MODELROLL_ALLOW_CUSTOM_CHECKS" in degraded["message"], degraded
    assert status["stableRevision"] == r1
    assert status["rollout"]["abortedRevision"] not in ("", r1), status
    assert condition(current, "Ready")["status"] == "True"  # the stable revision serves on
    warnings = eventually(
        lambda: [e for e in events(cluster, ns, "peek") if e["reason"] == "CustomChecksDisabled"],
        timeout=15,
    )
    assert warnings[0]["type"] == "Warning"
    # Not one query for this ModelDeployment reached Prometheus: neither the tenant's nor
    # the built-in ones (which all name its namespace).
    sent = prometheus.queries()
    assert not [q for q in sent if ns in q or "victim-team" in q], sent


def test_an_endpoint_the_operator_does_not_name_fails_once_and_is_not_retried(
    cluster: Cluster, operator: OperatorProcess, prometheus: PrometheusServer, ns: str
) -> None:
    unknown = spec("1", custom_checks=False)
    unknown["rollout"]["canary"]["analysis"]["prometheus"] = {"endpoint": "elsewhere"}
    apply_md(cluster, ns, "lost", unknown)
    r1 = eventually(lambda: stable(cluster, ns, "lost"), timeout=90)
    unknown["model"]["version"] = "2"
    apply_md(cluster, ns, "lost", unknown)

    def refused() -> Json:
        current = md(cluster, ns, "lost")
        assert condition(current, "Degraded").get("reason") == "PrometheusEndpointUnknown", current
        return current

    current = eventually(refused, timeout=120, interval=0.5)
    message = condition(current, "Degraded")["message"]
    assert '"elsewhere" is not a Prometheus endpoint of the operator' in message, message
    assert "configured: test" in message, message
    assert current["status"]["stableRevision"] == r1
    aborted = current["status"]["rollout"]["abortedRevision"]
    eventually(
        lambda: [
            e for e in events(cluster, ns, "lost") if e["reason"] == "PrometheusEndpointUnknown"
        ],
        timeout=15,
    )
    time.sleep(8)  # a few resyncs: the refusal is recorded, not asked again
    later = md(cluster, ns, "lost")["status"]
    assert later["rollout"]["abortedRevision"] == aborted and "canaryRevision" not in later
    warnings = [
        e for e in events(cluster, ns, "lost") if e["reason"] == "PrometheusEndpointUnknown"
    ]
    assert len(warnings) == 1 and warnings[0].get("count", 1) == 1, warnings
    sent = prometheus.queries()
    assert not [q for q in sent if ns in q], sent


def test_an_operator_that_allows_custom_checks_runs_them(
    cluster: Cluster,
    operator: OperatorProcess,
    prometheus: PrometheusServer,
    ns: str,
    tmp_path: Path,
) -> None:
    operator.stop()  # one operator at a time, as the Recreate strategy guarantees in-cluster
    allowing = OperatorProcess(
        cluster, str(tmp_path), {**operator.extra_env, "MODELROLL_ALLOW_CUSTOM_CHECKS": "true"}
    )
    try:
        allowing.start()
        apply_md(cluster, ns, "allowed", spec("1"))
        r1 = eventually(lambda: stable(cluster, ns, "allowed"), timeout=90)
        apply_md(cluster, ns, "allowed", spec("2"))

        def promoted() -> str:
            revision = stable(cluster, ns, "allowed")
            assert revision != r1, md(cluster, ns, "allowed")["status"]
            return revision

        eventually(promoted, timeout=120, interval=0.5)
        assert PEEK in prometheus.queries()
    finally:
        allowing.stop()
        operator.start()
