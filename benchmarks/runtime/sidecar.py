"""The metrics sidecar's overhead: the custom FastAPI example server on the iris model, bare
and behind `python -m modelroll_runtime.proxy`, side by side in one run.

The user's server is pinned to core 0 and the sidecar to core 1, as a pod gives a sidecar a
CPU share of its own; wrk runs on core 1 as well (for the bare server too), so the sidecar
shares its core with the load generator, which only makes it look slower. Bare and sidecar
runs alternate, `--rounds` times each, so that a change in the machine's load hits both; the
report gives the median of each, their ratio, the load average around the pair, and the
CPU time per request of the user's server and of the sidecar (from /proc: load on the
machine changes it far less than it changes req/s). With its own core, the sidecar caps
throughput only where its CPU per request exceeds the server's.
The sidecar counts every prediction (MODELROLL_DRIFT_MAX_ROWS_PER_SECOND=0), its worst case.

usage: python benchmarks/runtime/sidecar.py [--duration 5] [--rounds 2] [--concurrency 1,8,64]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run

REPO = run.REPO
APP_DIR = REPO / "examples" / "custom-fastapi"
USER_CORE, SIDECAR_CORE = run.SERVER_CORE, run.CLIENT_CORE
MODEL = "iris"


def train_package(root: Path) -> tuple[Path, Path]:
    """The iris LogisticRegression as a model file and as a package with a profile."""
    import joblib
    from modelroll_runtime import packager
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    model_file = root / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), model_file)
    reference = root / "reference.csv"
    rows = [",".join(repr(float(v)) for v in row) for row in x]
    reference.write_text("\n".join(["a,b,c,d", *rows]) + "\n")
    return model_file, packager.build(model_file, reference, root / "package").directory


def start(
    command: list[str], env: dict[str, str], core: str, log: Path, ready: str
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["taskset", "-c", core, *command], env=env, stdout=out, stderr=out, cwd=APP_DIR
        )
    run.wait_ready(ready, process)
    return process


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", default="1,8,64")
    args = parser.parse_args()
    # a SIGTERM unwinds like ^C: the finally blocks stop both servers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    logs = run.BENCH / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    model_file, package = train_package(run.BENCH / "sidecar-models")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MODELROLL_")}
    user_port, proxy_port = run.free_port(), run.free_port()
    user = start(
        [sys.executable, "-m", "uvicorn", "app:app", "--port", str(user_port),
         "--log-level", "warning"],
        {**base_env, "MODEL_PATH": str(model_file), "MODEL_NAME": MODEL}, USER_CORE,
        logs / "sidecar-fastapi.log", f"http://127.0.0.1:{user_port}/v2/health/ready",
    )  # fmt: skip
    proxy_env = {
        **base_env, "MODELROLL_HTTP_PORT": str(proxy_port), "MODELROLL_HTTP_HOST": "127.0.0.1",
        "MODELROLL_PROXY_UPSTREAM": f"http://127.0.0.1:{user_port}",
        "MODELROLL_MODEL_NAME": MODEL, "MODELROLL_MODEL_VERSION": "1",
        "MODELROLL_MODEL_DIR": str(package), "MODELROLL_LOG_LEVEL": "WARNING",
        "MODELROLL_DRIFT_MAX_ROWS_PER_SECOND": "0",
    }  # fmt: skip
    rows_out: list[str] = []
    try:
        proxy = start(
            [sys.executable, "-m", "modelroll_runtime.proxy"], proxy_env, SIDECAR_CORE,
            logs / "sidecar-proxy.log", f"http://127.0.0.1:{proxy_port}/metrics",
        )  # fmt: skip
        try:
            for protocol in ("v2", "v1"):
                path = (f"/v2/models/{MODEL}/infer" if protocol == "v2"
                        else f"/v1/models/{MODEL}:predict")  # fmt: skip
                body = run.bodies(MODEL, 4, 1)[protocol]
                script = run.lua_script(logs / f"sidecar-{protocol}.lua", body)
                for concurrency in [int(c) for c in args.concurrency.split(",")]:
                    rows_out.append(
                        measure(
                            args,
                            protocol,
                            concurrency,
                            script,
                            path,
                            user_port,
                            proxy_port,
                            user,
                            proxy,
                        )
                    )
        finally:
            run.stop(proxy)
    finally:
        run.stop(user)
    print("| protocol | conc | bare req/s | sidecar req/s | ratio | bare p50 ms | sidecar p50 ms "
          "| bare p99 ms | sidecar p99 ms | server CPU µs/req, bare | behind the sidecar "
          "| sidecar CPU µs/req | errors | load avg |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows_out))


def measure(
    args: argparse.Namespace, protocol: str, concurrency: int, script: Path, path: str,
    user_port: int, proxy_port: int, user: subprocess.Popen[bytes],
    proxy: subprocess.Popen[bytes],
) -> str:  # fmt: skip
    """One table row: bare and sidecar runs alternating, `args.rounds` of each."""
    runs: dict[str, list[tuple[float, float, float, int, int]]] = {"bare": [], "sidecar": []}
    # CPU µs per request: the user's server's, bare and behind the sidecar, and the sidecar's
    cpu: dict[str, list[float]] = {"bare": [], "behind": [], "proxy": []}
    loads = [loadavg()]
    for _ in range(args.rounds):
        for name, port in (("bare", user_port), ("sidecar", proxy_port)):
            before = run.cpu_seconds(user.pid), run.cpu_seconds(proxy.pid)
            url = f"http://127.0.0.1:{port}{path}"
            result = run.wrk(url, script, concurrency, args.duration)
            served = max(1.0, result[0] * args.duration)
            server_us = (run.cpu_seconds(user.pid) - before[0]) / served * 1e6
            cpu["bare" if name == "bare" else "behind"].append(server_us)
            if name == "sidecar":
                cpu["proxy"].append((run.cpu_seconds(proxy.pid) - before[1]) / served * 1e6)
            runs[name].append(result)
        loads.append(loadavg())
        print(f"{protocol} c={concurrency}: bare {runs['bare'][-1][0]:.0f} req/s, sidecar "
              f"{runs['sidecar'][-1][0]:.0f} req/s, load {loads[-1]}", file=sys.stderr,
              flush=True)  # fmt: skip

    def med(name: str, i: int) -> float:
        return statistics.median(v[i] for v in runs[name])

    errors = sum(v[3] for v in runs["bare"] + runs["sidecar"])
    return (
        f"| {protocol} | {concurrency} | {med('bare', 0):.0f} | {med('sidecar', 0):.0f} | "
        f"{med('sidecar', 0) / med('bare', 0):.2f} | {med('bare', 1):.2f} | "
        f"{med('sidecar', 1):.2f} | {med('bare', 2):.2f} | {med('sidecar', 2):.2f} | "
        f"{statistics.median(cpu['bare']):.0f} | {statistics.median(cpu['behind']):.0f} | "
        f"{statistics.median(cpu['proxy']):.0f} | "
        f"{errors} | {' → '.join(loads)} |"
    )


if __name__ == "__main__":
    main()
