#!/usr/bin/env bash
# Builds a small, static CoreDNS (the plugins main.go imports) from its Go module
# into a cache outside the repo, keyed by version; prints the binary's path on
# stdout. A warm run only checks that the binary exists and was built from the
# current main.go/go.mod/go.sum.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# The version is the one pinned in go.mod; the image tag uses the same string.
COREDNS_VERSION=$(awk '$1 == "require" && $2 == "github.com/coredns/coredns" { print $3 }' "$here/go.mod")
[ -n "$COREDNS_VERSION" ] || { echo "no github.com/coredns/coredns version in $here/go.mod" >&2; exit 1; }
CACHE_ROOT=${MODELROLL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelroll}
OUT_DIR=${OUT_DIR:-$CACHE_ROOT/coredns-$COREDNS_VERSION}
bin=$OUT_DIR/coredns

# Rebuild when the plugin list or the pinned modules change, not only when missing.
inputs=$(cat "$here/main.go" "$here/go.mod" "$here/go.sum" | sha256sum | cut -d' ' -f1)
if [ -x "$bin" ] && [ "$(cat "$bin.inputs" 2>/dev/null)" = "$inputs" ]; then
  echo "coredns $COREDNS_VERSION up to date in $OUT_DIR" >&2
  echo "$bin"
  exit 0
fi

mkdir -p "$OUT_DIR"
export GOFLAGS=-mod=mod CGO_ENABLED=0
start=$(date +%s)
echo "building coredns $COREDNS_VERSION (github.com/coredns/coredns, plugins from $here/main.go) ..." >&2
(cd "$here" && go build -trimpath -ldflags "-s -w" -o "$bin.tmp" .)
mv "$bin.tmp" "$bin"
echo "$inputs" >"$bin.inputs"
echo "coredns built in $(( $(date +%s) - start ))s ($(du -h "$bin" | cut -f1))" >&2
echo "$bin"
