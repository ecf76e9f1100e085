"""The Open Inference Protocol over gRPC, with NVIDIA's tritonclient.grpc against a real
runtime: readiness, metadata, inference with raw and typed contents (each answer equal to
the REST answer for the same rows), gRPC status codes for bad calls, bearer auth, the
protocol="grpc" metrics, and a clean stop on SIGTERM.

tritonclient sends raw_input_contents and reads raw_output_contents; typed `contents` (what
KServe's and MLServer's clients send) go through tritonclient's own protobuf stubs. The
runtime's own protobuf modules are never imported here: both register inference.* messages
in protobuf's default pool, which allows one of them per process.
"""

from __future__ import annotations

import concurrent.futures
import signal
import socket
import struct
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from .conftest import StartRuntime
from .models import TrainedModel
from .runtime_process import RuntimeProcess

pytestmark = pytest.mark.runtime

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])
OUTPUTS = ("predict", "predict_proba")


@pytest.fixture(scope="module")
def iris(sklearn_model: TrainedModel, start_module_runtime: StartRuntime) -> RuntimeProcess:
    return start_module_runtime(
        MODELROLL_MODEL_NAME="iris",
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
    )


def client(runtime: RuntimeProcess) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(f"127.0.0.1:{runtime.grpc_port}")


def stub(runtime: RuntimeProcess) -> Any:
    channel = grpc.insecure_channel(f"127.0.0.1:{runtime.grpc_port}")
    return service_pb2_grpc.GRPCInferenceServiceStub(channel)


def http_answer(runtime: RuntimeProcess, rows: np.ndarray, datatype: str) -> dict[str, Any]:
    """Each output of the REST V2 answer, as the array its JSON says."""
    body = {
        "inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": datatype,
                    "data": rows.ravel().tolist()}],
        "outputs": [{"name": name} for name in OUTPUTS],
    }  # fmt: skip
    response = runtime.post_json("/v2/models/iris/infer", body)
    assert response.status == 200, response.body
    return {o["name"]: o for o in response.json()["outputs"]}


def assert_same(http: dict[str, Any], name: str, array: np.ndarray, datatype: str) -> None:
    expected = http[name]
    assert datatype == expected["datatype"]
    assert list(array.shape) == expected["shape"]
    from tritonclient.utils import triton_to_np_dtype

    wanted = np.array(expected["data"], dtype=triton_to_np_dtype(datatype))
    assert np.array_equal(array.ravel(), wanted), (array, wanted)


