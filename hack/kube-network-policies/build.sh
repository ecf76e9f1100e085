#!/usr/bin/env bash
# Builds sigs.k8s.io/kube-network-policies (the NetworkPolicy implementation kind ships),
# pinned in go.mod here, as a host process (main.go) into a cache outside the repo, keyed
# by version; prints the binary's path on stdout. A warm run only checks that the binary
# exists and was built from the current main.go/go.mod/go.sum. No download but Go modules.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
KNP_VERSION=$(awk '$1 == "require" && $2 == "sigs.k8s.io/kube-network-policies" { print $3 } $1 == "sigs.k8s.io/kube-network-policies" { print $2 }' "$here/go.mod")
[ -n "$KNP_VERSION" ] || { echo "no sigs.k8s.io/kube-network-policies version in $here/go.mod" >&2; exit 1; }
CACHE_ROOT=${MODELROLL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelroll}
OUT_DIR=${OUT_DIR:-$CACHE_ROOT/kube-network-policies-$KNP_VERSION}
bin=$OUT_DIR/kube-network-policies

inputs=$(cat "$here/main.go" "$here/go.mod" "$here/go.sum" | sha256sum | cut -d' ' -f1)
if [ -x "$bin" ] && [ "$(cat "$bin.inputs" 2>/dev/null)" = "$inputs" ]; then
  echo "kube-network-policies $KNP_VERSION up to date in $OUT_DIR" >&2
  echo "$bin"
  exit 0
fi

mkdir -p "$OUT_DIR"
export GOFLAGS=-mod=mod CGO_ENABLED=0
start=$(date +%s)
echo "building kube-network-policies $KNP_VERSION (sigs.k8s.io/kube-network-policies, host process from $here/main.go) ..." >&2
(cd "$here" && go build -trimpath -ldflags "-s -w" -o "$bin.tmp.$$" .)
mv "$bin.tmp.$$" "$bin"
echo "$inputs" >"$bin.inputs"
echo "kube-network-policies built in $(( $(date +%s) - start ))s ($(du -h "$bin" | cut -f1))" >&2
echo "$bin"
