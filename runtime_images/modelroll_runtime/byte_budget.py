"""A worker's budget of request bytes held at once: bodies being received, decoded and
predicted. JSON decoding amplifies a body several times over (a 15 MB body becomes ~8x that
in Python floats and lists), so the total of the bodies, not each one, is what bounds a
worker's memory; the body limit alone lets 1000 concurrent 16 MiB bodies through.

A body with a Content-Length that does not fit in the room left is refused before a byte of
it is buffered; every body is counted as its bytes arrive (request_body.py says why the
declared length is not reserved). One event loop per worker uses it, so it needs no lock.
"""

from __future__ import annotations

from .errors import RequestError


class BudgetExceeded(RequestError):
    """503 (the app adds Retry-After): the server is busy, the same request may succeed soon."""

    def __init__(self, wanted: int, limit: int) -> None:
        super().__init__(
            503,
            f"server busy: {wanted} bytes of request body do not fit in the {limit} bytes "
            "of request memory (MODELROLL_MAX_DECODE_BYTES) that other requests hold; retry",
        )


class ByteBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def fits(self, size: int) -> bool:
        return self.used + size <= self.limit

    def take(self, size: int) -> None:
        """Reserve `size` bytes, or raise BudgetExceeded and reserve nothing."""
        if self.used + size > self.limit:
            raise BudgetExceeded(size, self.limit)
        self.used += size

    def give(self, size: int) -> None:
        self.used -= size
