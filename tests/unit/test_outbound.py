"""The operator's outbound HTTP helper against real local HTTP servers (issue 12)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest
from modelroll.inference import runtime_error
from modelroll.outbound import (
    MAX_BODY_BYTES,
    DeadlineExceeded,
    Redirected,
    TooLarge,
    request,
)
from modelroll.smoke import UNREACHABLE_PAUSES, run_smoke_tests

SECRET = b"internal-secret-7f3a"


class _Internal(http.server.BaseHTTPRequestHandler):
    """Plays a server that only the operator's network position can reach."""

    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(SECRET)))
        self.end_headers()
        self.wfile.write(SECRET)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Hostile(http.server.BaseHTTPRequestHandler):
    internal_port: ClassVar[int] = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.do_GET()

    def do_GET(self) -> None:
        if self.path.startswith("/redirect"):
            body = b"redirect-body-91c2"
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.internal_port}/latest/meta")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/big-declared"):
            self.send_response(200)
            self.send_header("Content-Length", str(600 * 1024 * 1024))
            self.end_headers()
            self._stream(600)
        elif self.path.startswith("/big"):  # no Content-Length: read until the cap
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self._stream(600)
        elif self.path.startswith("/trickle-headers"):
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self._trickle(b"X-Slow: " + b"a" * 30)
        elif self.path.startswith("/trickle") or (
            self.path.startswith("/mixed") and self.path.endswith(":predict")
        ):  # /mixed answers V2 requests at once and trickles V1 ones
            self.send_response(200)
            self.send_header("Content-Length", "60")
            self.end_headers()
            self._trickle(b"b" * 60)
        elif self.path.startswith("/error"):
            body = json.dumps({"error": "input 'x' has shape [2]\n expected [4]"}).encode()
            self.send_response(400)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            body = b'{"outputs": []}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def _stream(self, mebibytes: int) -> None:
        chunk = b"x" * (1024 * 1024)
        try:
            for _ in range(mebibytes):
                self.wfile.write(chunk)
        except OSError:
            pass  # the client stopped reading, as it should

    def _trickle(self, data: bytes) -> None:
        try:
            for byte in data:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(1)
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    internal = _serve(_Internal)
    _Hostile.internal_port = internal.server_address[1]
    server = _serve(_Hostile)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    for started in (server, internal):
        started.shutdown()
        started.server_close()


def test_a_plain_answer_comes_back(hostile: str) -> None:
    answer = request("GET", f"{hostile}/ok")
    assert (answer.status, answer.body) == (200, b'{"outputs": []}')


def test_a_redirect_is_a_failure_and_is_never_followed(hostile: str) -> None:
    _Internal.hits.clear()
    for method in ("GET", "POST"):
        with pytest.raises(Redirected) as caught:
            request(method, f"{hostile}/redirect", body=b"{}" if method == "POST" else None)
        assert caught.value.status == 302
        assert "302" in str(caught.value)
        assert "redirect-body" not in str(caught.value) and "127.0.0.1" not in str(caught.value)
    assert _Internal.hits == []


@pytest.mark.parametrize("path", ["/big", "/big-declared"])
def test_a_huge_answer_stops_at_the_cap(hostile: str, path: str) -> None:
    started = time.monotonic()
    with pytest.raises(TooLarge, match="64 KiB"):
        request("GET", f"{hostile}{path}")
    assert time.monotonic() - started < 5  # it did not read 600 MiB first
    assert MAX_BODY_BYTES == 64 * 1024


@pytest.mark.parametrize("path", ["/trickle", "/trickle-headers"])
def test_a_trickle_hits_the_total_deadline(hostile: str, path: str) -> None:
    """One byte a second never trips a per-read timeout; the deadline is for the whole."""
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="within 3s"):
        request("GET", f"{hostile}{path}", deadline=3)
    assert 2.5 < time.monotonic() - started < 5


def test_nothing_listening_is_an_oserror() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(OSError):
        request("GET", f"http://127.0.0.1:{port}/", deadline=2)


