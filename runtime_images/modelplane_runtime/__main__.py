"""`modelplane-runtime`: validate the settings, then run N granian workers serving the app.

This process stays small: it imports neither numpy nor any model library. Each worker
loads the model itself (downloads and compilation happen once, under a file lock), so no
request ever crosses a process boundary.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile

from . import jsonlog
from .config import MULTIPROC_ENV, ConfigError, Settings

log = logging.getLogger("modelplane.runtime")

# Kubernetes' default terminationGracePeriodSeconds is 30: drain for a bit less than that.
DRAIN_SECONDS = 25


def _granian_log_config(level: str) -> dict[str, object]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "modelplane_runtime.jsonlog.JsonFormatter"}},
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
    if settings.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # workers write their metrics here and each /metrics answer sums them all
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="modelplane-metrics-")
    for directory in (settings.model_dir, settings.cache_dir):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only cache only costs the ONNX speed-up
            log.warning("directory unusable: %s", exc, extra={"path": str(directory)})

    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.log import LogLevels
    from granian.server import Server

    log.info(
        "starting",
        extra={"port": settings.http_port, "workers": settings.workers,
               "model": settings.model_name, "version": settings.model_version},
    )  # fmt: skip
    server = Server(
        "modelplane_runtime.app:create_app",
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
    )
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
