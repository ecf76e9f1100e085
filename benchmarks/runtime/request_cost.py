"""CPU per request of the Python request path, in-process: ours and the floor side by side.

Each server's RSGI app is called on a fake scope and body (no sockets, no granian), the same
1-row V1 and V2 bodies as run.py sends, on one event loop, 1 or 64 requests in flight. What
is left is what our Python adds per request: routing, checks, decode, predict, encode and
metrics; HTTP parsing and the sockets are granian's, the same for both. Under load it is
steadier than wrk's req/s (CPU time, not wall time); under callgrind (`--callgrind`,
counting only the measured requests) it is the same count whatever the load. `--stage`
measures one step of ours alone instead (V2's or V1's decode or encode, or the predict).

    .venv/bin/python benchmarks/runtime/request_cost.py [--requests 20000] [--models iris,rf]
    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python \\
        benchmarks/runtime/request_cost.py --callgrind --requests 640 --models iris \\
        --servers ours --protocols v2 --concurrency 64 --work /tmp/rc
    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python \\
        benchmarks/runtime/request_cost.py --callgrind --requests 1000 --models iris \\
        --stage v2-decode --work /tmp/rc

callgrind's "Collected" total divided by --requests is the instructions per request.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks" / "runtime"))
import run  # noqa: E402  (its training, packaging and request bodies)


class Scope:
    def __init__(self, method: str, path: str, headers: dict[str, str]) -> None:
        self.method, self.path, self.headers = method, path, headers


class Proto:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.status = 0
        self.answer = b""

    async def __call__(self) -> bytes:
        return self.body

    def __aiter__(self) -> Any:
        raise NotImplementedError("bodies here are small: one read")

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.answer = status, body


def callgrind(on: bool) -> None:
    """Starts or stops callgrind's count (a no-op outside valgrind)."""
    if os.environ.get("CALLGRIND"):
        os.system(f"callgrind_control {'-i on' if on else '-i off'} {os.getpid()} >/dev/null")


