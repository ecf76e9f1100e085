"""spec.runtime.auth on the real node: real runtime pods that take their token from a Secret,
reached through the Service's ClusterIP, and the operator's smoke test that sends it."""

from __future__ import annotations

import uuid
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
from tests.e2e.traffic import infer
from tests.integration.helpers import apply, eventually, get_json
from tests.support.cluster import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("installed_operator")]


def stable_version(cluster: Cluster, namespace: str, name: str) -> str:
    md: dict[str, Any] = get_json(cluster, "-n", namespace, "modeldeployment", name)
    status = md.get("status") or {}
    stable = status.get("stableRevision")
    return next((r["version"] for r in status.get("revisions", []) if r["name"] == stable), "")


def test_with_runtime_auth_the_cluster_ip_refuses_a_call_without_the_token_and_smoke_passes(
    real_cluster: Cluster, restricted_namespace: str, model_store: ModelStore
) -> None:
    ns = restricted_namespace
    token = uuid.uuid4().hex
    real_cluster.kubectl(
        "-n", ns, "create", "secret", "generic", "iris-token", f"--from-literal=token={token}"
    )
    body = model_deployment_from_example("bluegreen.yaml", model_store, "1")
    body["spec"]["replicas"] = 1
    body["spec"].setdefault("runtime", {})["auth"] = {
        "tokenSecretRef": {"name": "iris-token", "key": "token"}
    }
    apply(real_cluster, ns, body)
    wait_ready(real_cluster, ns, "iris-bg")  # probes pass without the token
    host = cluster_ip(real_cluster, ns, "iris-bg")
    rows = iris_rows(2)

    assert infer(host, "iris-bg", rows).status == 401
    assert infer(host, "iris-bg", rows, token="wrong").status == 401
    assert infer(host, "iris-bg", rows, token=token).status == 200

    set_version(body, model_store, "2")
    apply(real_cluster, ns, body)
    # promoted only when the smoke test, which sends the token, passed
    eventually(lambda: stable_version(real_cluster, ns, "iris-bg") == "2", timeout=300, interval=1)
    events = get_json(
        real_cluster, "-n", ns, "events", "--field-selector", "involvedObject.name=iris-bg"
    )["items"]
    assert "SmokeTestPassed" in {e["reason"] for e in events}
    assert token not in real_cluster.kubectl("-n", ns, "get", "events", "-o", "json").stdout
    assert infer(host, "iris-bg", rows).status == 401
