"""Benchmark modelroll-runtime against KServe and MLServer on the same core with wrk.

Trains iris LogisticRegression and a RandomForest (64 features, 100 trees), installs the
peers into their own cached venvs (tests/support/peers.py, shared with the peer-compatibility
tests), runs each server pinned to core 0 and wrk pinned
to core 1 at concurrency 1, 8 and 64 with 1-row and 32-row requests, and prints one markdown
table plus cold start, RSS and the in-process predict cost.

`floor` (floor.py) is the leanest server for the job, on the graph ours compiled: with it in
--servers, a second table gives ours as ratios to it. With --rounds N every server runs N
times, the servers interleaved in each round, so that both see the same load; a cell is the
median of its rounds, with the spread beside it.

usage: benchmarks/runtime/run.sh [--duration 5] [--servers ours,floor,kserve,mlserver]
                                 [--rounds 1] [--rows 1,32] [--concurrency 1,8,64]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.support import peers  # noqa: E402  (the repo root, put on the path just above)

BENCH = REPO / ".bench"
SERVER_CORE, CLIENT_CORE = "0", "1"
# ours: MODELROLL_GRPC_PORT ("off" serves REST only); None: a free port, so that a
# benchmark never collides with another runtime on the default 8081
GRPC_PORT: str | None = None
PEER_NAMES = ("kserve", "mlserver")


@dataclass
class Result:
    server: str
    model: str
    protocol: str
    rows: int
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float  # the server's CPU (user + system) per request answered


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def train(models: Path) -> dict[str, tuple[Path, int]]:
    import joblib
    from sklearn.datasets import load_iris, make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    iris = LogisticRegression(max_iter=1000).fit(x, y)
    x_rf, y_rf = make_classification(n_samples=2000, n_features=64, random_state=0)
    rf = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(x_rf, y_rf)
    out: dict[str, tuple[Path, int]] = {}
    for name, model, width, rows in (("iris", iris, 4, x), ("rf", rf, 64, x_rf)):
        directory = models / name
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, directory / "model.joblib")
        np.save(models / f"{name}.reference.npy", rows)  # outside: peers read the directory
        out[name] = (directory, width)
    return out


def package(models: dict[str, tuple[Path, int]], out: Path) -> dict[str, tuple[Path, int]]:
    """`modelroll package` of each trained model, its training rows as the reference."""
    from modelroll_runtime import packager

    packages: dict[str, tuple[Path, int]] = {}
    for name, (directory, width) in models.items():
        target = out / name
        shutil.rmtree(target, ignore_errors=True)
        reference = directory.parent / f"{name}.reference.npy"
        result = packager.build(directory / "model.joblib", reference, target)
        print(f"packaged {name}: backend {result.backend} ({result.verdict})", file=sys.stderr)
        packages[name] = (target, width)
    return packages


def in_process_cost(model_file: Path, width: int) -> dict[str, float]:
    """Microseconds per row of model.predict in this process, one thread."""
    import joblib

    model = joblib.load(model_file)
    if hasattr(model, "n_jobs"):
        model.n_jobs = 1
    rng = np.random.default_rng(0)
    costs = {}
    for rows in (1, 32):
        x = rng.normal(size=(rows, width))
        model.predict(x)
        n = 0
        started = time.perf_counter()
        while time.perf_counter() - started < 1.0:
            model.predict(x)
            n += 1
        costs[f"us_per_row_{rows}"] = (time.perf_counter() - started) / n / rows * 1e6
    return costs


def rss_kib(pid: int) -> int:
    """RSS of a process and all its descendants."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, AttributeError):
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a process and its descendants, those it has waited for
    included: a load-independent view of what a start costs on a busy machine."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
            total += sum(int(v) for v in fields[11:15]) / ticks  # utime stime cutime cstime
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 300) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} not ready in {timeout}s")


