"""Canary and blue-green rollouts with real traffic through the main Service's ClusterIP."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from itertools import groupby
from typing import Any

import pytest

from tests.e2e.conftest import (
    ModelStore,
    cluster_ip,
    iris_rows,
    model_deployment_from_example,
    set_version,
    wait_ready,
)
from tests.e2e.traffic import Answer, Load, infer
from tests.integration.helpers import apply, eventually, get_json
from tests.support.cluster import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("installed_operator")]

REQUESTS = 400
REVISION_LABEL = "modelroll.io/revision"


def revisions(md: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["version"]: r for r in md.get("status", {}).get("revisions", [])}


def ready_endpoints(cluster: Cluster, namespace: str, service: str) -> int:
    slices = get_json(
        cluster, "-n", namespace, "endpointslices", "-l", f"kubernetes.io/service-name={service}"
    )["items"]
    return sum(1 for s in slices for e in s.get("endpoints") or [] if e["conditions"].get("ready"))


def test_canary_at_25_percent_takes_its_share_of_real_requests(
    real_cluster: Cluster, restricted_namespace: str, model_store: ModelStore
) -> None:
    ns = restricted_namespace
    body = model_deployment_from_example("canary.yaml", model_store, "1")
    # Replica routing keeps the stable at full size: 3 stable + 1 canary serve 25%.
    body["spec"]["replicas"] = 3
    canary = body["spec"]["rollout"]["canary"]
    canary.pop("analysis")
    canary["steps"] = [{"weight": 25, "pauseSeconds": 3600}]
    apply(real_cluster, ns, body)
    wait_ready(real_cluster, ns, "iris-canary")

    set_version(body, model_store, "2")
    apply(real_cluster, ns, body)

    def at_25_percent() -> dict[str, Any]:
        md = get_json(real_cluster, "-n", ns, "modeldeployment", "iris-canary")
        by_version = revisions(md)
        assert by_version.get("2", {}).get("weight") == 25, by_version
        assert ready_endpoints(real_cluster, ns, "iris-canary") == 4
        return by_version

    by_version = eventually(at_25_percent, timeout=300, interval=1)
    assert by_version["1"]["weight"] == 75
    time.sleep(3)  # kube-proxy's sync of the last endpoint change

    host = cluster_ip(real_cluster, ns, "iris-canary")
    rows = iris_rows(1)
    answers = [infer(host, "iris-canary", rows) for _ in range(REQUESTS)]
    assert all(a.status == 200 for a in answers), [a for a in answers if a.status != 200][:3]
    served = Counter(a.version for a in answers)
    share = served["2"] / REQUESTS
    # 400 independent picks at p=0.25: the standard deviation is 2.2 points; ±10 is 4.6 sd.
    assert abs(share - by_version["2"]["weight"] / 100) <= 0.10, served
    assert set(served) == {"1", "2"}


def stable_with_all_traffic(cluster: Cluster, namespace: str, version: str) -> bool:
    md = get_json(cluster, "-n", namespace, "modeldeployment", "iris-bg")
    revision = revisions(md).get(version, {})
    return bool(revision.get("role") == "stable" and revision.get("weight") == 100)


def runs(answers: list[Answer]) -> str:
    """The answers as runs of one version (or status), with when each run began."""
    groups = groupby(answers, key=lambda a: a.version or str(a.status))
    return " ".join(
        f"v{key}x{len(group)}@{group[0].started:.2f}"
        for key, group in ((k, list(g)) for k, g in groups)
    )


@contextmanager
def selected_revisions(cluster: Cluster, namespace: str, service: str) -> Iterator[list[str]]:
    """Every revision the Service selected, in order, as the API server tells a watcher."""
    seen: list[str] = []
    template = 'jsonpath={.spec.selector.modelroll\\.io/revision}{"\\n"}'
    watch = subprocess.Popen(
        cluster.kubectl_argv("-n", namespace, "get", "service", service, "--watch", "-o", template),
        stdout=subprocess.PIPE,
        text=True,
    )
    stdout = watch.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: seen.extend(line.strip() for line in stdout))
    reader.start()
    try:
        yield seen
    finally:
        watch.terminate()
        reader.join(timeout=10)


def settled_on(load: Load, version: str, last: int = 100) -> bool:
    """The last `last` answers all came from `version`: kube-proxy has the new endpoints."""
    answers = load.answers[-last:]
    return len(answers) == last and all(a.version == version for a in answers)


def ready_since(cluster: Cluster, namespace: str, revision: str) -> float:
    """When the first pod of a revision turned Ready (the kubelet's own timestamp)."""
    pods = get_json(cluster, "-n", namespace, "pods", "-l", f"{REVISION_LABEL}={revision}")
    times = [
        datetime.fromisoformat(c["lastTransitionTime"].replace("Z", "+00:00")).timestamp()
        for p in pods["items"]
        for c in p["status"].get("conditions", [])
        if c["type"] == "Ready" and c["status"] == "True"
    ]
    assert times, f"no Ready pod of revision {revision}"
    return min(times)


def test_blue_green_flip_and_rollback_under_load_fail_no_request(
    real_cluster: Cluster, restricted_namespace: str, model_store: ModelStore
) -> None:
    ns = restricted_namespace
    body = model_deployment_from_example("bluegreen.yaml", model_store, "1")
    body["spec"]["replicas"] = 2
    body["spec"]["rollout"]["blueGreen"]["scaleDownDelaySeconds"] = 600
    apply(real_cluster, ns, body)
    wait_ready(real_cluster, ns, "iris-bg")
    host = cluster_ip(real_cluster, ns, "iris-bg")
    blue = revisions(get_json(real_cluster, "-n", ns, "modeldeployment", "iris-bg"))["1"]["name"]

    with (
        selected_revisions(real_cluster, ns, "iris-bg") as selected,
        Load(host, "iris-bg", iris_rows(1)) as load,
    ):
        eventually(lambda: load.count() > 20, timeout=30)
        set_version(body, model_store, "2")
        apply(real_cluster, ns, body)

        eventually(lambda: stable_with_all_traffic(real_cluster, ns, "2"), timeout=300, interval=1)
        md = get_json(real_cluster, "-n", ns, "modeldeployment", "iris-bg")
        green = revisions(md)["2"]["name"]
        green_ready_at = ready_since(real_cluster, ns, green)
        flipped_at = load.count()
        # Endpoint changes reach the data path within a few seconds (EndpointSlice
        # controller, then kube-proxy's rule sync); after that only version 2 answers.
        eventually(lambda: settled_on(load, "2"), timeout=30)
        settled_at = load.count()
        time.sleep(3)
        after_flip = load.answers[settled_at:]
        assert {a.version for a in after_flip} == {"2"}, runs(load.answers[flipped_at:])

        real_cluster.kubectl(
            "-n", ns, "annotate", "modeldeployment", "iris-bg", "modelroll.io/rollback=true"
        )

        eventually(lambda: stable_with_all_traffic(real_cluster, ns, "1"), timeout=300, interval=1)
        rollback_at = load.count()
        eventually(lambda: settled_on(load, "1"), timeout=30)
        rolled_at = load.count()
        # Version 2's pods are removed after a rollback: keep the load on while they go.
        eventually(
            lambda: (
                not get_json(real_cluster, "-n", ns, "pods", "-l", f"{REVISION_LABEL}={green}")[
                    "items"
                ]
            ),
            timeout=120,
        )
        time.sleep(3)

    # The main Service switched exactly twice: no stale reconcile ever pointed it back.
    switches = [r for i, r in enumerate(selected) if i == 0 or r != selected[i - 1]]
    assert switches == [blue, green, blue], selected
    answers = load.answers
    failed = [a for a in answers if a.status != 200]
    assert not failed, f"{len(failed)} of {len(answers)} failed, first: {failed[:3]}"
    served = Counter(a.version for a in answers)
    assert set(served) == {"1", "2"} and served["2"] > 0, served
    # Version 2 answered nothing before one of its pods was Ready (1 s: the kubelet's
    # timestamps have whole seconds).
    first_v2 = min(a.started for a in answers if a.version == "2")
    assert first_v2 >= green_ready_at - 1
    after_rollback = answers[rolled_at:]
    assert after_rollback and {a.version for a in after_rollback} == {"1"}, runs(
        answers[rollback_at:]
    )
