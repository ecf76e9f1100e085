"""A real Prometheus server, real runtime processes for it to scrape, and traffic for them.

Prometheus is Debian's package binary (`hack/install-deps.sh` installs it), started as a
plain process on a free loopback port with a temporary data directory; the package's
systemd service is never used. Targets are static, each with its own target labels (the
operator's ServiceMonitor attaches `namespace` and `revision` the same way in a cluster).
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelroll.prometheus import PrometheusClient

from tests.runtime.runtime_process import RuntimeProcess, free_port
from tests.support.prerequisites import install_command, require

PROMETHEUS_BIN = os.environ.get("MODELROLL_PROMETHEUS_BIN", "/usr/bin/prometheus")

Target = tuple[str, Mapping[str, str]]  # ("127.0.0.1:port", {"namespace": …, "revision": …})


def require_prometheus() -> None:
    """Fails the test in one line when the Prometheus binary is missing (before any set-up)."""
    require(
        PROMETHEUS_BIN,
        needed_by="the canary-analysis tests (Debian package prometheus)",
        fix=f"{install_command()} (or point MODELROLL_PROMETHEUS_BIN at a prometheus binary)",
    )


def _get_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class PrometheusServer:
    """`PrometheusServer(tmp, targets).start()`; `stop()` on teardown."""

    work_dir: Path
    targets: Sequence[Target]
    scrape_interval_seconds: int = 1
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    # Where it listens: loopback, unless pods must reach it (the e2e operator in-cluster).
    host: str = "127.0.0.1"
    # Scrape configs of its own (e.g. kubernetes_sd_configs) in place of the static targets.
    scrape_configs: Sequence[Mapping[str, Any]] = ()

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.work_dir / "prometheus.log"

    @property
    def query_log_file(self) -> Path:
        return self.work_dir / "queries.log"

    def queries(self) -> list[str]:
        """Every PromQL expression this server was asked to evaluate, oldest first."""
        if not self.query_log_file.exists():
            return []
        lines = self.query_log_file.read_text(errors="replace").splitlines()
        return [str(json.loads(line)["params"]["query"]) for line in lines if line.strip()]

    def client(self, timeout: float = 10) -> PrometheusClient:
        return PrometheusClient(self.address, timeout=timeout)

    def config(self) -> dict[str, Any]:
        interval = f"{self.scrape_interval_seconds}s"
        return {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "query_log_file": str(self.query_log_file),
            },
            "scrape_configs": [dict(c) for c in self.scrape_configs]
            or [
                {
                    "job_name": "modelroll-runtime",
                    "metrics_path": "/metrics",
                    "static_configs": [
                        {"targets": [address], "labels": dict(labels)}
                        for address, labels in self.targets
                    ],
                }
            ],
        }

    def start(self, timeout: float = 60) -> PrometheusServer:
        require_prometheus()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config_file = self.work_dir / "prometheus.yml"
        config_file.write_text(json.dumps(self.config(), indent=2))  # JSON is valid YAML
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    PROMETHEUS_BIN,
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={self.work_dir / 'data'}",
                    "--storage.tsdb.retention.time=1h",
                    f"--web.listen-address={self.host}:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=log,
                cwd=self.work_dir,
            )
        self._wait(self._ready, timeout, "ready")
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.address}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"prometheus exited {self.process.returncode}:\n{self.logs()}")
            if check():
                return
            time.sleep(0.1)
        raise AssertionError(f"prometheus: not {what} after {timeout}s:\n{self.logs()[-4000:]}")

    def logs(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def target_health(self) -> dict[str, tuple[str, str]]:
        """instance ("host:port") → (health, lastError) of every active target."""
        document = _get_json(f"{self.address}/api/v1/targets?state=active")
        return {
            t["labels"]["instance"]: (t["health"], t.get("lastError", ""))
            for t in document["data"]["activeTargets"]
        }

    def wait_targets_up(self, instances: Sequence[str], timeout: float = 60) -> None:
        """Waits until each target was scraped successfully (and its `up` is 1)."""
        last: dict[str, tuple[str, str]] = {}

        def all_up() -> bool:
            nonlocal last
            last = self.target_health()
            return all(last.get(i, ("unknown", ""))[0] == "up" for i in instances)

        try:
            self._wait(all_up, timeout, "scraping every target")
        except AssertionError as exc:
            raise AssertionError(f"targets not up: {last}\n{exc}") from None

    def wait_value(
        self,
        promql: str,
        predicate: Callable[[float | None], bool],
        timeout: float = 60,
        what: str = "",
    ) -> float | None:
        """Polls an instant query until predicate(value) holds; returns that value."""
        client = self.client(timeout=5)
        deadline = time.monotonic() + timeout
        value = client.query(promql)
        while not predicate(value):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what or promql}: still {value} after {timeout}s\n{self.logs()[-2000:]}"
                )
            time.sleep(0.2)
            value = client.query(promql)
        return value

    def stop(self, timeout: float = 20) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_runtime(
    model_dir: Path,
    log_file: Path,
    cache_dir: Path,
    *,
    model_name: str,
    version: str = "1",
    model_format: str = "sklearn",
    **env: str,
) -> RuntimeProcess:
    """Starts (does not wait for) a real runtime process serving `model_dir` on loopback.

    Extra keyword arguments are MODELROLL_* variables, e.g. MODELROLL_MAX_INFLIGHT="1".
    """
    return RuntimeProcess(
        {
            "MODELROLL_MODEL_URI": str(model_dir),
            "MODELROLL_MODEL_FORMAT": model_format,
            "MODELROLL_MODEL_NAME": model_name,
            "MODELROLL_MODEL_VERSION": version,
            "MODELROLL_CACHE_DIR": str(cache_dir),
            "MODELROLL_MODEL_DIR": str(log_file.parent / "downloads"),
            "MODELROLL_TERMINATION_LOG": str(log_file.with_suffix(".termination-log")),
            **env,
        },
        log_file,
    ).start()


def drive_traffic(
    port: int,
    path: str,
    body: bytes,
    *,
    requests: int,
    threads: int = 1,
    max_seconds: float = 30,
) -> collections.Counter[int]:
    """Sends `requests` POSTs (JSON) to 127.0.0.1:port from `threads` keep-alive clients.

    Stops early after `max_seconds`. Returns the count of each status code; a request that
    was sent and got no answer counts as status 0 (and the client reconnects).
    """
    counts: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()
    remaining = [requests]
    deadline = time.monotonic() + max_seconds
    headers = {"Content-Type": "application/json"}

    def take() -> bool:
        with lock:
            if remaining[0] <= 0 or time.monotonic() > deadline:
                return False
            remaining[0] -= 1
            return True

    def send(conn: http.client.HTTPConnection) -> None:
        # The runtime closes a keep-alive connection after some early answers (a 503 sent
        # before the body was read), not always with `Connection: close`; the next request
        # on it then fails to send. It never reached the server, so send it again on a new
        # connection. Failures after the request was sent are not retried (status 0).
        for attempt in range(3):
            try:
                conn.request("POST", path, body=body, headers=headers)
                return
            except (BrokenPipeError, ConnectionResetError):
                conn.close()
                if attempt == 2:
                    raise

    def exchange(conn: http.client.HTTPConnection) -> int:
        send(conn)
        response = conn.getresponse()
        response.read()
        return response.status

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            while take():
                reused = conn.sock is not None
                try:
                    status = exchange(conn)
                except (http.client.RemoteDisconnected, ConnectionResetError):
                    # The same race one step later: the request left before the server's
                    # close arrived, and no byte of an answer came back. On a reused
                    # connection that means it was never read: retry once on a new one.
                    conn.close()
                    try:
                        status = exchange(conn) if reused else 0
                    except (OSError, http.client.HTTPException):
                        status = 0
                        conn.close()
                except (OSError, http.client.HTTPException):
                    status = 0
                    conn.close()
                with lock:
                    counts[status] += 1
        finally:
            conn.close()

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(max_seconds + 15)
    return counts
