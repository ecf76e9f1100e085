"""The metrics sidecar (`python -m modelroll_runtime.proxy`) as a real process in front of real
servers: our runtime (V2 and V1) and the custom FastAPI example app (examples/custom-fastapi),
each as its own process. What analysis reads off it must be what it reads off our runtime."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelroll_runtime import packager
from prometheus_client.parser import text_string_to_metric_families

from .conftest import StartRuntime
from .models import TrainedModel, iris
from .runtime_process import Response, RuntimeProcess, free_port
from .test_package import reference_csv

pytestmark = pytest.mark.runtime

REPO = Path(__file__).resolve().parents[2]
FASTAPI_APP = REPO / "examples" / "custom-fastapi"
StartProxy = Callable[..., RuntimeProcess]


@pytest.fixture(scope="module")
def iris_package(tmp_path_factory: pytest.TempPathFactory, sklearn_model: TrainedModel) -> Path:
    root = tmp_path_factory.mktemp("proxy-package")
    return packager.build(
        sklearn_model.file, reference_csv(root / "ref.csv"), root / "iris"
    ).directory


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[StartProxy]:
    """start_proxy(upstream_port, wait=True, **{MODELROLL_X: value})"""
    started: list[RuntimeProcess] = []

    def start(upstream: int | str, wait: bool = True, **env: str) -> RuntimeProcess:
        target = upstream if isinstance(upstream, str) else f"http://127.0.0.1:{upstream}"
        full_env = {"MODELROLL_PROXY_UPSTREAM": target, **env}
        proxy = RuntimeProcess(
            full_env, tmp_path / f"proxy-{len(started)}.log", module="modelroll_runtime.proxy"
        ).start()
        started.append(proxy)
        if wait:
            proxy._wait(lambda: proxy.get("/metrics").status == 200, 30, "serving /metrics")
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def fastapi_server(tmp_path: Path, sklearn_model: TrainedModel) -> Iterator[RuntimeProcess]:
    """The custom FastAPI example app under uvicorn, on the iris model."""
    port = free_port()
    server = RuntimeProcess({}, tmp_path / "fastapi.log", port=port)
    env = {**os.environ, "MODEL_PATH": str(sklearn_model.file), "MODEL_VERSION": "1"}
    with server.log_file.open("ab") as log:
        server.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port),
             "--log-level", "warning"],
            cwd=FASTAPI_APP, env=env, stdout=log, stderr=log,
        )  # fmt: skip
    server.wait_ready()
    yield server
    server.stop()


def v2_rows(rows: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
                        "data": rows.ravel().tolist()}]}  # fmt: skip


def samples(process: RuntimeProcess, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of metric `name` on `process`'s /metrics, by their sorted labels."""
    found = {}
    for family in text_string_to_metric_families(process.get("/metrics").body.decode()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def by_label(process: RuntimeProcess, name: str, label: str) -> dict[str, float]:
    return {dict(k)[label]: v for k, v in samples(process, name).items()}


def send_batches(target: RuntimeProcess, protocol: str) -> int:
    """Iris rows in 1- to 5-row requests, some concurrent; the rows sent."""
    x, _ = iris()
    rng = np.random.default_rng(5)
    shifted = x * rng.uniform(0.6, 1.5, x.shape)  # other classes' shares than the reference
    batches = [x[i : i + 5] for i in range(0, 150, 5)] + [shifted[i : i + 1] for i in range(40)]

    def send(rows: np.ndarray) -> None:
        if protocol == "v2":
            document = v2_rows(rows)
            if len(rows) == 1:  # the binary tensor extension's answer: JSON header, raw bytes
                document["parameters"] = {"binary_data_output": True}
            response = target.post_json("/v2/models/model/infer", document)
            binary = "inference-header-content-length" in response.headers
            assert binary == (len(rows) == 1), response.headers
        else:
            response = target.post_json("/v1/models/model:predict", {"instances": rows.tolist()})
        assert response.status == 200, response.body

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, batches))
    return sum(len(b) for b in batches)


