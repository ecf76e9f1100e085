"""spec.runtime.tls on the real control plane, against a real runtime process serving HTTPS.

kwok pods never run, so a real runtime with the Secret's certificate plays the preview pods.
The session's router speaks plain HTTP, so the smoke-test test runs its own operator whose
Service URL template leads straight to that runtime: with TLS the operator speaks https://
to it and verifies its certificate under `<name>.<namespace>.svc` with the Secret's ca.crt.
"""

from __future__ import annotations

import json
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
from tests.support.certs import Issued, client_context, issue
from tests.support.prometheus import start_runtime

pytestmark = pytest.mark.integration
Json = dict[str, Any]
# Unique, so that finding it where it must not be (status, Events) is meaningful.
MARKER = f"key-{uuid.uuid4().hex}"


def spec(version: str, secret: str = "iris-tls") -> Json:
    return smoke_tested_iris_spec(version, {"tls": {"secretRef": {"name": secret}}})


def create_secret(cluster: Cluster, namespace: str, body: Json) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))


def md(cluster: Cluster, namespace: str, name: str) -> Json:
    return get_json(cluster, "-n", namespace, "md", name)


def events(cluster: Cluster, namespace: str, name: str) -> list[Json]:
    items: list[Json] = get_json(
        cluster, "-n", namespace, "events", "--field-selector", f"involvedObject.name={name}"
    )["items"]
    return items


def invalid_spec(cluster: Cluster, namespace: str, name: str) -> Json:
    ready = condition(md(cluster, namespace, name), "Ready")
    assert (ready.get("status"), ready.get("reason")) == ("False", "InvalidSpec"), ready
    return ready


