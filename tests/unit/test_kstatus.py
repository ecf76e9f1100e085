"""Reconciling and Stalled: the status that kstatus (Flux, kpt, cli-utils) reads.

Statuses come from the operator's own pure code (rollout.plan, status.compute_status) on
Deployments and pods shaped as the cluster writes them; kstatus itself, through our helper
hack/kstatus on sigs.k8s.io/cli-utils, says what Flux would make of each one.
"""

from __future__ import annotations

from typing import Any

import pytest
from modelroll.conditions import Condition, find
from modelroll.rollout import RolloutInput, plan
from modelroll.rollout_state import state_from_status
from modelroll.spec import parse_spec
from modelroll.status import (
    STALLED_REASONS,
    Observed,
    compute_status,
    kstatus_conditions,
    revision_state,
    revision_view,
    unscheduled_gpu_products,
    with_products_not_offered,
)

from tests.support.kstatus import kstatus

JSON = dict[str, Any]
NOW = 1_750_000_000.0
H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-80GB"
# kube-scheduler 1.34's words when every node fails the product's node selector.
NO_NODE_MATCHES = (
    "0/6 nodes are available: 6 node(s) didn't match Pod's node affinity/selector. "
    "preemption: 0/6 nodes are available: 6 Preemption is not helpful for scheduling."
)
GPU_SHORTAGE = (
    "0/6 nodes are available: 3 Insufficient nvidia.com/gpu, 3 node(s) had untolerated "
    "taint(s). no new claims to deallocate, preemption: 0/6 nodes are available: 6 "
    "Preemption is not helpful for scheduling."
)
CANARY: JSON = {"strategy": "Canary", "canary": {"steps": [{"weight": 25, "pauseSeconds": 600}]}}


def deployment(revision: str, *, desired: int = 2, ready: int = 0, product: str = "") -> JSON:
    node_selector = {"nvidia.com/gpu.product": product} if product else {}
    counts = {"replicas": desired, "readyReplicas": ready, "availableReplicas": ready}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"iris-{revision}",
            "namespace": "models",
            "generation": 1,
            "labels": {"modelroll.io/deployment": "iris", "modelroll.io/revision": revision},
            "annotations": {"modelroll.io/model-version": revision},
        },
        "spec": {
            "replicas": desired,
            "template": {"spec": {"nodeSelector": node_selector, "containers": []}},
        },
        "status": {
            "observedGeneration": 1,
            "updatedReplicas": desired,
            **{key: value for key, value in counts.items() if value},
        },
    }


def pending(revision: str, message: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"iris-{revision}-5f7d8-abcde", "labels": {}},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastTransitionTime": "2025-06-01T10:00:00Z",
                }
            ],
        },
    }


def model_deployment(
    version: str,
    *observed: tuple[JSON, list[JSON]],
    previous: JSON | None = None,
    rollout: JSON | None = None,
    absent: frozenset[str] = frozenset(),
    invalid: str = "",
    annotations: frozenset[str] = frozenset(),
    now: float = NOW,
) -> JSON:
    """The ModelDeployment as the operator writes it after one reconcile of `observed`."""
    raw: JSON = {
        "model": {"format": "onnx", "uri": "s3://models/iris/", "version": version},
        "replicas": 2,
        "rollout": rollout or {"strategy": "Rolling"},
    }
    states = tuple(revision_state(d, pods) for d, pods in observed)
    states = with_products_not_offered(states, absent)
    previous = previous or {}
    planned = plan(
        RolloutInput(
            spec=parse_spec(raw),
            raw_spec=raw,
            desired=version,
            state=state_from_status(previous),
            observed={s.revision: revision_view(s) for s in states},
            annotations=frozenset() if invalid else annotations,
            now=now,
        )
    )
    facts = Observed(3, version, states, previous, invalid_spec=invalid)
    status = compute_status(facts, planned, "http://iris", "sel", "2025-06-01T10:05:00Z")
    return {
        "apiVersion": "modelroll.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris", "namespace": "models", "generation": 3},
        "spec": raw,
        "status": status,
    }


def cond(md: JSON, type_: str) -> tuple[str, str]:
    found = find(md["status"]["conditions"], type_)
    assert found is not None, md["status"]["conditions"]
    return found["status"], found["reason"]


def serving(version: str = "a1", rollout: JSON | None = None) -> JSON:
    return model_deployment(version, (deployment(version, ready=2), []), rollout=rollout)


# --- what kstatus computes ------------------------------------------------------------------


def test_ready_model_deployment_is_current() -> None:
    md = serving()
    assert cond(md, "Reconciling") == ("False", "Reconciled")
    assert cond(md, "Stalled") == ("False", "AsExpected")
    assert kstatus(md) == ("Current", "Resource is Ready")


def test_canary_under_way_is_in_progress() -> None:
    first = serving("a1", CANARY)
    md = model_deployment(
        "b2",
        (deployment("a1", ready=2), []),
        (deployment("b2", desired=1, ready=1), []),
        previous=first["status"],
        rollout=CANARY,
    )
    assert cond(md, "Ready") == ("True", "RevisionAvailable")  # stable a1 serves meanwhile
    assert cond(md, "Reconciling") == ("True", "CanaryProgressing")
    status, message = kstatus(md)
    assert status == "InProgress"
    assert message.startswith("step 1/1: canary b2")


def test_first_revision_coming_up_is_in_progress() -> None:
    md = model_deployment("a1", (deployment("a1", ready=1), []))
    assert cond(md, "Reconciling") == ("True", "RollingOut")
    assert kstatus(md)[0] == "InProgress"


