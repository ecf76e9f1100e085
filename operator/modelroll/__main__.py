"""`python -m modelroll` / `modelroll-operator`: runs the operator with kopf."""

from __future__ import annotations

import os
import sys

from kopf import cli


def main() -> None:
    namespaces = [n for n in os.environ.get("MODELROLL_NAMESPACES", "").split(",") if n]
    scope = [f"--namespace={n}" for n in namespaces] or ["--all-namespaces"]
    liveness = os.environ.get("MODELROLL_LIVENESS", "http://0.0.0.0:8081/healthz")
    log_format = os.environ.get("MODELROLL_LOG_FORMAT", "json")
    args = [
        "run",
        "--standalone",
        f"--liveness={liveness}",
        f"--log-format={log_format}",
        *scope,
        "-m",
        "modelroll.handlers",
        *sys.argv[1:],
    ]
    sys.exit(cli.main(args=args, prog_name="modelroll-operator", standalone_mode=True))


if __name__ == "__main__":
    main()
