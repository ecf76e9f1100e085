"""High availability on the real node: the in-cluster operator runs as two replicas (from
dist/install.yaml), and the leader is killed with SIGKILL on the host as a canary step
falls due. The standby takes over; the step happens at most 15 s late, no step repeats or
is skipped, no duplicate child appears, and the Service never loses its last ready endpoint.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config

from tests.e2e.conftest import (
    OPERATOR_NAMESPACE,
    ModelStore,
    leader_pod,
    model_deployment_from_example,
    operator_pods,
    set_version,
    wait_ready,
)
from tests.integration.helpers import apply, eventually, get_json
from tests.support.cluster import Cluster
from tests.support.endpoints import EndpointWatcher

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("installed_operator")]

NAME = "iris-ha"
PAUSE = 20  # seconds per canary step: short for CI, long enough to kill inside one
LATE_LIMIT = 15.0
MANAGED = "app.kubernetes.io/managed-by=modelroll"


def server_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def pids_of_pod(pod: str) -> list[int]:
    """The host's process ids of the operator container of `pod` (we are root on the node):
    the kubelet sets HOSTNAME to the pod's name in each of its containers."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone, or a kernel thread
        if f"HOSTNAME={pod}".encode() in environ and b"modelroll" in cmdline:
            found.append(int(entry.name))
    return found


class Recorder:
    """Polls the ModelDeployment and its children: every (step, stepStartedAt) seen, and
    the most Deployments of one revision (and in all) that ever existed at once."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.steps: list[tuple[int, str]] = []
        self.most_per_revision = 0
        self.most_deployments = 0
        self.services: set[int] = set()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self._sample()
            except AssertionError as error:  # one failed kubectl call (busy node): next sample
                self.errors.append(str(error))

    def _sample(self) -> None:
        md = get_json(self.cluster, "-n", self.namespace, "modeldeployment", NAME)
        status = md.get("status") or {}
        started = (status.get("rollout") or {}).get("stepStartedAt")
        if status.get("canaryRevision") and started:
            step = (int(status.get("currentStep", 0)), str(started))
            if not self.steps or self.steps[-1] != step:
                self.steps.append(step)
        deployments = get_json(self.cluster, "-n", self.namespace, "deployments", "-l", MANAGED)[
            "items"
        ]
        revisions = Counter(d["metadata"]["labels"]["modelroll.io/revision"] for d in deployments)
        self.most_per_revision = max(self.most_per_revision, *revisions.values(), 0)
        self.most_deployments = max(self.most_deployments, len(deployments))
        services = get_json(self.cluster, "-n", self.namespace, "services", "-l", MANAGED)
        self.services.add(len(services["items"]))

    @contextmanager
    def running(self) -> Iterator[Recorder]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=30)


def fresh_operator_pods(cluster: Cluster, killed: str) -> None:
    """Replaces the killed pod, so later tests see two pods that never restarted."""
    cluster.kubectl("-n", OPERATOR_NAMESPACE, "delete", "pod", killed, "--wait=true")
    cluster.kubectl(
        "-n", OPERATOR_NAMESPACE, "rollout", "status", "deployment/modelroll-operator",
        "--timeout=180s", timeout=200,
    )  # fmt: skip


def test_killing_the_leader_mid_canary_delays_the_next_step_at_most_15s(
    real_cluster: Cluster, restricted_namespace: str, model_store: ModelStore
) -> None:
    ns = restricted_namespace
    eventually(
        lambda: len(operator_pods(real_cluster)) == 2, timeout=120
    )  # after other tests' rollouts
    body: dict[str, Any] = model_deployment_from_example("canary.yaml", model_store, "1")
    body["metadata"]["name"] = NAME
    body["spec"]["replicas"] = 2
    canary = body["spec"]["rollout"]["canary"]
    canary.pop("analysis")
    canary["steps"] = [{"weight": 25, "pauseSeconds": PAUSE}, {"weight": 50, "pauseSeconds": PAUSE}]
    apply(real_cluster, ns, body)
    wait_ready(real_cluster, ns, NAME)
    api = config.new_client_from_config(config_file=real_cluster.kubeconfig)
    endpoints = EndpointWatcher(api, ns, NAME).start()

    set_version(body, model_store, "2")
    apply(real_cluster, ns, body)
    with Recorder(real_cluster, ns).running() as recorder:

        def first_step_started() -> float:
            assert recorder.steps and recorder.steps[0][0] == 0, recorder.steps
            return server_time(recorder.steps[0][1])

        started = eventually(first_step_started, timeout=300, interval=0.5)
        # Kill the leader 3 s before step 0's pause ends: the step falls due while nobody leads.
        due = started + PAUSE
        time.sleep(max(0.0, due - 3 - time.time()))
        leader = leader_pod(real_cluster)
        pids = pids_of_pod(leader)
        assert pids, f"no process of {leader} on this host"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        killed_at = time.time()

        def promoted() -> bool:
            md = get_json(real_cluster, "-n", ns, "modeldeployment", NAME)
            revisions = {r["version"]: r for r in md["status"].get("revisions", [])}
            assert revisions.get("2", {}).get("role") == "stable", revisions
            assert revisions["2"].get("weight") == 100, revisions
            return True

        eventually(promoted, timeout=300, interval=1)
    try:
        endpoints.assert_never_empty()
        steps = recorder.steps
        # Each step once, in order: no repeat (a restarted step shows a second start) and no
        # skip; a last index past the steps (promoting) may show before the canary is gone.
        indexes = [step for step, _ in steps]
        assert indexes[:2] == [0, 1] and indexes == list(range(len(indexes))), steps
        assert len(indexes) <= 3, steps
        assert len(recorder.errors) < 10, recorder.errors
        late = server_time(steps[1][1]) - due
        print(f"killed {due - killed_at:.1f}s before the step; it came {late:.1f}s late")
        assert late <= LATE_LIMIT, steps
        assert recorder.most_per_revision == 1  # no duplicate child
        assert recorder.most_deployments <= 2  # stable and canary, nothing more
        assert len(recorder.services) == 1, recorder.services
        # The standby leads now; the killed replica came back as a standby.
        assert leader_pod(real_cluster) != leader
    finally:
        fresh_operator_pods(real_cluster, leader)
