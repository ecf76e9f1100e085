"""`modelroll-runtime`: validate the settings, then serve the app with granian.

With one worker (`MODELROLL_WORKERS=1`) the server runs embedded in this process: no
launcher/supervisor process beside it, which saves its ~30 MiB of RSS. With more, this
process supervises N granian worker processes and stays small: it imports neither numpy nor
any model library. Each worker loads the model itself (downloads and compilation happen
once, under a file lock), so no request ever crosses a process boundary.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import sys
import tempfile
from collections.abc import Callable
from typing import Any, Protocol

from . import jsonlog
from .config import DRAIN_SECONDS, MULTIPROC_ENV, ConfigError, Settings

log = logging.getLogger("modelroll.runtime")


def _granian_log_config(level: str) -> dict[str, object]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "modelroll_runtime.jsonlog.JsonFormatter"}},
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
        },
        "loggers": {"_granian": {"handlers": ["stdout"], "level": level, "propagate": False}},
    }  # fmt: skip


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        jsonlog.configure("INFO")
        log.error("InvalidConfig: %s", exc)
        return 2
    jsonlog.configure(settings.log_level)
    if problem := tls_problem(settings):
        log.error("InvalidConfig: %s", problem)
        return 2
    if settings.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # workers write their metrics here and each /metrics answer sums them all
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="modelroll-metrics-")
    for directory in (settings.model_dir, settings.cache_dir):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only cache only costs the ONNX speed-up
            log.warning("directory unusable: %s", exc, extra={"path": str(directory)})

    log.info(
        "starting",
        extra={"port": settings.http_port, "grpc_port": settings.grpc_port,
               "workers": settings.workers, "tls": settings.tls_cert_file is not None,
               "model": settings.model_name, "version": settings.model_version},
    )  # fmt: skip
    if settings.workers == 1:
        return _serve_embedded(settings)
    return _serve_workers(settings)


def tls_problem(settings: Settings) -> str:
    """Why the certificate and key cannot be served, or "": checked before granian starts,
    which would fail inside its worker with a less helpful trace."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return ""
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        return (
            f"MODELROLL_TLS_CERT_FILE={settings.tls_cert_file} and MODELROLL_TLS_KEY_FILE="
            f"{settings.tls_key_file} are not a usable certificate and key: {exc}"
        )
    return ""


def _tls_options(settings: Settings) -> dict[str, Any]:
    """granian's own TLS (rustls): with a certificate the port speaks HTTPS only. TLS 1.2
    stays allowed for older clients; rustls offers only forward-secret AEAD suites in it."""
    from granian.constants import SSLProtocols

    if settings.tls_cert_file is None:
        return {}
    return {
        "ssl_cert": settings.tls_cert_file,
        "ssl_key": settings.tls_key_file,
        "ssl_protocol_min": SSLProtocols.tls12,
    }


def _serve_embedded(settings: Settings) -> int:
    """One worker, in this process: granian's embedded server on a uvloop loop."""
    from .app import create_app

    return serve_embedded(
        create_app, settings.http_host, settings.http_port, settings.log_level,
        _tls_options(settings),
    )  # fmt: skip


class Closable(Protocol):
    async def closed(self) -> None: ...


def serve_embedded(
    make_app: Callable[[], Closable], host: str, port: int, level: str, options: dict[str, Any]
) -> int:
    """Serve the RSGI apps `make_app` makes (the runtime's, or the metrics sidecar's) with
    granian's embedded server on a uvloop loop, in this process.

    SIGTERM/SIGINT stop accepting and wait for in-flight requests (up to DRAIN_SECONDS),
    like granian's process supervisor does for its workers; the gRPC server too.
    """
    import uvloop
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server as EmbeddedServer

    apps: list[Closable] = []

    def app_factory() -> Closable:
        apps.append(make_app())
        return apps[-1]

    server = EmbeddedServer(
        app_factory,
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        http=HTTPModes.http1,
        backlog=2048,
        factory=True,
        log_level=LogLevels(level.lower()),
        log_dictconfig=_granian_log_config(level),
        **options,
    )
    server.workers_kill_timeout = DRAIN_SECONDS

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, server.stop)
        await server.serve()
        for app in apps:  # the gRPC server drains on this loop, after granian's stop
            await app.closed()

    try:
        uvloop.run(serve())
    except TimeoutError:  # in-flight requests outlived DRAIN_SECONDS
        log.warning("drain timed out", extra={"seconds": DRAIN_SECONDS})
        return 1
    # the worker task ended on its own (not by a signal): exit non-zero like the supervisor
    return 1 if server.interrupt_children else 0


def _serve_workers(settings: Settings) -> int:
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.log import LogLevels
    from granian.server import Server

    server = Server(
        "modelroll_runtime.app:create_app",
        address=settings.http_host,
        port=settings.http_port,
        interface=Interfaces.RSGI,
        workers=settings.workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        backlog=2048,
        factory=True,
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig=_granian_log_config(settings.log_level),
        workers_kill_timeout=DRAIN_SECONDS,
        **_tls_options(settings),
    )
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
