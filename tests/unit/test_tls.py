"""spec.runtime.tls: which TLS Secrets can serve, what clients trust, and the outbound helper
verifying a real local HTTPS server with it (CA, pinned certificate, wrong name, wrong CA)."""

from __future__ import annotations

import base64
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from modelroll.outbound import OutboundError, request
from modelroll.smoke import run_smoke_tests
from modelroll.tls import MAX_TRUST_BYTES, Trust, tls_problem, trust_key, trust_of

from tests.support.certs import Issued, issue

NAME = "iris.models.svc"
WHERE = "spec.runtime.tls.secretRef: Secret models/iris-tls"
BODY = b'{"outputs": [{"name": "predict", "data": [0]}]}'


def secret(issued: Issued, with_ca: bool = True) -> dict[str, Any]:
    return issued.secret("iris-tls", with_ca)


def with_data(body: dict[str, Any], **data: bytes | None) -> dict[str, Any]:
    changed = dict(body["data"])
    for key, value in data.items():
        key = key.replace("_", ".")
        if value is None:
            changed.pop(key, None)
        else:
            changed[key] = base64.b64encode(value).decode()
    return {**body, "data": changed}


@pytest.fixture(scope="module")
def issued() -> Issued:
    return issue(NAME)


def test_a_missing_secret_wrong_type_or_missing_key_is_named(issued: Issued) -> None:
    good = secret(issued)
    assert tls_problem(good, "models", "iris-tls") == ""
    assert tls_problem(None, "models", "iris-tls") == f"{WHERE} not found"
    opaque = {**good, "type": "Opaque"}
    assert tls_problem(opaque, "models", "iris-tls") == f"{WHERE} is not of type kubernetes.io/tls"
    for key in ("tls.crt", "tls.key"):
        missing = with_data(good, **{key.replace(".", "_"): None})
        assert tls_problem(missing, "models", "iris-tls") == f"{WHERE} has no key {key}"
        empty = with_data(good, **{key.replace(".", "_"): b""})
        assert tls_problem(empty, "models", "iris-tls") == f"{WHERE} has no key {key}"


def test_a_trust_bundle_that_is_no_certificate_or_too_large_is_named_without_its_bytes(
    issued: Issued,
) -> None:
    garbage = b"not-a-certificate-5d1e"
    problem = tls_problem(with_data(secret(issued), ca_crt=garbage), "models", "iris-tls")
    assert problem == f"{WHERE} key ca.crt holds no PEM certificate"
    huge = issued.ca_pem + b"#" * MAX_TRUST_BYTES
    problem = tls_problem(with_data(secret(issued), ca_crt=huge), "models", "iris-tls")
    assert problem == f"{WHERE} key ca.crt is larger than 64 KiB"
    # without ca.crt, tls.crt is the bundle that must hold a certificate
    no_ca = secret(issued, with_ca=False)
    problem = tls_problem(with_data(no_ca, tls_crt=garbage), "models", "iris-tls")
    assert problem == f"{WHERE} key tls.crt holds no PEM certificate"
    assert garbage.decode() not in problem


def test_clients_trust_ca_crt_or_else_only_the_leaf_of_tls_crt(issued: Issued) -> None:
    with_ca = trust_of(secret(issued), "iris", "models")
    assert with_ca == Trust(issued.ca_pem.decode().strip(), NAME)
    assert trust_key(secret(issued)) == "ca.crt"
    # tls.crt carrying its chain: the pin is the leaf alone, not the CA that signed it
    chained = with_data(secret(issued, with_ca=False), tls_crt=issued.cert_pem + issued.ca_pem)
    pinned = trust_of(chained, "iris", "models")
    assert trust_key(chained) == "tls.crt"
    assert pinned == Trust(issued.cert_pem.decode().strip(), NAME)


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_tls(issued: Issued, tmp: Path) -> http.server.ThreadingHTTPServer:
    cert, key, _ = issued.write(tmp)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def https(issued: Issued, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = serve_tls(issued, tmp_path_factory.mktemp("tls"))
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def post(url: str, trust: Trust) -> int:
    return request("POST", f"{url}/v2/models/iris/infer", b"{}", trust=trust).status


def test_the_certificate_is_verified_under_the_service_name_not_the_url_host(
    https: str, issued: Issued
) -> None:
    assert post(https, trust_of(secret(issued), "iris", "models")) == 200
    with pytest.raises(OutboundError, match="certificate verify failed"):
        post(https, trust_of(secret(issued), "other", "models"))  # not the name it carries


def test_a_pinned_tls_crt_is_trusted_alone(https: str, issued: Issued, tmp_path: Path) -> None:
    assert post(https, trust_of(secret(issued, with_ca=False), "iris", "models")) == 200
    # another certificate for the same name from the same CA is not the pinned one
    sibling = issue(NAME)
    same_ca = Issued(issued.ca_pem, sibling.cert_pem, sibling.key_pem)
    pin = trust_of(secret(same_ca, with_ca=False), "iris", "models")
    with pytest.raises(OutboundError, match="certificate verify failed"):
        post(https, pin)
    # and a self-signed certificate works by its pin
    own = issue(NAME, self_signed=True)
    server = serve_tls(own, tmp_path)
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}"
        assert post(url, trust_of(secret(own, with_ca=False), "iris", "models")) == 200
    finally:
        server.shutdown()
        server.server_close()


def test_another_ca_is_refused_and_the_smoke_message_names_no_body(
    https: str, issued: Issued
) -> None:
    stranger = trust_of(secret(issue(NAME)), "iris", "models")
    test = {"name": "setosa", "body": {"inputs": []}, "expectStatus": 200}
    result = run_smoke_tests(https, "iris", (test,), timeout=5, trust=stranger)
    assert not result.passed
    assert "certificate verify failed" in result.message
    assert BODY.decode() not in result.message
    good = trust_of(secret(issued), "iris", "models")
    assert run_smoke_tests(https, "iris", (test,), timeout=5, trust=good).passed


def test_plain_http_to_the_https_server_gets_no_answer(https: str, issued: Issued) -> None:
    with pytest.raises(OutboundError):
        request("POST", https.replace("https://", "http://") + "/v2/models/iris/infer", b"{}")
