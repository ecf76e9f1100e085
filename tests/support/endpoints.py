"""Watches a Service's EndpointSlices and remembers whether ready endpoints ever hit zero."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch


@dataclass
class EndpointWatcher:
    """Start once the Service has ready endpoints; every later change is checked."""

    api_client: client.ApiClient
    namespace: str
    service: str
    samples: list[int] = field(default_factory=list)
    _slices: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    @staticmethod
    def _ready(item: Any) -> int:
        return sum(
            1
            for e in item.endpoints or []
            if e.conditions is None or e.conditions.ready is not False
        )

    def start(self) -> EndpointWatcher:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        api = client.DiscoveryV1Api(self.api_client)
        selector = f"kubernetes.io/service-name={self.service}"
        while not self._stop.is_set():
            stream = watch.Watch()
            for event in stream.stream(
                api.list_namespaced_endpoint_slice,
                self.namespace,
                label_selector=selector,
                timeout_seconds=5,
            ):
                item = event["object"]
                if event["type"] == "DELETED":
                    self._slices.pop(item.metadata.name, None)
                else:
                    self._slices[item.metadata.name] = self._ready(item)
                self.samples.append(sum(self._slices.values()))
                if self._stop.is_set():
                    stream.stop()
                    break

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.samples

    def assert_never_empty(self) -> None:
        samples = self.stop()
        assert samples, f"no EndpointSlice events seen for {self.namespace}/{self.service}"
        first_ready = next((i for i, n in enumerate(samples) if n > 0), None)
        assert first_ready is not None, f"{self.service} never had ready endpoints: {samples}"
        assert 0 not in samples[first_ready:], f"ready endpoints dropped to zero: {samples}"
