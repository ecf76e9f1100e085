#!/usr/bin/env bash
# Builds the Kubernetes binaries, etcd and kwok from Go modules into a cache
# outside the repo, keyed by version. A warm run only checks that they exist.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=${K8S_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.4}
KWOK_VERSION=${KWOK_VERSION:-v0.7.0}
GATEWAY_API_VERSION=${GATEWAY_API_VERSION:-v1.3.0}
CACHE_ROOT=${MODELROLL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelroll}
BIN_DIR=${BIN_DIR:-$CACHE_ROOT/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION/bin}
# Components to build; kubelet, kube-proxy and crictl only when a real node is wanted.
CONTROL_PLANE="etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok"
COMPONENTS=${COMPONENTS:-$CONTROL_PLANE}
[ "$COMPONENTS" = all ] && COMPONENTS="$CONTROL_PLANE kubelet kube-proxy crictl"

mkdir -p "$BIN_DIR"
export GOFLAGS=-mod=mod CGO_ENABLED=0

major=${K8S_VERSION#v}; major=${major%%.*}
minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=$major -X $vpkg.gitMinor=$minor \
 -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"

package_of() {
  case $1 in
    etcd) echo go.etcd.io/etcd/server/v3 ;;
    kwok) echo sigs.k8s.io/kwok/cmd/kwok ;;
    crictl) echo sigs.k8s.io/cri-tools/cmd/crictl ;;
    *) echo "k8s.io/kubernetes/cmd/$1" ;;
  esac
}

# Gateway API CRDs (standard channel), shipped inside the sigs.k8s.io/gateway-api module.
gateway_crds="$BIN_DIR/../gateway-api-$GATEWAY_API_VERSION.yaml"
if [ ! -s "$gateway_crds" ]; then
  echo "fetching Gateway API $GATEWAY_API_VERSION CRDs from the Go module proxy ..." >&2
  dir=$(cd "$here" && go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  for f in "$dir"/config/crd/standard/*.yaml; do cat "$f"; echo "---"; done >"$gateway_crds.tmp"
  mv "$gateway_crds.tmp" "$gateway_crds"
fi

todo=()
for c in $COMPONENTS; do [ -x "$BIN_DIR/$c" ] || todo+=("$c"); done
if [ ${#todo[@]} -eq 0 ]; then
  echo "binaries up to date in $BIN_DIR" >&2
  echo "$BIN_DIR"
  exit 0
fi

n=0
for c in "${todo[@]}"; do
  n=$((n + 1))
  start=$(date +%s)
  echo "[$n/${#todo[@]}] building $c ($(package_of "$c")) ..." >&2
  if [ "$c" = kwok ] || [ "$c" = crictl ]; then # each pinned by its own go.mod
    (cd "$here/../$c" && go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/$c.tmp" "$(package_of "$c")")
  else
    (cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$BIN_DIR/$c.tmp" "$(package_of "$c")")
  fi
  mv "$BIN_DIR/$c.tmp" "$BIN_DIR/$c"
  echo "[$n/${#todo[@]}] $c built in $(( $(date +%s) - start ))s" >&2
done
echo "$BIN_DIR"
