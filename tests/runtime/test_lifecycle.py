"""Process behaviour: drain on SIGTERM, overload, predict failures, metrics across workers."""

from __future__ import annotations

import re
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from .conftest import StartRuntime
from .models import TrainedModel, onnx_model
from .runtime_process import Response, RuntimeProcess

pytestmark = pytest.mark.runtime


@pytest.fixture(scope="module")
def slow_onnx(models_dir: Path) -> Path:
    return onnx_model(models_dir / "slow-onnx", "slow")


@pytest.fixture(scope="module")
def broken_onnx(models_dir: Path) -> Path:
    return onnx_model(models_dir / "broken-onnx", "broken")


def rows_body(n: int) -> dict[str, object]:
    data = np.ones((n, 4)).tolist()
    return {"inputs": [{"name": "x", "shape": [n, 4], "datatype": "FP32", "data": data}]}


def slow_request(runtime: RuntimeProcess, pool: ThreadPoolExecutor) -> Future[Response]:
    future = pool.submit(runtime.post_json, "/v2/models/model/infer", rows_body(1500))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait until the server holds it
        if 'modelroll_inflight_requests{model="model",version="1"} 1.0' in (
            runtime.get("/metrics").body.decode()
        ):
            return future
        time.sleep(0.01)
    raise AssertionError("the slow request never got in flight")


def test_sigterm_drains_in_flight_request(slow_onnx: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(MODELROLL_MODEL_URI=str(slow_onnx), MODELROLL_MODEL_FORMAT="onnx")
    with ThreadPoolExecutor(1) as pool:
        in_flight = slow_request(runtime, pool)
        assert not in_flight.done()
        assert runtime.process is not None
        runtime.process.send_signal(signal.SIGTERM)
        response = in_flight.result(timeout=30)
    assert response.status == 200, response.body
    assert response.json()["outputs"][0]["shape"] == [1500, 1]
    assert runtime.process.wait(timeout=30) == 0


def test_one_worker_serves_in_a_single_process(
    slow_onnx: Path, start_runtime: StartRuntime
) -> None:
    """MODELROLL_WORKERS=1 runs granian embedded: no launcher/worker pair (RSS, docs)."""
    runtime = start_runtime(MODELROLL_MODEL_URI=str(slow_onnx), MODELROLL_MODEL_FORMAT="onnx")
    assert runtime.process is not None
    tasks = Path(f"/proc/{runtime.process.pid}/task").iterdir()
    children = [c for task in tasks for c in (task / "children").read_text().split()]
    assert children == []
    assert runtime.post_json("/v2/models/model/infer", rows_body(1)).status == 200


def test_loop_serves_while_predict_runs_and_overload_is_503(
    slow_onnx: Path, start_runtime: StartRuntime
) -> None:
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(slow_onnx),
        MODELROLL_MODEL_FORMAT="onnx",
        MODELROLL_MAX_INFLIGHT="1",
    )
    with ThreadPoolExecutor(1) as pool:
        in_flight = slow_request(runtime, pool)
        started = time.monotonic()
        assert runtime.get("/v2/health/live").status == 200
        assert time.monotonic() - started < 0.2  # predict is off the event loop
        overloaded = runtime.post_json("/v2/models/model/infer", rows_body(1))
        assert not in_flight.done()
        assert in_flight.result(timeout=30).status == 200
    assert overloaded.status == 503
    assert overloaded.headers["retry-after"] == "1"
    assert overloaded.json() == {"error": "server overloaded: too many requests in flight; retry"}
    assert runtime.post_json("/v2/models/model/infer", rows_body(1)).status == 200


def test_predict_exception_is_500_and_server_survives(
    broken_onnx: Path, start_runtime: StartRuntime
) -> None:
    runtime = start_runtime(MODELROLL_MODEL_URI=str(broken_onnx), MODELROLL_MODEL_FORMAT="onnx")
    failed = runtime.post_json("/v2/models/model/infer", rows_body(3))
    assert failed.status == 500
    assert failed.json()["error"].startswith("prediction failed: ")
    assert "Reshape" in failed.json()["error"]
    ok = runtime.post_json("/v2/models/model/infer", rows_body(1))
    assert ok.status == 200, ok.body
    assert ok.json()["outputs"][0]["data"] == [1.0, 1.0, 1.0, 1.0]
    assert runtime.get("/v2/health/ready").status == 200


