"""The runtime's per-request shortcuts answer exactly what the slower, obvious code answers.

With one worker the hot metric families are plain numbers read at scrape (metrics.Tally);
the scrape must be what prometheus-client's own objects give for the same observations,
sample for sample. Request ids are uuid4 text made without a UUID object.
"""

from __future__ import annotations

import random
import uuid

import pytest
from modelroll_runtime.config import MULTIPROC_ENV
from modelroll_runtime.metrics import BATCH_BUCKETS, LATENCY_BUCKETS, PROTOCOLS, RuntimeMetrics
from modelroll_runtime.v2 import new_request_id
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


def _samples(text: bytes) -> set[str]:
    """Exposition lines, without comments and prometheus-client's _created timestamps."""
    return {
        line
        for line in text.decode().splitlines()
        if line and not line.startswith("#") and "_created{" not in line
    }


def _reference(
    m: RuntimeMetrics, requests: list[tuple[str, int, float]], batches: list[int], inflight: int
) -> bytes:
    """The same observations through prometheus-client's own Counter, Histogram and Gauge."""
    registry = CollectorRegistry()
    labels = (m.model, m.version)
    counter = Counter(m.requests._name, m.requests._documentation, m.requests._labelnames,
                      registry=registry)  # fmt: skip
    duration = Histogram(m.duration._name, m.duration._documentation, m.duration._labelnames,
                         buckets=LATENCY_BUCKETS, registry=registry)  # fmt: skip
    batch = Histogram(m.batch_size._name, m.batch_size._documentation,
                      m.batch_size._labelnames, buckets=BATCH_BUCKETS, registry=registry)  # fmt: skip
    gauge = Gauge(m.inflight._name, m.inflight._documentation, m.inflight._labelnames,
                  registry=registry)  # fmt: skip
    for protocol in PROTOCOLS:
        duration.labels(*labels, protocol)
    for protocol, code, seconds in requests:
        counter.labels(*labels, protocol, str(code)).inc()
        duration.labels(*labels, protocol).observe(seconds)
    for rows in batches:
        batch.labels(*labels).observe(rows)
    gauge.labels(*labels).set(inflight)
    return generate_latest(registry)


def test_the_tally_scrapes_as_prometheus_client_would(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    m = RuntimeMetrics("iris", "3")
    assert m.tally is not None
    rng = random.Random(7)
    # values on the bucket bounds too: le is inclusive
    seconds = [*LATENCY_BUCKETS, 0.0, 11.0, *(rng.uniform(0, 12) for _ in range(500))]
    requests = [(rng.choice(PROTOCOLS), rng.choice((200, 400, 503)), s) for s in seconds]
    batches = [*BATCH_BUCKETS, 5000, *(rng.randint(1, 5000) for _ in range(200))]
    for protocol, code, s in requests:
        m.record(protocol, code, s)
    for rows in batches:
        m.observe_batch(rows)
    for _ in range(5):
        m.inflight_gauge.inc()
    m.inflight_gauge.dec()
    scraped = _samples(m.exposition()[0])
    expected = _samples(_reference(m, requests, batches, 4))
    assert scraped == expected


def test_several_workers_keep_prometheus_clients_own_objects(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    m = RuntimeMetrics("iris", "3")
    assert m.tally is None
    m.record("v2", 200, 0.001)
    assert m.requests.labels("iris", "3", "v2", "200")._value.get() == 1.0


def test_request_ids_are_unique_uuid4_text() -> None:
    ids = {new_request_id() for _ in range(20000)}
    assert len(ids) == 20000
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_a_forked_worker_draws_its_own_request_ids() -> None:
    import os

    before = new_request_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids share no prefix with the parent's
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert child.rsplit("-", 1)[0] != before.rsplit("-", 1)[0]
    assert uuid.UUID(child).version == 4
