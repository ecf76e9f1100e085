"""What Flux sees: kstatus (hack/kstatus, on sigs.k8s.io/cli-utils) computed on the live
ModelDeployments that the operator reconciles on the real control plane."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.helpers import apply, condition, eventually, get_json, model_deployment
from tests.support.kstatus import kstatus, kstatus_binary

pytestmark = pytest.mark.integration
Json = dict[str, Any]
# The local cluster's GPU nodes are A100s (hack/cluster.sh); no node has this product.
ABSENT_PRODUCT = "NVIDIA-H100-80GB-HBM3"


@pytest.fixture(scope="module", autouse=True)
def helper_built() -> None:
    kstatus_binary()  # built (or found in the cache) before any ModelDeployment is applied


def live(cluster: Cluster, namespace: str, name: str) -> Json:
    return get_json(cluster, "-n", namespace, "md", name)


def kstatus_becomes(
    cluster: Cluster, namespace: str, name: str, wanted: str, ready_reason: str = ""
) -> tuple[Json, str]:
    """Polls the apiserver until kstatus computes `wanted` for the object it returns (and
    Ready has `ready_reason`, when given)."""

    def check() -> tuple[Json, str]:
        md = live(cluster, namespace, name)
        status, message = kstatus(md)
        conditions = (md.get("status") or {}).get("conditions")
        assert status == wanted, (status, message, conditions)
        assert not ready_reason or condition(md, "Ready").get("reason") == ready_reason, conditions
        return md, message

    return eventually(check, timeout=90)


def test_ready_model_deployment_is_current(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, namespace, model_deployment("serving", replicas=2))
    md, _ = kstatus_becomes(cluster, namespace, "serving", "Current")
    assert condition(md, "Ready")["status"] == "True"
    assert md["status"]["observedGeneration"] == md["metadata"]["generation"]
    assert condition(md, "Reconciling")["status"] == "False"
    assert condition(md, "Stalled")["status"] == "False"


def test_model_deployment_during_a_canary_is_in_progress(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    rollout = {"strategy": "Canary", "canary": {"steps": [{"weight": 50, "pauseSeconds": 3600}]}}
    body = model_deployment("canary", replicas=2, rollout=rollout)
    apply(cluster, namespace, body)
    kstatus_becomes(cluster, namespace, "canary", "Current")
    body["spec"]["model"]["version"] = "2"
    apply(cluster, namespace, body)

    def pausing() -> Json:
        md = live(cluster, namespace, "canary")
        assert "pausing" in condition(md, "Progressing").get("message", ""), md.get("status")
        return md

    eventually(pausing, timeout=90)  # canary pods ready: only the step's pause is left
    md, message = kstatus_becomes(cluster, namespace, "canary", "InProgress")
    assert md["status"]["observedGeneration"] == md["metadata"]["generation"]
    assert condition(md, "Ready")["status"] == "True"  # the stable revision serves meanwhile
    assert condition(md, "Reconciling")["reason"] == "CanaryProgressing"
    assert message.startswith("step 1/1: canary")


def test_gpu_product_no_node_offers_is_failed(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    gpu = {"count": 16, "product": ABSENT_PRODUCT}
    apply(cluster, namespace, model_deployment("no-such-gpu", gpu=gpu))
    md, message = kstatus_becomes(cluster, namespace, "no-such-gpu", "Failed")
    ready, stalled = condition(md, "Ready"), condition(md, "Stalled")
    assert (ready["status"], ready["reason"]) == ("False", "GPUNotOffered")
    assert (stalled["status"], stalled["reason"]) == ("True", "GPUNotOffered")
    assert ABSENT_PRODUCT in message
    assert md["status"]["observedGeneration"] == md["metadata"]["generation"]
    # A shortage of a product that exists is not a failure: it stays InProgress.
    apply(
        cluster,
        namespace,
        model_deployment("no-such-gpu", gpu={**gpu, "product": "NVIDIA-A100-SXM4-80GB"}),
    )
    md, _ = kstatus_becomes(cluster, namespace, "no-such-gpu", "InProgress", "InsufficientGPU")
    assert condition(md, "Stalled")["status"] == "False"


def test_invalid_spec_is_failed_until_the_secret_exists(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    body = model_deployment("nosecret")
    body["spec"]["model"]["uri"] = "s3://bucket/iris/"
    body["spec"]["model"]["credentials"] = {"secretRef": {"name": "s3-creds"}}
    apply(cluster, namespace, body)  # the schema accepts it; only the operator can tell
    md, message = kstatus_becomes(cluster, namespace, "nosecret", "Failed")
    assert condition(md, "Stalled")["reason"] == condition(md, "Ready")["reason"] == "InvalidSpec"
    assert "s3-creds" in message
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        "s3-creds",
        "-n",
        namespace,
        "--from-literal=AWS_ACCESS_KEY_ID=x",
        "--from-literal=AWS_SECRET_ACCESS_KEY=y",
    )
    kstatus_becomes(cluster, namespace, "nosecret", "Current")


def test_model_deployment_the_operator_has_not_seen_is_in_progress(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    body = model_deployment("unseen")
    body["metadata"]["annotations"] = {"modelroll.io/paused": "true"}  # the operator keeps off
    apply(cluster, namespace, body)
    md = live(cluster, namespace, "unseen")
    assert md["status"] == {"observedGeneration": 0}  # the schema's default, not a write
    assert kstatus(md) == (
        "InProgress",
        "ModelDeployment generation is 1, but latest observed generation is 0",
    )
