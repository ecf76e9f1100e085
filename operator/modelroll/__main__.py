"""`python -m modelroll` / `modelroll-operator`: runs the operator with kopf."""

from __future__ import annotations

import importlib
import os
import sys
from urllib.parse import urlsplit

DEFAULT_LIVENESS = "http://0.0.0.0:8081/healthz"
HANDLERS = "modelroll.handlers"


def liveness_args(value: str) -> list[str]:
    """kopf's --liveness for MODELROLL_LIVENESS; an empty value turns the probe off.

    kopf reads port 0 as "no port" and binds port 80, so 0 cannot mean "any free port"
    (nobody could probe it anyway): it is refused rather than passed on.
    """
    if not value:
        return []
    try:
        port = urlsplit(value).port
    except ValueError as error:
        raise SystemExit(f"MODELROLL_LIVENESS={value}: {error}") from None
    if port == 0:
        raise SystemExit(
            f"MODELROLL_LIVENESS={value}: port 0 would make kopf bind port 80; "
            "give a real port (e.g. http://127.0.0.1:8081/healthz), "
            "or set MODELROLL_LIVENESS= to turn the probe off"
        )
    return [f"--liveness={value}"]


def without_kubernetes_client() -> None:
    """Makes `import kubernetes` fail in this process, as if the client were not installed.

    kopf imports it whenever it is installed (the CLI needs it), only to recognise its model
    objects, which modelroll never hands kopf; the operator talks to the API server through
    modelroll.kube_transport. Unimported, it leaves about 30 MiB of the operator's memory
    free. kopf then logs in with its own service-account and kubeconfig logins. Only the
    operator's process does this: it runs before kopf is imported, from main().
    """
    for name in ("kubernetes", "kubernetes_asyncio", "pykube"):
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]


def main() -> None:
    without_kubernetes_client()
    # imported here, after the line above, so that kopf never sees the kubernetes client
    import kopf
    from kopf import cli

    from modelroll import lease
    from modelroll.config import config_from_env
    from modelroll.leader import lead
    from modelroll.metrics import serve_metrics

    namespaces = [n for n in os.environ.get("MODELROLL_NAMESPACES", "").split(",") if n]
    scope = [f"--namespace={n}" for n in namespaces] or ["--all-namespaces"]
    liveness = liveness_args(os.environ.get("MODELROLL_LIVENESS", DEFAULT_LIVENESS))
    log_format = os.environ.get("MODELROLL_LOG_FORMAT", "json")
    args = [
        "run",
        "--standalone",
        *liveness,
        f"--log-format={log_format}",
        *scope,
        "-m",
        HANDLERS,
        *sys.argv[1:],
    ]
    elected = lease.parse_lease_name(os.environ.get("MODELROLL_LEADER_LEASE", ""))
    if elected is None:
        sys.exit(cli.main(args=args, prog_name="modelroll-operator", standalone_mode=True))
    # A hot standby: kopf's logging, the handlers kopf will load (seconds of imports) and
    # the metrics (modelroll_operator_leader 0) are all up while it waits.
    kopf.configure(log_format=kopf.LogFormat[log_format.upper()])
    importlib.import_module(HANDLERS)
    config = config_from_env()
    serve_metrics(config.metrics_port, config.metrics_address)
    url = os.environ.get("MODELROLL_LIVENESS", DEFAULT_LIVENESS)
    elector = lead(*elected, liveness_url=url or None)
    try:
        cli.main(args=args, prog_name="modelroll-operator", standalone_mode=True)
    finally:  # a clean stop (SIGTERM) hands the Lease over at once
        elector.release()


if __name__ == "__main__":
    main()
