#!/usr/bin/env bash
# Side-by-side benchmark of modelroll-runtime, KServe and MLServer (see docs/runtime.md).
# Needs wrk (apt-get install -y wrk) and two cores: servers run on core 0, wrk on core 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/python benchmarks/runtime/run.py "$@"
