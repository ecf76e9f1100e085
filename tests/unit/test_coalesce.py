"""Coalescing and rate limiting: many watch events are one reconcile, many calls a steady rate."""

from __future__ import annotations

import asyncio

from modelroll.coalesce import Coalescer
from modelroll.kube import RateLimiter


def test_a_burst_of_events_is_one_run_per_object() -> None:
    runs: list[str] = []

    async def run(key: str) -> None:
        runs.append(key)

    async def main() -> None:
        coalescer = Coalescer(run, delay=0.05)
        for _ in range(10):
            coalescer.schedule("a")
            coalescer.schedule("b")
        assert coalescer.pending() == 2
        await asyncio.sleep(0.2)
        assert sorted(runs) == ["a", "b"]
        coalescer.schedule("a")  # a later event is a later run
        await asyncio.sleep(0.2)

    asyncio.run(main())
    assert sorted(runs) == ["a", "a", "b"]


def test_an_event_during_a_run_schedules_the_next_one() -> None:
    runs: list[str] = []

    async def main() -> None:
        started = asyncio.Event()
        release = asyncio.Event()

        async def run(key: str) -> None:
            runs.append(key)
            started.set()
            await release.wait()

        coalescer = Coalescer(run, delay=0.01)
        coalescer.schedule("a")
        await started.wait()
        coalescer.schedule("a")  # the object changed again while we looked
        release.set()
        await asyncio.sleep(0.1)

    asyncio.run(main())
    assert runs == ["a", "a"]


def test_shutdown_cancels_what_is_due() -> None:
    runs: list[str] = []

    async def run(key: str) -> None:
        runs.append(key)

    async def main() -> None:
        coalescer = Coalescer(run, delay=0.05)
        coalescer.schedule("a")
        coalescer.shutdown()
        await asyncio.sleep(0.1)

    asyncio.run(main())
    assert runs == []


def test_the_rate_limiter_lets_a_burst_through_then_paces_at_qps() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)

    limiter = RateLimiter(qps=10, burst=3, clock=lambda: now[0], sleep=sleep)
    waits = [limiter.wait() for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == [0.1, 0.2]  # each caller waits its turn after the burst
    now[0] = 10.0  # idle long enough to refill the whole burst, no more
    assert [limiter.wait() for _ in range(4)][-1] > 0


def test_a_rate_limit_of_zero_is_unlimited() -> None:
    limiter = RateLimiter(qps=0, burst=1, sleep=lambda _: None)
    assert all(limiter.wait() == 0.0 for _ in range(1000))
