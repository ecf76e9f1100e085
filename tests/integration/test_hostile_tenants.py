"""A tenant who may only create ModelDeployments in its own namespace attacks the operator
(issue 12): through the preview Service its image answers the operator's smoke tests, and
through the names of its ModelDeployments it aims at objects that are not its children.

kwok pods never run, so the loopback router plays the tenant's preview pods: it answers the
smoke test requests itself, as a hostile image would.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.helpers import apply_md, condition, eventually, get_json
from tests.support.router import Router

pytestmark = pytest.mark.integration
Json = dict[str, Any]
MEMORY_LIMIT_BYTES = 512 * 1024 * 1024  # the operator's limit in dist/install.yaml and the chart
SECRET = b"internal-secret-d41c"  # what only the operator's network position can reach
REDIRECT_BODY = b"redirect-body-5e7a"
SMOKE = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]}


def spec(version: str, rollout: Json | None = None) -> Json:
    body: Json = {
        "model": {
            "format": "sklearn",
            "uri": "https://models.example.com/iris/",
            "version": version,
        },
        "replicas": 1,
    }
    return {**body, "rollout": rollout} if rollout else body


def blue_green() -> Json:
    request = {"name": "probe", "body": SMOKE, "expectOutputs": {"outputs": [{"name": "y"}]}}
    return {
        "strategy": "BlueGreen",
        "blueGreen": {"autoPromote": True, "smokeTest": {"requests": [request]}},
    }


def md(cluster: Cluster, namespace: str, name: str) -> Json:
    return get_json(cluster, "-n", namespace, "md", name)


def events(cluster: Cluster, namespace: str, name: str) -> list[Json]:
    selector = f"involvedObject.name={name},involvedObject.kind=ModelDeployment"
    found = get_json(cluster, "-n", namespace, "events", "--field-selector", selector)
    return found["items"]


def ready(cluster: Cluster, namespace: str, name: str) -> Json:
    current = md(cluster, namespace, name)
    assert condition(current, "Ready").get("status") == "True", current.get("status")
    assert current["status"].get("stableRevision"), current["status"]
    return current


def smoke_failed(cluster: Cluster, namespace: str, name: str) -> Json:
    current = md(cluster, namespace, name)
    degraded = condition(current, "Degraded")
    assert degraded.get("reason") == "SmokeTestFailed", current.get("status")
    return current


def peak_rss(operator: OperatorProcess) -> int:
    assert operator.process is not None
    with open(f"/proc/{operator.process.pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):  # the high-water mark of the resident set
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


class _Internal(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(f"{self.command} {self.path}")
        # Not what the smoke test expects, so a client that followed the redirect would
        # report a mismatch (and, before issue 12, quote this answer).
        body = json.dumps({"outputs": [{"name": "z", "data": [SECRET.decode()]}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def internal() -> Iterator[int]:
    """An HTTP server on the host that a tenant's pods should never reach through us."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Internal)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _redirect_to(port: int) -> Any:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", f"http://127.0.0.1:{port}/latest/meta-data/iam")
        handler.send_header("Content-Length", str(len(REDIRECT_BODY)))
        handler.end_headers()
        handler.wfile.write(REDIRECT_BODY)

    return answer


def _huge(handler: http.server.BaseHTTPRequestHandler) -> None:
    """600 MiB without a Content-Length: only reading stops it."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.close_connection = True
    chunk = b" " * (1024 * 1024)
    try:
        handler.wfile.write(b'{"outputs": [], "pad": "')
        for _ in range(600):
            handler.wfile.write(chunk)
        handler.wfile.write(b'"}')
    except OSError:
        pass  # the operator stopped reading


def _trickle(handler: http.server.BaseHTTPRequestHandler) -> None:
    """One byte a second for two minutes: every read gets a byte well within its timeout."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "120")
    handler.end_headers()
    try:
        for _ in range(120):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(1)
    except OSError:
        pass


def test_a_redirecting_preview_is_not_followed_and_nothing_of_it_is_echoed(
    cluster: Cluster, operator: OperatorProcess, namespace: str, router: Router, internal: int
) -> None:
    _Internal.hits.clear()
    router.answer(namespace, "redir-preview", _redirect_to(internal))
    apply_md(cluster, namespace, "redir", spec("1", blue_green()))
    eventually(lambda: ready(cluster, namespace, "redir"), timeout=90)
    apply_md(cluster, namespace, "redir", spec("2", blue_green()))

    current = eventually(lambda: smoke_failed(cluster, namespace, "redir"), timeout=90)
    assert any(r.startswith(f"{namespace}/redir-preview/") for r in router.requests)
    time.sleep(2)  # the Event is posted in the background
    told = json.dumps(md(cluster, namespace, "redir")["status"]) + json.dumps(
        [e.get("message", "") for e in events(cluster, namespace, "redir")]
    )
    assert _Internal.hits == [], "the operator requested the internal server"
    for secret in (SECRET, REDIRECT_BODY):
        assert secret.decode() not in told
    assert "HTTP 302" in condition(current, "Degraded")["message"], current["status"]