def test_tls_renders_https_probes_the_secret_volume_and_port_443(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    create_secret(cluster, namespace, issue(f"iris.{namespace}.svc").secret("iris-tls"))
    v1 = spec("1")
    apply_md(cluster, namespace, "iris", v1)

    def deployed() -> Json:
        status = md(cluster, namespace, "iris").get("status") or {}
        assert status.get("stableRevision") == revision_of(v1, "x"), status
        return status

    status = eventually(deployed, timeout=90)
    assert status["url"] == f"https://iris.{namespace}.svc.cluster.local/v2/models/iris/infer"
    deployment = get_json(cluster, "-n", namespace, "deployment", f"iris-{revision_of(v1, 'x')}")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS", container[probe]
    assert container["ports"][0]["name"] == "https"
    (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert volume["secret"]["secretName"] == "iris-tls"
    assert {"name": "tls", "mountPath": "/etc/modelroll/tls", "readOnly": True} in container[
        "volumeMounts"
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODELROLL_TLS_CERT_FILE"] == "/etc/modelroll/tls/tls.crt"
    service = get_json(cluster, "-n", namespace, "service", "iris")
    assert [(p["name"], p["port"], p.get("appProtocol")) for p in service["spec"]["ports"]] == [
        ("https", 443, "https"),
        ("grpc", 8081, "grpc"),
    ]


def test_a_missing_or_unfit_tls_secret_is_an_invalid_spec_with_one_event(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply_md(cluster, namespace, "nosecret", spec("1", secret="absent"))
    ready = eventually(lambda: invalid_spec(cluster, namespace, "nosecret"), timeout=60)
    assert ready["message"] == f"spec.runtime.tls.secretRef: Secret {namespace}/absent not found"
    # nothing is rendered that would start pods which can never get their certificate
    assert get_json(cluster, "-n", namespace, "deployments")["items"] == []

    # an Opaque Secret, and one without tls.key, are named for what they lack, never quoted
    cluster.kubectl(
        "-n", namespace, "create", "secret", "generic", "opaque", f"--from-literal=tls.key={MARKER}"
    )
    apply_md(cluster, namespace, "opaque", spec("1", secret="opaque"))
    ready = eventually(lambda: invalid_spec(cluster, namespace, "opaque"), timeout=60)
    assert ready["message"] == (
        f"spec.runtime.tls.secretRef: Secret {namespace}/opaque is not of type kubernetes.io/tls"
    )
    keyless = issue("x").secret("keyless")
    keyless["data"]["tls.key"] = ""  # the API server insists on the key, not on a value
    create_secret(cluster, namespace, keyless)
    apply_md(cluster, namespace, "keyless", spec("1", secret="keyless"))
    ready = eventually(lambda: invalid_spec(cluster, namespace, "keyless"), timeout=60)
    assert ready["message"].endswith(f"Secret {namespace}/keyless has no key tls.key")

    # one Event per problem, not one per resync
    operator_events = [
        e for e in events(cluster, namespace, "nosecret") if e["reason"] == "InvalidSpec"
    ]
    assert len(operator_events) == 1 and operator_events[0].get("count", 1) == 1, operator_events
    everything = cluster.kubectl("-n", namespace, "get", "events,md", "-o", "json").stdout
    assert MARKER not in everything

    # the Secret appears: the next resync renders
    create_secret(cluster, namespace, issue(f"nosecret.{namespace}.svc").secret("absent"))

    def rendered() -> list[Json]:
        items: list[Json] = get_json(cluster, "-n", namespace, "deployments")["items"]
        assert [d["metadata"]["name"] for d in items if "nosecret" in d["metadata"]["name"]]
        return items

    eventually(rendered, timeout=60)


@pytest.fixture
def tls_runtime(
    tmp_path_factory: pytest.TempPathFactory, namespace: str
) -> Iterator[tuple[RuntimeProcess, Issued]]:
    """A real runtime serving the certificate of `iris.<namespace>.svc` (and localhost, the
    name the test's own readiness polls use)."""
    work = tmp_path_factory.mktemp("tls")
    issued = issue(f"iris.{namespace}.svc", "localhost")
    cert, key, _ = issued.write(work / "secret")
    model = train_sklearn(work / "model")
    runtime = start_runtime(
        model.directory, work / "runtime.log", work / "cache", model_name="iris",
        MODELROLL_TLS_CERT_FILE=str(cert), MODELROLL_TLS_KEY_FILE=str(key),
    )  # fmt: skip
    runtime.tls = client_context(issued.ca_pem)
    runtime.wait_ready()
    yield runtime, issued
    runtime.stop()


def stable_is(cluster: Cluster, namespace: str, revision: str) -> Json:
    status = md(cluster, namespace, "iris").get("status") or {}
    assert status.get("stableRevision") == revision, status
    return status


def test_the_smoke_test_and_predict_speak_https_verified_with_the_secrets_ca(
    cluster: Cluster,
    operator: OperatorProcess,
    namespace: str,
    tls_runtime: tuple[RuntimeProcess, Issued],
    tmp_path: Path,
) -> None:
    runtime, issued = tls_runtime
    create_secret(cluster, namespace, issued.secret("iris-tls"))
    operator.stop()  # one operator at a time, as the Recreate strategy guarantees in-cluster
    # http:// on purpose: the operator must switch to https:// for a TLS runtime
    direct = OperatorProcess(
        cluster,
        str(tmp_path),
        {
            **operator.extra_env,
            "MODELROLL_SERVICE_URL_TEMPLATE": f"http://127.0.0.1:{runtime.port}",
        },
    )
    try:
        direct.start()
        v1, v2, v3 = spec("1"), spec("2"), spec("3")
        apply_md(cluster, namespace, "iris", v1)
        eventually(lambda: stable_is(cluster, namespace, revision_of(v1, "x")), timeout=90)
        apply_md(cluster, namespace, "iris", v2)
        eventually(lambda: stable_is(cluster, namespace, revision_of(v2, "x")), timeout=120)
        assert "SmokeTestPassed" in {e["reason"] for e in events(cluster, namespace, "iris")}

        # `modelroll predict` verifies the same way, with the user's kubeconfig
        predicted = CliRunner().invoke(
            app,
            ["predict", "iris", "-n", namespace, "--kubeconfig", cluster.kubeconfig,
             "--url", f"https://127.0.0.1:{runtime.port}", "--data", json.dumps(SETOSA)],
        )  # fmt: skip
        assert predicted.exit_code == 0, predicted.output
        assert json.loads(predicted.output)["outputs"][0]["data"] == [0]

        # a ca.crt that did not sign the runtime's certificate: the smoke test fails and
        # v3 is not promoted, whatever the runtime would answer
        stranger = issue(f"iris.{namespace}.svc")
        create_secret(
            cluster,
            namespace,
            Issued(stranger.ca_pem, issued.cert_pem, issued.key_pem).secret("iris-tls"),
        )
        apply_md(cluster, namespace, "iris", v3)

        def smoke_failed() -> Json:
            degraded = condition(md(cluster, namespace, "iris"), "Degraded")
            assert "certificate verify failed" in degraded.get("message", ""), degraded
            return degraded

        eventually(smoke_failed, timeout=120)
        stable_is(cluster, namespace, revision_of(v2, "x"))
        refused = CliRunner().invoke(
            app,
            ["predict", "iris", "-n", namespace, "--kubeconfig", cluster.kubeconfig,
             "--url", f"https://127.0.0.1:{runtime.port}", "--data", json.dumps(SETOSA)],
        )  # fmt: skip
        assert refused.exit_code != 0 and "certificate verify failed" in refused.output
    finally:
        direct.stop()
        operator.start()
