#!/usr/bin/env bash
# Builds helm v3 from its Go module (helm.sh/helm/v3/cmd/helm, pinned in go.mod here) into a
# cache outside the repo, keyed by version, and prints the binary's path on stdout.
# A warm run only checks that the binary exists. No Debian package or download is used.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
HELM_VERSION=${HELM_VERSION:-$(grep -oE 'helm\.sh/helm/v3 v[0-9][0-9.]*' "$here/go.mod" | head -n 1 | cut -d' ' -f2)}
[ -n "$HELM_VERSION" ] || { echo "cannot read the helm version from $here/go.mod" >&2; exit 1; }
CACHE_ROOT=${MODELROLL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelroll}
BIN_DIR=${HELM_BIN_DIR:-$CACHE_ROOT/helm-$HELM_VERSION/bin}
helm=$BIN_DIR/helm

if [ -x "$helm" ]; then
  echo "$helm"
  exit 0
fi

mkdir -p "$BIN_DIR"
export GOFLAGS=-mod=mod CGO_ENABLED=0
start=$(date +%s)
echo "building helm $HELM_VERSION (helm.sh/helm/v3/cmd/helm) into $BIN_DIR ..." >&2
# As helm's Makefile does: the default Kubernetes version of `helm template` and `helm lint`
# is the one of the client-go module it was built with (v0.34.x -> 1.34).
client_go=$(grep -oE 'k8s\.io/client-go v[0-9][0-9.]*' "$here/go.mod" | head -n 1 | cut -d' ' -f2)
k8s_minor=$(echo "$client_go" | cut -d. -f2)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
 -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
(cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$helm.tmp.$$" helm.sh/helm/v3/cmd/helm)
mv "$helm.tmp.$$" "$helm"
echo "helm $HELM_VERSION built in $(( $(date +%s) - start ))s" >&2
echo "$helm"
