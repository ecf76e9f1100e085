"""A host Prometheus scraping the real node's model pods, and the in-cluster operator set to
query it, for the e2e tests that analyze rollouts.

Prometheus is Debian's binary (tests/support/prometheus.py), listening on the node's bridge
address. Debian builds it without Kubernetes discovery, so a thread stands in for it: it
writes every running modelroll pod as a file_sd target (replaced atomically; Prometheus
watches the file) with the target labels the operator's ServiceMonitor gives it: namespace,
revision (from the pod label) and pod.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.conftest import HOST_IP, set_prometheus_endpoints
from tests.integration.helpers import get_json
from tests.support.cluster import Cluster
from tests.support.prometheus import PrometheusServer, require_prometheus

REVISION_LABEL = "modelroll.io/revision"
OPERATOR = ("-n", "modelroll-system")
Json = dict[str, Any]


def pod_targets(cluster: Cluster, port: int) -> list[Json]:
    """Every running modelroll pod's `port`, labelled as the ServiceMonitor labels it."""
    pods = get_json(
        cluster, "pods", "-A", "-l", REVISION_LABEL, "--field-selector=status.phase=Running"
    )
    return [
        {
            "targets": [f"{pod['status']['podIP']}:{port}"],
            "labels": {
                "namespace": pod["metadata"]["namespace"],
                "revision": pod["metadata"]["labels"][REVISION_LABEL],
                "pod": pod["metadata"]["name"],
            },
        }
        for pod in pods["items"]
        if pod["status"].get("podIP")
    ]


def discover_pods(cluster: Cluster, port: int, targets_file: Path, stop: threading.Event) -> None:
    written = None
    while not stop.wait(1):
        try:
            targets = pod_targets(cluster, port)
        except (AssertionError, subprocess.TimeoutExpired):
            continue  # the API server was busy: the next round catches up
        if targets != written:
            scratch = targets_file.with_suffix(".tmp")
            scratch.write_text(json.dumps(targets))
            scratch.rename(targets_file)
            written = targets


@contextmanager
def pod_prometheus(cluster: Cluster, work: Path, port: int) -> Iterator[PrometheusServer]:
    """Prometheus scraping /metrics on `port` of every model pod, every 2 s."""
    require_prometheus()
    targets_file = work / "pods.json"
    targets_file.write_text("[]")
    stop = threading.Event()
    discovery = threading.Thread(
        target=discover_pods, args=(cluster, port, targets_file, stop), daemon=True
    )
    discovery.start()
    scrape = {
        "job_name": "modelroll-pods",
        "metrics_path": "/metrics",
        "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "5s"}],
    }
    server = PrometheusServer(
        work, [], scrape_interval_seconds=2, host=HOST_IP, scrape_configs=[scrape]
    ).start()
    try:
        yield server
    finally:
        server.stop()
        stop.set()
        discovery.join(timeout=30)


def operator_env(cluster: Cluster) -> dict[str, str]:
    deployment = get_json(cluster, *OPERATOR, "deployment", "modelroll-operator")
    return {
        e["name"]: e.get("value", "")
        for c in deployment["spec"]["template"]["spec"]["containers"]
        for e in c.get("env", [])
    }


@contextmanager
def operator_querying(cluster: Cluster, endpoint: str, server: PrometheusServer) -> Iterator[None]:
    """The installed operator, configured (as a platform would) with this Prometheus only,
    as its endpoint `endpoint`; its previous endpoints are put back afterwards."""
    before = operator_env(cluster).get("MODELROLL_PROMETHEUS_ENDPOINTS", "")
    set_prometheus_endpoints(cluster, f"{endpoint}={server.address}")
    try:
        yield
    finally:
        set_prometheus_endpoints(cluster, before)
