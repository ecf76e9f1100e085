"""Cold start and RSS only (no wrk): the focused part of run.py, repeated a few times.

For each model (iris LogisticRegression, RandomForest 64x100) and server, start the server
pinned to one core (--core) and time process start -> ready (the model's V2 ready endpoint
answering 200). Ours is started twice per round: first with an empty compile cache (the pod's
first start: the compiler child converts the model to ONNX and checks it before the server is
ready), then with the cache that start left (every later start). `ours-native` is ours with
an unusable cache, so it serves the native scikit-learn model in-process: what becoming ready
on the native model costs. `ours-package` serves the model's `modelroll package` directory
(its training rows as the reference) from an empty compile cache: the package is verified
(sha256 of every file), its ONNX graph loaded without scikit-learn, and warmed up on a
reference row; its drift telemetry is on. RSS is the whole process tree's (server plus any launcher/worker
processes), read after readiness and 2000 1-row V2 requests from 8 client threads.

usage: .venv/bin/python benchmarks/runtime/startup.py [--rounds 5] [--core 0]
           [--servers ours,ours-package,ours-native,kserve,mlserver] [--grpc-port off]
Peers need their venvs in .bench/ (created by run.sh); missing ones are skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run
from run import (
    BENCH,
    bodies,
    cpu_seconds,
    free_port,
    package,
    rss_kib,
    start_server,
    stop,
    train,
)

UNUSABLE_CACHE = Path("/proc/modelroll-unwritable")


def load(port: int, model: str, width: int, requests: int = 2000, threads: int = 8) -> None:
    body = bodies(model, width, 1)["v2"]
    url = f"http://127.0.0.1:{port}/v2/models/{model}/infer"

    def one(_: int) -> None:
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(requests)))


def measure(
    server: str, model: str, directory: Path, width: int, cache: Path
) -> tuple[float, float, float]:
    """Seconds from process start to ready, CPU seconds to ready, and MiB of RSS after the
    load."""
    port = free_port()
    process, cold = start_server(server, model, directory, port, BENCH / "logs", cache)
    try:
        cpu = cpu_seconds(process.pid)
        load(port, model, width)
        return cold, cpu, rss_kib(process.pid) / 1024
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--core", default=run.SERVER_CORE, help="the core servers are pinned to")
    parser.add_argument("--servers", default="ours,ours-package,ours-native,kserve,mlserver")
    parser.add_argument("--grpc-port", help="ours: MODELROLL_GRPC_PORT (default: a free port)")
    args = parser.parse_args()
    run.SERVER_CORE = args.core
    run.GRPC_PORT = args.grpc_port
    servers = [s for s in args.servers.split(",")
               if s.startswith("ours") or (BENCH / s / ".installed").exists()]  # fmt: skip
    (BENCH / "logs").mkdir(parents=True, exist_ok=True)
    models = train(BENCH / "models")
    packages = package(models, BENCH / "packages") if "ours-package" in servers else {}
    load_before = os.getloadavg()
    rows: dict[tuple[str, str, str], list[tuple[float, float, float]]] = {}
    for _ in range(args.rounds):
        for model, (directory, width) in models.items():
            for server in servers:
                cache = BENCH / "cache" / f"startup-{model}"
                starts: list[tuple[str, str, Path]] = []
                if server == "ours":
                    shutil.rmtree(cache, ignore_errors=True)
                    starts += [("empty compile cache", "ours", cache),
                               ("warm compile cache", "ours", cache)]  # fmt: skip
                elif server == "ours-native":
                    starts.append(("native model in-process", "ours", UNUSABLE_CACHE))
                elif server == "ours-package":
                    shutil.rmtree(cache, ignore_errors=True)
                    starts.append(("packaged, empty compile cache", "ours", cache))
                else:
                    starts.append(("process start to ready", server, cache))
                served = packages[model][0] if server == "ours-package" else directory
                for label, name, where in starts:
                    cold, cpu, rss = measure(name, model, served, width, where)
                    rows.setdefault((server, model, label), []).append((cold, cpu, rss))
                    print(f"{server} {model} {label}: cold {cold:.2f} s, cpu {cpu:.2f} s, "
                          f"rss {rss:.0f} MiB", file=sys.stderr, flush=True)  # fmt: skip
    load_after = os.getloadavg()
    print(f"`{' '.join([Path(sys.executable).name, *sys.argv])}`: servers pinned to core "
          f"{args.core} of {os.cpu_count()}; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after\n")  # fmt: skip
    print("| server | model | start | cold start, median (min-max) | CPU seconds to ready "
          "| RSS after warm-up + load |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for (server, model, label), results in rows.items():
        times = [cold for cold, _, _ in results]
        cpus = [cpu for _, cpu, _ in results]
        mem = [rss for _, _, rss in results]
        print(f"| {server} | {model} | {label} | {statistics.median(times):.2f} s "
              f"({min(times):.2f}-{max(times):.2f}) | {statistics.median(cpus):.2f} s | "
              f"{statistics.median(mem):.0f} MiB ({min(mem):.0f}-{max(mem):.0f}) |")  # fmt: skip


if __name__ == "__main__":
    main()
