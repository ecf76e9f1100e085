"""The slow-body denial of service: clients that send headers and then trickle (or stall) a
body must not hold the in-flight slots, must be cut off at the body deadline, and readiness
must say whether the server can take requests."""

from __future__ import annotations

import resource
import selectors
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .conftest import StartRuntime
from .models import TrainedModel, onnx_model
from .runtime_process import RuntimeProcess

pytestmark = pytest.mark.runtime

SLOW_CLIENTS = 1100  # more than the default MODELROLL_MAX_INFLIGHT (1024)
DEADLINE_S = 3.0
# Each slow client costs one fd here and one in the runtime (a child inherits this limit).
NEEDED_FDS = SLOW_CLIENTS + 256


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < NEEDED_FDS:
        if hard != resource.RLIM_INFINITY and hard < NEEDED_FDS:
            raise AssertionError(f"fd hard limit {hard} is below the {NEEDED_FDS} this test needs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (NEEDED_FDS, hard))


def half_sent_body(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    )
    return sock


def wait_closed(sockets: list[socket.socket], deadline: float) -> list[socket.socket]:
    """Read every socket until the server closes it or `deadline` passes; the ones left open."""
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    open_ = set(sockets)
    while open_ and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
            fileobj = key.fileobj
            assert isinstance(fileobj, socket.socket)
            sock = fileobj
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                selector.unregister(sock)
                open_.discard(sock)
    selector.close()
    return list(open_)


@pytest.fixture
def iris(sklearn_model: TrainedModel, start_runtime: StartRuntime) -> RuntimeProcess:
    raise_fd_limit()
    return start_runtime(
        MODELROLL_MODEL_NAME="iris",
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_BODY_TIMEOUT_SECONDS=str(DEADLINE_S),
    )


BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",
                    "data": [5.1, 3.5, 1.4, 0.2]}]}  # fmt: skip


def poll(runtime: RuntimeProcess, stop: threading.Event) -> list[tuple[int, int]]:
    """(readiness, infer) statuses, asked again and again until `stop`."""
    seen: list[tuple[int, int]] = []
    while not stop.is_set():
        ready = runtime.get("/v2/health/ready").status
        seen.append((ready, runtime.post_json("/v2/models/iris/infer", BODY).status))
        time.sleep(0.1)
    return seen


def test_half_sent_bodies_do_not_block_other_clients(iris: RuntimeProcess) -> None:
    slow: list[socket.socket] = []
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        try:
            opened = time.monotonic()
            for _ in range(SLOW_CLIENTS):
                slow.append(half_sent_body(iris.port))
            time.sleep(0.5)  # let the server take every one of them up
            started = time.monotonic()
            response = iris.post_json("/v2/models/iris/infer", BODY)
            elapsed = time.monotonic() - started
            assert response.status == 200, response.body
            assert elapsed < 1.0
            # readiness is truthful throughout: it says 200 and the server does serve
            polled = pool.submit(poll, iris, stop)
            # every slow connection is closed by the body deadline (plus scheduling slack)
            left_open = wait_closed(slow, opened + DEADLINE_S + 3.0)
            assert left_open == [], f"{len(left_open)} slow connections outlived the deadline"
        finally:
            stop.set()
            for sock in slow:
                sock.close()
        seen = polled.result(timeout=30)
    assert seen and set(seen) == {(200, 200)}, seen
    assert iris.post_json("/v2/models/iris/infer", BODY).status == 200


def test_a_trickled_body_is_cut_off_at_the_total_deadline(iris: RuntimeProcess) -> None:
    """A byte per half second never trips a per-read timeout; the total deadline still
    ends the request with 408."""
    sock = half_sent_body(iris.port)
    started = time.monotonic()
    received = b""
    try:
        sock.settimeout(0.5)
        while time.monotonic() - started < DEADLINE_S + 3.0:
            try:
                sock.sendall(b" ")
            except OSError:
                break
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    finally:
        sock.close()
    elapsed = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408"), received
    assert DEADLINE_S - 0.5 < elapsed < DEADLINE_S + 3.0


@pytest.fixture
def slow_onnx(models_dir: Path) -> Path:
    directory = models_dir / "slow-onnx-ready"
    return directory if directory.exists() else onnx_model(directory, "slow")


def test_readiness_is_false_while_every_slot_is_taken(
    slow_onnx: Path, start_runtime: StartRuntime
) -> None:
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(slow_onnx),
        MODELROLL_MODEL_FORMAT="onnx",
        MODELROLL_MAX_INFLIGHT="1",
    )
    rows = [[1.0] * 4] * 1500
    body = {"inputs": [{"name": "x", "shape": [1500, 4], "datatype": "FP32", "data": rows}]}
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(runtime.post_json, "/v2/models/model/infer", body)
        saw_unready = False
        while not in_flight.done():
            if runtime.get("/v2/health/ready").status == 503:
                saw_unready = True
                break
            time.sleep(0.01)
        assert in_flight.result(timeout=30).status == 200
    assert saw_unready
    assert runtime.get("/v2/health/ready").status == 200
