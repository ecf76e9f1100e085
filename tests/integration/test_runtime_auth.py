"""spec.runtime.auth on the real control plane, against a real runtime process.

kwok pods never run, so a real runtime started with the token the Secret holds plays the
preview pods behind the loopback router. The operator renders the token into the pods from
the Secret key, and its blue-green smoke test must send it: the runtime refuses a request
without it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from modelroll.cli.main import app
from modelroll.revision import revision_of
from typer.testing import CliRunner

from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.helpers import (
    SETOSA,
    apply_md,
    condition,
    eventually,
    get_json,
    smoke_tested_iris_spec,
)
from tests.runtime.models import train_sklearn
from tests.runtime.runtime_process import RuntimeProcess
from tests.support.prometheus import start_runtime
from tests.support.router import Router

pytestmark = pytest.mark.integration
Json = dict[str, Any]
# Unique, so that finding it anywhere it must not be (log, status, Events) is meaningful.
TOKEN = f"tok-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def secured_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    work = tmp_path_factory.mktemp("auth")
    model = train_sklearn(work / "model")
    runtime = start_runtime(
        model.directory, work / "runtime.log", work / "cache", model_name="iris",
        MODELROLL_AUTH_TOKEN=TOKEN,
    )  # fmt: skip
    runtime.wait_ready()
    yield runtime
    runtime.stop()


def spec(version: str, key: str = "token") -> Json:
    return smoke_tested_iris_spec(
        version, {"auth": {"tokenSecretRef": {"name": "iris-token", "key": key}}}
    )


def create_token_secret(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl(
        "-n",
        namespace,
        "create",
        "secret",
        "generic",
        "iris-token",
        f"--from-literal=token={TOKEN}",
    )


def md(cluster: Cluster, namespace: str, name: str) -> Json:
    return get_json(cluster, "-n", namespace, "md", name)


def stable_is(cluster: Cluster, namespace: str, name: str, revision: str) -> Json:
    status = md(cluster, namespace, name).get("status") or {}
    assert status.get("stableRevision") == revision, status
    return status


def event_reasons(cluster: Cluster, namespace: str, name: str) -> set[str]:
    items = get_json(
        cluster, "-n", namespace, "events", "--field-selector", f"involvedObject.name={name}"
    )["items"]
    return {e["reason"] for e in items}


def post(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        url, json.dumps(SETOSA).encode(), {"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_with_runtime_auth_a_request_without_the_token_is_refused_and_the_smoke_test_passes(
    cluster: Cluster,
    operator: OperatorProcess,
    namespace: str,
    router: Router,
    secured_runtime: RuntimeProcess,
) -> None:
    router.route(namespace, "secured-preview", secured_runtime.port, "iris")
    create_token_secret(cluster, namespace)
    v1, v2 = spec("1"), spec("2")
    apply_md(cluster, namespace, "secured", v1)
    eventually(lambda: stable_is(cluster, namespace, "secured", revision_of(v1, "x")), timeout=90)

    deployment = get_json(cluster, "-n", namespace, "deployment", f"secured-{revision_of(v1, 'x')}")
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "MODELROLL_AUTH_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "iris-token", "key": "token"}}} in env  # fmt: skip

    # the runtime behind the preview Service refuses a caller without the token
    preview = router.url_template.format(namespace=namespace, service="secured-preview")
    infer = f"{preview}/v2/models/secured/infer"
    assert post(infer, {}) == 401
    assert post(infer, {"Authorization": "Bearer wrong"}) == 401
    assert post(infer, {"Authorization": f"bearer {TOKEN}"}) == 200

    # `modelroll predict` reads the token with the user's kubeconfig and sends it
    router.route(namespace, "secured", secured_runtime.port, "iris")
    service = router.url_template.format(namespace=namespace, service="secured")
    predicted = CliRunner().invoke(
        app,
        ["predict", "secured", "-n", namespace, "--kubeconfig", cluster.kubeconfig,
         "--url", service, "--data", json.dumps(SETOSA)],
    )  # fmt: skip
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.output)["outputs"][0]["data"] == [0]
    assert TOKEN not in predicted.output

    apply_md(cluster, namespace, "secured", v2)
    status = eventually(
        lambda: stable_is(cluster, namespace, "secured", revision_of(v2, "x")), timeout=120
    )
    assert "SmokeTestPassed" in event_reasons(cluster, namespace, "secured")
    # the token went into the request's header only
    events = cluster.kubectl("-n", namespace, "get", "events", "-o", "json").stdout
    assert TOKEN not in json.dumps(status) and TOKEN not in events
    assert TOKEN not in Path(operator.log_path).read_text(errors="replace")


def test_a_token_secret_without_the_key_is_an_invalid_spec_naming_it(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    create_token_secret(cluster, namespace)
    apply_md(cluster, namespace, "wrongkey", spec("1", key="missing"))

    def invalid() -> Json:
        ready = condition(md(cluster, namespace, "wrongkey"), "Ready")
        assert (ready.get("status"), ready.get("reason")) == ("False", "InvalidSpec"), ready
        return ready

    ready = eventually(invalid, timeout=60)
    assert ready["message"] == (
        f"spec.runtime.auth.tokenSecretRef: Secret {namespace}/iris-token has no key missing"
    )
    # nothing is rendered that would start pods which can never get their token
    deployments = get_json(cluster, "-n", namespace, "deployments")["items"]
    assert deployments == []
