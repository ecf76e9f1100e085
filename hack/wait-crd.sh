#!/usr/bin/env bash
# Waits until a CRD is Established. `kubectl wait` fails at once, instead of waiting,
# while a just-created CRD has no conditions yet.
set -euo pipefail
crd=${1:?usage: $0 CRD_NAME [TIMEOUT_SECONDS]}
deadline=$(( $(date +%s) + ${2:-60} ))
until [ "$(kubectl get crd "$crd" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null)" = True ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "CRD $crd not Established" >&2; exit 1; }
  sleep 0.2
done
