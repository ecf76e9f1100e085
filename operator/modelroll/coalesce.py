"""One reconcile per object per short interval, however many watch events asked for it.

A rollout's pods and ReplicaSets change several times a second (created, scheduled, started,
ready; each also moves the Deployment's status). Each event only says "look again"; the first
one schedules a look after `delay` and the others within it join that one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Coalescer(Generic[K]):
    def __init__(self, run: Callable[[K], Awaitable[None]], delay: float) -> None:
        self.run = run
        self.delay = delay
        self._due: dict[K, asyncio.Task[None]] = {}

    def schedule(self, key: K) -> None:
        if key not in self._due:
            self._due[key] = asyncio.get_running_loop().create_task(self._later(key))

    async def _later(self, key: K) -> None:
        try:
            await asyncio.sleep(self.delay)
        finally:
            # Removed before the run: an event during the run schedules the next look.
            self._due.pop(key, None)
        await self.run(key)

    def pending(self) -> int:
        return len(self._due)

    def shutdown(self) -> None:
        for task in list(self._due.values()):
            task.cancel()
        self._due.clear()