async def measure(app: Any, scope: Scope, body: bytes, n: int, concurrency: int) -> float:
    """CPU microseconds per request, after as many requests again of warm-up. `concurrency`
    requests are started together each time, as a closed loop of that many clients has them
    in flight, so that ours batches them as it does under wrk."""

    async def one() -> None:
        proto = Proto(body)
        await app.__rsgi__(scope, proto)
        if proto.status != 200:
            raise RuntimeError(f"{scope.path}: {proto.status} {proto.answer[:200]!r}")

    async def requests(total: int) -> None:
        for _ in range(max(1, total // concurrency)):
            if concurrency == 1:
                await one()
            else:
                await asyncio.gather(*(one() for _ in range(concurrency)))

    await requests(n)
    gc.collect()
    callgrind(True)
    started = time.process_time()
    await requests(n)
    spent = time.process_time() - started
    callgrind(False)
    return spent / (max(1, n // concurrency) * concurrency) * 1e6


def stage(app: Any, name: str, bodies: dict[str, bytes]) -> Callable[[], object]:
    """One step of ours on the 1-row body, as a call: its decode, its encode, or the predict."""
    from modelroll_runtime import v1, v2

    model = app.model
    request = v2.decode_request(bodies["v2"], None, model, False)
    results = model.predict(request.inputs, request.outputs)
    output = v1.output_of(model, False)
    steps: dict[str, Callable[[], object]] = {
        "v2-decode": lambda: v2.decode_request(bodies["v2"], None, model, False),
        "v2-encode": lambda: v2.encode_response(app.name, app.version, request, results),
        "v1-decode": lambda: v1.decode_request(bodies["v1"], model, False),
        "v1-encode": lambda: v1.encode_response(results, output),
        "predict": lambda: model.predict(request.inputs, request.outputs),
    }
    return steps[name]


def measure_stage(call: Callable[[], object], n: int) -> float:
    """CPU microseconds per call, after as many calls again of warm-up."""
    for _ in range(n):
        call()
    callgrind(True)
    started = time.process_time()
    for _ in range(n):
        call()
    spent = time.process_time() - started
    callgrind(False)
    return spent / n * 1e6


def ours(model: str, directory: Path, cache: Path) -> Any:
    os.environ.update(
        MODELROLL_MODEL_NAME=model, MODELROLL_MODEL_URI=str(directory),
        MODELROLL_MODEL_FORMAT="sklearn", MODELROLL_WORKERS="1", MODELROLL_GRPC_PORT="off",
        MODELROLL_CACHE_DIR=str(cache), MODELROLL_LOG_LEVEL="WARNING",
    )  # fmt: skip
    from modelroll_runtime.app import create_app

    return create_app()


async def ready(app: Any) -> Any:
    app.__rsgi_init__(asyncio.get_running_loop())
    deadline = time.monotonic() + 300
    while app.model is None:
        if app.load_error or time.monotonic() > deadline:
            raise RuntimeError(f"load failed: {app.load_error}")
        await asyncio.sleep(0.05)
    return app


def trained_models(models: Path) -> dict[str, tuple[Path, int]]:
    """run.py's two models, trained once per work directory (under valgrind a fit takes
    minutes)."""
    if not (models / "rf" / "model.joblib").exists():
        return run.train(models)
    return {"iris": (models / "iris", 4), "rf": (models / "rf", 64)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--models", default="iris,rf")
    parser.add_argument("--servers", default="ours,floor")
    parser.add_argument("--protocols", default="v2,v1")
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--work", help="a directory to keep the models and compile caches in")
    parser.add_argument("--callgrind", action="store_true", help="count only measured requests")
    parser.add_argument(
        "--stage", choices=["v2-decode", "v2-encode", "v1-decode", "v1-encode", "predict"]
    )
    args = parser.parse_args()
    if args.callgrind:
        os.environ["CALLGRIND"] = "1"
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="request-cost-"))
    trained = trained_models(work / "models")
    rows = []
    for model in args.models.split(","):
        directory, width = trained[model]
        # as run.py serves it: the native model, compiled by ours at its start
        cache = work / "cache" / model
        bodies = run.bodies(model, width, 1)
        apps: dict[str, Any] = {}
        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        app = loop.run_until_complete(ready(ours(model, directory, cache)))
        if args.stage:
            cost = measure_stage(stage(app, args.stage, bodies), args.requests)
            print(f"{model} {args.stage}: {cost:.2f} µs/call", flush=True)
            loop.close()
            continue
        if "ours" in args.servers:
            apps["ours"] = app
            # as on an idle machine, where both models' warm-up predict takes under
            # INLINE_PREDICT_BELOW_S (a loaded one may measure it above and use the thread)
            app.batcher._inline = True
        if "floor" in args.servers:
            import floor

            (graph,) = cache.glob("*/model.onnx")
            apps["floor"] = floor.Floor(str(graph), model)
        for protocol in args.protocols.split(","):
            path = (
                f"/v2/models/{model}/infer" if protocol == "v2" else f"/v1/models/{model}:predict"
            )
            headers = {"content-type": "application/json",
                       "content-length": str(len(bodies[protocol]))}  # fmt: skip
            scope = Scope("POST", path, headers)
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                for server, served in apps.items():
                    cost = loop.run_until_complete(
                        measure(served, scope, bodies[protocol], args.requests, concurrency)
                    )
                    rows.append((model, protocol, concurrency, server, cost))
                    print(f"{model} {protocol} c={concurrency} {server}: {cost:.1f} µs/request",
                          flush=True)  # fmt: skip
        # not app.__rsgi_del__: it marks the process as stopping, which would end the next
        # model's load
        loop.close()
    if not rows:  # --stage: printed as measured
        return
    print("\n| model | protocol | in flight | server | CPU µs / request (in-process) |")
    print("|---|---|---|---|---|")
    for model, protocol, concurrency, server, cost in rows:
        print(f"| {model} | {protocol} | {concurrency} | {server} | {cost:.1f} |")


if __name__ == "__main__":
    main()
