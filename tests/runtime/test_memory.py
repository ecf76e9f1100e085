"""Bounded memory under large bodies: a global cap on the request bytes being decoded at once
(503 with Retry-After beyond it), health endpoints that keep answering while large JSON
bodies decode, and RSS that comes back after the burst."""

from __future__ import annotations

import ast
import http.client
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import orjson
import pytest

from .conftest import StartRuntime
from .models import TrainedModel
from .runtime_process import Response, RuntimeProcess

pytestmark = pytest.mark.runtime

MIB = 1024 * 1024
BODY_BYTES = 15_000_000  # each under the default 16 MiB body limit
BURST = 8
HEALTH_BUDGET_S = 0.1
POLL_EVERY_S = 0.05


def large_body(seed: int) -> bytes:
    """A V2 JSON body of about BODY_BYTES: iris-shaped rows, as a client that batches sends."""
    rows = BODY_BYTES // 26  # "[5.123,3.456,1.234,0.567]," is about 26 bytes
    data = np.random.default_rng(seed).uniform(0, 8, (rows, 4)).round(3)
    tensor = {"name": "x", "shape": [rows, 4], "datatype": "FP64", "data": data}
    body = orjson.dumps({"inputs": [tensor]}, option=orjson.OPT_SERIALIZE_NUMPY)
    assert 0.9 * BODY_BYTES < len(body) < 16 * MIB
    return body


@pytest.fixture(scope="module")
def bodies() -> list[bytes]:
    return [large_body(seed) for seed in range(BURST)]


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (the runtime's whole footprint)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            for children in Path(f"/proc/{current}/task").glob("*/children"):
                todo.extend(int(child) for child in children.read_text().split())
        except OSError:  # it exited meanwhile
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


# Polls from its own process, so that the test's senders cannot delay the polls they time.
POLLER = """
import http.client, sys, threading, time
port, budget, every = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
polls, slow = 0, []
while not stop.is_set():
    for path in ("/v2/health/live", "/v2/health/ready"):
        started = time.monotonic()
        connected = -1.0
        try:  # a fresh connection each time, as the kubelet's probes make
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.connect()
            connected = time.monotonic() - started
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
        except OSError:  # timed out or refused: as bad as a slow answer
            status = 0
        elapsed = time.monotonic() - started
        polls += 1
        if status != 200 or elapsed >= budget:
            slow.append((path, status, round(elapsed, 3), round(connected, 3)))
    time.sleep(every)
print(repr((polls, slow)))
"""


class Watch:
    """Polls both health endpoints every 50 ms and samples the runtime's RSS, until stopped."""

    def __init__(self, runtime: RuntimeProcess) -> None:
        self.runtime = runtime
        self.slow: list[tuple[str, int, float, float]] = []  # path, status, s, s to connect
        self.polls = 0
        self.peak_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._rss, daemon=True)
        self._poller: subprocess.Popen[str] | None = None

    def __enter__(self) -> Watch:
        self._poller = subprocess.Popen(
            [sys.executable, "-c", POLLER, str(self.runtime.port), str(HEALTH_BUDGET_S),
             str(POLL_EVERY_S)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self._sampler.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._sampler.join(timeout=10)
        assert self._poller is not None
        out = self._poller.communicate(timeout=30)[0]
        self.polls, self.slow = ast.literal_eval(out.strip())

    def _rss(self) -> None:
        assert self.runtime.process is not None
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, tree_rss(self.runtime.process.pid))
            time.sleep(0.02)


def post(runtime: RuntimeProcess, body: bytes, chunked: bool = False) -> Response:
    headers = {"Content-Type": "application/json"}
    if not chunked:
        return runtime.request("POST", "/v2/models/iris/infer", body, headers, timeout=120)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]

    conn = http.client.HTTPConnection("127.0.0.1", runtime.port, timeout=120)
    try:
        conn.request("POST", "/v2/models/iris/infer", chunks(), headers, encode_chunked=True)
        response = conn.getresponse()
        return Response(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        conn.close()


def settle_rss(runtime: RuntimeProcess, target: float, timeout: float) -> int:
    """The tree's RSS once it is at or under `target`, or the last reading after `timeout`."""
    assert runtime.process is not None
    deadline = time.monotonic() + timeout
    while True:
        rss = tree_rss(runtime.process.pid)
        if rss <= target or time.monotonic() > deadline:
            return rss
        time.sleep(0.25)


def warm(runtime: RuntimeProcess) -> None:
    small = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64",
                         "data": [5.1, 3.5, 1.4, 0.2, 6.2, 2.9, 4.3, 1.3]}]}  # fmt: skip
    for _ in range(200):
        assert runtime.post_json("/v2/models/iris/infer", small).status == 200


