#!/usr/bin/env bash
# Builds our kstatus helper (main.go here, on sigs.k8s.io/cli-utils pinned in go.mod) into a
# cache outside the repo, keyed by the cli-utils version and a hash of the helper's source,
# and prints the binary's path on stdout. A warm run only checks that the binary exists.
# The helper prints what kstatus (as Flux uses it) computes for one object read on stdin.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version=$(grep -oE 'sigs\.k8s\.io/cli-utils v[0-9][0-9.]*' "$here/go.mod" | head -n 1 | cut -d' ' -f2)
[ -n "$version" ] || { echo "cannot read the cli-utils version from $here/go.mod" >&2; exit 1; }
source_hash=$(cat "$here/main.go" "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)
CACHE_ROOT=${MODELROLL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelroll}
BIN_DIR=${KSTATUS_BIN_DIR:-$CACHE_ROOT/kstatus-$version-$source_hash/bin}
kstatus=$BIN_DIR/kstatus

if [ -x "$kstatus" ]; then
  echo "$kstatus"
  exit 0
fi

command -v go >/dev/null || {
  echo "Go is not installed: it builds the kstatus helper (hack/kstatus) into $BIN_DIR" >&2
  exit 1
}
mkdir -p "$BIN_DIR"
export CGO_ENABLED=0
start=$(date +%s)
echo "building the kstatus helper (sigs.k8s.io/cli-utils $version) into $BIN_DIR ..." >&2
(cd "$here" && go build -trimpath -ldflags "-s -w" -o "$kstatus.tmp.$$" .)
mv "$kstatus.tmp.$$" "$kstatus"
echo "kstatus helper built in $(( $(date +%s) - start ))s" >&2
echo "$kstatus"
