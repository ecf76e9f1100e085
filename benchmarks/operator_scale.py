"""Operator scale benchmark against the control plane's own floor (not part of the test suite).

For each N it starts a fresh local control plane (hack/cluster.sh, kwok nodes) twice:

- the floor: `kubectl create` of exactly the children `modelroll render` gives for the N
  ModelDeployments (as JSON, ownerReferences dropped: their owners do not exist, and the
  garbage collector would delete them), then a wait until every Deployment is available;
- the operator: it runs from source under its own ServiceAccount token; `kubectl create` of
  the N ModelDeployments, then a wait until every one is Ready.

It reports the operator's time as a ratio to the floor's, the operator's peak RSS, the
apply-to-children latency (a ModelDeployment's create to its Deployment's create, both from
the apiserver's audit log) during the burst and on the idle cluster afterwards, and the
operator's writes per minute once everything is steady (audit log, by its user name), and
its CPU then, in cores (the periodic resync's cost when nothing changes).
It also counts the burst's requests: by client and verb from the audit log (writes), and the
operator's own, reads included, from its modelroll_operator_api_requests_total.
`--raised-limits` runs kube-controller-manager with --kube-api-qps 200 --kube-api-burst 400
(hack/cluster.sh KCM_API_QPS/KCM_API_BURST) instead of its defaults, 20 and 30.

    .venv/bin/python benchmarks/operator_scale.py --n 1000 --limits default --limits raised
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
OPERATOR_USER = "system:serviceaccount:modelroll-system:modelroll-operator"
NAMESPACE = "bench"
LIMITS = {"default": ("20", "30"), "raised": ("200", "400")}
IDLE_PROBES = 20
# Sampling without stopping the operator, at a rate that costs it little; collapsed stacks.
PY_SPY = [
    str(Path(sys.executable).with_name("py-spy")),
    "record",
    "--nonblocking",
    "--rate",
    "20",
    "--format",
    "raw",
]


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


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU so far: whether the operator or the API server is
    what the burst waits on."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(v) for v in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def model_deployment(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "modelroll.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": f"m{i:04d}", "namespace": NAMESPACE},
        "spec": {
            "model": {"format": "onnx", "uri": f"s3://bench/models/{i}/", "version": "1"},
            "replicas": 1,
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
        },
    }


def rendered_children(n: int) -> str:
    """`modelroll render` of the N ModelDeployments, as one JSON document per line."""
    source = yaml.safe_dump_all([model_deployment(i) for i in range(n)])
    out = subprocess.run(
        [sys.executable, "-c", "from modelroll.cli.main import app; app()", "render", "-"],
        input=source,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "operator")},
    ).stdout
    children = [doc for doc in yaml.safe_load_all(out) if doc]
    for child in children:
        child["metadata"].pop("ownerReferences", None)
    return "\n".join(json.dumps(child) for child in children)


# --- audit log ----------------------------------------------------------------------------


def _stamp(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def audit_events(cluster_dir: Path) -> list[dict[str, Any]]:
    events = []
    for path in sorted((cluster_dir / "logs").glob("audit*.log")):
        events += [json.loads(line) for line in path.read_text().splitlines() if line]
    return events


def operator_writes(events: list[dict[str, Any]], since: float, until: float) -> list[str]:
    return [
        f"{e['verb']} {e['requestURI']}"
        for e in events
        if e["user"]["username"] == OPERATOR_USER and since <= _stamp(e["stageTimestamp"]) <= until
    ]


def request_tally(events: list[dict[str, Any]], since: float, until: float) -> dict[str, int]:
    """Requests the API server answered in [since, until], by client and verb (the operator's
    also by resource): where the burst's API work went, the floor's and the operator's."""
    clients = {
        OPERATOR_USER: "operator",
        "system:kube-controller-manager": "controller-manager",
        "system:kube-scheduler": "scheduler",
    }
    tally: dict[str, int] = {}
    for e in events:
        if (
            e.get("stage") != "ResponseComplete"
            or not since <= _stamp(e["stageTimestamp"]) <= until
        ):
            continue
        user = e["user"]["username"]
        client = clients.get(user, "controller-manager" if "controller" in user else "other")
        ref = e.get("objectRef") or {}
        resource = ref.get("resource", "-") + (
            f"/{ref['subresource']}" if "subresource" in ref else ""
        )
        key = f"{client} {e['verb']}" + (f" {resource}" if client == "operator" else "")
        tally[key] = tally.get(key, 0) + 1
    return dict(sorted(tally.items(), key=lambda kv: -kv[1]))