def grpc_error(call: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


def test_server_and_model_readiness(iris: RuntimeProcess) -> None:
    triton = client(iris)
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("iris")
    assert triton.is_model_ready("iris", "1")
    error = grpc_error(lambda: triton.is_model_ready("nope"))
    assert error.status() == "StatusCode.NOT_FOUND"
    assert "model 'nope' not found; this server serves 'iris'" in error.message()
    error = grpc_error(lambda: triton.is_model_ready("iris", "7"))
    assert error.status() == "StatusCode.NOT_FOUND"


def test_metadata_equals_the_rest_metadata(iris: RuntimeProcess) -> None:
    triton = client(iris)
    server = triton.get_server_metadata(as_json=True)
    assert server == iris.get("/v2").json()
    model = triton.get_model_metadata("iris", as_json=True)
    rest = iris.get("/v2/models/iris").json()
    # protobuf's JSON gives int64 as strings
    for tensors in (model["inputs"], model["outputs"]):
        for tensor in tensors:
            tensor["shape"] = [int(d) for d in tensor["shape"]]
    assert model == {k: rest[k] for k in ("name", "versions", "platform", "inputs", "outputs")}
    assert grpc_error(lambda: triton.get_model_metadata("nope")).status() == (
        "StatusCode.NOT_FOUND"
    )


@pytest.mark.parametrize("datatype", ["FP64", "FP32"])
def test_tritonclient_raw_infer_equals_the_rest_answer(iris: RuntimeProcess, datatype: str) -> None:
    rows = ROWS.astype(np.float32 if datatype == "FP32" else np.float64)
    tensor = grpcclient.InferInput("input-0", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows)
    result = client(iris).infer(
        "iris", [tensor], outputs=[grpcclient.InferRequestedOutput(n) for n in OUTPUTS],
        request_id="req-7",
    )  # fmt: skip
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("iris", "1", "req-7")
    http = http_answer(iris, rows, datatype)
    for output in response.outputs:
        assert_same(http, output.name, result.as_numpy(output.name), output.datatype)
    assert [o.name for o in response.outputs] == list(OUTPUTS)
    assert result.as_numpy("predict").tolist() == [[0], [2], [1]]


def test_default_outputs_as_rest_gives_them(iris: RuntimeProcess) -> None:
    tensor = grpcclient.InferInput("input-0", [1, 4], "FP64")
    tensor.set_data_from_numpy(ROWS[:1])
    result = client(iris).infer("iris", [tensor])
    assert [o.name for o in result.get_response().outputs] == ["predict"]
    assert result.as_numpy("predict").tolist() == [[0]]


@pytest.mark.parametrize(
    ("datatype", "field", "values"),
    [
        ("FP64", "fp64_contents", ROWS.ravel().tolist()),
        ("FP32", "fp32_contents", ROWS.astype(np.float32).ravel().tolist()),
        ("INT64", "int64_contents", [5, 3, 1, 0, 7, 3, 5, 2, 6, 3, 4, 1]),
        ("INT32", "int_contents", [5, 3, 1, 0, 7, 3, 5, 2, 6, 3, 4, 1]),
    ],
)
def test_typed_contents_answer_typed_contents_equal_to_rest(
    iris: RuntimeProcess, datatype: str, field: str, values: list[Any]
) -> None:
    request = service_pb2.ModelInferRequest(model_name="iris")
    tensor = request.inputs.add(name="input-0", datatype=datatype, shape=[3, 4])
    getattr(tensor.contents, field).extend(values)
    for name in OUTPUTS:
        request.outputs.add(name=name)
    response = stub(iris).ModelInfer(request)
    assert not response.raw_output_contents  # typed in, typed out, as KServe answers
    rows = np.array(values).reshape(3, 4)
    http = http_answer(iris, rows, datatype)
    predict, proba = response.outputs
    assert predict.datatype == "INT64" and proba.datatype == "FP64"
    assert_same(http, "predict", np.array(predict.contents.int64_contents).reshape(3, 1), "INT64")
    assert_same(http, "predict_proba", np.array(proba.contents.fp64_contents).reshape(3, 3), "FP64")
    assert predict.parameters["content_type"].string_param == "np"


def test_malformed_calls_are_invalid_argument_and_the_server_serves_on(
    iris: RuntimeProcess,
) -> None:
    service = stub(iris)

    def infer_error(**fields: Any) -> grpc.RpcError:
        request = service_pb2.ModelInferRequest(model_name="iris", **fields)
        with pytest.raises(grpc.RpcError) as caught:
            service.ModelInfer(request)
        return caught.value

    def tensor(**fields: Any) -> Any:
        return service_pb2.ModelInferRequest.InferInputTensor(name="input-0", **fields)

    four = service_pb2.InferTensorContents(fp64_contents=[1.0, 2.0, 3.0, 4.0])
    cases = {
        "'inputs' must be a non-empty list": {},
        "expected 2-D shape [-1, 4], got [4]": {
            "inputs": [tensor(datatype="FP64", shape=[4], contents=four)]
        },
        "shape [2, 4] needs 8 values, 'data' has 4": {
            "inputs": [tensor(datatype="FP64", shape=[2, 4], contents=four)]
        },
        "unknown datatype 'FP99'": {"inputs": [tensor(datatype="FP99", shape=[1, 4])]},
        "datatype FP32 takes its values in contents.fp32_contents, not contents.fp64_contents": {
            "inputs": [tensor(datatype="FP32", shape=[1, 4], contents=four)]
        },
        "FP16 can only be sent in raw_input_contents": {
            "inputs": [tensor(datatype="FP16", shape=[1, 4], contents=four)]
        },
        "raw_input_contents has 2 entries for 1 inputs": {
            "inputs": [tensor(datatype="FP64", shape=[1, 4])],
            "raw_input_contents": [b"\0" * 32, b"\0" * 32],
        },
        "binary data holds 31 bytes; shape [1, 4] of FP64 needs 32": {
            "inputs": [tensor(datatype="FP64", shape=[1, 4])],
            "raw_input_contents": [b"\0" * 31],
        },
        "has contents, and the request raw_input_contents": {
            "inputs": [tensor(datatype="FP64", shape=[1, 4], contents=four)],
            "raw_input_contents": [b"\0" * 32],
        },
        "values must be finite": {
            "inputs": [tensor(datatype="FP64", shape=[1, 4])],
            "raw_input_contents": [struct.pack("<4d", 1, 2, float("nan"), 4)],
        },
        "unknown output 'nope'": {
            "inputs": [tensor(datatype="FP64", shape=[1, 4], contents=four)],
            "outputs": [service_pb2.ModelInferRequest.InferRequestedOutputTensor(name="nope")],
        },
    }
    for message, fields in cases.items():
        error = infer_error(**fields)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (message, error)
        assert message in (error.details() or ""), (message, error.details())
    wrong_model = service_pb2.ModelInferRequest(model_name="nope", inputs=[tensor()])
    with pytest.raises(grpc.RpcError) as caught:
        service.ModelInfer(wrong_model)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    # bytes that are no ModelInferRequest at all
    channel = grpc.insecure_channel(f"127.0.0.1:{iris.grpc_port}")
    garbage: Any = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    with pytest.raises(grpc.RpcError) as caught:
        garbage(b"\xff\xff\xff")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid inference.ModelInferRequest" in (caught.value.details() or "")
    assert client(iris).is_server_ready()
    test_default_outputs_as_rest_gives_them(iris)


def test_metrics_count_grpc_calls_under_protocol_grpc(iris: RuntimeProcess) -> None:
    tensor = grpcclient.InferInput("input-0", [1, 4], "FP64")
    tensor.set_data_from_numpy(ROWS[:1])
    triton = client(iris)
    before = grpc_count(iris, "200")
    for _ in range(3):
        triton.infer("iris", [tensor])
    bad = grpcclient.InferInput("input-0", [1, 3], "FP64")
    bad.set_data_from_numpy(ROWS[:1, :3])
    bad_before = grpc_count(iris, "400")
    assert grpc_error(lambda: triton.infer("iris", [bad])).status() == (
        "StatusCode.INVALID_ARGUMENT"
    )
    assert grpc_count(iris, "200") == before + 3
    assert grpc_count(iris, "400") == bad_before + 1
    durations = [
        line
        for line in iris.get("/metrics").body.decode().splitlines()
        if line.startswith("modelroll_request_duration_seconds_count{")
        and 'protocol="grpc"' in line
    ]
    assert len(durations) == 1 and float(durations[0].rsplit(" ", 1)[1]) >= 4


def grpc_count(runtime: RuntimeProcess, code: str) -> float:
    text = runtime.get("/metrics").body.decode()
    for line in text.splitlines():
        grpc_line = line.startswith("modelroll_requests_total{") and 'protocol="grpc"' in line
        if grpc_line and f'code="{code}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def text_model(models_dir: Path) -> tuple[Path, Any]:
    import joblib
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts = ["a good film", "a bad film", "good acting", "dull and bad", "great fun", "terrible"]
    labels = ["pos", "neg", "pos", "neg", "pos", "neg"]
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, labels)
    directory = models_dir / "grpc-text"
    directory.mkdir()
    joblib.dump(model, directory / "model.joblib")
    return directory, model


