"""KServe 0.21's own gRPC client, kserve.InferenceGRPCClient, against one server: run with
the Python of the KServe venv (tests/support/peers.py), which has the KServe SDK from PyPI
(it cannot share the dev venv: it pins protobuf<7). tests/runtime/test_grpc_kserve_client.py
runs it and asserts on the JSON it prints.

The client has no model-metadata call (0.21 offers infer, is_server_live, is_server_ready
and is_model_ready), so the metadata goes through the SDK's generated stub,
kserve.protocol.grpc.grpc_predict_v2_pb2_grpc, as a KServe user would call it.

usage: python kserve_grpc_client.py HOST:PORT MODEL_NAME ROWS_JSON [TOKEN]
With TOKEN every call sends `authorization: Bearer TOKEN`, and the calls without it or with
a wrong one are made too, their gRPC status codes printed under "refused".
"""

import asyncio
import json
import sys
from typing import Any

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from kserve.protocol.infer_type import RequestedOutput

OUTPUTS = ("predict", "predict_proba")
DTYPES = {"FP64": np.float64, "FP32": np.float32}


def request(model: str, rows: np.ndarray, datatype: str, encoding: str) -> InferRequest:
    """`numpy` sends raw_input_contents (set_data_from_numpy); `list` sends typed contents."""
    shape = list(rows.shape)
    if encoding == "numpy":
        tensor = InferInput("input-0", shape, datatype)
        tensor.set_data_from_numpy(rows)
    else:
        tensor = InferInput("input-0", shape, datatype, rows.ravel().tolist())
    outputs = [RequestedOutput(name) for name in OUTPUTS]
    request_id = f"{datatype}-{encoding}"
    return InferRequest(model, [tensor], request_id=request_id, request_outputs=outputs)


def metadata_json(response: Any) -> dict[str, Any]:
    def tensors(items: Any) -> list[dict[str, Any]]:
        return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in items]

    return {
        "name": response.name, "versions": list(response.versions), "platform": response.platform,
        "inputs": tensors(response.inputs), "outputs": tensors(response.outputs),
    }  # fmt: skip


async def refused_code(call: Any) -> str:
    try:
        await call
    except grpc.RpcError as error:
        return str(error.code().name)
    return "OK"


async def main(address: str, model: str, rows: np.ndarray, token: str | None) -> dict[str, Any]:
    headers = (("authorization", f"Bearer {token}"),) if token else None
    result: dict[str, Any] = {}
    # retries=0: a refusal is answered once, not retried
    async with InferenceGRPCClient(address, timeout=30, retries=0) as client:
        result["server_live"] = await client.is_server_live(headers=headers)
        result["server_ready"] = await client.is_server_ready(headers=headers)
        result["model_ready"] = await client.is_model_ready(model, headers=headers)
        async with grpc.aio.insecure_channel(address) as channel:
            stub = GRPCInferenceServiceStub(channel)
            meta = await stub.ModelMetadata(pb.ModelMetadataRequest(name=model), metadata=headers)
        result["metadata"] = metadata_json(meta)
        answers = []
        for datatype, dtype in DTYPES.items():
            for encoding in ("numpy", "list"):
                sent = request(model, rows.astype(dtype), datatype, encoding)
                answer = await client.infer(sent, headers=headers)
                answers.append({
                    "datatype": datatype, "encoding": encoding, "id": answer.id,
                    "model_name": answer.model_name,
                    "outputs": [
                        {"name": o.name, "datatype": o.datatype, "shape": list(o.shape),
                         "data": o.as_numpy().ravel().tolist()}
                        for o in answer.outputs
                    ],
                })  # fmt: skip
        result["answers"] = answers
        if token:
            wrong = (("authorization", "Bearer wrong"),)
            sent = request(model, rows, "FP64", "numpy")
            result["refused"] = {
                "infer": await refused_code(client.infer(sent)),
                "infer_wrong_token": await refused_code(client.infer(sent, headers=wrong)),
                "model_ready": await refused_code(client.is_model_ready(model)),
            }
    return result


if __name__ == "__main__":
    address, model, rows_json = sys.argv[1:4]
    token = sys.argv[4] if len(sys.argv) > 4 else None
    rows = np.array(json.loads(rows_json), dtype=np.float64)
    print(json.dumps(asyncio.run(main(address, model, rows, token))))