def test_with_protocol_none_every_request_but_health_is_counted_as_http(
    fastapi_server: RuntimeProcess, start_proxy: StartProxy, iris_package: Path
) -> None:
    proxy = start_proxy(
        fastapi_server.port, MODELROLL_PROXY_PROTOCOL="none", MODELROLL_MODEL_NAME="iris",
        MODELROLL_MODEL_DIR=str(iris_package),
    )  # fmt: skip
    x, _ = iris()
    assert proxy.post_json("/v2/models/iris/infer", v2_rows(x[:2])).status == 200
    assert proxy.get("/v2/models/iris").status == 200
    assert proxy.get("/no/such/route").status == 404
    assert proxy.get("/v2/health/ready").status == 200
    codes = {dict(k)["code"]: v for k, v in samples(proxy, "modelroll_requests_total").items()}
    assert codes == {"200": 2.0, "404": 1.0}
    assert {dict(k)["protocol"] for k in samples(proxy, "modelroll_requests_total")} == {"http"}
    # neither V2 nor V1: no answer is read, so no prediction series, profile or not
    assert samples(proxy, "modelroll_prediction_values_total") == {}


@pytest.mark.parametrize("protocol", ["v2", "v1"])
def test_in_front_of_our_runtime_it_exports_what_the_runtime_exports(
    protocol: str, start_runtime: StartRuntime, start_proxy: StartProxy, iris_package: Path
) -> None:
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(iris_package), MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_MODEL_NAME="model", MODELROLL_MODEL_VERSION="7",
        MODELROLL_DRIFT_MAX_ROWS_PER_SECOND="0",
    )  # fmt: skip
    proxy = start_proxy(
        runtime.port, MODELROLL_PROXY_PROTOCOL=protocol, MODELROLL_MODEL_NAME="model",
        MODELROLL_MODEL_VERSION="7", MODELROLL_MODEL_DIR=str(iris_package),
        MODELROLL_DRIFT_MAX_ROWS_PER_SECOND="0",
    )  # fmt: skip
    sent = send_batches(proxy, protocol)
    requests = samples(proxy, "modelroll_requests_total")
    assert requests == samples(runtime, "modelroll_requests_total")
    labels = (("code", "200"), ("model", "model"), ("protocol", protocol), ("version", "7"))
    assert requests == {labels: 70.0}
    durations = samples(proxy, "modelroll_request_duration_seconds_count")
    assert durations == {(("model", "model"), ("protocol", protocol), ("version", "7")): 70.0}
    # the same prediction distribution, bin by bin, as the runtime counted from its own model
    predicted = by_label(proxy, "modelroll_prediction_values_total", "bin")
    assert predicted == by_label(runtime, "modelroll_prediction_values_total", "bin")
    assert sum(predicted.values()) == sent and len(predicted) >= 2, predicted
    assert samples(proxy, "modelroll_prediction_reference") == samples(
        runtime, "modelroll_prediction_reference"
    )
    assert by_label(proxy, "modelroll_drift_rows_total", "model") == {"model": float(sent)}
    # features are counted by the runtime only (the sidecar sees the user's encoding)
    assert samples(proxy, "modelroll_feature_values_total") == {}
    assert samples(proxy, "modelroll_feature_reference") == {}


