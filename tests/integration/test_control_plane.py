"""The local control plane behaves like a real cluster (issue: local control plane)."""

# The client's models type every field Optional; these tests read fields the apiserver
# always sets, and a None there fails the test as surely as a wrong value would.
# mypy: disable-error-code="union-attr,index"

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, dynamic

from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration


def eventually(check: Callable[[], Any], timeout: float = 60, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s: {check}")
        time.sleep(interval)


def pod(name: str, gpu: bool, tolerate: bool) -> client.V1Pod:
    resources = client.V1ResourceRequirements(limits={"nvidia.com/gpu": "1"}) if gpu else None
    tolerations = (
        [client.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]
        if tolerate
        else None
    )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="c", image="busybox", resources=resources)],
            tolerations=tolerations,
        ),
    )


def test_deployment_reaches_three_available_pods_on_kwok_nodes(
    api_client: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(api_client)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=3,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx")]),
                ),
            ),
        ),
    )
    eventually(
        lambda: apps.read_namespaced_deployment("web", namespace).status.available_replicas == 3
    )
    pods = client.CoreV1Api(api_client).list_namespaced_pod(namespace, label_selector="app=web")
    assert len(pods.items) == 3
    assert all(p.spec.node_name.startswith("kwok-") for p in pods.items)
    assert all(p.status.phase == "Running" for p in pods.items)


def test_gpu_pod_lands_only_on_gpu_node_and_needs_the_toleration(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(namespace, pod("tolerated", gpu=True, tolerate=True))
    core.create_namespaced_pod(namespace, pod("untolerated", gpu=True, tolerate=False))

    def scheduled() -> str:
        return str(core.read_namespaced_pod("tolerated", namespace).spec.node_name or "")

    node_name = eventually(scheduled)
    node = core.read_node(node_name)
    assert node.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert int(node.status.allocatable["nvidia.com/gpu"]) >= 1

    def failed_scheduling() -> client.V1PodCondition | None:
        untolerated = core.read_namespaced_pod("untolerated", namespace)
        assert untolerated.status.phase == "Pending"
        assert untolerated.spec.node_name is None
        conditions = [c for c in untolerated.status.conditions or [] if c.type == "PodScheduled"]
        return conditions[0] if conditions and conditions[0].status == "False" else None

    condition = eventually(failed_scheduling)
    assert condition.reason == "Unschedulable"
    assert "untolerated taint" in condition.message
    events = core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=untolerated,reason=FailedScheduling"
    )
    assert events.items, "the scheduler emits a FailedScheduling event"


def test_garbage_collector_deletes_owned_children(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    uid = owner.metadata.uid
    assert uid, "the apiserver gives every object a uid"
    reference = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=uid)
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="child", owner_references=[reference])
        ),
    )
    core.delete_namespaced_config_map("owner", namespace)

    def child_gone() -> bool:
        try:
            core.read_namespaced_config_map("child", namespace)
        except client.ApiException as error:
            return error.status == 404
        return False

    eventually(child_gone)


def test_cel_validation_rule_rejects_a_bad_object(cluster: Cluster) -> None:
    group = f"g{uuid.uuid4().hex[:8]}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "min": {"type": "integer"},
                                        "max": {"type": "integer"},
                                    },
                                    "x-kubernetes-validations": [
                                        {
                                            "rule": "self.min <= self.max",
                                            "message": "spec.min must be less than or equal to spec.max",
                                        }
                                    ],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(crd))
    try:
        cluster.wait_established(f"widgets.{group}")
        bad = {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "bad", "namespace": "default"},
            "spec": {"min": 5, "max": 1},
        }
        result = cluster.kubectl("create", "-f", "-", input=json.dumps(bad), check=False)
        assert result.returncode != 0
        assert "spec.min must be less than or equal to spec.max" in result.stderr
        assert "Invalid value" in result.stderr
    finally:
        cluster.kubectl("delete", "crd", f"widgets.{group}", "--wait=false")


def test_server_side_apply_conflicts_between_field_managers(
    api_client: client.ApiClient, namespace: str
) -> None:
    configmaps = dynamic.DynamicClient(api_client).resources.get(api_version="v1", kind="ConfigMap")

    def apply(manager: str, value: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "shared", "namespace": namespace},
            "data": {"key": value},
        }
        configmaps.server_side_apply(body=body, namespace=namespace, field_manager=manager)

    apply("first", "a")
    with pytest.raises(client.ApiException) as raised:
        apply("second", "b")
    assert raised.value.status == 409
    assert "conflict" in str(raised.value.body).lower()
    assert "first" in str(raised.value.body)
