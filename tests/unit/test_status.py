"""Pure status derivation: pods and Deployments as the cluster writes them, status out.

The inputs are shaped as the scheduler, kubelet and Deployment controller write them
(zero-valued replica counts omitted, scheduler messages with their preemption suffix), so
that what is proved here is what a user sees in `kubectl get modeldeployment`.
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from modelroll.conditions import find
from modelroll.problems import PodProblem, pod_problem
from modelroll.rollout import Plan, RolloutInput, plan
from modelroll.rollout_state import state_from_status
from modelroll.spec import parse_spec
from modelroll.status import (
    Observed,
    RevisionState,
    compute_status,
    conditions,
    effective_weights,
    revision_state,
    revision_view,
    traffic_weights,
)
from modelroll.status_changes import ignoring_times, status_patch, transition_events

JSON = dict[str, Any]
T0 = "2025-06-01T10:00:00Z"
T1 = "2025-06-01T10:05:00Z"
NOW = datetime.datetime(2025, 6, 1, 10, 5, tzinfo=datetime.UTC).timestamp()  # T1
URL = "http://iris.models.svc.cluster.local/v2/models/iris/infer"
SELECTOR = "modelroll.io/deployment=iris"


# --- realistic cluster objects -------------------------------------------------------------


def pod(
    revision: str,
    *,
    phase: str = "Running",
    conditions: list[JSON] | None = None,
    containers: list[JSON] | None = None,
) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"iris-{revision}-7d9c5b8f4-x2k8p",
            "namespace": "models",
            "labels": {"modelroll.io/deployment": "iris", "modelroll.io/revision": revision},
        },
        "status": {
            "phase": phase,
            "qosClass": "Burstable",
            "conditions": conditions if conditions is not None else [],
            **({"containerStatuses": containers} if containers is not None else {}),
        },
    }


def unschedulable(revision: str, message: str) -> JSON:
    return pod(
        revision,
        phase="Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": T0,
                "reason": "Unschedulable",
                "message": message,
            }
        ],
    )


def scheduled_conditions(ready: bool) -> list[JSON]:
    flag = "True" if ready else "False"
    conditions = [
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": T0},
        {"type": "Initialized", "status": "True", "lastTransitionTime": T0},
        {"type": "Ready", "status": flag, "lastTransitionTime": T0},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": T0},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": T0},
    ]
    if not ready:
        for c in conditions[2:4]:
            c["reason"] = "ContainersNotReady"
            c["message"] = "containers with unready status: [model-server]"
    return conditions


def container(state: JSON, last_state: JSON | None = None, *, ready: bool = False) -> JSON:
    return {
        "name": "model-server",
        "image": "ghcr.io/modelroll/runtime:0.1.0",
        "imageID": "",
        "containerID": "containerd://4f1c0d2e9a",
        "ready": ready,
        "started": ready,
        "restartCount": 0 if last_state is None else 4,
        "state": state,
        "lastState": last_state or {},
    }


def waiting_pod(revision: str, reason: str, message: str, last_state: JSON | None = None) -> JSON:
    return pod(
        revision,
        phase="Pending" if last_state is None else "Running",
        conditions=scheduled_conditions(ready=False),
        containers=[container({"waiting": {"reason": reason, "message": message}}, last_state)],
    )


def crash_looping(revision: str) -> JSON:
    return waiting_pod(
        revision,
        "CrashLoopBackOff",
        "back-off 1m20s restarting failed container=model-server "
        f"pod=iris-{revision}-7d9c5b8f4-x2k8p_models(0b7c3b9e-0000-4000-8000-000000000002)",
        {
            "terminated": {
                "exitCode": 1,
                "reason": "Error",
                "startedAt": T0,
                "finishedAt": T1,
                "containerID": "containerd://4f1c0d2e9a",
            }
        },
    )


def healthy(revision: str) -> JSON:
    return pod(
        revision,
        conditions=scheduled_conditions(ready=True),
        containers=[container({"running": {"startedAt": T0}}, ready=True)],
    )


def deployment(
    revision: str,
    *,
    desired: int = 2,
    replicas: int = 0,
    ready: int = 0,
    available: int = 0,
    updated: int = 0,
    generation: int = 1,
    observed_generation: int = 1,
    conditions: list[JSON] | None = None,
) -> JSON:
    counts = {
        "replicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": available,
        "updatedReplicas": updated,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"iris-{revision}",
            "namespace": "models",
            "generation": generation,
            "labels": {"modelroll.io/deployment": "iris", "modelroll.io/revision": revision},
            "annotations": {"modelroll.io/model-version": f"v-{revision}"},
        },
        "spec": {"replicas": desired},
        "status": {
            "observedGeneration": observed_generation,
            # The Deployment controller omits counts that are zero.
            **{key: value for key, value in counts.items() if value},
            "conditions": conditions or [],
        },
    }


def full(revision: str, n: int = 2) -> JSON:
    return deployment(revision, desired=n, replicas=n, ready=n, available=n, updated=n)


def observe(
    current: str,
    *states: tuple[JSON, list[JSON]],
    previous: JSON | None = None,
    generation: int = 4,
    invalid: str = "",
    routable: frozenset[str] = frozenset(),
) -> Observed:
    return Observed(
        generation=generation,
        revision=current,
        revisions=tuple(revision_state(d, pods, routable) for d, pods in states),
        previous_status=previous if previous is not None else {},
        invalid_spec=invalid,
    )


ROLLING: JSON = {"strategy": "Rolling", "progressDeadlineSeconds": 600}
CANARY: JSON = {"strategy": "Canary", "canary": {"steps": [{"weight": 10}, {"weight": 50}]}}


def planned(
    observed: Observed, rollout: JSON | None = None, replicas: int = 2, now: float = NOW
) -> Plan:
    """The plan reconcile makes for `observed`: state from the previous status, no annotations."""
    raw: JSON = {
        "model": {"format": "onnx", "uri": "s3://models/iris/", "version": observed.revision},
        "replicas": replicas,
        "rollout": rollout if rollout is not None else ROLLING,
    }
    return plan(
        RolloutInput(
            spec=parse_spec(raw),
            raw_spec=raw,
            desired=observed.revision,
            state=state_from_status(observed.previous_status),
            observed={r.revision: revision_view(r) for r in observed.revisions},
            annotations=frozenset(),
            now=now,
        )
    )


def status_of(observed: Observed, now: str = T1, rollout: JSON | None = None) -> JSON:
    return compute_status(observed, planned(observed, rollout), URL, SELECTOR, now)


def cond(status: JSON, type_: str) -> tuple[str, str]:
    condition = find(status["conditions"], type_)
    assert condition is not None, f"no {type_} condition in {status['conditions']}"
    return condition["status"], condition["reason"]


# --- pod_problem ------------------------------------------------------------------------------

# Messages as kube-scheduler 1.34 writes them (taken from a local control plane).
GPU_SHORTAGE = (
    "0/6 nodes are available: 3 Insufficient nvidia.com/gpu, 3 node(s) had untolerated "
    "taint(s). no new claims to deallocate, preemption: 0/6 nodes are available: 6 "
    "Preemption is not helpful for scheduling."
)
MIG_SHORTAGE = (
    "0/6 nodes are available: 2 Insufficient nvidia.com/mig-1g.10gb, 4 node(s) didn't match "
    "Pod's node affinity/selector. no new claims to deallocate, preemption: 0/6 nodes are "
    "available: 2 No preemption victims found for incoming pod, 4 Preemption is not helpful "
    "for scheduling."
)


@pytest.mark.parametrize(
    ("message", "resource"),
    [(GPU_SHORTAGE, "nvidia.com/gpu"), (MIG_SHORTAGE, "nvidia.com/mig-1g.10gb")],
    ids=["whole-gpu", "mig-slice"],
)
def test_gpu_shortage_names_the_resource(message: str, resource: str) -> None:
    problem = pod_problem(unschedulable("a1", message))
    assert problem is not None
    assert problem.reason == "InsufficientGPU"
    assert problem.message.startswith(f"no node has a free {resource}:")
    assert message in problem.message  # the scheduler's own words are kept


@pytest.mark.parametrize("resource", ["nvidia.com/gpu", "nvidia.com/mig-1g.10gb"])
def test_gpu_shortage_as_the_only_reason_names_the_resource_without_punctuation(
    resource: str,
) -> None:
    # Every node lacks the resource: the scheduler's only reason ends its sentence.
    message = (
        f"0/6 nodes are available: 6 Insufficient {resource}. no new claims to deallocate, "
        "preemption: 0/6 nodes are available: 6 Preemption is not helpful for scheduling."
    )
    problem = pod_problem(unschedulable("a1", message))
    assert problem is not None
    assert problem.reason == "InsufficientGPU"
    assert problem.message.startswith(f"no node has a free {resource}:")


@pytest.mark.parametrize(
    "message",
    [
        "0/3 nodes are available: 3 Insufficient cpu. no new claims to deallocate, preemption: "
        "0/3 nodes are available: 3 No preemption victims found for incoming pod.",
        "0/3 nodes are available: 3 node(s) had untolerated taint {dedicated: infra}. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
    ],
    ids=["cpu", "taint", "selector"],
)
def test_other_scheduling_failures_are_unschedulable(message: str) -> None:
    assert pod_problem(unschedulable("a1", message)) == PodProblem("Unschedulable", message)


@pytest.mark.parametrize(
    ("waiting_reason", "message", "expected"),
    [
        (
            "ImagePullBackOff",
            'Back-off pulling image "ghcr.io/modelroll/runtime:nope"',
            "ImagePullBackOff",
        ),
        (
            "ErrImagePull",
            'failed to pull and unpack image "ghcr.io/modelroll/runtime:nope": not found',
            "ImagePullBackOff",
        ),
        (
            "CreateContainerConfigError",
            'secret "s3-credentials" not found',
            "CreateContainerConfigError",
        ),
    ],
)
def test_waiting_containers_name_their_reason(
    waiting_reason: str, message: str, expected: str
) -> None:
    problem = pod_problem(waiting_pod("a1", waiting_reason, message))
    assert problem == PodProblem(expected, message)


def test_crash_loop_is_reported() -> None:
    problem = pod_problem(crash_looping("a1"))
    assert problem is not None
    assert problem.reason == "CrashLoopBackOff"
    assert "back-off 1m20s" in problem.message


def test_model_load_failure_wins_over_the_crash_loop_it_causes() -> None:
    message = "ModelLoadFailed: sha256 mismatch: expected 9f86d081884c7d65, got e3b0c44298fc1c14\n"
    failed = waiting_pod(
        "a1",
        "CrashLoopBackOff",
        "back-off 40s restarting failed container=model-server",
        {
            "terminated": {
                "exitCode": 3,
                "reason": "Error",
                "message": message,
                "startedAt": T0,
                "finishedAt": T1,
            }
        },
    )
    assert pod_problem(failed) == PodProblem("ModelLoadFailed", message.strip())


def test_healthy_running_pod_has_no_problem() -> None:
    assert pod_problem(healthy("a1")) is None


def test_pod_still_creating_has_no_problem() -> None:
    creating = waiting_pod("a1", "ContainerCreating", "")
    assert pod_problem(creating) is None
    assert pod_problem({"metadata": {"name": "new"}}) is None  # no status written yet


def test_recovered_container_is_not_a_model_load_failure() -> None:
    recovered = pod(
        "a1",
        conditions=scheduled_conditions(ready=True),
        containers=[
            container(
                {"running": {"startedAt": T1}},
                {
                    "terminated": {
                        "exitCode": 3,
                        "reason": "Error",
                        "message": "ModelLoadFailed: s3://bucket/iris/: connection timed out",
                        "startedAt": T0,
                        "finishedAt": T0,
                    }
                },
                ready=True,
            )
        ],
    )
    assert pod_problem(recovered) is None


# --- conditions of the Rolling strategy -----------------------------------------------------

SERVING_A1: JSON = {"stableRevision": "a1"}


def test_complete_revision_is_ready_and_rolled_out() -> None:
    status = status_of(observe("a1", (full("a1"), [healthy("a1"), healthy("a1")])))
    assert cond(status, "Ready") == ("True", "RevisionAvailable")
    assert cond(status, "Progressing") == ("False", "RolloutComplete")
    assert cond(status, "Degraded") == ("False", "AsExpected")
    assert status["stableRevision"] == "a1"
    assert [h["revision"] for h in status["history"]] == ["a1"]
    assert status["rollout"]["state"] == "RolloutComplete"
    assert status["revisions"] == [
        {
            "name": "a1",
            "version": "v-a1",
            "role": "stable",
            "replicas": 2,
            "readyReplicas": 2,
            "weight": 100,
        }
    ]
    assert status["traffic"] == "a1:100"
    assert (status["url"], status["selector"]) == (URL, SELECTOR)


def test_new_revision_rolling_out_while_the_old_one_serves() -> None:
    status = status_of(
        observe(
            "b2",
            (deployment("b2", replicas=1, updated=1), [waiting_pod("b2", "ContainerCreating", "")]),
            (full("a1"), [healthy("a1"), healthy("a1")]),
            previous=SERVING_A1,
        )
    )
    # The old revision stays stable, and Ready, until the new one is complete.
    assert cond(status, "Ready") == ("True", "RevisionAvailable")
    assert cond(status, "Progressing") == ("True", "RollingOut")
    assert cond(status, "Degraded") == ("False", "AsExpected")
    assert status["stableRevision"] == "a1"
    assert status["canaryRevision"] == "b2"
    roles = {r["name"]: (r["role"], r["weight"]) for r in status["revisions"]}
    assert roles == {"b2": ("canary", 0), "a1": ("stable", 100)}
    assert status["revisions"][0]["name"] == "a1"  # the stable revision is listed first
    assert status["traffic"] == "a1:100 b2:0"


def test_crash_looping_new_revision_is_degraded_even_though_the_old_one_serves() -> None:
    status = status_of(
        observe(
            "b2",
            (deployment("b2", replicas=1, updated=1), [crash_looping("b2")]),
            (full("a1"), [healthy("a1"), healthy("a1")]),
            previous=SERVING_A1,
        )
    )
    assert cond(status, "Ready") == ("True", "RevisionAvailable")
    # Green is never shown while pods fail: Degraded says so while the rollout goes on.
    assert cond(status, "Degraded") == ("True", "CrashLoopBackOff")
    assert cond(status, "Progressing") == ("True", "RollingOut")
    assert status["stableRevision"] == "a1"


def test_new_revision_past_its_deadline_is_degraded_while_the_old_one_serves() -> None:
    started = datetime.datetime(2025, 6, 1, 9, 50, tzinfo=datetime.UTC)  # 15 minutes before T1
    previous = {
        "stableRevision": "a1",
        "canaryRevision": "b2",
        "currentStep": 0,
        "rollout": {"state": "RollingOut", "stepStartedAt": started.strftime("%Y-%m-%dT%H:%M:%SZ")},
    }
    status = status_of(
        observe(
            "b2",
            (deployment("b2", replicas=1, updated=1), [crash_looping("b2")]),
            (full("a1"), [healthy("a1"), healthy("a1")]),
            previous=previous,
        )
    )
    assert cond(status, "Ready") == ("True", "RevisionAvailable")
    # The plan's Degraded wins over the pod problem, and names it.
    assert cond(status, "Degraded") == ("True", "ProgressDeadlineExceeded")
    degraded = find(status["conditions"], "Degraded")
    assert degraded is not None
    assert "CrashLoopBackOff" in degraded["message"]
    assert status["stableRevision"] == "a1"
    assert status["traffic"] == "a1:100 b2:0"


def test_first_revision_without_gpus_is_not_ready() -> None:
    status = status_of(
        observe(
            "a1",
            (
                deployment("a1", desired=1, replicas=1, updated=1),
                [unschedulable("a1", GPU_SHORTAGE)],
            ),
        )
    )
    assert cond(status, "Ready") == ("False", "InsufficientGPU")
    assert cond(status, "Degraded") == ("True", "InsufficientGPU")
    assert cond(status, "Progressing") == ("True", "RollingOut")
    ready = find(status["conditions"], "Ready")
    assert ready is not None
    assert "nvidia.com/gpu" in ready["message"]
    assert "stableRevision" not in status


def test_progress_deadline_exceeded_is_reported() -> None:
    stuck = deployment(
        "a1",
        replicas=2,
        updated=2,
        conditions=[
            {
                "type": "Available",
                "status": "False",
                "reason": "MinimumReplicasUnavailable",
                "message": "Deployment does not have minimum availability.",
            },
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "iris-a1-7d9c5b8f4" has timed out progressing.',
            },
        ],
    )
    status = status_of(observe("a1", (stuck, [])))
    assert cond(status, "Ready") == ("False", "ProgressDeadlineExceeded")
    assert cond(status, "Degraded") == ("True", "ProgressDeadlineExceeded")
    assert cond(status, "Progressing") == ("True", "RollingOut")
    assert "stableRevision" not in status


def test_progressing_deployment_is_not_a_deadline_problem() -> None:
    rolling = deployment(
        "a1",
        replicas=2,
        updated=2,
        conditions=[
            {
                "type": "Progressing",
                "status": "True",
                "reason": "ReplicaSetUpdated",
                "message": 'ReplicaSet "iris-a1-7d9c5b8f4" is progressing.',
            }
        ],
    )
    status = status_of(observe("a1", (rolling, [])))
    assert cond(status, "Ready") == ("False", "PodsNotReady")
    assert cond(status, "Progressing") == ("True", "RollingOut")
    assert cond(status, "Degraded") == ("False", "AsExpected")


def test_invalid_spec_overrides_a_serving_revision() -> None:
    reason = "spec.model.credentials.secretRef: Secret models/s3 not found"
    status = status_of(observe("a1", (full("a1"), [healthy("a1")]), invalid=reason))
    assert cond(status, "Ready") == ("False", "InvalidSpec")
    assert cond(status, "Degraded") == ("True", "InvalidSpec")
    for type_ in ("Ready", "Degraded"):
        condition = find(status["conditions"], type_)
        assert condition is not None
        assert condition["message"] == reason


def test_no_deployment_observed_is_pending() -> None:
    status = status_of(observe("a1"))
    assert cond(status, "Ready") == ("False", "DeploymentPending")
    assert cond(status, "Progressing") == ("True", "RollingOut")
    assert status["replicas"] == status["readyReplicas"] == 0
    assert status["revisions"] == []
    assert status["traffic"] == "none"
    assert "stableRevision" not in status


def test_deployment_not_yet_observed_by_its_controller_is_not_complete() -> None:
    # Counts from the previous spec: the controller has not seen generation 2 yet.
    stale = deployment(
        "a1",
        replicas=2,
        ready=2,
        available=2,
        updated=2,
        generation=2,
        observed_generation=1,
    )
    status = status_of(observe("a1", (stale, [])))
    assert cond(status, "Ready") == ("False", "PodsNotReady")
    assert cond(status, "Progressing") == ("True", "RollingOut")
    assert "stableRevision" not in status


# --- stableRevision, roles, counts, generation ---------------------------------------------


def test_stable_revision_moves_only_when_the_new_one_is_complete() -> None:
    rolling: tuple[JSON, list[JSON]] = (deployment("b2", replicas=1, updated=1), [])
    serving = status_of(observe("b2", rolling, (full("a1"), []), previous=SERVING_A1))
    assert serving["stableRevision"] == "a1"
    assert cond(serving, "Progressing") == ("True", "RollingOut")

    done = observe("b2", (full("b2"), []), (full("a1"), []), previous=SERVING_A1)
    status = status_of(done)
    assert status["stableRevision"] == "b2"
    assert "canaryRevision" not in status
    assert cond(status, "Ready") == ("True", "RevisionAvailable")
    assert cond(status, "Progressing") == ("False", "RolloutComplete")
    # a1's Deployment is still observed until it is pruned; it no longer gets traffic.
    assert {r["name"]: (r["role"], r["weight"]) for r in status["revisions"]} == {
        "b2": ("stable", 100),
        "a1": ("old", 0),
    }


def test_stable_revision_with_no_ready_pods_is_not_ready() -> None:
    rolling: tuple[JSON, list[JSON]] = (deployment("b2", replicas=1, updated=1), [])
    crashing = deployment("a1", replicas=2, updated=2)
    status = status_of(
        observe("b2", rolling, (crashing, [crash_looping("a1")]), previous=SERVING_A1)
    )
    assert status["stableRevision"] == "a1"
    assert cond(status, "Ready") == ("False", "CrashLoopBackOff")
    assert status["traffic"] == "a1:0 b2:0"


def test_canary_replicas_mode_weights_come_from_ready_endpoints() -> None:
    status = status_of(
        observe(
            "b2",
            (deployment("b2", desired=3, replicas=3, ready=1, available=1, updated=3), []),
            (deployment("a1", desired=3, replicas=2, ready=2, available=2, updated=2), []),
            previous=SERVING_A1,
        ),
        rollout=CANARY,
    )
    assert status["replicas"] == 5
    assert status["readyReplicas"] == 3
    weights = {r["name"]: (r["role"], r["weight"]) for r in status["revisions"]}
    assert weights == {"a1": ("stable", 67), "b2": ("canary", 33)}
    assert status["traffic"] == "a1:67 b2:33"
    assert status["canaryRevision"] == "b2"
    assert status["currentStep"] == 0
    assert cond(status, "Progressing") == ("True", "CanaryProgressing")


def test_aborted_canary_role_and_degraded_reason() -> None:
    previous = {
        "stableRevision": "a1",
        "rollout": {
            "state": "RolloutAborted",
            "abortedRevision": "b2",
            "abortReason": "CanaryAnalysisFailed",
            "abortMessage": "canary error rate 7.50% > 1%",
        },
    }
    status = status_of(
        observe(
            "b2",
            (deployment("b2", desired=0), []),
            (full("a1"), [healthy("a1")]),
            previous=previous,
        ),
        rollout=CANARY,
    )
    assert cond(status, "Ready") == ("True", "RevisionAvailable")
    assert cond(status, "Degraded") == ("True", "CanaryAnalysisFailed")
    assert cond(status, "Progressing") == ("False", "RolloutAborted")
    degraded = find(status["conditions"], "Degraded")
    assert degraded is not None
    assert degraded["message"] == "canary error rate 7.50% > 1%"
    assert {r["name"]: r["role"] for r in status["revisions"]} == {"a1": "stable", "b2": "aborted"}
    assert status["traffic"] == "a1:100 b2:0"
    assert status["rollout"]["abortedRevision"] == "b2"


def test_blue_green_preview_role_gets_no_traffic() -> None:
    preview = [healthy("b2"), healthy("b2")]
    for i, p in enumerate(preview):
        p["metadata"]["name"] += str(i)
    routable = frozenset(p["metadata"]["name"] for p in preview)
    status = status_of(
        observe(
            "b2", (full("b2"), preview), (full("a1"), []), previous=SERVING_A1, routable=routable
        ),
        rollout={"strategy": "BlueGreen", "blueGreen": {"autoPromote": False}},
    )
    assert {r["name"]: (r["role"], r["weight"]) for r in status["revisions"]} == {
        "a1": ("stable", 100),
        "b2": ("preview", 0),
    }
    assert cond(status, "Progressing") == ("True", "AwaitingPromotion")


def test_gateway_weights_are_shares_of_the_route_among_ready_revisions() -> None:
    gateway: JSON = {
        "strategy": "Canary",
        "canary": {
            "steps": [{"weight": 10, "pauseSeconds": 60}, {"weight": 50}],
            "trafficRouting": {"mode": "GatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "g"}]}},
        },
    }
    observed = observe(
        "b2",
        (deployment("b2", desired=1, replicas=1, ready=1, available=1, updated=1), []),
        (full("a1"), []),
        previous=SERVING_A1,
    )
    the_plan = planned(observed, gateway)
    assert the_plan.route_weights == {"a1": 90, "b2": 10}
    assert traffic_weights(the_plan, observed.revisions) == {"a1": 90, "b2": 10}
    # A backend whose pods all went away does not count: the rest share the traffic.
    a1_down = (replace(observed.revisions[0]), replace(observed.revisions[1], ready=0))
    assert traffic_weights(the_plan, a1_down) == {"b2": 100, "a1": 0}
    nothing = tuple(replace(r, ready=0) for r in observed.revisions)
    assert traffic_weights(the_plan, nothing) == {"b2": 0, "a1": 0}


def test_conditions_are_ready_progressing_degraded_in_that_order() -> None:
    observed = observe("a1", (full("a1"), []))
    the_plan = planned(observed)
    found = conditions(observed, the_plan)
    assert [c.type for c in found] == ["Ready", "Progressing", "Degraded"]
    assert found[1] == the_plan.progressing


@pytest.mark.parametrize("generation", [1, 7, 120])
def test_observed_generation_is_the_generation_given(generation: int) -> None:
    status = status_of(observe("a1", (full("a1"), []), generation=generation))
    assert status["observedGeneration"] == generation
    assert {c["observedGeneration"] for c in status["conditions"]} == {generation}


def test_compute_status_does_not_mutate_its_inputs() -> None:
    previous = status_of(observe("a1", (full("a1"), [])), now=T0)
    observed = observe(
        "b2",
        (deployment("b2", replicas=1, updated=1), [crash_looping("b2")]),
        (full("a1"), []),
        previous=previous,
    )
    before = copy.deepcopy(observed)
    the_plan = planned(observed)
    plan_before = copy.deepcopy(the_plan)
    status = compute_status(observed, the_plan, URL, SELECTOR, T1)
    assert observed == before
    assert the_plan == plan_before
    # And the result shares no mutable state with the previous status or the plan.
    status["conditions"][0]["reason"] = "Changed"
    status["history"].append({"revision": "z9"})
    assert observed == before
    assert the_plan == plan_before


def test_status_history_shares_no_mutable_state_with_the_previous_status() -> None:
    previous = status_of(observe("a1", (full("a1"), [])), now=T0)
    observed = observe("a1", (full("a1"), []), previous=previous)
    before = copy.deepcopy(observed)
    the_plan = planned(observed)
    plan_before = copy.deepcopy(the_plan)
    status = compute_status(observed, the_plan, URL, SELECTOR, T1)
    status["history"][0]["spec"]["model"]["version"] = "changed"
    assert observed == before
    assert the_plan == plan_before


# --- effective weights ----------------------------------------------------------------------


def state(revision: str, ready: int) -> RevisionState:
    return RevisionState(
        name=f"iris-{revision}",
        revision=revision,
        version="",
        desired=ready,
        replicas=ready,
        ready=ready,
        available=ready,
        updated=ready,
        up_to_date=True,
        deadline_exceeded=False,
    )


@given(st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=6))
def test_weights_follow_ready_replicas_and_sum_to_100(ready: list[int]) -> None:
    revisions = tuple(state(f"r{i}", n) for i, n in enumerate(ready))
    weights = effective_weights(revisions)
    assert set(weights) == {r.revision for r in revisions}
    total = sum(ready)
    if total == 0:
        assert set(weights.values()) == {0}
        return
    assert sum(weights.values()) == 100
    for r in revisions:
        exact = 100 * r.ready / total
        assert 0 <= weights[r.revision] <= 100
        assert abs(weights[r.revision] - exact) < len(revisions)  # only rounding moves it
        if r.ready == 0:
            assert weights[r.revision] == 0


@given(
    st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=4),
    st.sampled_from(["Rolling", "Canary", "BlueGreen"]),
)
def test_status_weights_sum_to_100_whenever_a_serving_pod_is_ready(
    ready: list[int], strategy: str
) -> None:
    # r0 is stable; the spec asks for r1 (or r0 when it is the only revision).
    states: list[tuple[JSON, list[JSON]]] = [
        (deployment(f"r{i}", desired=n, replicas=n, ready=n, available=n, updated=n), [])
        for i, n in enumerate(ready)
    ]
    observed = observe("r1" if len(ready) > 1 else "r0", *states, previous={"stableRevision": "r0"})
    rollout = CANARY if strategy == "Canary" else {"strategy": strategy}
    the_plan = planned(observed, rollout)
    status = compute_status(observed, the_plan, URL, SELECTOR, T1)
    weights = {r["name"]: r["weight"] for r in status["revisions"]}
    if the_plan.service_revision is None:
        selected = {f"r{i}": n for i, n in enumerate(ready)}
    else:
        assert the_plan.service_revision == the_plan.state.stable
        serving = the_plan.service_revision
        selected = {serving: ready[int(serving.removeprefix("r"))]}
    assert sum(weights.values()) == (100 if sum(selected.values()) else 0)
    for name, weight in weights.items():
        if weight:
            assert name in selected and selected[name] > 0
    assert status["readyReplicas"] == sum(ready)


# --- what reconcile does with a status ------------------------------------------------------


def test_status_patch_clears_fields_no_longer_reported() -> None:
    previous = status_of(observe("a1", (full("a1"), [])), now=T0)
    assert "stableRevision" in previous
    previous["history"] = [{"revision": "z9"}]
    status = status_of(observe("b2", (deployment("b2", replicas=1, updated=1), [])))
    patch = status_patch(previous, status)
    assert patch["stableRevision"] is None
    assert patch["history"] is None
    assert {k: v for k, v in patch.items() if v is not None} == status


def test_status_differing_only_in_transition_times_is_unchanged() -> None:
    a = status_of(observe("a1", (full("a1"), [])), now=T0)
    b = status_of(observe("a1", (full("a1"), [])), now=T1)
    assert a != b
    assert ignoring_times(a) == ignoring_times(b)
    c = status_of(observe("a1", (full("a1", 3), [])), now=T0)
    assert ignoring_times(a) != ignoring_times(c)
    assert ignoring_times({})["conditions"] == []


def test_first_failure_is_one_warning_not_two() -> None:
    status = status_of(
        observe(
            "a1",
            (
                deployment("a1", desired=1, replicas=1, updated=1),
                [unschedulable("a1", GPU_SHORTAGE)],
            ),
        )
    )
    events = transition_events({}, status)
    assert len(events) == 1
    type_, reason, message = events[0]
    assert (type_, reason) == ("Warning", "InsufficientGPU")
    assert "nvidia.com/gpu" in message


def test_becoming_ready_after_a_failure_is_a_normal_event() -> None:
    previous = status_of(
        observe("a1", (deployment("a1", desired=1, replicas=1, updated=1), [crash_looping("a1")])),
        now=T0,
    )
    status = status_of(observe("a1", (full("a1", 1), [healthy("a1")]), previous=previous))
    events = transition_events(previous, status)
    assert ("Normal", "RevisionAvailable") in {e[:2] for e in events}
    assert all(e[0] == "Normal" for e in events)


def test_no_events_when_nothing_changed() -> None:
    previous = status_of(observe("a1", (full("a1"), [])), now=T0)
    status = status_of(observe("a1", (full("a1"), []), previous=previous))
    assert transition_events(previous, status) == []


def test_healthy_first_status_emits_nothing() -> None:
    assert transition_events({}, status_of(observe("a1", (full("a1"), [])))) == []


def test_progressing_changes_emit_nothing() -> None:
    previous = status_of(
        observe(
            "b2",
            (deployment("b2", replicas=1, updated=1), []),
            (full("a1"), []),
            previous=SERVING_A1,
        ),
        now=T0,
    )
    status = copy.deepcopy(previous)
    for condition in status["conditions"]:
        if condition["type"] == "Progressing":
            condition.update(status="False", reason="RolloutComplete")
    assert transition_events(previous, status) == []


def test_new_failure_while_serving_warns_with_the_failure() -> None:
    previous = status_of(
        observe(
            "b2",
            (deployment("b2", replicas=1, updated=1), []),
            (full("a1"), []),
            previous=SERVING_A1,
        ),
        now=T0,
    )
    status = status_of(
        observe(
            "b2",
            (deployment("b2", replicas=1, updated=1), [crash_looping("b2")]),
            (full("a1"), []),
            previous=previous,
        )
    )
    assert cond(status, "Ready") == ("True", "RevisionAvailable")  # a1 still serves
    assert [e[:2] for e in transition_events(previous, status)] == [("Warning", "CrashLoopBackOff")]
