"""spec.runtime.container on the real apiserver with the real operator (kwok nodes): the
operator writes a pod of the user's server, the model-fetch init container and the metrics
sidecar that Pod Security "restricted" admits; the Service and NetworkPolicy reach the
sidecar; a changed image rolls out as a new revision. (The CEL rules are the shared cases
of tests/cases/invalid_modeldeployments.yaml; every example, the Triton, TF Serving and
vLLM ones included, is dry-run by test_crd_validation.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.helpers import apply, condition, eventually, get_json, model_deployment

pytestmark = pytest.mark.integration

SHA = "b" * 64


def custom_body(image: str) -> dict[str, Any]:
    body = model_deployment(
        "fastapi",
        runtime={
            "container": {
                "image": image,
                "port": 8000,
                "env": [{"name": "MODEL_PATH", "value": "/mnt/models/model.joblib"}],
                "metrics": {"sidecar": True},
            }
        },
        replicas=2,
    )
    body["spec"]["model"].update(uri="https://models.example.com/iris/model.joblib", sha256=SHA)
    return body


def restrict(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl(
        "label", "namespace", namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )  # fmt: skip


def ready(cluster: Cluster, namespace: str) -> dict[str, Any]:
    def check() -> dict[str, Any]:
        md: dict[str, Any] = get_json(cluster, "-n", namespace, "md", "fastapi")
        assert condition(md, "Ready").get("status") == "True", md.get("status")
        assert md["status"].get("observedGeneration") == md["metadata"]["generation"]
        return md

    return eventually(check, timeout=90)


def test_the_users_server_runs_behind_the_fetch_and_the_sidecar(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    restrict(cluster, namespace)
    apply(cluster, namespace, custom_body("registry.example.com/iris-fastapi:1"))
    md = ready(cluster, namespace)
    revision = md["status"]["stableRevision"]
    deployment = get_json(cluster, "-n", namespace, "deployment", f"fastapi-{revision}")
    pod_spec = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod_spec["initContainers"]] == ["model-fetch"]
    assert [c["name"] for c in pod_spec["containers"]] == ["model-server", "metrics-proxy"]
    server = pod_spec["containers"][0]
    assert server["image"] == "registry.example.com/iris-fastapi:1"
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    # Pod Security "restricted" admitted the ReplicaSet's pods: they exist and run
    selector = f"modelroll.io/revision={revision}"
    pods = get_json(cluster, "-n", namespace, "pods", "-l", selector)["items"]
    assert len(pods) == 2, [p["metadata"]["name"] for p in pods]
    service = get_json(cluster, "-n", namespace, "service", "fastapi")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    policy = get_json(cluster, "-n", namespace, "networkpolicy", "fastapi-modelroll")
    assert policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_a_new_image_of_the_server_is_a_new_revision(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, namespace, custom_body("registry.example.com/iris-fastapi:1"))
    first = ready(cluster, namespace)["status"]["stableRevision"]
    apply(cluster, namespace, custom_body("registry.example.com/iris-fastapi:2"))

    def rolled() -> str:
        md = ready(cluster, namespace)
        assert md["status"]["stableRevision"] != first
        return str(md["status"]["stableRevision"])

    second = eventually(rolled, timeout=90)
    deployment = get_json(cluster, "-n", namespace, "deployment", f"fastapi-{second}")
    (server, _) = deployment["spec"]["template"]["spec"]["containers"]
    assert server["image"] == "registry.example.com/iris-fastapi:2"