def test_a_huge_or_trickling_preview_costs_only_its_own_model_deployment(
    cluster: Cluster, operator: OperatorProcess, namespace: str, router: Router
) -> None:
    router.answer(namespace, "huge-preview", _huge)
    router.answer(namespace, "slow-preview", _trickle)
    canary = {
        "strategy": "Canary",
        "canary": {
            "scaleDownDelaySeconds": 0,
            "steps": [{"weight": 30, "pauseSeconds": 3}, {"weight": 60, "pauseSeconds": 3}],
        },
    }
    for name, rollout in (("huge", blue_green()), ("slow", blue_green()), ("steady", canary)):
        apply_md(cluster, namespace, name, spec("1", rollout))
    for name in ("huge", "slow", "steady"):
        eventually(lambda name=name: ready(cluster, namespace, name), timeout=90)  # type: ignore[misc]

    apply_md(cluster, namespace, "huge", spec("2", blue_green()))
    apply_md(cluster, namespace, "slow", spec("2", blue_green()))
    eventually(
        lambda: any(r.startswith(f"{namespace}/slow-preview/") for r in router.requests),
        timeout=60,
    )
    # The trickle now holds one check; the canary's pauses pass only by the operator's clock.
    started = time.monotonic()
    apply_md(cluster, namespace, "steady", spec("2", canary))

    huge = eventually(lambda: smoke_failed(cluster, namespace, "huge"), timeout=60)
    assert operator.process is not None and operator.process.poll() is None
    assert peak_rss(operator) < MEMORY_LIMIT_BYTES, f"peak RSS {peak_rss(operator)} bytes"
    assert "64 KiB" in condition(huge, "Degraded")["message"], huge["status"]

    v2 = eventually(
        lambda: md(cluster, namespace, "steady")["status"].get("canaryRevision"), timeout=30
    )
    while md(cluster, namespace, "steady")["status"].get("stableRevision") != v2:
        took = time.monotonic() - started
        assert took < 25, f"two 3 s canary pauses not done after {took:.0f}s (stalled)"
        time.sleep(0.5)

    slow = eventually(lambda: smoke_failed(cluster, namespace, "slow"), timeout=60)
    assert "within 10s" in condition(slow, "Degraded")["message"], slow["status"]

    # A recorded failure is not run again, not even by a restarted operator: the previews
    # are not asked a second time.
    def asked() -> int:
        return sum(
            r.startswith((f"{namespace}/slow-preview/", f"{namespace}/huge-preview/"))
            for r in router.requests
        )

    before = asked()
    operator.kill()
    operator.start()
    time.sleep(8)  # more than two resyncs
    assert asked() == before


def _object(cluster: Cluster, namespace: str, kind: str, name: str) -> Json:
    return get_json(cluster, "-n", namespace, kind, name)


def test_a_model_deployment_named_like_an_existing_service_takes_nothing_over(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    theirs = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "payments"},
            "spec": {"selector": {"app": "payments"}, "ports": [{"port": 80}]},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": "payments",
                "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/payments"},
            },
        },
    ]
    for obj in theirs:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))
    before = {
        kind: _object(cluster, namespace, kind, "payments")
        for kind in ("service", "serviceaccount")
    }

    apply_md(cluster, namespace, "payments", spec("1"))

    def conflicted() -> Json:
        current = md(cluster, namespace, "payments")
        ready_condition = condition(current, "Ready")
        assert ready_condition.get("reason") == "ChildConflict", current.get("status")
        assert ready_condition["status"] == "False"
        assert "Service/payments" in ready_condition["message"]
        return current

    eventually(conflicted, timeout=60)
    eventually(
        lambda: "ChildConflict" in [e["reason"] for e in events(cluster, namespace, "payments")],
        timeout=30,
    )
    time.sleep(7)  # two resyncs more
    for kind, obj in before.items():
        assert _object(cluster, namespace, kind, "payments") == obj, f"{kind} payments changed"

    cluster.kubectl("delete", "-n", namespace, "md", "payments", "--wait=true")
    time.sleep(5)  # the garbage collector would have acted by now
    for kind, obj in before.items():
        assert _object(cluster, namespace, kind, "payments") == obj, f"{kind} payments changed"


def test_a_model_deployment_named_default_leaves_the_default_service_account_alone(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    before = _object(cluster, namespace, "serviceaccount", "default")
    apply_md(cluster, namespace, "default", spec("1"))
    eventually(lambda: ready(cluster, namespace, "default"), timeout=90)
    pods = get_json(cluster, "-n", namespace, "pods", "-l", "modelroll.io/deployment=default")
    assert pods["items"], "the ModelDeployment's pods exist"
    for pod in pods["items"]:
        assert pod["spec"]["serviceAccountName"] == "default-modelroll"
    assert _object(cluster, namespace, "serviceaccount", "default") == before

    cluster.kubectl("delete", "-n", namespace, "md", "default", "--wait=true")
    eventually(
        lambda: (
            cluster.kubectl(
                "get", "-n", namespace, "serviceaccount", "default-modelroll", check=False
            ).returncode
            != 0
        ),
        timeout=60,
    )
    assert _object(cluster, namespace, "serviceaccount", "default") == before
