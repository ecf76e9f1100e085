"""`python -m modelroll_runtime.proxy`: the runtime image as a metrics sidecar.

It serves on MODELROLL_HTTP_PORT in front of the user's own server at
MODELROLL_PROXY_UPSTREAM (plain HTTP on the pod's loopback), and exports on its /metrics the
metrics canary analysis reads (docs/runtime.md, "Metrics sidecar"). One process, one event
loop: a sidecar gets its own small CPU share, and the forwarding cost is per request.
"""

from __future__ import annotations

import logging
import sys

from . import jsonlog
from .__main__ import serve_embedded
from .config import ConfigError, ProxySettings

log = logging.getLogger("modelroll.proxy")


def main() -> int:
    try:
        settings = ProxySettings.from_env()
    except ConfigError as exc:
        jsonlog.configure("INFO")
        log.error("InvalidConfig: %s", exc)
        return 2
    jsonlog.configure(settings.log_level)
    log.info(
        "starting",
        extra={"port": settings.http_port, "upstream": settings.upstream,
               "protocol": settings.protocol, "model": settings.model_name,
               "version": settings.model_version},
    )  # fmt: skip

    from .proxy_app import ProxyApp  # aiohttp and numpy: only once the settings are good

    def make_app() -> ProxyApp:
        return ProxyApp(settings)

    return serve_embedded(make_app, settings.http_host, settings.http_port, settings.log_level, {})


if __name__ == "__main__":
    sys.exit(main())