def test_batched_neighbours_of_a_failing_request_still_succeed(
    broken_onnx: Path, start_runtime: StartRuntime
) -> None:
    runtime = start_runtime(MODELROLL_MODEL_URI=str(broken_onnx), MODELROLL_MODEL_FORMAT="onnx")
    # one-row requests succeed alone; merged into a batch they would fail together
    with ThreadPoolExecutor(16) as pool:
        statuses = list(
            pool.map(lambda _: runtime.post_json("/v2/models/model/infer", rows_body(1)).status,
                     range(200))
        )  # fmt: skip
    assert statuses == [200] * 200


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


def test_metrics_aggregate_across_workers(
    sklearn_model: TrainedModel, start_runtime: StartRuntime
) -> None:
    runtime = start_runtime(
        MODELROLL_MODEL_NAME="iris",
        MODELROLL_MODEL_VERSION="3",
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_WORKERS="2",
    )
    time.sleep(1)  # both workers ready, not just the first to answer
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64",
                        "data": sklearn_model.x[:2].tolist()}]}  # fmt: skip
    lock = threading.Lock()
    statuses: list[int] = []

    def call(i: int) -> None:
        if i % 5 == 0:
            status = runtime.post_json("/v1/models/iris:predict", {"instances": [[1, 2, 3, 4]]})
        elif i % 7 == 0:
            status = runtime.post_json("/v2/models/iris/infer", {"inputs": []})
        else:
            status = runtime.post_json("/v2/models/iris/infer", body)
        with lock:
            statuses.append(status.status)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(call, range(100)))
    text = runtime.get("/metrics").body.decode()
    labels = {"model": "iris", "version": "3"}
    assert metric(text, "modelroll_requests_total", protocol="v2", code="200", **labels) == (
        statuses.count(200) - 20
    )
    assert metric(text, "modelroll_requests_total", protocol="v1", code="200", **labels) == 20
    assert metric(text, "modelroll_requests_total", protocol="v2", code="400", **labels) == (
        statuses.count(400)
    )
    assert metric(text, "modelroll_request_duration_seconds_count", protocol="v2", **labels) == 80
    assert metric(text, "modelroll_request_duration_seconds_bucket", le="0.0005", **labels) >= 0
    assert metric(text, "modelroll_batch_size_count", **labels) >= 1
    assert metric(text, "modelroll_inflight_requests", **labels) == 0
    assert metric(text, "modelroll_model_load_seconds", **labels) > 0
    assert metric(text, "modelroll_model_info", format="sklearn", backend="onnx", **labels) == 1
    assert len(set(re.findall(r'"pid":(\d+),"model":"iris","version":"3","backend"',
                              runtime.logs()))) == 2  # fmt: skip


def compiler_children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task").iterdir()
    children = [int(c) for task in tasks for c in (task / "children").read_text().split()]
    return [c for c in children if b"modelroll_runtime.compiler" in _cmdline(c)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_sigterm_during_first_compile_terminates_the_compiler(
    sklearn_model: TrainedModel, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    runtime = start_runtime(
        wait="live",
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_CACHE_DIR=str(tmp_path / "empty-cache"),  # a pod's first start: it compiles
        MODELROLL_EXIT_ON_LOAD_FAILURE="true",
    )
    assert runtime.process is not None
    deadline = time.monotonic() + 30
    children: list[int] = []
    while not children and time.monotonic() < deadline:
        children = compiler_children(runtime.process.pid)
        time.sleep(0.01)
    assert children, "the compiler child never started"
    (child,) = children
    runtime.process.send_signal(signal.SIGTERM)
    assert runtime.process.wait(timeout=30) == 0
    # the child is gone, not orphaned to finish (or hang) on its own
    gone_by = time.monotonic() + 2
    while _cmdline(child) and time.monotonic() < gone_by:
        time.sleep(0.01)
    assert not _cmdline(child), f"compiler child {child} outlived the runtime"
    # a stop is not a load failure: nothing for the termination log, and exit status 0
    assert not (tmp_path / "termination-log").exists()
