"""Cold start and RSS only (no wrk): the focused part of run.py, repeated a few times.

For each model (iris LogisticRegression, RandomForest 64x100) and server, start the server
pinned to core 0 and time process start -> ready. Ours is started twice per round: with an
empty compile cache (the compiler child runs) and with a warm one. RSS is the whole process
tree's (server plus any launcher/worker processes), read after readiness and 2000 1-row V2
requests from 8 client threads.

usage: .venv/bin/python benchmarks/runtime/startup.py [--rounds 3] [--servers ours,kserve,mlserver]
Peers need their venvs in .bench/ (created by run.sh); missing ones are skipped.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import BENCH, bodies, free_port, rss_kib, start_server, stop, train


def load(port: int, model: str, width: int, requests: int = 2000, threads: int = 8) -> None:
    body = bodies(model, width, 1)["v2"]
    url = f"http://127.0.0.1:{port}/v2/models/{model}/infer"

    def one(_: int) -> None:
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(requests)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--servers", default="ours,kserve,mlserver")
    args = parser.parse_args()
    servers = [s for s in args.servers.split(",")
               if s == "ours" or (BENCH / s / ".installed").exists()]  # fmt: skip
    logs = BENCH / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    models = train(BENCH / "models")
    rows: dict[tuple[str, str, str], list[float]] = {}
    rss: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for model, (directory, width) in models.items():
            for server in servers:
                cache = BENCH / "cache" / f"startup-{model}"
                if server == "ours":
                    shutil.rmtree(cache, ignore_errors=True)
                    process, cold = start_server(server, model, directory, free_port(), logs, cache)
                    stop(process)
                    rows.setdefault((server, model, "empty compile cache"), []).append(cold)
                port = free_port()
                process, cold = start_server(server, model, directory, port, logs, cache)
                label = "warm compile cache" if server == "ours" else "process start to ready"
                rows.setdefault((server, model, label), []).append(cold)
                try:
                    load(port, model, width)
                    rss.setdefault((server, model), []).append(rss_kib(process.pid) / 1024)
                finally:
                    stop(process)
                print(f"{server} {model}: cold {cold:.2f} s, rss {rss[(server, model)][-1]:.0f} MiB",
                      file=sys.stderr, flush=True)  # fmt: skip
    print("| server | model | start | cold start, median (min-max) | RSS after warm-up + load |")
    print("|---|---|---|---|---|")
    for (server, model, label), times in rows.items():
        mem = rss[(server, model)] if label != "empty compile cache" else []
        mem_cell = (
            f"{statistics.median(mem):.0f} MiB ({min(mem):.0f}-{max(mem):.0f})" if mem else "n/a"
        )
        print(f"| {server} | {model} | {label} | {statistics.median(times):.2f} s "
              f"({min(times):.2f}-{max(times):.2f}) | {mem_cell} |")  # fmt: skip


if __name__ == "__main__":
    main()