def start_server(
    server: str, model: str, directory: Path, port: int, logs: Path, cache: Path
) -> tuple[subprocess.Popen[bytes], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELROLL_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if server.startswith("ours"):
        command = [str(REPO / ".venv/bin/modelroll-runtime")]
        env.update(
            MODELROLL_MODEL_NAME=model, MODELROLL_MODEL_URI=str(directory),
            MODELROLL_MODEL_FORMAT="sklearn", MODELROLL_HTTP_PORT=str(port),
            MODELROLL_WORKERS="1", MODELROLL_CACHE_DIR=str(cache), MODELROLL_LOG_LEVEL="WARNING",
            MODELROLL_GRPC_PORT=GRPC_PORT or str(free_port()),
        )  # fmt: skip
        # a package's drift telemetry: counting every row (no sampling), as configured by
        # default (sampled above MODELROLL_DRIFT_MAX_ROWS_PER_SECOND), or off
        if server == "ours-telemetry":
            env["MODELROLL_DRIFT_MAX_ROWS_PER_SECOND"] = "0"
        elif server == "ours-no-telemetry":
            env["MODELROLL_DRIFT_TELEMETRY"] = "false"
        ready = f"http://127.0.0.1:{port}/v2/models/{model}/ready"
    elif server == "floor":
        (graph,) = (BENCH / "cache" / model).glob("*/model.onnx")  # ours compiled it
        command = [sys.executable, str(REPO / "benchmarks/runtime/floor.py"), str(graph), model,
                   str(port)]  # fmt: skip
        ready = f"http://127.0.0.1:{port}/"
    elif server == "kserve":  # KServe's sklearnserver model class on the KServe SDK
        command = peers.kserve_command(port, [("sklearn", model, directory)])
        ready = f"http://127.0.0.1:{port}/v2/models/{model}/ready"
    else:
        repo = logs / f"mlserver-{model}"
        shutil.rmtree(repo, ignore_errors=True)
        ports = (port, free_port(), free_port())
        specs = [("sklearn", model, directory / "model.joblib")]
        command = peers.mlserver_command(ports, specs, repo)
        ready = f"http://127.0.0.1:{port}/v2/models/{model}/ready"
    log = (logs / f"{server}-{model}.log").open("ab")
    started = time.monotonic()
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, *command], env=env, stdout=log, stderr=log
    )
    cold_start = wait_ready(ready, process) - started
    return process, cold_start


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def lua_script(path: Path, body: bytes) -> Path:
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
    )
    return path


def bodies(model: str, width: int, rows: int) -> dict[str, bytes]:
    x = np.round(np.random.default_rng(rows).normal(size=(rows, width)), 4)
    v2 = {"inputs": [{"name": "input-0", "shape": [rows, width], "datatype": "FP64",
                      "data": x.ravel().tolist()}]}  # fmt: skip
    return {"v2": json.dumps(v2).encode(), "v1": json.dumps({"instances": x.tolist()}).encode()}