def test_gpu_product_no_node_offers_is_failed_with_readys_reason() -> None:
    md = model_deployment(
        "a1",
        (deployment("a1", product=H100), [pending("a1", NO_NODE_MATCHES)]),
        absent=frozenset({H100}),
    )
    assert cond(md, "Ready") == ("False", "GPUNotOffered")
    assert cond(md, "Stalled") == ("True", "GPUNotOffered")
    assert cond(md, "Reconciling") == ("False", "GPUNotOffered")
    status, message = kstatus(md)
    assert status == "Failed"
    assert H100 in message and "nvidia.com/gpu.product" in message


def test_gpu_shortage_of_an_offered_product_is_still_in_progress() -> None:
    # The product exists; its devices are all taken. Freed or added GPUs heal this.
    md = model_deployment("a1", (deployment("a1", product=A100), [pending("a1", GPU_SHORTAGE)]))
    assert cond(md, "Ready") == ("False", "InsufficientGPU")
    assert cond(md, "Stalled") == ("False", "AsExpected")
    assert kstatus(md)[0] == "InProgress"


def test_invalid_spec_is_failed() -> None:
    reason = "spec.model.credentials.secretRef: Secret models/s3 not found"
    md = model_deployment("a1", (deployment("a1", ready=2), []), invalid=reason)
    assert cond(md, "Stalled") == ("True", "InvalidSpec")
    assert kstatus(md) == ("Failed", reason)


def test_aborted_rollout_is_failed_while_stable_serves() -> None:
    first = serving("a1", CANARY)
    md = model_deployment(
        "b2",
        (deployment("a1", ready=2), []),
        (deployment("b2", desired=1, ready=1), []),
        previous=first["status"],
        rollout=CANARY,
        annotations=frozenset({"modelroll.io/abort"}),
    )
    assert cond(md, "Ready") == ("True", "RevisionAvailable")
    assert cond(md, "Progressing") == ("False", "RolloutAborted")
    assert cond(md, "Stalled") == ("True", "RolloutAborted")
    status, message = kstatus(md)
    assert status == "Failed"
    assert "revision b2 was aborted" in message


def test_unobserved_generation_is_in_progress_whatever_the_conditions_say() -> None:
    md = serving()
    md["metadata"]["generation"] = 4
    assert kstatus(md)[0] == "InProgress"


# --- the pure rules ---------------------------------------------------------------------------


def test_conditions_are_ours_then_the_kstatus_pair() -> None:
    types = [c["type"] for c in serving()["status"]["conditions"]]
    assert types == ["Ready", "Progressing", "Degraded", "Reconciling", "Stalled"]


def test_gpu_product_is_read_from_the_pod_template() -> None:
    state = revision_state(deployment("a1", product=H100), [])
    assert state.gpu_product == H100
    assert revision_state(deployment("a1"), []).gpu_product == ""


def test_only_unscheduled_revisions_ask_about_their_product() -> None:
    states = (
        revision_state(deployment("a1", product=A100, ready=2), []),
        revision_state(deployment("b2", product=H100), [pending("b2", NO_NODE_MATCHES)]),
        revision_state(deployment("c3"), [pending("c3", GPU_SHORTAGE)]),  # no product
    )
    assert unscheduled_gpu_products(states) == frozenset({H100})


def test_a_product_that_exists_keeps_the_schedulers_reason() -> None:
    states = (revision_state(deployment("a1", product=A100), [pending("a1", GPU_SHORTAGE)]),)
    assert with_products_not_offered(states, frozenset({H100})) == states
    (marked,) = with_products_not_offered(states, frozenset({A100}))
    assert [p.reason for p in marked.problems] == ["GPUNotOffered"]


def test_a_running_revision_is_never_marked_not_offered() -> None:
    # Its pods were placed, so a node had the product (it may have left since).
    states = (revision_state(deployment("a1", product=H100, ready=2), []),)
    assert with_products_not_offered(states, frozenset({H100})) == states


@pytest.mark.parametrize("reason", sorted(STALLED_REASONS))
def test_stalled_takes_readys_reason_and_message(reason: str) -> None:
    ready = Condition("Ready", False, reason, "why it cannot heal")
    progressing = Condition("Progressing", True, "RollingOut", "revision a1: 0 replicas ready")
    degraded = Condition("Degraded", True, reason, "why it cannot heal")
    reconciling, stalled = kstatus_conditions(ready, progressing, degraded)
    assert stalled == Condition("Stalled", True, reason, "why it cannot heal")
    assert not reconciling.status  # never both: kstatus would take the first True one


@pytest.mark.parametrize(
    "problem",
    ["InsufficientGPU", "Unschedulable", "CrashLoopBackOff", "ImagePullBackOff", "PodsNotReady"],
)
def test_failures_that_may_pass_keep_reconciling(problem: str) -> None:
    ready = Condition("Ready", False, problem, "waiting")
    progressing = Condition("Progressing", False, "RolloutComplete", "a1 is stable")
    degraded = Condition("Degraded", True, problem, "waiting")
    reconciling, stalled = kstatus_conditions(ready, progressing, degraded)
    assert (reconciling.status, reconciling.reason) == (True, problem)
    assert not stalled.status


def test_a_revision_past_its_progress_deadline_is_failed() -> None:
    # kstatus's own rule for a Deployment (Progressing=False, ProgressDeadlineExceeded).
    stuck = deployment("a1")
    stuck["status"]["conditions"] = [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "iris-a1-7d9c5b8f4" has timed out progressing.',
        }
    ]
    md = model_deployment("a1", (stuck, []))
    assert cond(md, "Stalled") == ("True", "ProgressDeadlineExceeded")
    assert kstatus(md)[0] == "Failed"
