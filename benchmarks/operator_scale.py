"""Operator scale benchmark on the local control plane (not part of the test suite).

Applies N ModelDeployments, then reports: time until all are Ready, the operator's peak
RSS, and the operator's API writes per minute once everything is steady, counted from the
apiserver's audit log by the operator's own ServiceAccount identity.

    .venv/bin/python benchmarks/operator_scale.py --n 100 --n 1000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OPERATOR_USER = "system:serviceaccount:modelroll-system:modelroll-operator"


def sh(*args: str, env: dict[str, str], input: str | None = None) -> str:
    return subprocess.run(
        args, env=env, input=input, capture_output=True, text=True, check=True
    ).stdout


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_sampler(pid: int, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    peak[0] = max(peak[0], int(line.split()[1]) // 1024)
        except FileNotFoundError:
            return
        time.sleep(0.2)


def operator_writes(audit_log: Path, since: float, until: float) -> list[str]:
    writes = []
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        if event["user"]["username"] != OPERATOR_USER:
            continue
        stamp = (
            time.mktime(time.strptime(event["stageTimestamp"][:19], "%Y-%m-%dT%H:%M:%S"))
            - time.timezone
        )
        if since <= stamp <= until:
            writes.append(f"{event['verb']} {event['requestURI']}")
    return writes


def model_deployment(i: int) -> dict[str, object]:
    return {
        "apiVersion": "modelroll.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": f"m{i:04d}", "namespace": "bench"},
        "spec": {
            "model": {"format": "onnx", "uri": f"s3://bench/models/{i}/", "version": "1"},
            "replicas": 1,
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
        },
    }


def run(n: int, steady_seconds: int) -> dict[str, object]:
    cluster_dir = REPO / ".bench" / f"operator-scale-{n}"
    env = {
        **os.environ,
        "CLUSTER_DIR": str(cluster_dir),
        "KWOK_CPU_NODES": str(max(3, math.ceil(n / 200) + 1)),
        "KWOK_NODE_PODS": "250",
    }
    script = str(REPO / "hack" / "cluster.sh")
    subprocess.run([script, "down"], env=env, capture_output=True)
    exports = sh(script, "up", env=env)
    for line in exports.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.replace("$PATH", os.environ["PATH"])
    operator = None
    try:
        sh("kubectl", "create", "namespace", "modelroll-system", env=env)
        sh("kubectl", "create", "namespace", "bench", env=env)
        sh("kubectl", "apply", "--server-side", "-k", str(REPO / "crds"), env=env)
        sh("kubectl", "apply", "--server-side", "-k", str(REPO / "config" / "rbac"), env=env)
        sh(str(REPO / "hack" / "wait-crd.sh"), "modeldeployments.modelroll.io", env=env)
        token = sh(
            "kubectl",
            "create",
            "token",
            "modelroll-operator",
            "-n",
            "modelroll-system",
            "--duration=2h",
            env=env,
        ).strip()
        config = json.loads(
            sh("kubectl", "config", "view", "--raw", "--minify", "-o", "json", env=env)
        )
        config["users"] = [{"name": "operator", "user": {"token": token}}]
        config["contexts"][0]["context"]["user"] = "operator"
        kubeconfig = cluster_dir / "operator.kubeconfig"
        kubeconfig.write_text(json.dumps(config))
        liveness = free_port()
        operator_env = {
            **env,
            "KUBECONFIG": str(kubeconfig),
            "MODELROLL_METRICS_PORT": str(free_port()),
            "MODELROLL_LIVENESS": f"http://127.0.0.1:{liveness}/healthz",
        }
        log = open(cluster_dir / "operator.log", "wb")  # noqa: SIM115
        operator = subprocess.Popen(
            [sys.executable, "-m", "modelroll"],
            env=operator_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{liveness}/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        stop, peak = threading.Event(), [0]
        sampler = threading.Thread(
            target=peak_rss_sampler, args=(operator.pid, stop, peak), daemon=True
        )
        sampler.start()

        manifests = "\n".join(json.dumps(model_deployment(i)) for i in range(n))
        started = time.monotonic()
        sh("kubectl", "create", "-f", "-", env=env, input=manifests)
        applied = time.monotonic() - started
        ready = 0
        while time.monotonic() - started < 1800:
            items = json.loads(sh("kubectl", "get", "md", "-n", "bench", "-o", "json", env=env))[
                "items"
            ]
            ready = sum(
                1
                for md in items
                for c in (md.get("status") or {}).get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "True"
            )
            if ready == n:
                break
            time.sleep(1)
        all_ready = time.monotonic() - started

        time.sleep(30)  # let watch events and timers of the ramp-up drain
        window_start = time.time()
        time.sleep(steady_seconds)
        writes = operator_writes(cluster_dir / "logs" / "audit.log", window_start, time.time())
        stop.set()
        return {
            "n": n,
            "create_seconds": round(applied, 1),
            "all_ready_seconds": round(all_ready, 1),
            "ready": ready,
            "peak_rss_mib": peak[0],
            "steady_writes_per_minute": round(len(writes) * 60 / steady_seconds, 1),
            "steady_write_samples": writes[:5],
        }
    finally:
        if operator:
            operator.terminate()
            operator.wait(timeout=30)
        subprocess.run([script, "down"], env=env, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=int, action="append", help="ModelDeployments to apply (repeatable)"
    )
    parser.add_argument("--steady-seconds", type=int, default=60)
    args = parser.parse_args()
    results = [run(n, args.steady_seconds) for n in args.n or [100]]
    print(
        "| N | kubectl create (s) | all Ready (s) | operator peak RSS (MiB) | steady-state writes/min |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['n']} | {r['create_seconds']} | {r['all_ready_seconds']} ({r['ready']} Ready) "
            f"| {r['peak_rss_mib']} | {r['steady_writes_per_minute']} |"
        )
    for r in results:
        if r["steady_write_samples"]:
            print(f"N={r['n']} sample steady writes: {r['steady_write_samples']}")


if __name__ == "__main__":
    main()
