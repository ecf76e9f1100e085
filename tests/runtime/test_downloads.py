"""Model downloads under quota (issue 12): a model above MODELROLL_MAX_MODEL_BYTES fails closed
with the reason, an https download never follows a redirect to http, and a presigned URL's
query string reaches neither the logs nor the termination message.

Each test starts the real runtime process against real local HTTP(S) servers; the https
ones trust a self-signed certificate through OpenSSL's standard SSL_CERT_FILE, and gs://
goes to a small stand-in for the GCS JSON API through google-cloud-storage's own emulator
setting (STORAGE_EMULATOR_HOST). s3:// (boto3 is not in the test environment) is not run."""

from __future__ import annotations

import http.server
import json
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from modelroll_runtime.source import display_uri, redirect_allowed

from tests.support.prerequisites import require

from .conftest import StartRuntime
from .runtime_process import RuntimeProcess

pytestmark = pytest.mark.runtime

SECRET = "c2VjcmV0LXNpZ25hdHVyZQ"
PRESIGNED_QUERY = (
    f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20260101"
    f"&X-Amz-Signature={SECRET}"
)
Route = Callable[[http.server.BaseHTTPRequestHandler], None]


@dataclass
class Server:
    """A local HTTP(S) server with per-path handlers, recording every path it was asked for."""

    url: str
    routes: dict[str, Route]
    requested: list[str] = field(default_factory=list)
    authorization: dict[str, str] = field(default_factory=dict)  # path -> its last header


def _serve(tls: ssl.SSLContext | None) -> Iterator[Server]:
    routes: dict[str, Route] = {}
    requested: list[str] = []
    authorization: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            path = self.path.split("?", 1)[0]
            authorization[path] = self.headers.get("Authorization", "")
            route = routes.get(path)
            if route is None:
                self.send_error(404)
            else:
                route(self)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    try:
        url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
        yield Server(url, routes, requested, authorization)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def plain_server() -> Iterator[Server]:
    yield from _serve(None)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require("openssl", needed_by="the https download tests")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[Server]:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    yield from _serve(context)


