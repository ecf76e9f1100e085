"""The metrics sidecar's RSGI app: a reverse proxy in front of a server of the user's own in
the same pod, exporting the runtime's request, latency and status metrics (and, for V2 and
V1 answers, the prediction counters) on its own /metrics, which it never forwards.

Every other request goes to the upstream; its status and body come back unchanged, with the
runtime's X-Model-Name and X-Model-Version headers. The sidecar keeps the runtime's limits on
what a client can make it hold: a request body is capped (413), read within the body
deadline (408) and counted against the byte budget (503), and at most MODELROLL_MAX_INFLIGHT
requests are forwarded at once (503). An answer is held whole only when its length is known
and fits in the budget; any other is streamed through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol

import aiohttp
import orjson
from multidict import CIMultiDict
from yarl import URL

from . import request_body
from .byte_budget import ByteBudget
from .config import ProxySettings
from .errors import RequestError
from .metrics import OTHER_HTTP, RuntimeMetrics
from .proxy_answers import v1_predictions, v2_predictions
from .proxy_profile import prediction_telemetry
from .v2 import BINARY_HEADER

log = logging.getLogger("modelroll.proxy")

JSON = "application/json"
HEALTH_PATHS = frozenset({"/", "/v2/health/live", "/v2/health/ready"})


def _dropped(error: aiohttp.ClientConnectionError) -> bool:
    """The upstream closed or reset a connection it had accepted (not: refused one, or
    timed out), whether we were writing the request or waiting for the answer."""
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return True
    return isinstance(error, aiohttp.ClientOSError) and not isinstance(
        error, (aiohttp.ClientConnectorError, aiohttp.ServerTimeoutError)
    )


# RFC 9110 7.6.1: a proxy does not forward these; lengths are the two ends' own business
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
     "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host",
     "content-length"}
)  # fmt: skip
_OURS = frozenset({"x-model-name", "x-model-version"})
# Below uvicorn's 5 s keep-alive (and most servers'): an idle connection is dropped here
# before the upstream closes it, so a request is never sent on a connection being closed.
KEEPALIVE_S = 2.0
CONNECT_TIMEOUT_S = 5.0
STREAM_CHUNK = 64 * 1024
_NO_BODY = frozenset({204, 304})


class Headers(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...

    def items(self) -> list[tuple[str, str]]: ...


class Scope(Protocol):
    method: str
    path: str
    query_string: str

    @property
    def headers(self) -> Headers: ...


class StreamTransport(Protocol):
    async def send_bytes(self, data: bytes) -> None: ...


class HTTPProtocol(Protocol):
    async def __call__(self) -> bytes: ...

    def __aiter__(self) -> Any: ...

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> StreamTransport: ...


class ProxyApp:
    def __init__(self, settings: ProxySettings) -> None:
        self.settings = settings
        name, version = settings.model_name, settings.model_version
        self.protocol = settings.protocol
        label = OTHER_HTTP if self.protocol == "none" else self.protocol
        self.metrics = RuntimeMetrics(name, version, (label,))
        self.telemetry = (
            prediction_telemetry(settings, self.metrics.target_registry)
            if self.protocol != "none"
            else None
        )
        self.budget = ByteBudget(settings.max_decode_bytes)
        self._bodies = request_body.BodyReader(
            settings.max_body_bytes, settings.body_timeout_seconds, self.budget
        )
        self._ours = [("x-model-name", name), ("x-model-version", version)]
        self._upstream = settings.upstream
        self._session: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None  # for a retry: never a pooled one
        self._closing: asyncio.Task[None] | None = None
        self.inflight = 0

    # -- lifecycle (granian calls these) --

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        log.info(
            "proxying",
            extra={"upstream": self._upstream, "protocol": self.protocol,
                   "prediction_telemetry": self.telemetry is not None},
        )  # fmt: skip

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop.is_running():  # granian's embedded server: proxy.main awaits closed()
            self._closing = loop.create_task(self._close())
        else:
            loop.run_until_complete(self._close())

    async def _close(self) -> None:
        self._bodies.close()
        for session in (self._session, self._fresh):
            if session is not None:
                await session.close()

    async def closed(self) -> None:
        if self._closing is not None:
            await self._closing

    def session(self, fresh: bool = False) -> aiohttp.ClientSession:
        """One connection pool to the upstream, made on the serving loop; `fresh`: the
        session whose every request opens a new connection."""
        if fresh:
            if self._fresh is None:
                self._fresh = self._new_session(aiohttp.TCPConnector(force_close=True))
            return self._fresh
        if self._session is None:
            self._session = self._new_session(
                aiohttp.TCPConnector(
                    limit=self.settings.max_inflight, keepalive_timeout=KEEPALIVE_S
                )
            )
        return self._session

    def _new_session(self, connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S),
            auto_decompress=False,  # bodies pass as they are, encoded or not
            # only what the client sent: no User-Agent, Accept or Content-Type of aiohttp's
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),  # one client's cookies are not another's
            trust_env=False,
        )

    # -- requests --

    def counted_as(self, path: str) -> str | None:
        """The protocol label a request to `path` is counted under, None when uncounted:
        as the runtime counts, only inference requests (every request but health ones for a
        server that speaks neither protocol)."""
        if self.protocol == "v2":
            is_infer = path.startswith("/v2/models/") and path.endswith("/infer")
            return "v2" if is_infer else None
        if self.protocol == "v1":
            return "v1" if path.startswith("/v1/models/") and path.endswith(":predict") else None
        return None if path in HEALTH_PATHS else OTHER_HTTP

    async def __rsgi__(self, scope: Scope, proto: HTTPProtocol) -> None:
        path = scope.path
        if path == "/metrics":
            self._metrics(scope, proto)
            return
        protocol = self.counted_as(path)
        started = time.perf_counter()
        status = 500
        try:
            status = await self._forward(scope, proto, protocol)
        except RequestError as exc:
            status = exc.status
            self._error(proto, status, exc.message)
        except Exception as exc:  # never a crash: a 502, counted, and the next request
            log.exception("proxying failed", extra={"path": path})
            status = 502
            with contextlib.suppress(Exception):  # the answer may have begun already
                self._error(proto, 502, f"proxy error: {type(exc).__name__}")
        finally:
            if protocol is not None:
                self.metrics.record(protocol, status, time.perf_counter() - started)

    def _metrics(self, scope: Scope, proto: HTTPProtocol) -> None:
        if scope.method != "GET":
            self._error(proto, 405, f"method {scope.method} not allowed on /metrics; use GET")
            return
        if self.telemetry is not None:
            self.telemetry.flush()
        body, content_type = self.metrics.exposition()
        proto.response_bytes(200, [("content-type", content_type)], body)

    async def _forward(self, scope: Scope, proto: HTTPProtocol, protocol: str | None) -> int:
        health = scope.path in HEALTH_PATHS
        if scope.path == "/v2/health/ready" and self.inflight >= self.settings.max_inflight:
            # as the runtime: out of the Service while every slot is taken
            raise RequestError(503, "server overloaded: too many requests in flight")
        # In flight only once its body is here: a client that stalls holds only its
        # connection, until the body deadline.
        body = await self._bodies.read_raw(scope.headers, proto)
        taken = request_body.size(body)
        admitted = False
        try:
            if not health:
                self._admit()
                admitted = True
            url = URL(self._upstream + scope.path + _query(scope.query_string), encoded=True)
            headers = CIMultiDict(
                (k, v) for k, v in scope.headers.items() if k.lower() not in _HOP_BY_HOP
            )
            data = request_body.joined(body) or None
            answered = False
            for attempt in (1, 2):
                try:
                    async with self.session(fresh=attempt == 2).request(
                        scope.method, url, data=data, headers=headers, allow_redirects=False,
                    ) as response:  # fmt: skip
                        answered = True
                        body = data = b""  # sent: not held while the answer comes
                        return await self._relay(response, proto, protocol, scope.method)
                except aiohttp.ClientConnectionError as exc:
                    # uvicorn closes a kept-alive connection after its app raised, and the
                    # close can reset the one we had just sent on: no answer began, so the
                    # request goes once more on a new connection (inference requests are
                    # idempotent), as Go's HTTP client does for a reused connection that
                    # dies before any answer. Anything else is the sidecar's 502.
                    if answered or attempt == 2 or not _dropped(exc):
                        raise RequestError(
                            502, f"upstream {self._upstream} failed: {exc}"
                        ) from None
            raise AssertionError("unreachable: the second attempt returns or raises")
        finally:
            if admitted:
                self.inflight -= 1
                self.metrics.inflight_gauge.dec()
            self.budget.give(taken)

    def _admit(self) -> None:
        if self.inflight >= self.settings.max_inflight:
            raise RequestError(503, "server overloaded: too many requests in flight; retry")
        self.inflight += 1
        self.metrics.inflight_gauge.inc()

    async def _relay(
        self,
        response: aiohttp.ClientResponse,
        proto: HTTPProtocol,
        protocol: str | None,
        method: str,
    ) -> int:
        """Send the upstream's answer on, and count its predictions where that is asked."""
        status = response.status
        headers = [
            (k, v) for k, v in response.headers.items()
            if k.lower() not in _HOP_BY_HOP and k.lower() not in _OURS
        ]  # fmt: skip
        headers += self._ours
        length = response.content_length
        if method == "HEAD" or status in _NO_BODY:
            length = 0  # RFC 9110 6.4.1: no content, whatever the headers say
        if length is not None and self.budget.fits(length):
            self.budget.take(length)
            try:
                payload = await response.read()
                proto.response_bytes(status, headers, payload)
                if status == 200 and protocol is not None:
                    self._count(protocol, payload, response.headers.get(BINARY_HEADER))
            finally:
                self.budget.give(length)
            return status
        # unknown or too large a length: streamed, never held whole (and not counted)
        transport = proto.response_stream(status, headers)
        async for chunk in response.content.iter_chunked(STREAM_CHUNK):
            await transport.send_bytes(chunk)
        return status

    def _count(self, protocol: str, payload: bytes, binary_header: str | None) -> None:
        telemetry = self.telemetry
        if telemetry is None:
            return
        if protocol == "v2":
            predictions = v2_predictions(payload, binary_header, telemetry.profile.output)
        else:
            predictions = v1_predictions(payload)
        if predictions is not None:
            telemetry.observe({telemetry.profile.output: predictions}, predictions)

    def _error(self, proto: HTTPProtocol, status: int, message: str) -> None:
        headers = [("content-type", JSON), *self._ours]
        if status == 503:
            headers.append(("retry-after", "1"))
        elif status == 408:  # the rest of the body may still come: never read it
            headers.append(("connection", "close"))
        proto.response_bytes(status, headers, orjson.dumps({"error": message}))


def _query(query_string: str) -> str:
    return f"?{query_string}" if query_string else ""
