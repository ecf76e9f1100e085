"""The dashboard's HTTP guards, on the real server bound to loopback.

Every request here is refused or rejected before the cluster would be asked, so the server
points at an address where nothing answers: a request that got through would fail with 502.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from modelroll.cli.cluster import ClientTransport
from modelroll.cli.dashboard_server import Dashboard, serve
from modelroll.kube import Kube


@pytest.fixture
def dashboard() -> Iterator[Dashboard]:
    api = client.ApiClient(client.Configuration(host="http://127.0.0.1:9"))
    state = Dashboard(Kube(ClientTransport(api)), None, "test")
    server = serve(state, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def request(
    state: Dashboard, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", state.port, timeout=10)
    data = None if body is None else json.dumps(body)
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def post_headers(state: Dashboard, **extra: str) -> dict[str, str]:
    return {
        "Host": f"127.0.0.1:{state.port}",
        "Content-Type": "application/json",
        "X-Modelroll-Token": state.token,
        **extra,
    }


ACTION = {"action": "promote", "namespace": "ml", "name": "iris"}


def test_it_listens_on_loopback_only(dashboard: Dashboard) -> None:
    assert dashboard.allowed_hosts() == {
        f"127.0.0.1:{dashboard.port}",
        f"localhost:{dashboard.port}",
    }


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Origin": "http://evil.example"}, "cross-origin"),
        ({"Origin": "null"}, "cross-origin"),
        ({"Sec-Fetch-Site": "cross-site"}, "cross-site"),
        ({"X-Modelroll-Token": ""}, "X-Modelroll-Token"),
        ({"X-Modelroll-Token": "guess"}, "X-Modelroll-Token"),
        ({"Content-Type": "text/plain"}, "application/json"),
        ({"Host": "rebound.example:80"}, "127.0.0.1"),
    ],
)
def test_an_action_post_is_refused_without_every_guard(
    dashboard: Dashboard, change: dict[str, str], reason: str
) -> None:
    headers = {**post_headers(dashboard), **change}
    status, _, body = request(dashboard, "POST", "/api/action", headers, ACTION)
    assert status == 403, body
    assert reason in json.loads(body)["error"]


def test_a_guarded_post_reaches_validation_and_then_the_cluster(dashboard: Dashboard) -> None:
    origin = {"Origin": f"http://localhost:{dashboard.port}"}
    headers = post_headers(dashboard, **origin)
    status, _, body = request(dashboard, "POST", "/api/action", headers, {**ACTION, "action": "x"})
    assert (status, json.loads(body)["error"]) == (400, "unknown action 'x'")
    status, _, body = request(dashboard, "POST", "/api/action", headers, ["promote"])
    assert status == 400, body
    status, _, body = request(dashboard, "POST", "/api/action", headers, ACTION)
    assert status == 502 and "cluster" in json.loads(body)["error"]  # nothing answers on :9


def test_pages_come_with_headers_that_forbid_framing_and_foreign_scripts(
    dashboard: Dashboard,
) -> None:
    status, headers, body = request(
        dashboard, "GET", "/app.js", {"Host": f"localhost:{dashboard.port}"}
    )
    assert status == 200 and b"X-Modelroll-Token" in body
    assert headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    status, _, _ = request(dashboard, "GET", "/app.js", {"Host": "evil.example"})
    assert status == 403


def test_the_selection_comes_from_the_query() -> None:
    state = Dashboard(Kube(ClientTransport(client.ApiClient())), "ml", "test")
    assert state.selected("md=ml/iris") == ("ml", "iris")
    assert state.selected("md=iris") == ("", "")
    assert state.selected("") == ("", "")
    with pytest.raises(ValueError, match="namespace ml only"):
        state.act({**ACTION, "namespace": "other"})