def test_a_burst_of_large_bodies_within_the_cap(
    sklearn_model: TrainedModel, start_runtime: StartRuntime, bodies: list[bytes]
) -> None:
    cap = BURST * 16 * MIB  # the whole burst is admitted
    runtime = start_runtime(
        MODELROLL_MODEL_NAME="iris",
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_MAX_DECODE_BYTES=str(cap),
    )
    warm(runtime)
    assert runtime.process is not None
    idle = tree_rss(runtime.process.pid)
    with Watch(runtime) as watch, ThreadPoolExecutor(BURST) as pool:
        time.sleep(0.3)
        answers = list(pool.map(lambda body: post(runtime, body), bodies))
        time.sleep(0.3)
    for answer, body in zip(answers, bodies, strict=True):
        assert answer.status == 200, answer.body[:300]
        rows = orjson.loads(body)["inputs"][0]["shape"][0]
        assert orjson.loads(answer.body)["outputs"][0]["shape"] == [rows, 1]
    assert watch.polls >= 10
    assert watch.slow == [], f"{len(watch.slow)} of {watch.polls} health answers: {watch.slow}"
    # docs/runtime.md, "Bounded memory": the bodies held and their arrays, plus the decoder
    # child, which decodes one body at a time
    promise = idle + 2 * cap + 32 * MIB + 14 * max(map(len, bodies))
    assert watch.peak_rss <= promise, (idle / MIB, watch.peak_rss / MIB, promise / MIB)
    after = settle_rss(runtime, 1.2 * idle, timeout=30)
    assert after <= 1.2 * idle, f"idle {idle / MIB:.0f} MiB, after the burst {after / MIB:.0f}"


def test_a_burst_beyond_the_cap_gets_503_for_the_excess(
    sklearn_model: TrainedModel, start_runtime: StartRuntime, bodies: list[bytes]
) -> None:
    cap = 2 * 16 * MIB  # room for two of the bodies at a time
    runtime = start_runtime(
        MODELROLL_MODEL_NAME="iris",
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_MAX_DECODE_BYTES=str(cap),
    )
    with ThreadPoolExecutor(BURST) as pool:
        # half with a Content-Length (refused before the body is buffered), half chunked
        # (counted as the chunks arrive)
        answers = list(pool.map(lambda i: post(runtime, bodies[i], i % 2 == 1), range(BURST)))
    statuses = sorted(answer.status for answer in answers)
    assert set(statuses) == {200, 503}, statuses
    assert statuses.count(200) >= 2, statuses
    for answer in answers:
        if answer.status == 503:
            assert answer.headers["retry-after"] == "1"
            assert "memory" in orjson.loads(answer.body)["error"]
    # once the burst is over, the cap is free again
    assert post(runtime, bodies[0]).status == 200


def test_large_bodies_decode_in_the_child_as_they_would_inline(
    sklearn_model: TrainedModel, start_runtime: StartRuntime
) -> None:
    """V1 and V2, good and malformed: a large body gets the answer a small one would."""
    runtime = start_runtime(
        MODELROLL_MODEL_NAME="iris",
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
    )
    rows = np.tile(sklearn_model.x[:8], (20_000, 1))  # 160k rows, ~4 MB of JSON
    expected = sklearn_model.native.predict(rows).tolist()
    v1 = runtime.post_json("/v1/models/iris:predict", {"instances": rows.tolist()})
    assert v1.status == 200, v1.body[:300]
    assert v1.json()["predictions"] == expected
    tensor = {"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.tolist()}
    v2 = runtime.post_json("/v2/models/iris/infer", {"inputs": [tensor]})
    assert v2.status == 200, v2.body[:300]
    assert v2.json()["outputs"][0]["data"] == expected
    wrong = runtime.post_json("/v2/models/iris/infer", {"inputs": [{**tensor, "shape": [7, 4]}]})
    assert wrong.status == 400
    assert "shape [7, 4] needs 28 values" in wrong.json()["error"]
    torn_body = orjson.dumps({"inputs": [tensor]})[:-1]
    torn = runtime.request("POST", "/v2/models/iris/infer", torn_body)
    assert torn.status == 400
    assert "not valid JSON" in torn.json()["error"]
