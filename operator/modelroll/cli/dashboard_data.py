"""What the dashboard reads from the cluster: ModelDeployments, Events, and pod /metrics.

Metrics come through the API server's proxy to each pod of a revision (the runtime's `http`
port, or `https` when it serves TLS), so they need nothing but the kubeconfig: no port-forward, no Prometheus.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import urllib3

from modelroll import GROUP, KIND, VERSION
from modelroll.cli.cluster import Target, events_of
from modelroll.cli.dashboard_metrics import Counts, Rate, counts, rate
from modelroll.kube import ApiError, Kube, object_path
from modelroll.render import DEPLOYMENT_LABEL, REVISION_LABEL
from modelroll.spec import JSON

DEFAULT_PORT = 8080  # containerPort "http" (or "https") of the runtime, deployment.yaml.j2
SCRAPE_TIMEOUT = 3


@dataclass(frozen=True)
class RevisionMetrics:
    revision: str
    pods: int
    rate: Rate | None
    error: str | None = None


def list_model_deployments(kube: Kube, namespace: str | None) -> list[JSON]:
    path = object_path(f"{GROUP}/{VERSION}", KIND, namespace or "")
    if not namespace:  # every namespace: the collection path without /namespaces/<ns>
        path = f"/apis/{GROUP}/{VERSION}/modeldeployments"
    items: list[JSON] = kube.request("GET", path).get("items") or []
    return items


def get_model_deployment(kube: Kube, namespace: str, name: str) -> JSON | None:
    return kube.get(object_path(f"{GROUP}/{VERSION}", KIND, namespace, name))


def events(kube: Kube, md: JSON) -> list[JSON]:
    metadata = md["metadata"]
    target = Target(kube, metadata["namespace"], metadata["name"], None)
    return events_of(target, metadata["uid"])


def proxy_target(pod: JSON) -> str:
    """The pod and runtime port as the pod proxy path names them (`name:port`; the proxy
    needs the number), as `https:name:port` when the port is named https (spec.runtime.tls:
    the API server then speaks TLS to it)."""
    name = pod["metadata"]["name"]
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == "http":
                return f"{name}:{port['containerPort']}"
            if port.get("name") == "https":
                return f"https:{name}:{port['containerPort']}"
    return f"{name}:{DEFAULT_PORT}"


def metrics_unavailable(md: JSON) -> str | None:
    """Why the pods export no request metrics to read, if so: a container of the user's
    without the metrics sidecar serves whatever /metrics it has, or none."""
    container = ((md.get("spec") or {}).get("runtime") or {}).get("container")
    if container and not (container.get("metrics") or {}).get("sidecar"):
        return "no request metrics: your own container, without the metrics sidecar"
    return None


class MetricsReader:
    """Scrapes each revision's pods and keeps the last counts, to turn growth into a rate."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._last: dict[tuple[str, str, str], Counts] = {}
        self._lock = threading.Lock()

    def read(self, md: JSON) -> list[RevisionMetrics]:
        namespace, name = md["metadata"]["namespace"], md["metadata"]["name"]
        if why := metrics_unavailable(md):
            revisions = (md.get("status") or {}).get("revisions") or []
            return [
                RevisionMetrics(str(r["name"]), int(r.get("replicas", 0)), None, why)
                for r in revisions
            ]
        pods: list[JSON] = (
            self.kube.request(
                "GET",
                f"/api/v1/namespaces/{namespace}/pods",
                query=[("labelSelector", f"{DEPLOYMENT_LABEL}={name}")],
            ).get("items")
            or []
        )
        results = []
        for revision in (md.get("status") or {}).get("revisions") or []:
            revision_name = str(revision["name"])
            members = [
                proxy_target(p)
                for p in pods
                if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision_name
                and (p.get("status") or {}).get("phase") == "Running"
            ]
            results.append(self._revision(namespace, name, revision_name, members))
        return results

    def _revision(
        self, namespace: str, name: str, revision: str, pods: list[str]
    ) -> RevisionMetrics:
        if not pods:
            return RevisionMetrics(revision, 0, None, "no running pod")
        texts = []
        try:
            for pod in pods:
                path = f"/api/v1/namespaces/{namespace}/pods/{pod}/proxy/metrics"
                texts.append(self.kube.get_text(path, SCRAPE_TIMEOUT))
        except (ApiError, OSError, urllib3.exceptions.HTTPError) as error:
            # On kwok (no containers) and for pods not yet serving, the proxy cannot connect.
            message = str(error).splitlines()[0][:200]
            return RevisionMetrics(revision, len(pods), None, f"scrape failed: {message}")
        current = counts(texts, time.monotonic())
        key = (namespace, name, revision)
        with self._lock:
            previous = self._last.get(key)
            self._last[key] = current
        measured = rate(previous, current) if previous else None
        return RevisionMetrics(
            revision, len(pods), measured, None if measured else "first scrape: rate next poll"
        )