def file_route(body: bytes, content_length: bool = True) -> Route:
    def route(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        if content_length:
            handler.send_header("Content-Length", str(len(body)))
        else:  # HTTP/1.0 style: the body ends when the connection closes
            handler.close_connection = True
        handler.end_headers()
        handler.wfile.write(body)

    return route


def endless_route(handler: http.server.BaseHTTPRequestHandler) -> None:
    """A body that never ends, without a Content-Length: only the cap can stop its download."""
    handler.send_response(200)
    handler.close_connection = True
    handler.end_headers()
    chunk = b"\0" * 65536
    try:
        while True:
            handler.wfile.write(chunk)
    except OSError:  # the runtime hung up
        pass


def redirect_route(location: str) -> Route:
    def route(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


def load_failure(runtime: RuntimeProcess, tmp_path: Path) -> str:
    """The termination message of a runtime whose load failed (MODELROLL_EXIT_ON_LOAD_FAILURE)."""
    assert runtime.process is not None
    assert runtime.process.wait(timeout=60) != 0, runtime.logs()
    return (tmp_path / "termination-log").read_text()


def downloaded_files(tmp_path: Path) -> list[Path]:
    downloads = tmp_path / "downloads"
    return [p for p in downloads.rglob("*") if p.is_file() and p.suffix != ".lock"]


def test_a_model_above_the_cap_is_not_downloaded_and_the_reason_is_reported(
    affine_onnx: Path, plain_server: Server, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    model = (affine_onnx / "model.onnx").read_bytes()
    plain_server.routes["/model.onnx"] = file_route(model)
    runtime = start_runtime(
        wait="none",
        MODELROLL_MODEL_URI=f"{plain_server.url}/model.onnx",
        MODELROLL_MODEL_FORMAT="onnx",
        MODELROLL_MAX_MODEL_BYTES=str(len(model) - 1),
        MODELROLL_EXIT_ON_LOAD_FAILURE="true",
    )
    reason = load_failure(runtime, tmp_path)
    assert reason == (
        f"ModelLoadFailed: model at {plain_server.url}/model.onnx is larger than "
        f"MODELROLL_MAX_MODEL_BYTES ({len(model) - 1} bytes): {len(model)} bytes; "
        "refusing to download it"
    )
    assert downloaded_files(tmp_path) == []  # fails closed: nothing left to load later


def test_a_model_at_the_cap_loads(
    affine_onnx: Path, plain_server: Server, start_runtime: StartRuntime
) -> None:
    # the control for the test above: the same model and server, one byte more allowed
    model = (affine_onnx / "model.onnx").read_bytes()
    plain_server.routes["/model.onnx"] = file_route(model, content_length=False)
    runtime = start_runtime(
        MODELROLL_MODEL_URI=f"{plain_server.url}/model.onnx",
        MODELROLL_MODEL_FORMAT="onnx",
        MODELROLL_MAX_MODEL_BYTES=str(len(model)),
    )
    assert runtime.get("/v2/health/ready").status == 200


def test_an_endless_body_without_length_stops_at_the_cap(
    plain_server: Server, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    plain_server.routes["/model.onnx"] = endless_route
    cap = 5 * 2**20
    runtime = start_runtime(
        wait="none",
        MODELROLL_MODEL_URI=f"{plain_server.url}/model.onnx",
        MODELROLL_MODEL_FORMAT="onnx",
        MODELROLL_MAX_MODEL_BYTES=str(cap),
        MODELROLL_EXIT_ON_LOAD_FAILURE="true",
    )
    reason = load_failure(runtime, tmp_path)
    assert reason.startswith(
        f"ModelLoadFailed: model at {plain_server.url}/model.onnx is larger than "
        f"MODELROLL_MAX_MODEL_BYTES ({cap} bytes): more than {cap} bytes"
    )
    assert downloaded_files(tmp_path) == []


def test_an_https_download_does_not_follow_a_redirect_to_http(
    affine_onnx: Path,
    tls_server: Server,
    plain_server: Server,
    certificate: tuple[Path, Path],
    start_runtime: StartRuntime,
    tmp_path: Path,
) -> None:
    plain_server.routes["/model.onnx"] = file_route((affine_onnx / "model.onnx").read_bytes())
    tls_server.routes["/model.onnx"] = redirect_route(
        f"{plain_server.url}/model.onnx?{PRESIGNED_QUERY}"
    )
    runtime = start_runtime(
        wait="none",
        SSL_CERT_FILE=str(certificate[0]),
        MODELROLL_MODEL_URI=f"{tls_server.url}/model.onnx",
        MODELROLL_MODEL_FORMAT="onnx",
        MODELROLL_EXIT_ON_LOAD_FAILURE="true",
    )
    reason = load_failure(runtime, tmp_path)
    assert reason == (
        f"ModelLoadFailed: download of {tls_server.url}/model.onnx refused: it redirects (302) "
        f"to {plain_server.url}/model.onnx, and an https download follows only https"
    )
    assert tls_server.requested == ["/model.onnx"]
    assert plain_server.requested == []  # the plain-http URL was never fetched
    assert SECRET not in runtime.logs()


def test_an_https_download_follows_a_redirect_to_https(
    affine_onnx: Path,
    tls_server: Server,
    certificate: tuple[Path, Path],
    start_runtime: StartRuntime,
) -> None:
    # the control for the test above: the certificate is trusted and redirects are followed
    tls_server.routes["/stored/model.onnx"] = file_route((affine_onnx / "model.onnx").read_bytes())
    tls_server.routes["/model.onnx"] = redirect_route(f"{tls_server.url}/stored/model.onnx")
    runtime = start_runtime(
        SSL_CERT_FILE=str(certificate[0]),
        MODELROLL_MODEL_URI=f"{tls_server.url}/model.onnx",
        MODELROLL_MODEL_FORMAT="onnx",
    )
    assert runtime.get("/v2/health/ready").status == 200
    assert tls_server.requested == ["/model.onnx", "/stored/model.onnx"]


def test_a_presigned_url_is_logged_without_its_query_string(
    affine_onnx: Path, plain_server: Server, start_runtime: StartRuntime
) -> None:
    plain_server.routes["/bucket/model.onnx"] = file_route(
        (affine_onnx / "model.onnx").read_bytes()
    )
    uri = f"{plain_server.url}/bucket/model.onnx?{PRESIGNED_QUERY}"
    runtime = start_runtime(MODELROLL_MODEL_URI=uri, MODELROLL_MODEL_FORMAT="onnx")
    assert plain_server.requested == [f"/bucket/model.onnx?{PRESIGNED_QUERY}"]  # sent as given
    logs = runtime.logs()
    assert f'"uri":"{plain_server.url}/bucket/model.onnx"' in logs
    assert '"msg":"downloaded"' in logs
    assert SECRET not in logs
    assert "X-Amz-Credential" not in logs


def test_a_failed_presigned_download_reports_no_query_string(
    plain_server: Server, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    uri = f"{plain_server.url}/bucket/expired.onnx?{PRESIGNED_QUERY}"
    runtime = start_runtime(
        wait="none",
        MODELROLL_MODEL_URI=uri,
        MODELROLL_MODEL_FORMAT="onnx",
        MODELROLL_EXIT_ON_LOAD_FAILURE="true",
    )
    reason = load_failure(runtime, tmp_path)
    assert reason == (
        f"ModelLoadFailed: download of {plain_server.url}/bucket/expired.onnx failed: "
        "HTTP Error 404: Not Found"
    )
    assert SECRET not in runtime.logs()


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("https://b.s3.amazonaws.com/m.onnx?X-Amz-Signature=abc", "https://b.s3.amazonaws.com/m.onnx"),
        ("https://user:pw@host:8443/a/m.onnx#frag", "https://host:8443/a/m.onnx"),
        ("https://acct.blob.core.windows.net/c/m.onnx?sv=1&sig=xyz", "https://acct.blob.core.windows.net/c/m.onnx"),
        ("s3://bucket/prefix/", "s3://bucket/prefix/"),
        ("/mnt/models/iris", "/mnt/models/iris"),
    ],
)  # fmt: skip
def test_display_uri_drops_credentials_query_and_fragment(uri: str, shown: str) -> None:
    assert display_uri(uri) == shown


@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        ("https://a/m", "https://b/m", True),
        ("https://a/m", "http://b/m", False),
        ("HTTPS://a/m", "HTTP://a/m", False),
        ("https://a/m", "ftp://b/m", False),
        ("http://a/m", "https://b/m", True),
        ("http://a/m", "http://b/m", True),
        ("http://a/m", "file:///etc/passwd", False),
    ],
)
def test_redirect_policy(source: str, target: str, allowed: bool) -> None:
    assert redirect_allowed(source, target) is allowed


@pytest.fixture
def gcs_server(affine_onnx: Path) -> Iterator[Server]:
    """google-cloud-storage's JSON API as its emulator mode (STORAGE_EMULATOR_HOST) speaks it:
    one bucket holding the affine model under models/affine/."""
    model = (affine_onnx / "model.onnx").read_bytes()
    name = "models/affine/model.onnx"
    listing = {"kind": "storage#objects", "items": [{"name": name, "size": str(len(model))}]}
    for server in _serve(None):
        server.routes["/storage/v1/b/bucket/o"] = file_route(json.dumps(listing).encode())
        server.routes["/storage/v1/b/bucket"] = file_route(b'{"name": "bucket"}')
        server.routes[f"/download/storage/v1/b/bucket/o/{quote(name, safe='')}"] = file_route(model)
        yield server


def test_a_gs_model_above_the_cap_is_refused_from_its_listing(
    affine_onnx: Path, gcs_server: Server, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    size = (affine_onnx / "model.onnx").stat().st_size
    runtime = start_runtime(
        wait="none",
        STORAGE_EMULATOR_HOST=gcs_server.url,
        MODELROLL_MODEL_URI="gs://bucket/models/affine/",
        MODELROLL_MODEL_FORMAT="onnx",
        MODELROLL_MAX_MODEL_BYTES=str(size - 1),
        MODELROLL_EXIT_ON_LOAD_FAILURE="true",
    )
    reason = load_failure(runtime, tmp_path)
    assert reason == (
        "ModelLoadFailed: model at gs://bucket/models/affine/ is larger than "
        f"MODELROLL_MAX_MODEL_BYTES ({size - 1} bytes): {size} bytes; refusing to download it"
    )
    assert gcs_server.requested  # the listing was asked for ...
    assert not [p for p in gcs_server.requested if p.startswith("/download/")]  # ... no object
    assert downloaded_files(tmp_path) == []


def test_a_gs_model_at_the_cap_loads(
    affine_onnx: Path, gcs_server: Server, start_runtime: StartRuntime
) -> None:
    # the control for the test above: the same fake bucket serves the model to the runtime
    runtime = start_runtime(
        STORAGE_EMULATOR_HOST=gcs_server.url,
        MODELROLL_MODEL_URI="gs://bucket/models/affine/",
        MODELROLL_MODEL_FORMAT="onnx",
        MODELROLL_MAX_MODEL_BYTES=str((affine_onnx / "model.onnx").stat().st_size),
    )
    assert runtime.get("/v2/health/ready").status == 200
    assert [p for p in gcs_server.requested if p.startswith("/download/")]


def service_account_key(token_uri: str) -> str:
    """A service account key file's JSON, with a fresh RSA key, for a token endpoint of ours."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "models-project",
            "private_key_id": "k1",
            "private_key": pem,
            "client_email": "loader@models-project.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": token_uri,
        }
    )


def test_a_gs_service_account_key_given_as_the_variable_value_is_used(
    gcs_server: Server, start_runtime: StartRuntime
) -> None:
    """The credentials Secret's GOOGLE_APPLICATION_CREDENTIALS key holds the key file's
    contents, and reaches the pod as that value: the runtime signs in with it (the token
    exchange at the key's token_uri) and lists and downloads with the token it got."""
    token = {"access_token": "ya29.e2e-token", "expires_in": 3600, "token_type": "Bearer"}
    gcs_server.routes["/token"] = file_route(json.dumps(token).encode())
    runtime = start_runtime(
        STORAGE_EMULATOR_HOST=gcs_server.url,
        GOOGLE_APPLICATION_CREDENTIALS=service_account_key(f"{gcs_server.url}/token"),
        MODELROLL_MODEL_URI="gs://bucket/models/affine/",
        MODELROLL_MODEL_FORMAT="onnx",
    )
    assert runtime.get("/v2/health/ready").status == 200
    assert "/token" in gcs_server.requested
    assert gcs_server.authorization["/storage/v1/b/bucket/o"] == "Bearer ya29.e2e-token"


def test_a_gs_credentials_value_that_is_not_a_key_fails_without_echoing_it(
    gcs_server: Server, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    secret = '{"private_key": "-----BEGIN PRIVATE KEY-----\\nc2VjcmV0\\n"'  # not even JSON
    runtime = start_runtime(
        wait="none",
        STORAGE_EMULATOR_HOST=gcs_server.url,
        GOOGLE_APPLICATION_CREDENTIALS=secret,
        MODELROLL_MODEL_URI="gs://bucket/models/affine/",
        MODELROLL_MODEL_FORMAT="onnx",
        MODELROLL_EXIT_ON_LOAD_FAILURE="true",
    )
    reason = load_failure(runtime, tmp_path)
    assert reason == (
        "ModelLoadFailed: GOOGLE_APPLICATION_CREDENTIALS holds JSON that is not a service "
        "account key (JSONDecodeError)"
    ), reason
    assert "c2VjcmV0" not in runtime.logs()
    assert not gcs_server.requested