def test_in_front_of_a_fastapi_server_it_counts_passes_500s_and_adds_the_version(
    fastapi_server: RuntimeProcess, start_proxy: StartProxy, iris_package: Path,
    sklearn_model: TrainedModel,
) -> None:  # fmt: skip
    proxy = start_proxy(
        fastapi_server.port, MODELROLL_MODEL_NAME="iris", MODELROLL_MODEL_VERSION="v2-canary",
        MODELROLL_MODEL_DIR=str(iris_package),
    )  # fmt: skip
    x, _ = iris()
    answer = proxy.post_json("/v2/models/iris/infer", v2_rows(x[:3]))
    direct = fastapi_server.post_json("/v2/models/iris/infer", v2_rows(x[:3]))
    assert answer.status == 200 and answer.body == direct.body
    assert answer.headers["x-model-version"] == "v2-canary"
    assert answer.headers["x-model-name"] == "iris"
    # three features where the model takes four: the naive server's model raises, a 500
    wrong = v2_rows(x[:1, :3])
    failed, failed_direct = (
        p.post_json("/v2/models/iris/infer", wrong) for p in (proxy, fastapi_server)
    )
    assert failed.status == failed_direct.status == 500
    assert failed.body == failed_direct.body
    assert failed.headers["x-model-version"] == "v2-canary"
    # health is the server's; /metrics is the sidecar's own
    ready = proxy.get("/v2/health/ready")
    assert (ready.status, ready.json()) == (200, {"ready": True})
    assert fastapi_server.get("/metrics").status == 404
    assert proxy.request("POST", "/metrics").status == 405
    codes = {dict(k)["code"]: v for k, v in samples(proxy, "modelroll_requests_total").items()}
    assert codes == {"200": 1.0, "500": 1.0}
    (key,) = samples(proxy, "modelroll_requests_total").keys() - {
        k for k in samples(proxy, "modelroll_requests_total") if dict(k)["code"] == "200"
    }
    assert dict(key) == {"code": "500", "model": "iris", "protocol": "v2", "version": "v2-canary"}
    predicted = by_label(proxy, "modelroll_prediction_values_total", "bin")
    native = sklearn_model.native.predict(x[:3])
    assert {b: v for b, v in predicted.items() if v} == {
        str(c): float((native == c).sum()) for c in set(native.tolist())
    }


def test_a_500_that_closes_the_upstream_connection_stays_a_500_for_the_next_requests(
    fastapi_server: RuntimeProcess, start_proxy: StartProxy, iris_package: Path
) -> None:
    # uvicorn closes its kept-alive connection after the app raised; the sidecar's next
    # request on it must go again on a new one, not come back as the sidecar's own 502
    proxy = start_proxy(fastapi_server.port, MODELROLL_MODEL_NAME="iris")
    x, _ = iris()
    wrong, right = v2_rows(x[:1, :3]), v2_rows(x[:1])
    statuses = [
        proxy.post_json("/v2/models/iris/infer", body).status
        for _ in range(30)
        for body in (wrong, wrong, right)
    ]
    assert statuses == [500, 500, 200] * 30, statuses


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODELROLL_PROXY_UPSTREAM": "http://10.0.0.7:8000"}, "its host must be 127.0.0.1"),
        ({"MODELROLL_PROXY_UPSTREAM": "https://127.0.0.1:8000"}, "its scheme must be http"),
        ({"MODELROLL_PROXY_UPSTREAM": "http://127.0.0.1"}, "it needs a port"),
        ({"MODELROLL_PROXY_UPSTREAM": "http://127.0.0.1:8000/v2"}, "only scheme, host and port"),
        ({"MODELROLL_PROXY_UPSTREAM": ""}, "MODELROLL_PROXY_UPSTREAM is required"),
        ({"MODELROLL_PROXY_PROTOCOL": "grpc"}, "MODELROLL_PROXY_PROTOCOL must be one of"),
        # the runtime's auth setting would look like auth the sidecar does not do
        ({"MODELROLL_AUTH_TOKEN": "s3cret"}, "MODELROLL_AUTH_TOKEN is not a sidecar setting"),
    ],
    ids=["not-loopback", "https", "no-port", "path", "missing", "protocol", "auth-token"],
)
def test_a_bad_config_stops_it_at_start(
    env: dict[str, str], message: str, start_proxy: StartProxy
) -> None:
    proxy = start_proxy(env.pop("MODELROLL_PROXY_UPSTREAM", "http://127.0.0.1:8000"), False, **env)
    assert proxy.process is not None
    assert proxy.process.wait(30) == 2
    (line,) = [json.loads(line) for line in proxy.logs().splitlines() if "InvalidConfig" in line]
    assert line["level"] == "error" and message in line["msg"], line


