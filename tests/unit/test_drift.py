"""Drift decisions: what the apiserver returns for a child versus what we rendered.

The "observed" objects here add what a 1.34 apiserver adds on the way back (defaults,
metadata, status) and drop what it drops (empty maps and lists, which Go omits), and write
quantities the way it writes them (canonical strings).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from modelroll.config import OperatorConfig
from modelroll.drift import (
    SPEC_HASH_ANNOTATION,
    foreign_keys_patch,
    is_subset,
    needs_apply,
    stamp,
)
from modelroll.render import Owner, RenderContext, render_children
from modelroll.revision import revision_of
from modelroll.status_changes import existed_before

JSON = dict[str, Any]
OWNER = Owner("iris", "models", "0b7c3b9e-0000-4000-8000-000000000001")


def deployment() -> JSON:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "iris-a1", "namespace": "models", "labels": {"app": "iris"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "iris"}},
            "template": {
                "metadata": {"labels": {"app": "iris"}},
                "spec": {
                    "containers": [
                        {
                            "name": "model-server",
                            "image": "ghcr.io/modelroll/runtime:0.1.0",
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "resources": {"limits": {"nvidia.com/gpu": 1}},
                        }
                    ]
                },
            },
        },
    }


def served(manifest: JSON) -> JSON:
    """The object as the apiserver returns it: defaults, metadata and status added."""
    obj = copy.deepcopy(manifest)
    obj["metadata"].update(
        uid="5f0d6c1e-0000-4000-8000-00000000000a",
        resourceVersion="48213",
        generation=1,
        creationTimestamp="2025-06-01T10:00:00Z",
        managedFields=[{"manager": "modelroll", "operation": "Apply"}],
    )
    spec = obj["spec"]
    defaults = {
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
    }
    for key, value in defaults.items():
        spec.setdefault(key, value)
    pod = spec["template"]["spec"]
    pod_defaults = {
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler",
        "terminationGracePeriodSeconds": 30,
        "securityContext": {},
    }
    for key, value in pod_defaults.items():
        pod.setdefault(key, value)
    for c in pod["containers"]:
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("imagePullPolicy", "IfNotPresent")
        for port in c.get("ports", []):
            port.setdefault("protocol", "TCP")
        limits = c.get("resources", {}).get("limits", {})
        for key, value in limits.items():
            limits[key] = str(value)
    obj["status"] = {"observedGeneration": 1, "replicas": 2}
    return obj


# --- is_subset ------------------------------------------------------------------------------


def test_server_defaults_and_extra_keys_are_not_drift() -> None:
    want = deployment()
    assert is_subset(want, served(want))


def test_int_and_string_forms_are_equal() -> None:
    assert is_subset({"nvidia.com/gpu": 1}, {"nvidia.com/gpu": "1"})
    assert is_subset({"port": "8080"}, {"port": 8080})
    assert is_subset({"replicas": 2}, {"replicas": "2"})
    assert not is_subset({"replicas": 2}, {"replicas": "3"})


def test_changed_scalar_is_drift() -> None:
    want = deployment()
    have = served(want)
    have["spec"]["template"]["spec"]["containers"][0]["image"] = "evil/runtime:latest"
    assert not is_subset(want, have)
    have = served(want)
    have["spec"]["replicas"] = 5
    assert not is_subset(want, have)


def test_missing_key_and_wrong_type_are_drift() -> None:
    want = deployment()
    have = served(want)
    del have["metadata"]["labels"]["app"]
    assert not is_subset(want, have)
    assert not is_subset({"a": {"b": 1}}, {"a": "b=1"})
    assert not is_subset({"a": [1]}, {"a": {"0": 1}})
    assert not is_subset({"a": 1}, None)


def test_list_length_and_order_changes_are_drift() -> None:
    want = deployment()
    have = served(want)
    have["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "C", "value": "3"})
    assert not is_subset(want, have)
    have = served(want)
    have["spec"]["template"]["spec"]["containers"][0]["env"].pop()
    assert not is_subset(want, have)
    have = served(want)
    have["spec"]["template"]["spec"]["containers"][0]["env"].reverse()
    assert not is_subset(want, have)


json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_everything_is_a_subset_of_itself(value: Any) -> None:
    assert is_subset(value, copy.deepcopy(value))


@given(
    st.dictionaries(st.text(max_size=6), json_values, max_size=5),
    st.dictionaries(st.text(max_size=6), json_values, max_size=5),
)
def test_extra_keys_never_make_drift(want: JSON, extra: JSON) -> None:
    assert is_subset(want, {**extra, **want})


def test_empty_maps_and_lists_the_server_omits_are_not_drift() -> None:
    # A rendered CPU-only Deployment, after a real 1.34 apiserver round trip.
    assert is_subset(
        {"nodeSelector": {}, "tolerations": [], "containers": [{"name": "c"}]},
        {"containers": [{"name": "c", "terminationMessagePath": "/dev/termination-log"}]},
    )


@pytest.mark.parametrize(("want", "have"), [("0.5", "500m"), ("1024Mi", "1Gi"), ("1000m", "1")])
def test_equal_quantities_in_other_notation_are_not_drift(want: str, have: str) -> None:
    assert is_subset({"requests": {"cpu": want}}, {"requests": {"cpu": have}})


def rendered_cpu_only_deployment() -> JSON:
    spec: JSON = {"model": {"format": "sklearn", "uri": "s3://bucket/iris/"}}
    children = render_children(
        OWNER, spec, revision_of(spec, "img"), RenderContext(OperatorConfig())
    )
    return stamp(children[0])


def test_rendered_deployment_with_server_defaults_needs_no_apply() -> None:
    desired = rendered_cpu_only_deployment()
    assert not needs_apply(desired, served(desired))


def test_rendered_deployment_after_a_real_round_trip_needs_no_apply() -> None:
    desired = rendered_cpu_only_deployment()
    have = served(desired)
    pod = have["spec"]["template"]["spec"]
    for key in ("nodeSelector", "tolerations"):
        if pod.get(key) in ({}, []):
            del pod[key]  # as a 1.34 apiserver returns it (checked against kube-apiserver)
    assert not needs_apply(desired, have)


# --- stamp ----------------------------------------------------------------------------------


def test_stamp_adds_a_deterministic_hash_annotation() -> None:
    manifest = deployment()
    stamped = stamp(manifest)
    digest = stamped["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    assert len(digest) == 16
    assert stamp(copy.deepcopy(manifest)) == stamped
    # Key order does not matter: the same manifest built differently hashes the same.
    reordered = dict(reversed(list(copy.deepcopy(manifest).items())))
    assert stamp(reordered)["metadata"]["annotations"][SPEC_HASH_ANNOTATION] == digest
    # Everything else is left as it was.
    rest = copy.deepcopy(stamped)
    del rest["metadata"]["annotations"]
    assert rest == manifest


def test_stamp_keeps_existing_annotations() -> None:
    manifest = deployment()
    manifest["metadata"]["annotations"] = {"modelroll.io/model-version": "3"}
    annotations = stamp(manifest)["metadata"]["annotations"]
    assert annotations["modelroll.io/model-version"] == "3"
    assert SPEC_HASH_ANNOTATION in annotations


def test_stamp_changes_when_the_manifest_changes() -> None:
    manifest = deployment()
    changed = deployment()
    changed["spec"]["template"]["spec"]["containers"][0]["env"].pop()
    first = stamp(manifest)["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    second = stamp(changed)["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    assert first != second


def test_stamp_does_not_mutate_its_input() -> None:
    manifest = deployment()
    manifest["metadata"]["annotations"] = {"a": "b"}
    before = copy.deepcopy(manifest)
    stamp(manifest)
    assert manifest == before


# --- needs_apply ----------------------------------------------------------------------------


def test_needs_apply() -> None:
    desired = stamp(deployment())
    assert needs_apply(desired, None)
    assert not needs_apply(desired, served(desired))

    unstamped = served(deployment())  # created by an older operator, or the hash removed
    assert needs_apply(desired, unstamped)

    changed = served(desired)
    changed["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "edited"
    assert needs_apply(desired, changed)


def test_dropped_field_is_noticed_through_the_hash() -> None:
    old = stamp(deployment())
    new_manifest = deployment()
    del new_manifest["spec"]["template"]["spec"]["containers"][0]["resources"]
    new = stamp(new_manifest)
    # The old object still satisfies every field of the new one, but the hash differs.
    assert needs_apply(new, served(old))


# --- foreign keys in exactly-owned maps -----------------------------------------------------


def service() -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "iris", "namespace": "models"},
        "spec": {
            "type": "ClusterIP",
            "selector": {"modelroll.io/deployment": "iris"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def served_service(manifest: JSON) -> JSON:
    obj = copy.deepcopy(manifest)
    obj["spec"].update(
        clusterIP="10.96.14.2",
        clusterIPs=["10.96.14.2"],
        sessionAffinity="None",
        ipFamilies=["IPv4"],
        ipFamilyPolicy="SingleStack",
        internalTrafficPolicy="Cluster",
    )
    return obj


def test_foreign_selector_keys_are_nulled() -> None:
    desired = stamp(service())
    observed = served_service(desired)
    observed["spec"]["selector"].update({"modelroll.io/revision": "b2", "team": "x"})
    patch = foreign_keys_patch(desired, observed)
    assert patch == {"spec": {"selector": {"modelroll.io/revision": None, "team": None}}}
    assert needs_apply(desired, observed)


def test_no_foreign_keys_means_no_patch() -> None:
    desired = stamp(service())
    assert foreign_keys_patch(desired, served_service(desired)) is None
    assert foreign_keys_patch(desired, None) is None
    assert not needs_apply(desired, served_service(desired))


def test_extra_keys_elsewhere_are_shared_not_removed() -> None:
    desired = stamp(service())
    observed = served_service(desired)
    observed["metadata"]["labels"] = {"team": "x"}
    observed["metadata"]["annotations"]["other-tool/seen"] = "yes"
    assert foreign_keys_patch(desired, observed) is None
    assert not needs_apply(desired, observed)
    # For kinds without exactly-owned maps, extra selector keys are not foreign.
    dep = stamp(deployment())
    observed_dep = served(dep)
    observed_dep["spec"]["selector"]["matchLabels"]["extra"] = "x"
    assert foreign_keys_patch(dep, observed_dep) is None


# --- whether a missing child had been created before (ChildRestored) -----------------------


def test_existed_before() -> None:
    body: JSON = {
        "status": {
            "url": "http://iris.models.svc.cluster.local/v2/models/iris/infer",
            "revisions": [{"name": "a1"}, {"name": "b2"}],
        }
    }
    dep = {
        "kind": "Deployment",
        "metadata": {"name": "iris-a1", "labels": {"modelroll.io/revision": "a1"}},
    }
    new = {
        "kind": "Deployment",
        "metadata": {"name": "iris-c3", "labels": {"modelroll.io/revision": "c3"}},
    }
    assert existed_before(body, dep)
    assert not existed_before(body, new)
    assert existed_before(body, {"kind": "Service"})
    assert existed_before(body, {"kind": "ServiceAccount"})
    assert not existed_before(body, {"kind": "HorizontalPodAutoscaler"})
    fresh: JSON = {"metadata": {"name": "iris"}}
    assert not existed_before(fresh, dep)
    assert not existed_before(fresh, {"kind": "Service"})
