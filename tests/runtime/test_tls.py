"""MODELROLL_TLS_CERT_FILE/KEY_FILE: the real runtime serves HTTPS only, with a certificate
a test CA signed; a client that trusts the CA gets answers, plain HTTP on the port gets none,
and a certificate the runtime cannot load stops it at start."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.certs import Issued, client_context, issue

from .models import TrainedModel
from .runtime_process import RuntimeProcess

pytestmark = pytest.mark.runtime
SETOSA = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}
    ]
}


def runtime_env(model: TrainedModel, cache: Path, cert: Path, key: Path) -> dict[str, str]:
    return {
        "MODELROLL_MODEL_URI": str(model.directory),
        "MODELROLL_MODEL_FORMAT": "sklearn",
        "MODELROLL_MODEL_NAME": "iris",
        "MODELROLL_CACHE_DIR": str(cache),
        "MODELROLL_TLS_CERT_FILE": str(cert),
        "MODELROLL_TLS_KEY_FILE": str(key),
    }


@pytest.fixture(scope="module")
def issued() -> Issued:
    return issue("localhost", "iris.models.svc")


@pytest.fixture(scope="module")
def tls_runtime(
    tmp_path_factory: pytest.TempPathFactory,
    sklearn_model: TrainedModel,
    compile_cache: Path,
    issued: Issued,
) -> Iterator[RuntimeProcess]:
    work = tmp_path_factory.mktemp("tls")
    cert, key, _ = issued.write(work / "secret")
    runtime = RuntimeProcess(
        runtime_env(sklearn_model, compile_cache, cert, key),
        work / "runtime.log",
        tls=client_context(issued.ca_pem),
    ).start()
    runtime.wait_ready()
    yield runtime
    runtime.stop()


def test_https_verified_with_the_ca_answers_every_endpoint(tls_runtime: RuntimeProcess) -> None:
    assert tls_runtime.get("/v2/health/ready").status == 200
    assert tls_runtime.get("/v2/health/live").status == 200
    answer = tls_runtime.post_json("/v2/models/iris/infer", SETOSA)
    assert answer.status == 200, answer.body
    assert answer.json()["outputs"][0]["data"] == [0]
    metrics = tls_runtime.get("/metrics")
    assert metrics.status == 200 and b"modelroll_" in metrics.body


def test_grpc_is_tls_too_with_the_same_certificate(
    tls_runtime: RuntimeProcess, issued: Issued
) -> None:
    # in a child process: tritonclient's protobuf messages and ours share one registry
    script = f"""
import grpc, sys
import tritonclient.grpc as g
options = [("grpc.ssl_target_name_override", "iris.models.svc")]
client = g.InferenceServerClient(
    "127.0.0.1:{tls_runtime.grpc_port}", ssl=True, root_certificates=sys.argv[1],
    channel_args=options,
)
assert client.is_server_ready()
plain = grpc.insecure_channel("127.0.0.1:{tls_runtime.grpc_port}")
try:
    grpc.channel_ready_future(plain).result(timeout=3)
    print("plain connected")
except grpc.FutureTimeoutError:
    print("plain refused")
"""
    ca = tls_runtime.log_file.parent / "grpc-ca.crt"
    ca.write_bytes(issued.ca_pem)
    result = subprocess.run(
        [sys.executable, "-c", script, str(ca)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "plain refused"


def test_plain_http_on_the_same_port_gets_no_http_answer(tls_runtime: RuntimeProcess) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", tls_runtime.port, timeout=5)
    with pytest.raises((http.client.HTTPException, OSError)):
        connection.request("POST", "/v2/models/iris/infer", json.dumps(SETOSA).encode())
        connection.getresponse()
    connection.close()
    # and curl, as an operator would try it
    curl = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
         f"http://127.0.0.1:{tls_runtime.port}/v2/health/ready"],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert curl.returncode != 0 and curl.stdout == "000", curl


def test_curl_with_the_ca_and_tls_1_2_is_answered(
    tls_runtime: RuntimeProcess, issued: Issued, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(issued.ca_pem)
    url = f"https://iris.models.svc:{tls_runtime.port}/v2/health/ready"
    resolve = f"iris.models.svc:{tls_runtime.port}:127.0.0.1"
    for versions in ([], ["--tlsv1.2", "--tls-max", "1.2"]):
        curl = subprocess.run(
            ["curl", "-sS", "--cacert", str(ca), "--resolve", resolve, *versions, url],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        assert curl.returncode == 0 and json.loads(curl.stdout) == {"ready": True}, curl


def test_a_client_that_does_not_trust_the_ca_is_refused(tls_runtime: RuntimeProcess) -> None:
    other = client_context(issue("localhost").ca_pem)
    connection = http.client.HTTPSConnection(
        "localhost", tls_runtime.port, timeout=5, context=other
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        connection.request("GET", "/v2/health/ready")
    connection.close()


def run_until_exit(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelroll_runtime"],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("MODELROLL_")},
            "MODELROLL_WORKERS": "1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_key_that_does_not_match_the_certificate_stops_the_runtime_at_start(
    tmp_path: Path, sklearn_model: TrainedModel, compile_cache: Path
) -> None:
    cert, _, _ = issue("localhost").write(tmp_path / "one")
    _, key, _ = issue("localhost").write(tmp_path / "other")
    ended = run_until_exit(runtime_env(sklearn_model, compile_cache, cert, key))
    assert ended.returncode == 2, ended
    assert "InvalidConfig: MODELROLL_TLS_CERT_FILE=" in ended.stdout + ended.stderr
    assert "not a usable certificate and key" in ended.stdout + ended.stderr


def test_a_certificate_without_its_key_setting_stops_the_runtime_at_start(
    tmp_path: Path, sklearn_model: TrainedModel, compile_cache: Path
) -> None:
    cert, key, _ = issue("localhost").write(tmp_path)
    env = runtime_env(sklearn_model, compile_cache, cert, key)
    del env["MODELROLL_TLS_KEY_FILE"]
    ended = run_until_exit(env)
    assert ended.returncode == 2, ended
    assert "MODELROLL_TLS_CERT_FILE and MODELROLL_TLS_KEY_FILE go together" in (
        ended.stdout + ended.stderr
    )