def wrk(
    url: str, script: Path, concurrency: int, duration: int
) -> tuple[float, float, float, int, int]:
    output = subprocess.run(
        ["taskset", "-c", CLIENT_CORE, "wrk", "-t1", f"-c{concurrency}", f"-d{duration}s",
         "--latency", "--timeout", "10s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    answered = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]

    def latency_ms(pct: str) -> float:
        value, unit = re.search(rf"{pct}%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    count = int(errors.group(1)) if errors else 0
    if socket_errors:
        count += sum(int(g) for g in socket_errors.groups())
    return rps, latency_ms("50"), latency_ms("99"), count, answered


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--servers", default="ours,kserve,mlserver")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--rows", default="1,32")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--models", default="iris,rf")
    parser.add_argument("--grpc-port", help="ours: MODELROLL_GRPC_PORT (default: a free port)")
    args = parser.parse_args()
    global GRPC_PORT
    GRPC_PORT = args.grpc_port
    servers = args.servers.split(",")
    if "floor" in servers and "ours" not in servers:
        sys.exit("floor serves the graph ours compiles: --servers needs ours too")
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    BENCH.mkdir(exist_ok=True)
    logs = BENCH / "logs"
    logs.mkdir(exist_ok=True)
    for peer in servers:
        if peer in peers.PEERS:
            peers.ensure_venv(peer)
    models = {m: v for m, v in train(BENCH / "models").items() if m in args.models.split(",")}
    results: list[Result] = []
    starts: list[str] = []
    loads = [f"before: {_load()}"]
    costs = {name: in_process_cost(d / "model.joblib", w) for name, (d, w) in models.items()}
    cells = [(int(r), int(c)) for r in args.rows.split(",") for c in args.concurrency.split(",")]
    for model, (directory, width) in models.items():
        cache = BENCH / "cache" / model
        if "ours" in servers:  # first start with an empty compile cache, then a warm one
            shutil.rmtree(cache, ignore_errors=True)
            process, cold = start_server("ours", model, directory, free_port(), logs, cache)
            stop(process)
            starts.append(f"| ours | {model} | {cold:.2f} s (empty compile cache) |")
        for round_ in range(args.rounds):
            for server in servers:
                results += bench_server(server, model, directory, width, cells, args.duration,
                                        starts if round_ == 0 else [])  # fmt: skip
        loads.append(f"after {model}: {_load()}")
    print_report(results, starts, costs)
    if "floor" in servers:
        print_floor_ratios(results, loads)


def bench_server(
    server: str, model: str, directory: Path, width: int, cells: list[tuple[int, int]],
    duration: int, starts: list[str],
) -> list[Result]:  # fmt: skip
    """Every cell of one server on one model, from one start of it."""
    logs = BENCH / "logs"
    port = free_port()
    process, cold = start_server(server, model, directory, port, logs, BENCH / "cache" / model)
    label = {"ours": "warm compile cache", "floor": "the compiled graph"}.get(
        server, "process start to ready"
    )
    starts.append(f"| {server} | {model} | {cold:.2f} s ({label}) |")
    results = []
    try:
        protocols = ["v2", "v1"] if server != "mlserver" else ["v2"]
        for protocol in protocols:
            path = (f"/v2/models/{model}/infer" if protocol == "v2"
                    else f"/v1/models/{model}:predict")  # fmt: skip
            for rows, concurrency in cells:
                body = bodies(model, width, rows)[protocol]
                script = lua_script(logs / f"{model}-{protocol}-{rows}.lua", body)
                url = f"http://127.0.0.1:{port}{path}"
                cpu = cpu_seconds(process.pid)
                rps, p50, p99, errors, answered = wrk(url, script, concurrency, duration)
                cpu_us = (cpu_seconds(process.pid) - cpu) / max(answered, 1) * 1e6
                results.append(Result(server, model, protocol, rows, concurrency, rps, p50, p99,
                                      errors, cpu_us))  # fmt: skip
                print(f"{server} {model} {protocol} rows={rows} c={concurrency}: "
                      f"{rps:.0f} req/s p50 {p50:.2f} ms p99 {p99:.2f} ms "
                      f"cpu {cpu_us:.1f} us/req errors {errors}", file=sys.stderr, flush=True)  # fmt: skip
        if starts:
            starts[-1] += f" {rss_kib(process.pid) / 1024:.0f} MiB |"
    finally:
        stop(process)
    return results


def _load() -> str:
    """The load average (1, 5, 15 min) and its time, recorded with each table."""
    one, five, fifteen = os.getloadavg()
    return (
        f"{time.strftime('%H:%M:%S', time.gmtime())} UTC, load {one:.2f} {five:.2f} {fifteen:.2f}"
    )


def exactness(server: str, model: str) -> str:
    """Whether the answers are the native model's: the peers serve it natively; ours says
    with the compiler's verdict in its compile cache (meta.json, as in the metadata)."""
    if server != "ours":
        return "native"
    verdicts = [json.loads(m.read_text()) for m in (BENCH / "cache" / model).glob("*/meta.json")]
    if not verdicts:
        return "?"
    meta = verdicts[0]
    if meta.get("backend") != "onnx":
        return f"native ({meta.get('verdict')})"
    return f"{meta.get('verdict')}, {meta.get('input_dtype')} graph"


def medians(results: list[Result]) -> tuple[list[Result], dict[tuple[object, ...], str]]:
    """One result per cell, each figure the median over its rounds; and each cell's req/s
    range over the rounds ("" with one round)."""
    cells: dict[tuple[object, ...], list[Result]] = {}
    for r in results:
        cells.setdefault((r.server, r.model, r.protocol, r.rows, r.concurrency), []).append(r)
    merged, spread = [], {}
    for key, runs in cells.items():
        first = runs[0]

        def median(field: str, runs: list[Result] = runs) -> float:
            return float(np.median([getattr(r, field) for r in runs]))

        merged.append(Result(first.server, first.model, first.protocol, first.rows,
                             first.concurrency, median("rps"), median("p50_ms"),
                             median("p99_ms"), sum(r.errors for r in runs),
                             median("cpu_us")))  # fmt: skip
        rates = sorted(r.rps for r in runs)
        spread[key] = f"{rates[0]:.0f}-{rates[-1]:.0f}" if len(runs) > 1 else ""
    return merged, spread


def print_report(
    results: list[Result], starts: list[str], costs: dict[str, dict[str, float]]
) -> None:
    results, spread = medians(results)
    print("| model | protocol | rows | conc | server | exact | req/s | rounds' req/s | p50 ms "
          "| p99 ms | server CPU µs/req | errors |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(results, key=lambda r: (r.model, r.protocol, r.rows, r.concurrency, r.server)):
        key = (r.server, r.model, r.protocol, r.rows, r.concurrency)
        print(f"| {r.model} | {r.protocol} | {r.rows} | {r.concurrency} | {r.server} | "
              f"{exactness(r.server, r.model)} | {r.rps:.0f} | {spread[key]} | {r.p50_ms:.2f} | "
              f"{r.p99_ms:.2f} | {r.cpu_us:.1f} | {r.errors} |")  # fmt: skip
    print("\n| server | model | cold start | RSS after load |")
    print("|---|---|---|---|")
    for line in starts:
        print(line if line.count("|") == 5 else line + " n/a |")
    print(
        "\n| model | sklearn predict, 1 row | per row at 32 rows | ours c=64 1-row V2 rows/s "
        "| as a fraction of 1-row in-process predict | ours vs best peer at c=64 1-row V2 |"
    )
    print("|---|---|---|---|---|---|")
    for model, cost in costs.items():
        ours = [r for r in results if (r.server, r.model, r.protocol, r.rows, r.concurrency)
                == ("ours", model, "v2", 1, 64)]  # fmt: skip
        peers = [r for r in results if r.server in PEER_NAMES and (r.model, r.protocol, r.rows,
                 r.concurrency) == (model, "v2", 1, 64)]  # fmt: skip
        ours_rps = ours[0].rps if ours else float("nan")
        best = max((r.rps for r in peers), default=float("nan"))
        limit = 1e6 / cost["us_per_row_1"]
        print(f"| {model} | {cost['us_per_row_1']:.0f} µs | {cost['us_per_row_32']:.1f} µs | "
              f"{ours_rps:.0f} | {ours_rps / limit:.2f}x | {ours_rps / best:.1f}x |")  # fmt: skip


def print_floor_ratios(results: list[Result], loads: list[str]) -> None:
    """Ours as ratios to the floor, cell by cell, from the same run (medians of the rounds)."""
    results, _ = medians(results)
    cells: dict[tuple[object, ...], Result] = {
        (r.server, r.model, r.protocol, r.rows, r.concurrency): r for r in results
    }
    print("\n| model | protocol | rows | conc | ours req/s | floor req/s | throughput ratio "
          "| ours p99 ms | floor p99 ms | p99 ratio | CPU µs/req ours / floor |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (server, *cell), ours in sorted(cells.items()):
        floor = cells.get(("floor", *cell))
        if server != "ours" or floor is None:
            continue
        print(f"| {' | '.join(map(str, cell))} | {ours.rps:.0f} | {floor.rps:.0f} | "
              f"{ours.rps / floor.rps:.2f} | {ours.p99_ms:.2f} | {floor.p99_ms:.2f} | "
              f"{ours.p99_ms / floor.p99_ms:.2f} | {ours.cpu_us:.1f} / {floor.cpu_us:.1f} |")  # fmt: skip
    print("\nLoad average during the run: " + "; ".join(loads))


if __name__ == "__main__":
    main()
