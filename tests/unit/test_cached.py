"""The watch caches keep only what status, drift detection and planning read: what they
conclude from a cached object must be what they conclude from the whole object."""

from __future__ import annotations

import json

import pytest
from modelroll.cached import (
    pack_child,
    pack_model_deployment,
    slim_endpoint_slice,
    slim_pod,
    unpack,
)
from modelroll.drift import needs_apply
from modelroll.problems import pod_problem
from modelroll.spec import JSON
from modelroll.status import revision_state

from tests.unit.test_status import (
    GPU_SHORTAGE,
    container,
    crash_looping,
    deployment,
    healthy,
    pod,
    unschedulable,
    waiting_pod,
)

LOAD_FAILED = {
    "terminated": {"exitCode": 3, "reason": "Error", "message": "ModelLoadFailed: bad hash\n"}
}
FETCH_FAILED = {
    "terminated": {
        "exitCode": 1,
        "reason": "Error",
        "message": "ModelFetchFailed: sha256 differs\n",
    }
}


def initializing(state: JSON, last: JSON | None = None) -> JSON:
    """A pod of a custom container held behind its model-fetch init container."""
    fetch = {"name": "model-fetch", "ready": False, "state": state, "lastState": last or {}}
    whole = waiting_pod("a1", "PodInitializing", "")
    whole["status"]["initContainerStatuses"] = [fetch]
    return whole


PODS = {
    "fetch failed": initializing(FETCH_FAILED),
    "fetch retrying": initializing(
        {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}, FETCH_FAILED
    ),
    "fetch image": initializing({"waiting": {"reason": "ErrImagePull", "message": "denied"}}),
    "fetched": initializing({"terminated": {"exitCode": 0, "reason": "Completed"}}, FETCH_FAILED),
    "gpu shortage": unschedulable("a1", GPU_SHORTAGE),
    "unschedulable": unschedulable("a1", "0/3 nodes are available: 3 node(s) had taints."),
    "image pull": waiting_pod("a1", "ErrImagePull", "pull access denied"),
    "creating": waiting_pod("a1", "ContainerCreating", ""),
    "crash loop": crash_looping("a1"),
    "load failed": waiting_pod("a1", "CrashLoopBackOff", "back-off 40s", LOAD_FAILED),
    "recovered": pod("a1", containers=[container({"running": {}}, LOAD_FAILED, ready=True)]),
    "healthy": healthy("a1"),
    "no status": {"metadata": {"name": "new", "labels": {"modelroll.io/revision": "a1"}}},
}


@pytest.mark.parametrize("name", PODS)
def test_a_cached_pod_has_the_problem_of_the_whole_pod(name: str) -> None:
    whole = PODS[name]
    slim = slim_pod(whole)
    assert pod_problem(slim) == pod_problem(whole)
    assert slim["metadata"]["labels"] == {"modelroll.io/revision": "a1"}


def test_a_cached_pod_is_a_fraction_of_the_whole() -> None:
    whole = healthy("a1")
    assert len(json.dumps(slim_pod(whole))) < len(json.dumps(whole)) / 4


def served_deployment() -> JSON:
    body = deployment(
        "a1",
        desired=2,
        replicas=2,
        ready=1,
        available=1,
        updated=2,
        conditions=[
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": "ReplicaSet has timed out progressing.",
                "lastUpdateTime": "2026-01-01T00:00:00Z",
            }
        ],
    )
    body["metadata"]["ownerReferences"] = [{"uid": "u1", "controller": True, "kind": "X"}]
    body["metadata"]["managedFields"] = [{"manager": "modelroll", "fieldsV1": {"f:spec": {}}}]
    body["metadata"]["resourceVersion"] = "42"
    body["spec"]["template"] = {"spec": {"nodeSelector": {"nvidia.com/gpu.product": "A100"}}}
    return body


def test_a_cached_deployment_has_the_state_of_the_whole_one() -> None:
    whole = served_deployment()
    cached = unpack(pack_child(whole))
    pods = [healthy("a1"), crash_looping("a1")]
    assert revision_state(cached, [slim_pod(p) for p in pods]) == revision_state(whole, pods)
    assert "managedFields" not in cached["metadata"]
    assert cached["metadata"]["ownerReferences"] == whole["metadata"]["ownerReferences"]


