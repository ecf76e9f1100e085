"""Prediction traffic from the host to a Service's ClusterIP, through kube-proxy's rules."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Answer:
    started: float
    finished: float
    status: int  # 0: no HTTP answer at all (refused, reset, timed out)
    version: str
    body: dict[str, Any]
    error: str = ""


def infer(
    host: str, model: str, rows: np.ndarray, timeout: float = 10, token: str | None = None
) -> Answer:
    """One V2 request on a new connection, so kube-proxy picks an endpoint for each;
    `token` goes as the bearer token (spec.runtime.auth)."""
    headers = {"Content-Type": "application/json", "Connection": "close"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(rows.shape),
                    "datatype": "FP64",
                    "data": rows.ravel().tolist(),
                }
            ]
        }
    )
    started = time.time()
    connection = http.client.HTTPConnection(host, 80, timeout=timeout)
    try:
        connection.request(
            "POST",
            f"/v2/models/{model}/infer",
            body,
            headers,
        )
        response = connection.getresponse()
        payload = response.read()
        try:
            parsed = json.loads(payload) if payload else {}
        except ValueError:  # a server's plain-text error page (uvicorn's 500): still an answer
            parsed = {}
        return Answer(
            started, time.time(), response.status, response.getheader("X-Model-Version", ""), parsed
        )
    except (OSError, http.client.HTTPException, ValueError) as error:
        return Answer(started, time.time(), 0, "", {}, f"{type(error).__name__}: {error}")
    finally:
        connection.close()


def infer_grpc(host: str, model: str, rows: np.ndarray, timeout: float = 10) -> Any:
    """One ModelInfer with tritonclient.grpc to the Service's gRPC port; its InferResult."""
    import tritonclient.grpc as grpcclient
    from modelroll.render import SERVICE_PORTS

    tensor = grpcclient.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows.astype(np.float64))
    client = grpcclient.InferenceServerClient(f"{host}:{SERVICE_PORTS['grpc']}")
    try:
        return client.infer(model, [tensor], client_timeout=timeout)
    finally:
        client.close()


def predicted_classes(answer: Answer) -> list[int]:
    output = answer.body["outputs"][0]
    return [int(v) for v in output["data"]]


@dataclass
class Load:
    """Requests in a loop from a few threads until stopped; every answer is kept."""

    host: str
    model: str
    rows: np.ndarray
    threads: int = 2
    pause: float = 0.0  # seconds each thread waits between requests (a steady, modest rate)
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            answer = infer(self.host, self.model, self.rows)
            with self._lock:
                self.answers.append(answer)
            self._stop.wait(self.pause)

    def count(self) -> int:
        with self._lock:
            return len(self.answers)


def failures(answers: list[Answer], limit: int = 5) -> list[str]:
    """The answers that were not 200, each with its UTC time and duration: enough to line
    them up with the rollout's Events when a run fails."""
    return [
        f"{time.strftime('%H:%M:%S', time.gmtime(a.started))}.{int(a.started % 1 * 10)} "
        f"({a.finished - a.started:.1f}s) HTTP {a.status} "
        f"version={a.version!r} {a.error or str(a.body)[:200]}"
        for a in answers
        if a.status != 200
    ][:limit]