def test_only_the_runtime_error_shape_is_summarised() -> None:
    assert runtime_error(b'{"error": "bad input\\n  shape"}') == "bad input shape"
    assert runtime_error(b'{"error": "x", "leak": "y"}') is None
    assert runtime_error(b'{"error": {"nested": 1}}') is None
    assert runtime_error(b"<html>secret</html>") is None
    assert len(runtime_error(json.dumps({"error": "e" * 5000}).encode()) or "") == 200


def test_smoke_messages_quote_no_body(hostile: str) -> None:
    _Internal.hits.clear()
    redirected = run_smoke_tests(
        f"{hostile}/redirect", "m", ({"body": {"inputs": []}, "expectStatus": 200},)
    )
    assert not redirected.passed
    assert "HTTP 302" in redirected.message
    assert "redirect-body" not in redirected.message and "internal-secret" not in redirected.message
    assert _Internal.hits == []
    big = run_smoke_tests(f"{hostile}/big", "m", ({"body": {"inputs": []}, "expectStatus": 200},))
    assert not big.passed and "64 KiB" in big.message
    mismatch = run_smoke_tests(
        f"{hostile}/ok",
        "m",
        (
            {
                "body": {"inputs": []},
                "expectStatus": 200,
                "expectOutputs": {"outputs": [{"name": "y"}]},
            },
        ),
    )
    assert not mismatch.passed and "unexpected outputs" in mismatch.message
    assert 'outputs": []' not in mismatch.message
    error = run_smoke_tests(
        f"{hostile}/error", "m", ({"body": {"inputs": []}, "expectStatus": 200},)
    )
    assert error.message.endswith(
        "HTTP 400, expected 200 (runtime error: input 'x' has shape [2] expected [4])"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_preview_not_reachable_yet_is_tried_again_until_it_answers() -> None:
    # kube-proxy programs a new endpoint a moment after the pod is Ready: refused, then served.
    port = _free_port()
    started: list[http.server.ThreadingHTTPServer] = []

    def pause(seconds: float) -> None:
        if not started:  # the first refusal: the endpoint appears during the pause
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Hostile)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            started.append(server)

    test = ({"body": {"inputs": []}, "expectStatus": 200},)
    result = run_smoke_tests(f"http://127.0.0.1:{port}/ok", "m", test, sleep=pause)
    started[0].shutdown()
    started[0].server_close()
    assert result.passed, result.message


def test_a_preview_that_stays_unreachable_fails_after_the_pauses() -> None:
    pauses: list[float] = []
    test = ({"body": {"inputs": []}, "expectStatus": 200},)
    result = run_smoke_tests(f"http://127.0.0.1:{_free_port()}", "m", test, sleep=pauses.append)
    assert not result.passed and "no answer from the preview" in result.message
    assert pauses == list(UNREACHABLE_PAUSES)


def test_a_first_request_that_times_out_is_tried_again(hostile: str) -> None:
    # a NetworkPolicy engine that has not learnt the new pod drops the packets: a timeout
    pauses: list[float] = []
    test = ({"body": {"inputs": []}, "expectStatus": 200},)
    slow = run_smoke_tests(f"{hostile}/trickle", "m", test, timeout=0.5, sleep=pauses.append)
    assert not slow.passed and pauses == list(UNREACHABLE_PAUSES)


def test_after_any_answer_nothing_is_retried(hostile: str) -> None:
    pauses: list[float] = []
    assert not run_smoke_tests(
        f"{hostile}/error", "m", ({"body": {"inputs": []}, "expectStatus": 200},)
    ).passed
    tests = (
        {"body": {"inputs": []}, "expectStatus": 200},
        {"body": {"instances": []}, "expectStatus": 200},  # V1: trickled past the deadline
    )
    result = run_smoke_tests(f"{hostile}/mixed", "m", tests, timeout=0.5, sleep=pauses.append)
    assert not result.passed and "request 2: no answer" in result.message, result.message
    assert pauses == []