def api_requests(metrics_port: int) -> dict[str, int]:
    """The operator's own count of its API requests (reads too, which the audit log leaves
    out), by method, resource and code: modelroll_operator_api_requests_total."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read()
    counts: dict[str, int] = {}
    for line in text.decode().splitlines():
        if line.startswith("modelroll_operator_api_requests_total{"):
            labels, _, value = line.partition("} ")
            fields = dict(f.split("=", 1) for f in labels.split("{", 1)[1].split(","))
            key = " ".join(fields[k].strip('"') for k in ("method", "resource", "code"))
            counts[key] = int(float(value))
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def apply_latencies(events: list[dict[str, Any]], names: set[str]) -> list[float]:
    """Seconds from each ModelDeployment's create to its Deployment's create (both answered)."""
    created: dict[str, float] = {}
    deployed: dict[str, float] = {}
    for e in events:
        ref = e.get("objectRef") or {}
        code = (e.get("responseStatus") or {}).get("code")
        if ref.get("resource") == "modeldeployments" and e["verb"] == "create" and code == 201:
            created[ref["name"]] = _stamp(e["stageTimestamp"])
        elif (
            ref.get("resource") == "deployments"
            and e["user"]["username"] == OPERATOR_USER
            and code == 201
        ):
            owner = ref["name"].rsplit("-", 1)[0]
            deployed.setdefault(owner, _stamp(e["stageTimestamp"]))
    return [deployed[n] - created[n] for n in names if n in created and n in deployed]


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50_ms": math.nan, "p99_ms": math.nan}
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
    }


# --- clusters -----------------------------------------------------------------------------


class Cluster:
    """A fresh hack/cluster.sh control plane with enough kwok nodes for N pods."""

    def __init__(self, name: str, n: int, limits: str) -> None:
        self.dir = REPO / ".bench" / name
        qps, burst = LIMITS[limits]
        self.env = {
            **os.environ,
            "CLUSTER_DIR": str(self.dir),
            "KWOK_CPU_NODES": str(max(3, math.ceil(n / 200) + 1)),
            "KWOK_NODE_PODS": "250",
            "KCM_API_QPS": qps,
            "KCM_API_BURST": burst,
        }
        self.script = str(REPO / "hack" / "cluster.sh")
        self.metrics_port = 0  # the operator's, once started

    def __enter__(self) -> Cluster:
        subprocess.run([self.script, "down"], env=self.env, capture_output=True)
        for line in sh(self.script, "up", env=self.env).splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            self.env[key] = value.replace("$PATH", os.environ["PATH"])
        sh("kubectl", "create", "namespace", NAMESPACE, env=self.env)
        return self

    def __exit__(self, *_: object) -> None:
        subprocess.run([self.script, "down"], env=self.env, capture_output=True)

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return sh("kubectl", *args, env=self.env, input=input)

    def count(self, resource: str, jsonpath: str, value: str) -> int:
        out = self.kubectl("get", resource, "-n", NAMESPACE, "-o", f"jsonpath={jsonpath}")
        return out.split().count(value)

    def wait_count(self, resource: str, jsonpath: str, value: str, n: int) -> int:
        done = 0
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            done = self.count(resource, jsonpath, value)
            if done >= n:
                break
            time.sleep(1)
        return done


AVAILABLE = '{range .items[*]}{.status.availableReplicas}{" "}{end}'
READY = '{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{" "}{end}'


def floor(n: int, limits: str) -> dict[str, Any]:
    children = rendered_children(n)
    with Cluster(f"floor-{n}-{limits}", n, limits) as cluster:
        since = time.time()
        started = time.monotonic()
        cluster.kubectl("create", "-f", "-", input=children)
        created = time.monotonic() - started
        available = cluster.wait_count("deployments", AVAILABLE, "1", n)
        return {
            "seconds": round(time.monotonic() - started, 1),
            "create_seconds": round(created, 1),
            "available": available,
            "requests": request_tally(audit_events(cluster.dir), since, time.time()),
        }


def start_operator(cluster: Cluster) -> subprocess.Popen[bytes]:
    cluster.kubectl("create", "namespace", "modelroll-system")
    cluster.kubectl("apply", "--server-side", "-k", str(REPO / "crds"))
    cluster.kubectl("apply", "--server-side", "-k", str(REPO / "config" / "rbac"))
    sh(str(REPO / "hack" / "wait-crd.sh"), "modeldeployments.modelroll.io", env=cluster.env)
    token = cluster.kubectl(
        "create", "token", "modelroll-operator", "-n", "modelroll-system", "--duration=2h"
    ).strip()
    config = json.loads(cluster.kubectl("config", "view", "--raw", "--minify", "-o", "json"))
    config["users"] = [{"name": "operator", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "operator"
    kubeconfig = cluster.dir / "operator.kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    liveness = free_port()
    cluster.metrics_port = free_port()
    operator_env = {
        **cluster.env,
        "KUBECONFIG": str(kubeconfig),
        "PYTHONPATH": str(REPO / "operator"),
        "MODELROLL_METRICS_PORT": str(cluster.metrics_port),
        "MODELROLL_LIVENESS": f"http://127.0.0.1:{liveness}/healthz",
    }
    log = open(cluster.dir / "operator.log", "wb")  # noqa: SIM115
    command = [sys.executable, "-m", "modelroll"]
    if memory := os.environ.get("BENCH_TRACEMALLOC"):  # where the operator's memory went
        command = [sys.executable, str(REPO / "benchmarks" / "operator_memory.py"), memory]
    operator = subprocess.Popen(
        command,
        env=operator_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    if profile := os.environ.get("BENCH_PY_SPY"):  # where the operator's time went
        subprocess.Popen(
            [*PY_SPY, "--pid", str(operator.pid), "-o", profile],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{liveness}/healthz", timeout=2)
            break
        except OSError:
            time.sleep(0.2)
    return operator


def operator_run(n: int, limits: str, steady_seconds: int) -> dict[str, Any]:
    with Cluster(f"operator-{n}-{limits}", n, limits) as cluster:
        operator = start_operator(cluster)
        stop, peak = threading.Event(), [0]
        threading.Thread(
            target=peak_rss_sampler, args=(operator.pid, stop, peak), daemon=True
        ).start()
        try:
            manifests = "\n".join(json.dumps(model_deployment(i)) for i in range(n))
            since = time.time()
            started = time.monotonic()
            cluster.kubectl("create", "-f", "-", input=manifests)
            created = time.monotonic() - started
            ready = cluster.wait_count("md", READY, "True", n)
            all_ready = time.monotonic() - started
            until = time.time()
            requests_to_ready = api_requests(cluster.metrics_port)
            busy = cpu_seconds(operator.pid)

            time.sleep(30)  # let the watch events and checks of the ramp-up drain
            window_start = time.time()
            cpu_before = cpu_seconds(operator.pid)
            time.sleep(steady_seconds)
            window_end = time.time()
            # the periodic resync's cost when nothing changes, in cores
            steady_cpu = (cpu_seconds(operator.pid) - cpu_before) / (window_end - window_start)
            # Idle apply-to-children: one ModelDeployment at a time on the settled cluster.
            probes = {f"p{i:03d}" for i in range(IDLE_PROBES)}
            for name in sorted(probes):
                body = {**model_deployment(0), "metadata": {"name": name, "namespace": NAMESPACE}}
                cluster.kubectl("create", "-f", "-", input=json.dumps(body))
                time.sleep(1)
            time.sleep(2)
            events = audit_events(cluster.dir)
            writes = operator_writes(events, window_start, window_end)
            return {
                "seconds": round(all_ready, 1),
                "create_seconds": round(created, 1),
                "ready": ready,
                "peak_rss_mib": peak[0],
                "cpu_seconds_to_ready": round(busy, 1),
                "burst": percentiles_ms(apply_latencies(events, {f"m{i:04d}" for i in range(n)})),
                "idle": percentiles_ms(apply_latencies(events, probes)),
                "steady_writes_per_minute": round(len(writes) * 60 / steady_seconds, 1),
                "steady_write_samples": writes[:5],
                "steady_cpu_cores": round(steady_cpu, 3),
                "requests": request_tally(events, since, until),
                "operator_requests_to_ready": requests_to_ready,
            }
        finally:
            stop.set()
            operator.terminate()
            operator.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, action="append", help="ModelDeployments (repeatable)")
    parser.add_argument(
        "--limits", choices=sorted(LIMITS), action="append", help="controller-manager limits"
    )
    parser.add_argument("--steady-seconds", type=int, default=60)
    parser.add_argument("--skip-floor", action="store_true", help="operator runs only")
    args = parser.parse_args()
    rows = []
    for n in args.n or [100]:
        for limits in args.limits or ["raised"]:
            base = None if args.skip_floor else floor(n, limits)
            print(json.dumps({"n": n, "limits": limits, "floor": base}), flush=True)
            ours = operator_run(n, limits, args.steady_seconds)
            rows.append((n, limits, base, ours))
            print(json.dumps({"n": n, "limits": limits, "floor": base, "operator": ours}))
            sys.stdout.flush()
    print()
    print(
        "| N | KCM limits | floor all available | operator all Ready | ratio | peak RSS "
        "| apply-to-children p50 / p99, burst | idle | steady writes/min |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n, limits, base, ours in rows:
        qps, burst = LIMITS[limits]
        ratio = f"{ours['seconds'] / base['seconds']:.2f}" if base else "-"
        floor_cell = f"{base['seconds']} s" if base else "-"
        print(
            f"| {n} | {limits} ({qps}/{burst}) | {floor_cell} | {ours['seconds']} s "
            f"({ours['ready']} Ready) | {ratio} | {ours['peak_rss_mib']} MiB "
            f"| {ours['burst']['p50_ms']} / {ours['burst']['p99_ms']} ms "
            f"| {ours['idle']['p50_ms']} / {ours['idle']['p99_ms']} ms "
            f"| {ours['steady_writes_per_minute']} |"
        )


if __name__ == "__main__":
    main()