def test_bytes_inputs_and_string_labels_raw_and_typed(
    text_model: tuple[Path, Any], start_runtime: StartRuntime
) -> None:
    directory, model = text_model
    runtime = start_runtime(MODELROLL_MODEL_URI=str(directory), MODELROLL_MODEL_FORMAT="sklearn")
    texts = ["good story", "dull and bad, é"]
    expected = model.predict(texts).tolist()
    tensor = grpcclient.InferInput("text", [2], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=object))
    result = client(runtime).infer("model", [tensor])
    labels = result.as_numpy("predict")
    assert [v.decode() for v in labels.ravel()] == expected
    request = service_pb2.ModelInferRequest(model_name="model")
    typed = request.inputs.add(name="text", datatype="BYTES", shape=[2])
    typed.contents.bytes_contents.extend(t.encode() for t in texts)
    (output,) = stub(runtime).ModelInfer(request).outputs
    assert output.datatype == "BYTES"
    assert [v.decode() for v in output.contents.bytes_contents] == expected
    rest = runtime.post_json(
        "/v2/models/model/infer",
        {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": texts}]},
    ).json()
    assert rest["outputs"][0]["data"] == expected


def test_large_requests_decode_off_the_loop_and_answer_the_same(iris: RuntimeProcess) -> None:
    # above 64 KiB, the message is decoded in the runtime's decoder child
    rows = np.tile(ROWS, (3000, 1))
    request = service_pb2.ModelInferRequest(model_name="iris")
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=list(rows.shape))
    tensor.contents.fp64_contents.extend(rows.ravel().tolist())
    assert request.ByteSize() > 64 * 1024
    (predict,) = stub(iris).ModelInfer(request).outputs
    assert list(predict.contents.int64_contents) == [0, 2, 1] * 3000


