"""Adaptive batching: predict at once when the model is idle; while a predict runs, queue
what arrives and merge it into the next call, up to max_batch_size rows.

Nothing waits for a batch to fill, so a lone client pays no batching delay, and under load
batches grow by themselves to the size the model's speed calls for. Predicts run on one
dedicated thread, off the event loop, so the loop keeps serving while a slow model runs.

Models that answer faster than a thread hop costs (compiled ONNX tabular models take ~10 µs;
the hop ~50 µs of loop and GIL time) run inline instead (`inline=True`): the first request of
a loop turn schedules one flush with call_soon, and every request read in that turn joins its
batch. Granian reads the sockets on its own Rust threads, so a 10 µs predict on the loop
starves nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .formats.base import Array, Model

BatchObserver = Callable[[int], None]
# An inline model still predicts a request with more rows than this on the predict thread:
# a large batch (a 15 MB body holds ~580k rows) would hold the loop for its whole predict.
INLINE_ROWS_AT_MOST = 4096


@dataclass(slots=True)  # one per request: slots make it cheaper to build and read
class _Pending:
    inputs: Mapping[str, Array]
    outputs: Sequence[str]
    rows: int
    future: asyncio.Future[dict[str, Array]] = field(repr=False)


class AdaptiveBatcher:
    def __init__(
        self, model: Model, max_batch_rows: int, on_batch: BatchObserver, inline: bool = False
    ) -> None:
        self._model = model
        self._inline = inline
        self._max_rows = max_batch_rows
        self._on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._busy = False
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="predict")
        self._loop: asyncio.AbstractEventLoop | None = None

    async def predict(
        self, inputs: Mapping[str, Array], outputs: Sequence[str], rows: int
    ) -> dict[str, Array]:
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        if self._inline and rows > INLINE_ROWS_AT_MOST:
            self._on_batch(rows)
            return await asyncio.wrap_future(
                self._pool.submit(self._model.predict, inputs, outputs)
            )
        pending = _Pending(inputs, outputs, rows, loop.create_future())
        self._queue.append(pending)
        if not self._busy:
            self._busy = True
            if self._inline:
                # runs after every request already read in this loop turn has queued
                loop.call_soon(self._flush_inline)
            else:
                self._start_next()
        return await pending.future

    def _flush_inline(self) -> None:
        while self._queue:
            batch = [p for p in self._take_batch() if not p.future.cancelled()]
            if batch:
                self._on_batch(sum(p.rows for p in batch))
                self._deliver(batch, self._run(batch))
        self._busy = False

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _take_batch(self) -> list[_Pending]:
        batch = [self._queue.popleft()]
        rows = batch[0].rows
        # FIFO: stop at the first request that would overflow the batch
        while self._queue and rows + self._queue[0].rows <= self._max_rows:
            if self._queue[0].inputs.keys() != batch[0].inputs.keys():
                break
            item = self._queue.popleft()
            rows += item.rows
            batch.append(item)
        return batch

    def _start_next(self) -> None:
        batch = [p for p in self._take_batch() if not p.future.cancelled()]
        if not batch:
            self._busy = bool(self._queue)
            if self._busy:
                self._start_next()
            return
        self._busy = True
        self._on_batch(sum(p.rows for p in batch))
        job = self._pool.submit(self._run, batch)
        assert self._loop is not None
        loop = self._loop
        job.add_done_callback(lambda done: loop.call_soon_threadsafe(self._finish, batch, done))

    def _run(self, batch: list[_Pending]) -> list[dict[str, Array] | BaseException]:
        """Runs on the predict thread."""
        if len(batch) == 1:
            return [self._predict_one(batch[0])]
        outputs = tuple(dict.fromkeys(name for p in batch for name in p.outputs))
        try:
            merged = {
                name: np.concatenate([p.inputs[name] for p in batch]) for name in batch[0].inputs
            }
            result = self._model.predict(merged, outputs)
        except Exception:
            # one bad request must not fail its neighbours: retry them one by one
            return [self._predict_one(p) for p in batch]
        answers: list[dict[str, Array] | BaseException] = []
        start = 0
        for p in batch:
            end = start + p.rows
            answers.append({name: result[name][start:end] for name in p.outputs})
            start = end
        return answers

    def _predict_one(self, pending: _Pending) -> dict[str, Array] | BaseException:
        try:
            return self._model.predict(pending.inputs, pending.outputs)
        except Exception as exc:
            return exc

    def _finish(
        self,
        batch: list[_Pending],
        done: concurrent.futures.Future[list[dict[str, Array] | BaseException]],
    ) -> None:
        try:
            answers = done.result()
        except BaseException as exc:  # the pool itself failed; every caller learns why
            answers = [exc] * len(batch)
        self._deliver(batch, answers)
        self._busy = False
        if self._queue:
            self._start_next()

    def _deliver(
        self, batch: list[_Pending], answers: list[dict[str, Array] | BaseException]
    ) -> None:
        for pending, answer in zip(batch, answers, strict=True):
            if pending.future.cancelled():
                continue
            if isinstance(answer, BaseException):
                pending.future.set_exception(answer)
            else:
                pending.future.set_result(answer)
