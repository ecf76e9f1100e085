"""Which HTTP client the metrics sidecar forwards with: CPU time per request of aiohttp and
httpx, each sending 1-row V2 requests over 32 keep-alive connections to a granian upstream
that answers at once (upstream pinned to core 0, the client to core 1).

usage: python benchmarks/runtime/proxy_clients.py [--requests 6000] [--rounds 2]
(httpx is not a dependency: pip install httpx to measure it)
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run

BODY = b'{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","data":[5.1,3.5,1.4,0.2]}]}'
CONNECTIONS = 32


class Upstream:
    """RSGI app: reads the body, answers a fixed V2 response."""

    answer = b'{"model_name":"iris","outputs":[{"name":"predict","shape":[1],"datatype":"INT64","data":[1]}]}'

    async def __rsgi__(self, scope: object, proto: object) -> None:
        await proto()  # type: ignore[operator]
        proto.response_bytes(200, [("content-type", "application/json")], self.answer)  # type: ignore[attr-defined]


app = Upstream()


async def measure(send: Callable[[], Awaitable[None]], requests: int) -> tuple[float, float]:
    """CPU µs per request and requests per second over `requests` (after a warm-up)."""

    async def worker(n: int) -> None:
        for _ in range(n):
            await send()

    await asyncio.gather(*(worker(20) for _ in range(CONNECTIONS)))
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(requests // CONNECTIONS) for _ in range(CONNECTIONS)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / requests * 1e6, requests / wall


async def with_aiohttp(url: str, requests: int) -> tuple[float, float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send() -> None:
            async with session.post(url, data=BODY) as response:
                await response.read()

        return await measure(send, requests)


async def with_httpx(url: str, requests: int) -> tuple[float, float]:
    import httpx

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=CONNECTIONS)) as client:

        async def send() -> None:
            response = await client.post(url, content=BODY)
            await response.aread()

        return await measure(send, requests)


def client_main(name: str, url: str, requests: int) -> None:
    import uvloop

    client = {"aiohttp": with_aiohttp, "httpx": with_httpx}[name]
    cpu_us, rps = uvloop.run(client(url, requests))
    print(f"{cpu_us:.0f} {rps:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--client", help=argparse.SUPPRESS)  # the measuring child
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client, args.url, args.requests)
        return
    port = run.free_port()
    upstream = subprocess.Popen(
        ["taskset", "-c", run.SERVER_CORE, sys.executable, "-m", "granian", "--interface",
         "rsgi", "--loop", "uvloop", "--port", str(port), "proxy_clients:app"],
        cwd=Path(__file__).parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v2/models/iris/infer"
    try:
        time.sleep(3)
        print("| client | CPU µs per request | req/s | load avg |\n|---|---|---|---|")
        for _ in range(args.rounds):
            for name in ("aiohttp", "httpx"):
                out = subprocess.run(
                    ["taskset", "-c", run.CLIENT_CORE, sys.executable, __file__, "--client",
                     name, "--url", url, "--requests", str(args.requests)],
                    capture_output=True, text=True, check=True,
                ).stdout.split()  # fmt: skip
                load = Path("/proc/loadavg").read_text().split()[0]
                print(f"| {name} | {out[0]} | {out[1]} | {load} |", flush=True)
    finally:
        run.stop(upstream)


if __name__ == "__main__":
    main()
