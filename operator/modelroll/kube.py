"""Thin JSON access to the Kubernetes API: server-side apply, delete, status patch, get.

Requests are synchronous; callers in async code run these in threads.
"""

from __future__ import annotations

import datetime
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from modelroll import FIELD_MANAGER, GROUP, PLURAL, VERSION
from modelroll.kube_transport import Transport
from modelroll.spec import JSON

# apiVersion/kind -> URL plural, for the kinds the operator owns.
PLURALS = {
    ("apps/v1", "Deployment"): "deployments",
    ("v1", "Service"): "services",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitors",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrules",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproutes",
    (f"{GROUP}/{VERSION}", "ModelDeployment"): PLURAL,
}


class RateLimiter:
    """client-go's token bucket: `qps` requests a second on average, `burst` at once. A
    caller reserves its token and sleeps until it is due, so callers go in turn."""

    def __init__(
        self,
        qps: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self.clock = clock
        self.sleep = sleep
        self._tokens = float(self.burst)
        self._last = clock()
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Blocks until this request may go; returns the seconds it waited."""
        if self.qps <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1
            delay = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if delay:
            self.sleep(delay)
        return delay


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body

    def _details(self) -> JSON:
        try:
            status = json.loads(self.body)
        except ValueError:
            return {}
        details = status.get("details") if isinstance(status, dict) else None
        return details if isinstance(details, dict) else {}

    def has_cause(self, cause_type: str) -> bool:
        """Whether the server's Status names this cause; a StatusCause's type is serialized
        as `reason`."""
        causes = self._details().get("causes") or []
        return any(cause.get("reason") == cause_type for cause in causes)

    def is_not_found(self, group: str, plural: str) -> bool:
        """A 404 about this kind of object (not about a missing API or another object)."""
        details = self._details()
        return (
            self.status == 404
            and details.get("group", "") == group
            and details.get("kind") == plural
        )

    @property
    def namespace_gone(self) -> bool:
        """The namespace itself no longer exists (deleted while we worked)."""
        return self.is_not_found("", "namespaces")

    @property
    def namespace_terminating(self) -> bool:
        """The namespace is being deleted, so the server refuses anything new in it."""
        return self.status == 403 and self.has_cause("NamespaceTerminating")


def object_path(api_version: str, kind: str, namespace: str, name: str = "") -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{PLURALS[(api_version, kind)]}"
    return f"{path}/{name}" if name else path


# method, resource (a plural, with "/status" for the subresource) and status code of each
# request answered; handlers.py counts them in a metric, the way client-go's
# rest_client_requests_total does
RequestObserver = Callable[[str, str, int], None]


def resource_of(path: str) -> str:
    """The resource a request path names: `services` for /api/v1/namespaces/x/services/y,
    `modeldeployments/status` for its status, `nodes` for /api/v1/nodes (a bounded set, fit
    for a metric's label: no names or namespaces)."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    start = 2 if parts[0] == "api" else 3  # past api/v1 or apis/<group>/<version>
    if len(parts) > start + 2 and parts[start] == "namespaces":
        start += 2
    resource = parts[start] if len(parts) > start else "-"
    if len(parts) > start + 2:
        resource += f"/{parts[start + 2]}"
    return resource


class Kube:
    def __init__(
        self,
        transport: Transport,
        limiter: RateLimiter | None = None,
        observe: RequestObserver | None = None,
    ) -> None:
        self.transport = transport
        self.limiter = limiter or RateLimiter(0, 1)
        self.observe = observe

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        return self._call(method, path, body, query, content_type)[1]

    def _call(
        self,
        method: str,
        path: str,
        body: Any,
        query: list[tuple[str, str]] | None,
        content_type: str,
    ) -> tuple[int, JSON]:
        # JSON is YAML too, so an apply-patch+yaml body goes as JSON like every other
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        status, text = self._send(method, path, query or [], headers, data)
        result: JSON = json.loads(text) if text else {}
        return status, result

    def _send(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        body: bytes | None,
        timeout: float | None = None,
    ) -> tuple[int, str]:
        self.limiter.wait()
        status, data = self.transport.send(method, path, query, headers, body, timeout)
        if self.observe is not None:
            self.observe(method, resource_of(path), status)
        text = data.decode(errors="replace")
        if status >= 400:
            raise ApiError(status, text)
        return status, text

    def get_text(self, path: str, timeout: float) -> str:
        """A GET of plain text (a pod's /metrics through the API server's proxy)."""
        return self._send("GET", path, [], {"Accept": "text/plain"}, None, timeout)[1]

    def apply(self, manifest: JSON) -> bool:
        """Server-side apply under modelroll's single field manager; True if it created."""
        metadata = manifest["metadata"]
        path = object_path(
            manifest["apiVersion"], manifest["kind"], metadata["namespace"], metadata["name"]
        )
        status, _ = self._call(
            "PATCH",
            path,
            manifest,
            [("fieldManager", FIELD_MANAGER), ("force", "true")],
            "application/apply-patch+yaml",
        )
        return status == 201  # an apply that creates answers 201 Created

    def merge_patch(self, manifest: JSON, patch: JSON) -> JSON:
        metadata = manifest["metadata"]
        path = object_path(
            manifest["apiVersion"], manifest["kind"], metadata["namespace"], metadata["name"]
        )
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        try:
            self.request(
                "DELETE",
                object_path(api_version, kind, namespace, name),
                {"propagationPolicy": "Background"},
            )
        except ApiError as error:
            if error.status != 404:
                raise

    def get(self, path: str) -> JSON | None:
        try:
            return self.request("GET", path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def patch_status(self, namespace: str, name: str, status: JSON) -> JSON:
        path = object_path(f"{GROUP}/{VERSION}", "ModelDeployment", namespace, name) + "/status"
        return self.request(
            "PATCH", path, {"status": status}, content_type="application/merge-patch+json"
        )

    def post_event(self, obj: JSON, type_: str, reason: str, message: str) -> None:
        """Records a core/v1 Event about `obj`, as `kubectl describe` shows them."""
        metadata = obj["metadata"]
        now = datetime.datetime.now(datetime.UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{metadata['name']}.",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", f"{GROUP}/{VERSION}"),
                "kind": obj.get("kind", "ModelDeployment"),
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata.get("uid", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": f"{GROUP}/operator",
            "reportingInstance": socket.gethostname(),
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        self.request("POST", f"/api/v1/namespaces/{metadata['namespace']}/events", event)

    def exists(self, path: str) -> bool:
        return self.get(path) is not None
