"""A ModelDeployment on the real node: real pods of the runtime image, reached through a Service."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import (
    NODE_NAME,
    RUNTIME_IMAGE,
    ModelStore,
    cluster_ip,
    iris_rows,
    model_deployment_from_example,
    wait_ready,
)
from tests.e2e.dns import resolve_a
from tests.e2e.traffic import infer, infer_grpc, predicted_classes
from tests.integration.helpers import apply, get_json
from tests.support.cluster import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("installed_operator")]


def test_iris_example_serves_the_same_classes_as_in_process_predict(
    real_cluster: Cluster, restricted_namespace: str, model_store: ModelStore
) -> None:
    ns = restricted_namespace
    apply(real_cluster, ns, model_deployment_from_example("sklearn-iris.yaml", model_store, "1"))
    md = wait_ready(real_cluster, ns, "iris")
    assert md["status"]["readyReplicas"] == 2

    pods = get_json(real_cluster, "-n", ns, "pods")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["nodeName"] == NODE_NAME
        assert pod["status"]["phase"] == "Running"
        (container,) = pod["status"]["containerStatuses"]
        assert container["ready"] and container["image"] == RUNTIME_IMAGE
        assert container["imageID"].startswith("sha256:")  # imported locally, never pulled

    rows = iris_rows(12)
    answer = infer(cluster_ip(real_cluster, ns, "iris"), "iris", rows)
    assert answer.status == 200, answer
    assert answer.version == "1"
    assert predicted_classes(answer) == model_store.models["1"].predict(rows).tolist()
    # the same rows over gRPC (the Service's port grpc), answered as over HTTP
    result = infer_grpc(cluster_ip(real_cluster, ns, "iris"), "iris", rows)
    (output,) = answer.body["outputs"]
    predict = result.as_numpy("predict")
    assert list(predict.shape) == output["shape"]
    assert predict.ravel().tolist() == output["data"]
    assert result.get_response().model_version == "1"


def test_runtime_pods_run_under_the_restricted_pod_security_standard(
    real_cluster: Cluster, restricted_namespace: str, model_store: ModelStore
) -> None:
    ns = restricted_namespace
    labels = get_json(real_cluster, "namespace", ns)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # The namespace really enforces: a pod that runs as root with privilege is refused.
    refused = real_cluster.kubectl(
        "-n",
        ns,
        "run",
        "rooty",
        f"--image={RUNTIME_IMAGE}",
        "--restart=Never",
        "--overrides",
        json.dumps(
            {
                "spec": {
                    "containers": [
                        {
                            "name": "rooty",
                            "image": RUNTIME_IMAGE,
                            "securityContext": {"privileged": True, "runAsUser": 0},
                        }
                    ]
                }
            }
        ),
        check=False,
    )
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr

    body = model_deployment_from_example("sklearn-iris.yaml", model_store, "1")
    body["spec"]["replicas"] = 1
    apply(real_cluster, ns, body)
    wait_ready(real_cluster, ns, "iris")
    (pod,) = get_json(real_cluster, "-n", ns, "pods")["items"]
    assert pod["status"]["phase"] == "Running"
    security = pod["spec"]["containers"][0]["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    # The runtime really runs as the non-root UID the pod asks for.
    uid = real_cluster.kubectl(
        "-n",
        ns,
        "exec",
        pod["metadata"]["name"],
        "--",
        "python3",
        "-c",
        "import os; print(os.getuid())",
    ).stdout
    assert uid.strip() == "65532"


def test_cluster_dns_resolves_the_model_service(
    real_cluster: Cluster, restricted_namespace: str, model_store: ModelStore
) -> None:
    ns = restricted_namespace
    body = model_deployment_from_example("sklearn-iris.yaml", model_store, "1")
    body["spec"]["replicas"] = 1
    apply(real_cluster, ns, body)
    wait_ready(real_cluster, ns, "iris")
    dns_ip = cluster_ip(real_cluster, "kube-system", "kube-dns")
    assert resolve_a(f"iris.{ns}.svc.cluster.local", dns_ip) == [
        cluster_ip(real_cluster, ns, "iris")
    ]
    with pytest.raises(LookupError):
        resolve_a(f"missing.{ns}.svc.cluster.local", dns_ip)
