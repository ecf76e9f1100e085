"""Reading a request body: its media type, its size cap, its deadline and its Content-Encoding.

The deadline is total, from the request's headers to the body's last byte, not per read: a
client that trickles a byte at a time is cut off as surely as one that stalls. One sweeper
task enforces it for every body being read, because a timer per request (asyncio.timeout)
costs ~6 µs, some 5% of a small request's whole cost; the sweep costs a dict entry. The size
cap holds for the decompressed body too, so a small gzip bomb costs no more than a plain body.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any, Protocol

from .errors import RequestError, bad_request

_ACCEPTED_MEDIA_TYPES = frozenset(
    {"", "application/json", "application/octet-stream", "text/plain"}
)
# zlib's wbits: gzip framing, zlib framing (HTTP's "deflate"), and raw deflate, which some
# clients send as "deflate" too
_GZIP, _ZLIB, _RAW_DEFLATE = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS
_ENCODINGS = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": _ZLIB}


class Headers(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...


class BodyStream(Protocol):
    async def __call__(self) -> bytes: ...

    def __aiter__(self) -> Any: ...


class BodyReader:
    """Reads bodies within `deadline_s` of the call, on one event loop (one per worker)."""

    def __init__(self, limit: int, deadline_s: float) -> None:
        self.limit = limit
        self.deadline_s = deadline_s
        # every deadline is now + deadline_s, so insertion order is deadline order
        self._reading: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def read(self, headers: Headers, proto: BodyStream) -> bytes:
        """The decoded body; RequestError 408, 413, 415 or 400 when it cannot be had."""
        wbits, declared = _check_headers(headers, self.limit)
        task = asyncio.current_task()
        assert task is not None  # granian runs each request in an asyncio task
        loop = asyncio.get_running_loop()
        if self._sweeper is None:
            self._sweeper = loop.create_task(self._sweep(), name="body-deadlines")
        self._reading[task] = loop.time() + self.deadline_s
        try:
            body = await proto() if declared else await _read_chunks(proto, self.limit)
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
        return body if wbits is None else _decompress(body, wbits, self.limit)

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


def _check_headers(headers: Headers, limit: int) -> tuple[int | None, bool]:
    """zlib's wbits for the Content-Encoding (None: not encoded), and whether the body has a
    Content-Length (under the limit)."""
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in _ACCEPTED_MEDIA_TYPES and not media_type.endswith("+json"):
        raise RequestError(415, f"unsupported Content-Type '{media_type}'; send application/json")
    wbits = _content_coding(headers.get("content-encoding", ""))
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise bad_request("Content-Length must be a non-negative integer")
        if int(declared) > limit:
            raise RequestError(413, f"request body of {declared} bytes exceeds {limit}")
    return wbits, declared is not None


async def _read_chunks(proto: BodyStream, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in proto:
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


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
