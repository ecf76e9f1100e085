"""The operator's own API connection, against a real HTTP server on loopback: credentials
sent, a rotated service-account token picked up, and no kubernetes client in the process."""

from __future__ import annotations

import base64
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import kopf
import pytest
from modelroll.kube import Kube
from modelroll.kube_transport import TOKEN_REREAD_SECONDS, HttpTransport, login


class Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, str | None, bytes]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.seen.append((self.command, self.path, self.headers.get("Authorization"), body))
        status = 404 if "missing" in self.path else 200
        data = b'{"kind":"Status"}' if status == 404 else b'{"ok":true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = _answer

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Recorder.seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_requests_carry_the_token_the_query_and_the_json_body(server: str) -> None:
    kube = Kube(HttpTransport(kopf.ConnectionInfo(server=server, token="t0")))
    assert kube.request("PATCH", "/api/v1/x", {"a": 1}, [("fieldManager", "m")]) == {"ok": True}
    assert kube.get("/api/v1/missing") is None
    assert Recorder.seen[0] == ("PATCH", "/api/v1/x?fieldManager=m", "Bearer t0", b'{"a":1}')
    assert Recorder.seen[1][:3] == ("GET", "/api/v1/missing", "Bearer t0")


def test_basic_credentials_go_when_there_is_no_token(server: str) -> None:
    info = kopf.ConnectionInfo(server=server, username="u", password="p")
    Kube(HttpTransport(info)).get("/api/v1/x")
    assert Recorder.seen[0][2] == "Basic " + base64.b64encode(b"u:p").decode()


def test_a_rotated_service_account_token_is_read_again_after_a_minute(
    server: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    now = [0.0]
    transport = HttpTransport(
        kopf.ConnectionInfo(server=server, token="first"),
        token_file=str(token_file),
        clock=lambda: now[0],
    )
    kube = Kube(transport)
    token_file.write_text("second\n")  # the kubelet rotated it
    kube.get("/api/v1/a")
    now[0] = TOKEN_REREAD_SECONDS
    kube.get("/api/v1/b")
    assert [auth for _, _, auth, _ in Recorder.seen] == ["Bearer first", "Bearer second"]


def test_the_operator_process_never_imports_the_kubernetes_client() -> None:
    script = (
        "import sys, modelroll.__main__ as entry\n"
        "entry.without_kubernetes_client()\n"
        "import kopf, modelroll.handlers, modelroll.leader\n"
        "print(sorted(m for m, v in sys.modules.items() if m.startswith('kubernetes') and v))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"


def write_kubeconfig(path: Path, user: dict[str, object], context: str = "here") -> None:
    path.write_text(
        json.dumps(
            {
                "current-context": context,
                "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
                "users": [{"name": "u", "user": user}],
            }
        )
    )


def test_a_kubeconfig_token_file_is_read_relative_to_the_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "admin.token").write_text("secret\n")
    write_kubeconfig(tmp_path / "config", {"tokenFile": "admin.token"})
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    found = login()
    assert found.info.server == "https://10.0.0.1:6443"
    assert found.info.token == "secret"
    assert found.token_file == str(tmp_path / "admin.token")  # reread as it rotates


def test_an_exec_plugin_user_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_kubeconfig(tmp_path / "config", {"exec": {"command": "aws"}})
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    with pytest.raises(kopf.LoginError, match="user u: exec"):
        login()