class StalledUpstream:
    """A loopback server that accepts connections and answers nothing: a hung user server."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        # shutdown first: a close alone leaves the thread's accept() holding the socket open
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def raw_request(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b"}" in chunk:
                break
        return b"".join(chunks)


def error_of(response: Response) -> str:
    assert response.headers["content-type"] == "application/json"
    message: str = response.json()["error"]
    return message


def test_hostile_clients_get_4xx_json_and_never_a_crash(
    fastapi_server: RuntimeProcess, start_proxy: StartProxy
) -> None:
    proxy = start_proxy(
        fastapi_server.port, MODELROLL_MAX_BODY_BYTES="1000", MODELROLL_MAX_DECODE_BYTES="1000",
        MODELROLL_BODY_TIMEOUT_SECONDS="0.5", MODELROLL_MODEL_NAME="iris",
    )  # fmt: skip
    big = proxy.request("POST", "/v2/models/iris/infer", b"[" + b"1," * 800 + b"1]")
    assert big.status == 413 and "exceeds 1000" in error_of(big)
    bogus = raw_request(
        proxy.port, b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n"
    )
    assert bogus.startswith(b"HTTP/1.1 400"), bogus  # granian's own parser: never forwarded
    started = time.monotonic()
    slow = raw_request(
        proxy.port,
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
    )
    assert slow.startswith(b"HTTP/1.1 408"), slow
    assert time.monotonic() - started < 5
    # a client's garbage reaches the server, whose own 4xx comes back unchanged
    json_headers = {"Content-Type": "application/json"}
    garbage = proxy.request("POST", "/v2/models/iris/infer", b"{{", json_headers)
    direct = fastapi_server.request("POST", "/v2/models/iris/infer", b"{{", json_headers)
    assert garbage.status == direct.status == 422 and garbage.body == direct.body
    assert proxy.get("/v2/health/live").status == 200  # still serving
    # an answer larger than the byte budget is streamed through, never held whole
    spec, spec_direct = (p.get("/openapi.json") for p in (proxy, fastapi_server))
    assert spec.status == 200 and spec.body == spec_direct.body and len(spec.body) > 1000
    assert spec.headers.get("transfer-encoding") == "chunked"
    assert "transfer-encoding" not in spec_direct.headers
    codes = {dict(k)["code"]: v for k, v in samples(proxy, "modelroll_requests_total").items()}
    assert codes == {"413": 1.0, "408": 1.0, "422": 1.0}


def test_a_hung_or_missing_upstream_is_503_when_full_and_502_when_gone(
    start_proxy: StartProxy,
) -> None:
    upstream = StalledUpstream()
    try:
        proxy = start_proxy(upstream.port, MODELROLL_MAX_INFLIGHT="1")
        with ThreadPoolExecutor(1) as pool:
            hung = pool.submit(proxy.post_json, "/v2/models/m/infer", {"inputs": []})
            deadline = time.monotonic() + 10
            while not upstream.accepted and time.monotonic() < deadline:
                time.sleep(0.02)
            assert upstream.accepted, "the request never reached the upstream"
            full = proxy.post_json("/v2/models/m/infer", {"inputs": []})
            assert full.status == 503 and full.headers["retry-after"] == "1"
            assert "too many requests in flight" in error_of(full)
            assert proxy.get("/v2/health/ready").status == 503  # out of the Service meanwhile
            upstream.close()  # the hung server dies: its request is a 502, counted
            assert hung.result(10).status == 502
        gone = proxy.post_json("/v2/models/m/infer", {"inputs": []})
        assert gone.status == 502 and "failed" in error_of(gone)
        codes = {dict(k)["code"]: v for k, v in samples(proxy, "modelroll_requests_total").items()}
        assert codes == {"503": 1.0, "502": 2.0}
    finally:
        upstream.close()
