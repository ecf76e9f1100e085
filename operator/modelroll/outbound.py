"""Every HTTP request the operator (and `modelroll predict`) sends to a tenant's endpoint.

The far end is untrusted: a tenant picks the image behind a preview Service. So a request
never follows a redirect (that would fetch any URL from the operator's network position),
reads at most `max_bytes` of the answer, and ends by one total deadline, however slowly
the answer trickles in. Callers report status codes, never the body they got.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass

MAX_BODY_BYTES = 64 * 1024
DEFAULT_DEADLINE_SECONDS = 10.0


class OutboundError(OSError):
    """The request got no usable answer; the message says why, without any of the body."""


class Redirected(OutboundError):
    def __init__(self, status: int) -> None:
        super().__init__(f"answered a redirect (HTTP {status}), which is never followed")
        self.status = status


class TooLarge(OutboundError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"answer larger than {limit // 1024} KiB")


class DeadlineExceeded(OutboundError):
    def __init__(self, deadline: float) -> None:
        super().__init__(f"no complete answer within {deadline:g}s")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundError(f"not an http:// or https:// URL: {parts.scheme}://{parts.netloc}")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname, parts.port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return connection, target


def request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    deadline: float = DEFAULT_DEADLINE_SECONDS,
    max_bytes: int = MAX_BODY_BYTES,
) -> Answer:
    """One request; an answer of any non-redirect status, or OutboundError (an OSError)."""
    connection, target = _connection(url, deadline)
    ends = time.monotonic() + deadline
    expired = threading.Event()

    def expire() -> None:
        # Reads on the socket block in http.client, per read and not in total: shutting the
        # socket down wakes whichever read is waiting, in the headers or the body.
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(deadline, expire)
    timer.daemon = True
    timer.start()
    try:
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        if 300 <= response.status < 400:
            raise Redirected(response.status)
        length = response.getheader("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise TooLarge(max_bytes)
        chunks: list[bytes] = []
        size = 0
        while chunk := response.read1(max_bytes + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(max_bytes)
            if time.monotonic() > ends:
                raise DeadlineExceeded(deadline)
        if expired.is_set():
            raise DeadlineExceeded(deadline)  # the shutdown may read as an early end
        return Answer(response.status, b"".join(chunks))
    except (http.client.HTTPException, OSError) as error:
        if expired.is_set() or isinstance(error, TimeoutError):
            raise DeadlineExceeded(deadline) from error
        if isinstance(error, OutboundError):
            raise
        if isinstance(error, http.client.HTTPException):
            # Their text quotes what the server sent (BadStatusLine holds the line itself).
            raise OutboundError(f"not a valid HTTP answer ({type(error).__name__})") from error
        raise OutboundError(str(error) or type(error).__name__) from error
    finally:
        timer.cancel()
        connection.close()
