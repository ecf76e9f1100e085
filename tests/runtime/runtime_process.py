"""Start the runtime as a real process, the way the image's ENTRYPOINT does, and talk to it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connects(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RuntimeProcess:
    env: dict[str, str]
    log_file: Path
    port: int = field(default_factory=free_port)
    # its own, so that runtimes started side by side never share the default 8081
    grpc_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    # set: the runtime serves TLS, and requests go over HTTPS verified with this context
    # (to `tls_host`, the name its certificate carries, on 127.0.0.1)
    tls: ssl.SSLContext | None = None
    tls_host: str = "localhost"
    # modelroll_runtime.proxy: the metrics sidecar, which has no gRPC port nor workers
    module: str = "modelroll_runtime"

    def start(self) -> RuntimeProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELROLL_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update({"MODELROLL_HTTP_PORT": str(self.port), "MODELROLL_HTTP_HOST": "127.0.0.1"})
        if self.module == "modelroll_runtime":
            env["MODELROLL_GRPC_PORT"] = str(self.grpc_port)
            env.setdefault("MODELROLL_WORKERS", "1")
        env.update(self.env)
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module], env=env, stdout=log, stderr=log
            )
        return self

    def wait_live(self, timeout: float = 30) -> None:
        self._wait(lambda: self.get("/v2/health/live").status == 200, timeout, "live")

    def wait_ready(self, timeout: float = 90) -> None:
        self._wait(lambda: self.get("/v2/health/ready").status == 200, timeout, "ready")

    def wait_grpc(self, timeout: float = 30) -> None:
        """Until the gRPC port takes connections (it opens once the model's load has ended)."""
        self._wait(lambda: _connects(self.grpc_port), timeout, "listening on gRPC")

    def _wait(self, check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"runtime exited {self.process.returncode}:\n{self.logs()}")
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"runtime not {what} after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_file.read_text(errors="replace")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Response:
        conn: http.client.HTTPConnection
        if self.tls is not None:
            conn = http.client.HTTPSConnection(
                self.tls_host, self.port, timeout=timeout, context=self.tls
            )
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Response(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            conn.close()

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self.request("GET", path, headers=headers, timeout=5)

    def post_json(
        self, path: str, document: Any, headers: dict[str, str] | None = None
    ) -> Response:
        return self.request(
            "POST",
            path,
            json.dumps(document).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
