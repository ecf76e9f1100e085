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
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass

from modelroll.tls import Trust

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


class _VerifiedConnection(http.client.HTTPSConnection):
    """HTTPS that verifies the certificate under `server_name`, whatever host the URL
    names: a Service's certificate names the Service, while the request may go to the
    preview Service, a port-forward on 127.0.0.1 or a test's router."""

    def __init__(self, host: str, port: int | None, timeout: float, trust: Trust) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # An anchor that is not a self-signed root (a pinned leaf, an intermediate CA)
        # ends the chain, as Go's verifier (Prometheus) treats any certificate in its pool.
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        context.load_verify_locations(cadata=trust.pem)
        super().__init__(host, port, timeout=timeout, context=context)
        self.verified_context = context
        self.server_name = trust.server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self.verified_context.wrap_socket(self.sock, server_hostname=self.server_name)


def _connection(
    url: str, timeout: float, trust: Trust | None = None
) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundError(f"not an http:// or https:// URL: {parts.scheme}://{parts.netloc}")
    connection: http.client.HTTPConnection
    if parts.scheme == "https" and trust is not None:
        connection = _VerifiedConnection(parts.hostname, parts.port, timeout, trust)
    elif parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout)
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return connection, target


def request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    deadline: float = DEFAULT_DEADLINE_SECONDS,
    max_bytes: int = MAX_BODY_BYTES,
    trust: Trust | None = None,
) -> Answer:
    """One request; an answer of any non-redirect status, or OutboundError (an OSError).
    `trust`, for an https:// URL, is what the server's certificate is verified with (and
    only it: not the system's CAs)."""
    connection, target = _connection(url, deadline, trust)
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
