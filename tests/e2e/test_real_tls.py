"""spec.runtime.tls on the real node: runtime pods that serve HTTPS with a certificate from a
kubernetes.io/tls Secret (made here by a test CA), kubelet probes over HTTPS, `curl --cacert`
to the Service's ClusterIP, plain HTTP refused, and the operator's blue-green smoke test
over https, verified with the Secret's ca.crt."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    ModelStore,
    cluster_ip,
    model_deployment_from_example,
    set_version,
    wait_ready,
)
from tests.integration.helpers import apply, eventually, get_json
from tests.support.certs import issue
from tests.support.cluster import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("installed_operator")]
SETOSA = json.dumps(
    {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                 "data": [5.1, 3.5, 1.4, 0.2]}]}
)  # fmt: skip


def stable_version(cluster: Cluster, namespace: str, name: str) -> str:
    md: dict[str, Any] = get_json(cluster, "-n", namespace, "modeldeployment", name)
    status = md.get("status") or {}
    stable = status.get("stableRevision")
    return next((r["version"] for r in status.get("revisions", []) if r["name"] == stable), "")


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True, timeout=20
    )


def test_with_runtime_tls_curl_cacert_to_the_cluster_ip_works_plain_http_does_not_and_smoke_passes(
    real_cluster: Cluster, restricted_namespace: str, model_store: ModelStore, tmp_path: Path
) -> None:
    ns = restricted_namespace
    name = f"iris-bg.{ns}.svc"
    issued = issue(name, f"iris-bg.{ns}.svc.cluster.local")
    real_cluster.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(issued.secret("iris-tls")))
    ca = tmp_path / "ca.crt"
    ca.write_bytes(issued.ca_pem)
    body = model_deployment_from_example("bluegreen.yaml", model_store, "1")
    body["spec"]["replicas"] = 1
    body["spec"].setdefault("runtime", {})["tls"] = {"secretRef": {"name": "iris-tls"}}
    apply(real_cluster, ns, body)
    wait_ready(real_cluster, ns, "iris-bg")  # the kubelet's HTTPS probes pass
    ip = cluster_ip(real_cluster, ns, "iris-bg")
    infer = f"https://{name}/v2/models/iris-bg/infer"
    to_ip = ["--resolve", f"{name}:443:{ip}"]
    post = ["-H", "Content-Type: application/json", "--data", SETOSA]

    answered = curl("--cacert", str(ca), *to_ip, *post, infer)
    assert answered.returncode == 0, answered
    assert json.loads(answered.stdout)["outputs"][0]["data"] == [0]
    # plain HTTP on the HTTPS port gets no HTTP answer, and there is no port 80
    for url in (f"http://{ip}:443/v2/models/iris-bg/infer", f"http://{ip}/v2/health/ready"):
        plain = curl("-o", "/dev/null", "-w", "%{http_code}", *post, url)
        assert plain.returncode != 0 and plain.stdout == "000", (url, plain)
    # a client that trusts another CA is refused in the handshake: curl 60 (certificate not
    # verified) or, as the test CAs share a name, 35 (the CA's key does not verify it)
    stranger = tmp_path / "stranger.crt"
    stranger.write_bytes(issue(name).ca_pem)
    refused = curl("--cacert", str(stranger), *to_ip, *post, infer)
    assert refused.returncode in (35, 60) and refused.stdout == "", refused

    set_version(body, model_store, "2")
    apply(real_cluster, ns, body)
    # promoted only when the smoke test, over https to the preview, verified and passed
    eventually(lambda: stable_version(real_cluster, ns, "iris-bg") == "2", timeout=300, interval=1)
    events = get_json(
        real_cluster, "-n", ns, "events", "--field-selector", "involvedObject.name=iris-bg"
    )["items"]
    assert "SmokeTestPassed" in {e["reason"] for e in events}
    answered = curl("--cacert", str(ca), *to_ip, *post, infer)
    assert answered.returncode == 0 and json.loads(answered.stdout)["outputs"], answered
