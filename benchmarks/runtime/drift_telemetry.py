"""Throughput with and without drift telemetry, on the same packaged model (wrk, V2).

For each model (iris LogisticRegression, RandomForest 64x100), package it with its training
rows as the reference, then alternate servers with telemetry counting every row
(MODELROLL_DRIFT_MAX_ROWS_PER_SECOND=0: the full cost, no sampling), with telemetry as it
is by default (rows sampled above that rate), and with telemetry off
(MODELROLL_DRIFT_TELEMETRY=false), round after round, so that drifting machine load hits all
alike. Also the in-process cost of counting one batch (DriftTelemetry.observe, binning
and a flush every 1000 batches included). Prints markdown tables: median req/s of each and
their ratio, and the server's CPU time per request (its CPU seconds during the wrk run /
requests answered), which a busy machine blurs less than req/s.

usage: .venv/bin/python benchmarks/runtime/drift_telemetry.py [--rounds 3] [--duration 5]
           [--concurrency 1,64] [--rows 1,32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run
from run import (
    BENCH,
    bodies,
    cpu_seconds,
    free_port,
    lua_script,
    package,
    start_server,
    stop,
    train,
    wrk,
)

# counting every row, the default (sampled), and off; the table compares each with off
SERVERS = ("ours-telemetry", "ours-telemetry-default", "ours-no-telemetry")
OFF = SERVERS[-1]


def observe_cost_us(directory: Path, width: int, rows: int) -> float:
    """CPU microseconds to count one batch of `rows` rows, in this process (CPU time: on a
    busy machine wall time counts the time others ran)."""
    from modelroll_runtime.profile import Profile
    from modelroll_runtime.telemetry import DriftTelemetry
    from prometheus_client import CollectorRegistry

    document = json.loads((directory / "profile.json").read_text())
    telemetry = DriftTelemetry(Profile.from_document(document), "m", "1", CollectorRegistry(), 0)
    batch = {"input": np.random.default_rng(0).normal(size=(rows, width))}
    predictions = np.zeros(rows, dtype=np.int64)
    n, started = 0, time.process_time()
    while time.process_time() - started < 1.0:
        telemetry.observe(batch, predictions)
        n += 1
        if n % 1000 == 0:  # a scrape now and then: binning and publishing included
            telemetry.flush()
    telemetry.flush()
    return (time.process_time() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--rows", default="1,32")
    parser.add_argument("--core", default=run.SERVER_CORE)
    args = parser.parse_args()
    run.SERVER_CORE = args.core
    logs = BENCH / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    packages = package(train(BENCH / "models"), BENCH / "packages")
    rps: dict[tuple[str, int, int, str], list[float]] = {}
    cpu_us: dict[tuple[str, int, int, str], list[float]] = {}
    costs = {
        (model, rows): observe_cost_us(directory, width, rows)
        for model, (directory, width) in packages.items()
        for rows in (1, 32)
    }
    for round_ in range(args.rounds):
        for model, (directory, width) in packages.items():
            order = SERVERS if round_ % 2 == 0 else SERVERS[::-1]
            for server in order:
                port = free_port()
                process, _ = start_server(
                    server, model, directory, port, logs, BENCH / "cache" / "none"
                )
                try:
                    url = f"http://127.0.0.1:{port}/v2/models/{model}/infer"
                    for rows in (int(r) for r in args.rows.split(",")):
                        script = lua_script(
                            logs / f"drift-{model}-{rows}.lua", bodies(model, width, rows)["v2"]
                        )
                        for concurrency in (int(c) for c in args.concurrency.split(",")):
                            before = cpu_seconds(process.pid)
                            got, _, _, errors, _ = wrk(url, script, concurrency, args.duration)
                            used = cpu_seconds(process.pid) - before
                            assert errors == 0, f"{server} {model}: {errors} errors"
                            key = (model, rows, concurrency, server)
                            rps.setdefault(key, []).append(got)
                            cpu_us.setdefault(key, []).append(used / (got * args.duration) * 1e6)
                            print(f"round {round_} {server} {model} rows={rows} c={concurrency}: "
                                  f"{got:.0f} req/s, {cpu_us[key][-1]:.0f} CPU µs/request",
                                  file=sys.stderr, flush=True)  # fmt: skip
                finally:
                    stop(process)
    print("| model | rows | conc | telemetry | on, req/s | off, req/s | on / off "
          "| server CPU µs per request, on | off | on / off |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model, rows, concurrency, server in sorted(rps):
        if server == OFF:
            continue
        on, off = (statistics.median(rps[(model, rows, concurrency, s)]) for s in (server, OFF))
        cpu_on, cpu_off = (
            statistics.median(cpu_us[(model, rows, concurrency, s)]) for s in (server, OFF)
        )
        mode = "every row" if server == "ours-telemetry" else "default (sampled)"
        print(f"| {model} | {rows} | {concurrency} | {mode} | {on:.0f} | {off:.0f} "
              f"| {on / off:.3f} | {cpu_on:.0f} | {cpu_off:.0f} | {cpu_on / cpu_off:.3f} |")  # fmt: skip
    print("\n| model | rows per batch | counting one batch (in process, CPU) |")
    print("|---|---|---|")
    for (model, rows), cost in costs.items():
        print(f"| {model} | {rows} | {cost:.1f} µs |")


if __name__ == "__main__":
    main()
