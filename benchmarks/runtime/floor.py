"""The floor: the leanest server that can be written for the benchmark's job, the yardstick
our runtime is measured against (docs/runtime.md, issue #17).

A bare RSGI app on granian (one embedded worker on uvloop, HTTP/1, as ours runs), orjson
and onnxruntime on the same compiled graph ours serves. No routing table, metrics, checks,
limits, batching or logging: a POST whose path ends in ":predict" is V1, any other POST is V2,
any GET is ready. It answers the benchmark's 1-row and 32-row requests with what ours
answers for them: V2 `predict` (INT64 labels, shape [N, 1]) and V1 `predictions`.

usage: python benchmarks/runtime/floor.py MODEL_ONNX NAME PORT
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import onnxruntime
import orjson

HEADERS = [("content-type", "application/json")]
READY = orjson.dumps({"ready": True})


class Floor:
    def __init__(self, model_file: str, name: str) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # one core, as ours: no intra-op pool
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        self.session = onnxruntime.InferenceSession(
            model_file, options, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name
        self.label = [self.session.get_outputs()[0].name]  # the compiled graph's labels
        self.name = name

    def __rsgi_init__(self, loop: Any) -> None:
        pass

    def __rsgi_del__(self, loop: Any) -> None:
        pass

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.method == "GET":
            proto.response_bytes(200, HEADERS, READY)
            return
        request = orjson.loads(await proto())
        if scope.path.endswith(":predict"):
            x = np.array(request["instances"], dtype=np.float64)
            (labels,) = self.session.run(self.label, {self.input: x})
            body = orjson.dumps({"predictions": labels}, option=orjson.OPT_SERIALIZE_NUMPY)
        else:
            tensor = request["inputs"][0]
            x = np.array(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
            (labels,) = self.session.run(self.label, {self.input: x})
            output = {"name": "predict", "shape": [len(labels), 1], "datatype": "INT64",
                      "data": labels}  # fmt: skip
            body = orjson.dumps(
                {"model_name": self.name, "outputs": [output]}, option=orjson.OPT_SERIALIZE_NUMPY
            )
        proto.response_bytes(200, HEADERS, body)


def main() -> None:
    import asyncio
    import signal

    import uvloop
    from granian.constants import HTTPModes, Interfaces
    from granian.server.embed import Server

    model_file, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    app = Floor(model_file, name)
    server = Server(
        app, address="127.0.0.1", port=port, interface=Interfaces.RSGI, http=HTTPModes.http1,
        backlog=2048,
    )  # fmt: skip

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, server.stop)
        await server.serve()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