def test_bearer_auth_guards_grpc_as_it_guards_rest(
    sklearn_model: TrainedModel, start_runtime: StartRuntime
) -> None:
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_AUTH_TOKEN="s3cret",
    )
    triton = client(runtime)
    assert triton.is_server_live() and triton.is_server_ready()  # open, as REST's probes
    tensor = grpcclient.InferInput("input-0", [1, 4], "FP64")
    tensor.set_data_from_numpy(ROWS[:1])
    for headers in (None, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"}):
        error = grpc_error(lambda h=headers: triton.infer("model", [tensor], headers=h))
        assert error.status() == "StatusCode.UNAUTHENTICATED", headers
        error = grpc_error(lambda h=headers: triton.get_model_metadata("model", headers=h))
        assert error.status() == "StatusCode.UNAUTHENTICATED", headers
    result = triton.infer("model", [tensor], headers={"authorization": "bearer s3cret"})
    assert result.as_numpy("predict").tolist() == [[0]]


def test_not_ready_is_unavailable(tmp_path: Path, start_runtime: StartRuntime) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.joblib").write_bytes(b"not a model")
    runtime = start_runtime(
        "live", MODELROLL_MODEL_URI=str(broken), MODELROLL_MODEL_FORMAT="sklearn"
    )
    runtime.wait_grpc()  # once the load has failed
    triton = client(runtime)
    assert triton.is_server_live()
    assert not triton.is_server_ready()
    assert not triton.is_model_ready("model")
    tensor = grpcclient.InferInput("input-0", [1, 4], "FP64")
    tensor.set_data_from_numpy(ROWS[:1])
    error = grpc_error(lambda: triton.infer("model", [tensor]))
    assert error.status() == "StatusCode.UNAVAILABLE"
    assert "model 'model' is not ready" in error.message()


def test_sigterm_drains_a_call_in_flight_then_exits_zero(
    sklearn_model: TrainedModel, start_runtime: StartRuntime
) -> None:
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(sklearn_model.directory), MODELROLL_MODEL_FORMAT="sklearn"
    )
    # a 13 MB call takes ~0.5 s (decoded in the child): long enough to stop the server under it
    rows = np.tile(ROWS, (130_000, 1))
    request = service_pb2.ModelInferRequest(model_name="model")
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=list(rows.shape))
    tensor.contents.fp64_contents.extend(rows.ravel().tolist())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(stub(runtime).ModelInfer, request, timeout=60)
        deadline = time.monotonic() + 30
        while inflight(runtime) < 1:  # the call is in the server's hands
            assert time.monotonic() < deadline and not call.done(), call
            time.sleep(0.01)
        assert runtime.process is not None
        runtime.process.send_signal(signal.SIGTERM)
        (predict,) = call.result().outputs
    assert len(predict.contents.int64_contents) == len(rows)
    assert runtime.process.wait(30) == 0
    with pytest.raises(InferenceServerException):
        client(runtime).is_server_live()


def inflight(runtime: RuntimeProcess) -> float:
    for line in runtime.get("/metrics").body.decode().splitlines():
        if line.startswith("modelroll_inflight_requests{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_several_workers_share_the_grpc_port(
    sklearn_model: TrainedModel, start_runtime: StartRuntime
) -> None:
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_WORKERS="2",
    )
    tensor = grpcclient.InferInput("input-0", [1, 4], "FP64")
    tensor.set_data_from_numpy(ROWS[:1])
    for _ in range(5):  # fresh connections: the kernel spreads them over the workers
        assert client(runtime).infer("model", [tensor]).as_numpy("predict").tolist() == [[0]]
    assert runtime.stop() == 0


def test_grpc_port_off_serves_rest_only(
    sklearn_model: TrainedModel, start_runtime: StartRuntime
) -> None:
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_GRPC_PORT="off",
    )
    assert runtime.get("/v2/health/ready").status == 200
    with pytest.raises(InferenceServerException):
        client(runtime).is_server_live(client_timeout=2)


def test_a_message_over_the_body_limit_is_resource_exhausted(
    sklearn_model: TrainedModel, start_runtime: StartRuntime
) -> None:
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(sklearn_model.directory),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_MAX_BODY_BYTES="100000",
    )
    rows = np.tile(ROWS, (4000, 1))  # 384 kB of raw FP64
    tensor = grpcclient.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)
    error = grpc_error(lambda: client(runtime).infer("model", [tensor]))
    assert error.status() == "StatusCode.RESOURCE_EXHAUSTED"
    small = grpcclient.InferInput("input-0", [1, 4], "FP64")
    small.set_data_from_numpy(ROWS[:1])
    assert client(runtime).infer("model", [small]).as_numpy("predict").tolist() == [[0]]


def test_a_taken_grpc_port_stops_the_start_with_a_reason(
    sklearn_model: TrainedModel, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runtime = start_runtime(
            "none",
            MODELROLL_MODEL_URI=str(sklearn_model.directory),
            MODELROLL_MODEL_FORMAT="sklearn",
            MODELROLL_GRPC_PORT=str(port),
        )
        assert runtime.process is not None
        assert runtime.process.wait(60) == 3
    reason = (tmp_path / "termination-log").read_text()
    assert reason.startswith(f"GrpcListenFailed: gRPC port {port}"), reason
