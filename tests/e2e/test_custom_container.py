"""Your own serving container on the real node: the FastAPI image of examples/custom-fastapi
as a ModelDeployment (spec.runtime.container), its model fetched and verified by the
model-fetch init container, serving through the Service; a wrong pin never serves."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import (
    CUSTOM_FASTAPI_IMAGE,
    ModelStore,
    cluster_ip,
    iris_rows,
    model_deployment_from_example,
    wait_ready,
)
from tests.e2e.traffic import infer, predicted_classes
from tests.integration.helpers import apply, condition, eventually, get_json
from tests.support.cluster import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("installed_operator")]


def fastapi_body(name: str, store: ModelStore, version: str) -> dict[str, Any]:
    body = model_deployment_from_example("custom-fastapi.yaml", store, version)
    body["metadata"]["name"] = name
    body["spec"]["replicas"] = 1
    return body


def test_the_fastapi_image_serves_the_fetched_model_and_a_wrong_pin_never_serves(
    real_cluster: Cluster, restricted_namespace: str, model_store: ModelStore
) -> None:
    ns = restricted_namespace
    good = fastapi_body("fastapi", model_store, "1")
    assert good["spec"]["runtime"]["container"]["image"] == CUSTOM_FASTAPI_IMAGE
    bad = fastapi_body("fastapi-bad-pin", model_store, "1")
    bad["spec"]["model"]["sha256"] = model_store.sha256["2"]  # version 2's pin on version 1
    apply(real_cluster, ns, good)
    apply(real_cluster, ns, bad)

    wait_ready(real_cluster, ns, "fastapi", timeout=240)
    (pod,) = get_json(real_cluster, "-n", ns, "pods", "-l", "modelroll.io/deployment=fastapi")[
        "items"
    ]
    (fetch,) = pod["status"]["initContainerStatuses"]
    assert fetch["name"] == "model-fetch"
    assert fetch["state"]["terminated"]["exitCode"] == 0
    (server,) = pod["status"]["containerStatuses"]
    assert server["ready"] and server["image"] == CUSTOM_FASTAPI_IMAGE
    rows = iris_rows(12)
    answer = infer(cluster_ip(real_cluster, ns, "fastapi"), "fastapi", rows)
    assert answer.status == 200, answer
    assert predicted_classes(answer) == model_store.models["1"].predict(rows).tolist()

    def refused() -> dict[str, Any]:
        md = get_json(real_cluster, "-n", ns, "modeldeployment", "fastapi-bad-pin")
        ready = condition(md, "Ready")
        assert ready.get("reason") == "ModelFetchFailed", md.get("status")
        return ready

    ready = eventually(refused, timeout=180, interval=1)
    assert ready["status"] == "False"
    assert "sha256 mismatch for model.joblib" in ready["message"], ready
    assert f"expected {model_store.sha256['2']}, got {model_store.sha256['1']}" in ready["message"]
    (pod,) = get_json(
        real_cluster, "-n", ns, "pods", "-l", "modelroll.io/deployment=fastapi-bad-pin"
    )["items"]
    (server,) = pod["status"]["containerStatuses"]
    assert "running" not in server["state"] and not server["ready"]  # never started
