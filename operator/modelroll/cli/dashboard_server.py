"""`modelroll dashboard`: a local web UI on 127.0.0.1, with the CLI's own actions behind it.

The UI can change the cluster, so it answers only on loopback, only to a Host header naming
127.0.0.1 or localhost on its port (DNS rebinding), and takes an action only from a POST
that carries the per-process token of the page and no foreign Origin (cross-site requests).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import urllib3
from kubernetes import config

from modelroll.cli import actions
from modelroll.cli.cluster import NotFound, Target, kube_of
from modelroll.cli.dashboard_data import (
    MetricsReader,
    RevisionMetrics,
    events,
    get_model_deployment,
    list_model_deployments,
)
from modelroll.cli.dashboard_page import SCRIPT, STYLE, detail_html, list_html, page
from modelroll.cli.dashboard_view import detail, rows
from modelroll.kube import ApiError, Kube

HOST = "127.0.0.1"
TOKEN_HEADER = "X-Modelroll-Token"
MAX_BODY = 4096
# The apiserver answering with an error, or not reachable at all (urllib3 gave up retrying).
CLUSTER_ERRORS = (ApiError, OSError, urllib3.exceptions.HTTPError)


class Dashboard:
    """The state behind the handler: the cluster, the scope, the token and the metrics."""

    def __init__(self, kube: Kube, namespace: str | None, context: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.context = context
        self.token = secrets.token_urlsafe(32)
        self.metrics = MetricsReader(kube)
        self.port = 0

    def allowed_hosts(self) -> set[str]:
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}

    def allowed_origins(self) -> set[str]:
        return {f"http://{host}" for host in self.allowed_hosts()}

    def selected(self, query: str) -> tuple[str, str]:
        value = (parse_qs(query).get("md") or [""])[0]
        namespace, _, name = value.partition("/")
        return (namespace, name) if name else ("", "")

    def fragments(self, selected: tuple[str, str]) -> dict[str, str]:
        items = list_model_deployments(self.kube, self.namespace)
        if not selected[1] and items:  # show the first one until the user picks another
            first = rows(items)[0]
            selected = (first.namespace, first.name)
        body = next(
            (
                md
                for md in items
                if (md["metadata"].get("namespace"), md["metadata"]["name"]) == selected
            ),
            None,
        )
        if body is None and selected[1]:
            body = get_model_deployment(self.kube, *selected)
        metrics: list[RevisionMetrics] = []
        note = "-"
        view = None
        if body is not None:
            view = detail(body, events(self.kube, body), datetime.now(UTC))
            if view.prometheus:
                note = f"see Prometheus ({view.prometheus})"
            else:
                try:
                    metrics = self.metrics.read(body)
                except CLUSTER_ERRORS as failure:  # e.g. no RBAC on pods: the rest still shows
                    note = f"metrics unavailable: {str(failure).splitlines()[0][:200]}"
        error = f"{selected[0]}/{selected[1]} not found" if body is None and selected[1] else None
        return {
            "list": list_html(rows(items), selected, self.namespace),
            "detail": detail_html(view, metrics, note, error),
        }

    def act(self, payload: Any) -> str:
        if not isinstance(payload, dict):
            raise ValueError("the body must be a JSON object")
        action, namespace, name = (payload.get(k) for k in ("action", "namespace", "name"))
        if action not in actions.ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        if not isinstance(namespace, str) or not isinstance(name, str) or not name:
            raise ValueError("namespace and name are required")
        if self.namespace and namespace != self.namespace:
            raise ValueError(f"this dashboard shows namespace {self.namespace} only")
        target = Target(self.kube, namespace, name, None)
        effect = actions.request(target, action)  # the same code as `modelroll <action>`
        return f"{namespace}/{name}: set {actions.annotation(action)}=true. {effect}"


def handler_for(dashboard: Dashboard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "modelroll-dashboard"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the terminal shows the URL; a line per poll would bury it

        def _send(self, status: int, body: str, content_type: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("X-Frame-Options", "DENY")  # no clickjacking of the buttons
            self.send_header(
                "Content-Security-Policy",
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            )
            self.end_headers()
            self.wfile.write(data)

        def _json(self, status: int, document: Any) -> None:
            self._send(status, json.dumps(document), "application/json")

        def _host_ok(self) -> bool:
            if self.headers.get("Host") in dashboard.allowed_hosts():
                return True
            self._json(403, {"error": "this dashboard answers only as 127.0.0.1 or localhost"})
            return False

        def do_GET(self) -> None:
            if not self._host_ok():
                return
            url = urlsplit(self.path)
            try:
                if url.path == "/":
                    selected = dashboard.selected(url.query)
                    parts = dashboard.fragments(selected)
                    self._send(
                        200,
                        page(
                            token=dashboard.token,
                            context=dashboard.context,
                            selected_param="/".join(selected) if selected[1] else "",
                            list_html=parts["list"],
                            detail_html=parts["detail"],
                        ),
                        "text/html",
                    )
                elif url.path == "/api/state":
                    self._json(200, dashboard.fragments(dashboard.selected(url.query)))
                elif url.path == "/app.js":
                    self._send(200, SCRIPT, "text/javascript")
                elif url.path == "/app.css":
                    self._send(200, STYLE, "text/css")
                else:
                    self._json(404, {"error": "not found"})
            except CLUSTER_ERRORS as error:
                self._json(502, {"error": f"cluster: {error}"})

        def _refusal(self) -> str | None:
            origin = self.headers.get("Origin")
            if origin is not None and origin not in dashboard.allowed_origins():
                return f"cross-origin request from {origin} refused"
            if self.headers.get("Sec-Fetch-Site") not in (None, "same-origin", "none"):
                return "cross-site request refused"
            if not secrets.compare_digest(self.headers.get(TOKEN_HEADER) or "", dashboard.token):
                return f"missing or wrong {TOKEN_HEADER} header"
            if (self.headers.get("Content-Type") or "").split(";")[0] != "application/json":
                return "the body must be application/json"
            return None

        def do_POST(self) -> None:
            if not self._host_ok():
                return
            refusal = self._refusal()
            if refusal:
                self._json(403, {"error": refusal})
                return
            if urlsplit(self.path).path != "/api/action":
                self._json(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._json(413, {"error": "body too large"})
                return
            try:
                message = dashboard.act(json.loads(self.rfile.read(length) or b"null"))
            except ValueError as error:
                self._json(400, {"error": str(error)})
            except NotFound as error:
                self._json(404, {"error": str(error)})
            except CLUSTER_ERRORS as error:
                self._json(502, {"error": f"cluster: {error}"})
            else:
                self._json(200, {"message": message})

    return Handler


def connect(namespace: str | None, kubeconfig: str | None) -> Dashboard:
    """The current kubeconfig context (or the given file), as every other command uses it."""
    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError):
        active = None
    context = str((active or {}).get("name") or "")
    scope = f"namespace {namespace}" if namespace else "all namespaces"
    return Dashboard(kube_of(kubeconfig), namespace, f"context {context or '-'}, {scope}")


def serve(dashboard: Dashboard, port: int) -> ThreadingHTTPServer:
    """Binds on loopback (port 0: any free one); the caller runs serve_forever()."""
    server = ThreadingHTTPServer((HOST, port), handler_for(dashboard))
    server.daemon_threads = True
    dashboard.port = int(server.server_address[1])
    return server
