"""Reading a request body: its media type, its size cap, its deadline and its Content-Encoding.

The deadline is total, from the request's headers to the body's last byte, not per read: a
client that trickles a byte at a time is cut off as surely as one that stalls. One sweeper
task enforces it for every body being read, because a timer per request (asyncio.timeout)
costs ~6 µs, some 5% of a small request's whole cost; the sweep costs a dict entry. The size
cap holds for the decompressed body too, so a small gzip bomb costs no more than a plain body.

Every body is also counted against the worker's ByteBudget as its bytes arrive: a body that
does not fit is read to its end and dropped (never buffered), then refused with 503. Reading it out rather
than answering at once keeps the connection usable: a client still sending a large body
would otherwise see a reset instead of the 503 and its Retry-After.

A large body (LARGE_BODY_BYTES or more) stays in the chunks it came in: made into one bytes
object, a 15 MB body costs 50-75 ms of blocked event loop (allocation, page faults, copy;
measured on the 2-core CI machine), and its decoder child only needs the stream.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any, Protocol

from .byte_budget import BudgetExceeded, ByteBudget
from .errors import RequestError, bad_request

_ACCEPTED_MEDIA_TYPES = frozenset(
    {"", "application/json", "application/octet-stream", "text/plain"}
)
# zlib's wbits: gzip framing, zlib framing (HTTP's "deflate"), and raw deflate, which some
# clients send as "deflate" too
_GZIP, _ZLIB, _RAW_DEFLATE = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS
_ENCODINGS = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": _ZLIB}
LARGE_BODY_BYTES = 64 * 1024

# a body as one bytes object, or as the chunks of a large one
Body = bytes | list[bytes]


def size(body: Body) -> int:
    return len(body) if isinstance(body, bytes) else sum(len(chunk) for chunk in body)


def joined(body: Body) -> bytes:
    return body if isinstance(body, bytes) else b"".join(body)


class Headers(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...


class BodyStream(Protocol):
    async def __call__(self) -> bytes: ...

    def __aiter__(self) -> Any: ...


class BodyReader:
    """Reads bodies within `deadline_s` of the call, on one event loop (one per worker)."""

    def __init__(self, limit: int, deadline_s: float, budget: ByteBudget) -> None:
        self.limit = limit
        self.deadline_s = deadline_s
        self.budget = budget
        # every deadline is now + deadline_s, so insertion order is deadline order
        self._reading: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def read(self, headers: Headers, proto: BodyStream) -> Body:
        """The decoded body, with size(body) bytes taken from the budget: the caller gives
        them back when the request is done. RequestError 408, 413, 415 or 400 when it cannot
        be had, BudgetExceeded (503) when it does not fit; nothing stays taken then."""
        wbits, declared = _check_headers(headers, self.limit)
        body = await self._receive_in_time(proto, declared)
        if wbits is None:
            return body
        raw = joined(body)
        try:
            decoded = _decompress(raw, wbits, self.limit)
            self.budget.take(len(decoded) - len(raw))
        except RequestError:
            self.budget.give(len(raw))
            raise
        return decoded

    async def read_raw(self, headers: Headers, proto: BodyStream) -> Body:
        """The body as it came, for the metrics sidecar to forward: the size cap on its
        Content-Length and bytes, the deadline and the budget as read() has them, but any
        media type and Content-Encoding (the server behind it judges those)."""
        return await self._receive_in_time(proto, _declared_length(headers, self.limit))

    async def _receive_in_time(self, proto: BodyStream, declared: int | None) -> Body:
        task = asyncio.current_task()
        assert task is not None  # granian runs each request in an asyncio task
        loop = asyncio.get_running_loop()
        if self._sweeper is None:
            self._sweeper = loop.create_task(self._sweep(), name="body-deadlines")
        self._reading[task] = loop.time() + self.deadline_s
        try:
            body = await self._receive(proto, declared)
        except asyncio.CancelledError:
            if task not in self._expired:  # not ours: the server is cancelling the request
                raise
            self._expired.discard(task)
            task.uncancel()
            raise RequestError(
                408, f"request body not received within {self.deadline_s:g} s"
            ) from None
        finally:
            self._reading.pop(task, None)
        return body

    async def _receive(self, proto: BodyStream, declared: int | None) -> Body:
        """The raw body, its size taken from the budget (and nothing taken on an error).

        Only bytes that have arrived are taken: a Content-Length is checked against the room
        left before a byte is buffered, but not reserved, or a client that declares large
        bodies and sends nothing would hold the budget (the slow-body attack again)."""
        budget = self.budget
        if declared is not None and not budget.fits(declared):
            await _drain(aiter(proto))
            raise BudgetExceeded(declared, budget.limit)
        if declared is None or declared >= LARGE_BODY_BYTES:
            return _small_joined(await _read_chunks(proto, self.limit, budget))
        body = await proto()
        budget.take(len(body))
        return body

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        tick = min(0.5, self.deadline_s / 10)  # so a body is cut off within 10% of its deadline
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for task, deadline in list(self._reading.items()):
                if deadline > now:
                    break
                del self._reading[task]
                self._expired.add(task)
                task.cancel()


def _small_joined(chunks: list[bytes]) -> Body:
    """A small body keeps the fast path as one bytes object; few chunks, cheap to join."""
    return chunks if sum(map(len, chunks)) >= LARGE_BODY_BYTES else b"".join(chunks)


def _check_headers(headers: Headers, limit: int) -> tuple[int | None, int | None]:
    """zlib's wbits for the Content-Encoding (None: not encoded), and the body's
    Content-Length (under the limit; None for a chunked body)."""
    media_type = headers.get("content-type", "")
    if media_type not in _ACCEPTED_MEDIA_TYPES:  # else already one, as most clients send it
        media_type = media_type.split(";", 1)[0].strip().lower()
    if media_type not in _ACCEPTED_MEDIA_TYPES and not media_type.endswith("+json"):
        raise RequestError(415, f"unsupported Content-Type '{media_type}'; send application/json")
    coding = headers.get("content-encoding")
    wbits = _content_coding(coding) if coding else None
    return wbits, _declared_length(headers, limit)


def _declared_length(headers: Headers, limit: int) -> int | None:
    """The body's Content-Length, under the limit; None for a chunked body."""
    declared = headers.get("content-length")
    if declared is None:
        return None
    if not declared.isdigit():
        raise bad_request("Content-Length must be a non-negative integer")
    if int(declared) > limit:
        raise RequestError(413, f"request body of {declared} bytes exceeds {limit}")
    return int(declared)


