"""Smoke tests and analyses run beside the reconciles, never inside them.

A check talks to something a tenant controls (its preview pods) and can take up to its
deadline. Run inline, it would hold up the one resync loop, and so every other
ModelDeployment. Here each check runs in a small pool of its own threads (the bound on
how many run at once, apart from the threads that call the API), at most one per
ModelDeployment. A reconcile that needs a result asks for it: it gets the finished result,
or None while the check runs (it then records nothing and is woken when the check ends).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

CHECK_WORKERS = 4

Key = tuple[str, str]
LOG = logging.getLogger(__name__)


@dataclass
class _Check:
    what: Hashable  # which check: the same kind, revision and step, or a different one
    task: asyncio.Future[Any]


class Checks:
    def __init__(self, workers: int = CHECK_WORKERS) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="check")
        self._checks: dict[Key, _Check] = {}
        # Called with the key once its check has ended, to reconcile it again.
        self.wake: Callable[[Key], None] = lambda key: None

    def result(self, key: Key, what: Hashable, run: Callable[[], Any]) -> Any:
        """The result of check `what` for `key` once it has ended (given out once), else
        None: the check is started unless one for `key` is still running. A check that
        raised raises here, and runs afresh the next time it is asked for."""
        current = self._checks.get(key)
        if current is not None and not current.task.done():
            return None  # never two at once; a result for another `what` is dropped
        if current is not None:
            del self._checks[key]
            if current.what == what:
                return current.task.result()
        task = asyncio.get_running_loop().run_in_executor(self._pool, run)
        self._checks[key] = _Check(what, task)
        task.add_done_callback(lambda _: self._ended(key, task))
        return None

    def running(self, key: Key) -> bool:
        current = self._checks.get(key)
        return current is not None and not current.task.done()

    def forget(self, key: Key) -> None:
        """The ModelDeployment is gone: a check still running ends unread."""
        self._checks.pop(key, None)

    def _ended(self, key: Key, task: asyncio.Future[Any]) -> None:
        current = self._checks.get(key)
        if current is None or current.task is not task:
            return
        if not task.cancelled() and task.exception() is not None:
            LOG.warning("check of %s/%s failed: %s", *key, task.exception())
        self.wake(key)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
