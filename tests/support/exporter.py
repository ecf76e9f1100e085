"""A scrape target whose counters the test sets: it stands in for a revision's runtime pods
where the test must decide what they report (which predictions, how much traffic), and a
real Prometheus scrapes it like any runtime.

It serves the Prometheus text format on /metrics. Counters only grow, as real ones do;
gauges are set.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.runtime.runtime_process import free_port

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class CounterExporter:
    port: int = field(default_factory=free_port)
    _counters: dict[str, dict[Labels, float]] = field(default_factory=dict)
    _gauges: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, name: str, labels: Mapping[str, str], amount: float) -> None:
        if amount < 0:
            raise ValueError("counters only grow")
        with self._lock:
            series = self._counters.setdefault(name, {})
            key = _labels(labels)
            series[key] = series.get(key, 0.0) + amount

    def set(self, name: str, labels: Mapping[str, str], value: float) -> None:
        with self._lock:
            self._gauges.add(name)
            self._counters.setdefault(name, {})[_labels(labels)] = value

    def value(self, name: str, labels: Mapping[str, str]) -> float:
        with self._lock:
            return self._counters.get(name, {}).get(_labels(labels), 0.0)

    def exposition(self) -> bytes:
        lines: list[str] = []
        with self._lock:
            for name, series in sorted(self._counters.items()):
                kind = "gauge" if name in self._gauges else "counter"
                lines.append(f"# TYPE {name} {kind}")
                for labels, value in sorted(series.items()):
                    text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    lines.append(f"{name}{{{text}}} {value!r}")
        return ("\n".join(lines) + "\n").encode()

    def start(self) -> CounterExporter:
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.exposition() if self.path == "/metrics" else b""
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@contextmanager
def exporters(count: int) -> Iterator[list[CounterExporter]]:
    started = [CounterExporter().start() for _ in range(count)]
    try:
        yield started
    finally:
        for exporter in started:
            exporter.stop()