async def _read_chunks(proto: BodyStream, limit: int, budget: ByteBudget) -> list[bytes]:
    """The body's chunks, each taken from `budget` as it arrives."""
    chunks: list[bytes] = []
    size = 0
    # granian's body stream takes one __aiter__ call: the drain goes on with the same one
    stream = aiter(proto)
    try:
        while (chunk := await _next(stream)) is not None:
            if size + len(chunk) > limit:
                raise RequestError(413, f"request body exceeds {limit} bytes")
            budget.take(len(chunk))
            size += len(chunk)
            chunks.append(chunk)
    except BudgetExceeded:
        budget.give(size)
        chunks.clear()
        await _drain(stream)
        raise
    except BaseException:
        budget.give(size)
        raise
    return chunks


async def _drain(stream: Any) -> None:
    """Read the rest of a refused body and drop it, chunk by chunk (`stream`: the iterator
    reading it)."""
    while await _next(stream) is not None:
        pass


async def _next(stream: Any) -> bytes | None:
    try:
        chunk: bytes = await anext(stream)
    except StopAsyncIteration:
        return None
    return chunk


def _content_coding(header: str) -> int | None:
    """zlib's wbits for the body's Content-Encoding, or None for an unencoded body."""
    codings = [c.strip().lower() for c in header.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in _ENCODINGS:
        return _ENCODINGS[codings[0]]
    raise RequestError(
        415, f"unsupported Content-Encoding '{header}'; send gzip, deflate or identity"
    )


def _decompress(body: bytes, wbits: int, limit: int) -> bytes:
    name = "gzip" if wbits == _GZIP else "deflate"
    try:
        return _inflate(body, wbits, limit)
    except zlib.error:
        if wbits != _ZLIB:
            raise bad_request(f"request body is not valid {name} data") from None
    try:
        return _inflate(body, _RAW_DEFLATE, limit)
    except zlib.error:
        raise bad_request(f"request body is not valid {name} data") from None


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    # one byte past the cap is enough to know the body is too big: never inflate the rest
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit:
        raise RequestError(413, f"decompressed request body exceeds {limit} bytes")
    if not inflater.eof or inflater.unused_data:
        raise zlib.error("truncated, or followed by other data")
    return out