@pytest.mark.parametrize(
    "desired",
    [
        {"spec": {"replicas": 2}},
        {"spec": {"replicas": 3}},
        {"metadata": {"annotations": {"modelroll.io/model-version": "v-b2"}}},
        {"spec": {"template": {"spec": {"nodeSelector": {"nvidia.com/gpu.product": "A100"}}}}},
    ],
)
def test_drift_is_judged_alike_on_the_cached_and_the_whole_child(desired: JSON) -> None:
    whole = served_deployment()
    manifest = {"apiVersion": "apps/v1", "kind": "Deployment", **desired}
    manifest.setdefault("metadata", {})["name"] = "iris-a1"
    cached = unpack(pack_child(whole))
    assert needs_apply(manifest, cached) == needs_apply(manifest, whole)


def test_fields_outside_spec_stay_for_drift_detection() -> None:
    account: JSON = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "iris-modelroll", "resourceVersion": "7", "uid": "u2"},
        "automountServiceAccountToken": False,
    }
    cached = unpack(pack_child(account))
    assert cached == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "iris-modelroll"},
        "automountServiceAccountToken": False,
    }
    assert not needs_apply({**cached, "metadata": {"name": "iris-modelroll"}}, cached)


def test_a_cached_model_deployment_drops_only_what_kopf_and_the_server_keep() -> None:
    body: JSON = {
        "metadata": {
            "name": "iris",
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {
                "modelroll.io/last-handled-configuration": '{"spec": {}}',
                "modelroll.io/promote": "true",
            },
        },
        "spec": {"replicas": 1},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    body["metadata"]["resourceVersion"] = "42"
    cached = pack_model_deployment(body)
    assert unpack(cached.packed) == {
        "metadata": {
            "name": "iris",
            "resourceVersion": "42",
            "annotations": {"modelroll.io/promote": "true"},
        },
        "spec": {"replicas": 1},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    # what the probe and the condition gauges read of every object, without unpacking it
    assert cached.resource_version == "42"
    assert cached.conditions == (("Ready", "True"),)
    assert "managedFields" in body["metadata"]  # the watched object itself is untouched


def test_an_endpoint_slice_is_kept_as_its_ready_pods_and_counts_per_revision() -> None:
    """Ready unset counts as ready (the API's rule); not-ready, terminating and non-pod
    endpoints do not; a revision serves with the pods of its own that are listed."""

    def endpoint(name: str, kind: str = "Pod", **conditions: bool) -> JSON:
        return {"addresses": ["10.0.0.1"], "conditions": conditions,
                "targetRef": {"kind": kind, "name": name, "namespace": "models"}}  # fmt: skip

    body = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "iris-preview-x7k2p", "labels": {"a": "b"}, "uid": "u"},
        "addressType": "IPv4",
        "endpoints": [
            endpoint("iris-b2-7d9c5b8f4-aaaaa", ready=True),
            endpoint("iris-b2-7d9c5b8f4-bbbbb"),
            endpoint("iris-b2-7d9c5b8f4-ccccc", ready=False, serving=True, terminating=True),
            endpoint("some-node", kind="Node", ready=True),
        ],
        "ports": [{"name": "http", "port": 8080}],
    }
    slim = slim_endpoint_slice(body)
    assert slim == {
        "metadata": {"name": "iris-preview-x7k2p"},
        "readyPods": ["iris-b2-7d9c5b8f4-aaaaa", "iris-b2-7d9c5b8f4-bbbbb"],
    }
    pods = [healthy("b2") for _ in range(3)]
    for p, suffix in zip(pods, "abc", strict=True):
        p["metadata"]["name"] = f"iris-b2-7d9c5b8f4-{suffix * 5}"
    full = deployment("b2", desired=3, replicas=3, ready=3, available=3, updated=3)
    state = revision_state(full, [slim_pod(p) for p in pods], frozenset(slim["readyPods"]))
    assert (state.ready, state.serving) == (3, 2)
    assert revision_state(full, pods).serving == 0
