#!/usr/bin/env bash
# Imports the archives hack/images.sh made into a throwaway containerd (own root, state and
# socket under a temp dir; the system's containerd, if any, is not touched) and runs each
# image once: as its image user, read-only root filesystem, /tmp as the only writable path.
#
#   hack/images/containerd-check.sh [runtime|operator|pause|coredns|all]
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PY:-$repo/.venv/bin/python}
work=$(mktemp -d /tmp/modelroll-ctrd.XXXXXX)
sock=$work/containerd.sock
ctrd_pid=
# containerd 1.6 puts shim sockets under /run/containerd/s whatever its config says.
had_run_dir=$([ -d /run/containerd ] && echo yes || echo no)

say() { printf '[ctrd-check] %s\n' "$*" >&2; }
die() { printf '[ctrd-check] ERROR: %s\n' "$*" >&2; exit 1; }
ctr() { command ctr --address "$sock" --namespace k8s.io "$@"; }

cleanup() {
  set +e
  if [ -n "$ctrd_pid" ]; then
    # Tasks first: their shims outlive containerd otherwise.
    for id in $(ctr tasks ls -q 2>/dev/null); do
      ctr tasks kill -s SIGKILL "$id" >/dev/null 2>&1; sleep 0.2; ctr tasks rm -f "$id" >/dev/null 2>&1
    done
    for id in $(ctr containers ls -q 2>/dev/null); do ctr containers rm "$id" >/dev/null 2>&1; done
    kill "$ctrd_pid" 2>/dev/null; wait "$ctrd_pid" 2>/dev/null
  fi
  awk -v d="$work" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r umount -l
  rm -rf "$work"
  [ "$had_run_dir" = yes ] || rmdir /run/containerd/s /run/containerd 2>/dev/null
}
trap cleanup EXIT

start_containerd() {
  cat >"$work/config.toml" <<EOF
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$work/containerd.sock.ttrpc"
[debug]
  address = "$work/debug.sock"
[metrics]
  address = ""
EOF
  containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
  ctrd_pid=$!
  for _ in $(seq 100); do
    ctr version >/dev/null 2>&1 && return
    kill -0 "$ctrd_pid" 2>/dev/null || { tail -20 "$work/containerd.log" >&2; die "containerd exited"; }
    sleep 0.1
  done
  die "containerd did not answer on $sock in 10s"
}

import_archive() { # tag, archive
  local start=$SECONDS
  local names
  ctr images import "$2" >&2 || die "ctr images import $2 failed"
  names=$(ctr images ls -q)
  grep -Fxq "$1" <<<"$names" || die "$2 imported, but no image named $1: ${names//$'\n'/ }"
  say "imported $1 in $((SECONDS - start))s ($(ctr images ls | awk -v t="$1" '$1 == t { print $4, $5 }'))"
}

# Runs a command in the image as the image's user, root filesystem read-only, /tmp a tmpfs.
run_once() { # tag, id, args...
  local tag=$1 id=$2; shift 2
  ctr run --rm --net-host --read-only --fifo-dir "$work/fifo" --runc-root "$work/runc" \
    --mount type=tmpfs,src=tmpfs,dst=/tmp,options=nosuid:nodev:mode=1777 "$tag" "$id" "$@" </dev/null
}

check_pause() {
  local out; out=$(run_once "$1" pause-v /pause -v)
  [[ $out == "pause.c v"* ]] || die "pause -v printed '$out'"
  say "pause: $out"
}

check_coredns() {
  local out; out=$(run_once "$1" coredns-v /coredns -version)
  say "coredns: $(echo "$out" | head -1)"
}

check_operator() {
  run_once "$1" operator-help modelroll-operator --help | sed -n 1,3p >&2
  run_once "$1" operator-import python -c \
    'import os, modelroll, kopf; print("uid", os.getuid(), "modelroll from", modelroll.__file__)' >&2
}

# The runtime serves a real model: sklearn pickled on the host, compiled to ONNX under /tmp.
check_runtime() {
  local tag=$1 port model sha
  model=$work/model
  "$PY" "$repo/hack/demo_model.py" "$model" >&2
  sha=$(sha256sum "$model/model.joblib" | cut -d' ' -f1)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  ctr run -d --net-host --read-only --fifo-dir "$work/fifo" --runc-root "$work/runc" \
    --mount type=tmpfs,src=tmpfs,dst=/tmp,options=nosuid:nodev:mode=1777 \
    --mount "type=bind,src=$model,dst=/models/iris,options=rbind:ro" \
    --env MODELROLL_MODEL_URI=/models/iris --env MODELROLL_MODEL_FORMAT=sklearn \
    --env "MODELROLL_MODEL_SHA256=$sha" --env "MODELROLL_HTTP_PORT=$port" \
    --env MODELROLL_MODEL_NAME=iris --env MODELROLL_WORKERS=1 \
    --log-uri "file://$work/runtime.log" "$tag" runtime >/dev/null
  for _ in $(seq 120); do
    curl -fs "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break
    grep -q '^runtime .*RUNNING' <<<"$(ctr tasks ls)" || { cat "$work/runtime.log" >&2; die "runtime exited"; }
    sleep 0.5
  done
  curl -fs "http://127.0.0.1:$port/v2/health/ready" >/dev/null || { cat "$work/runtime.log" >&2; die "runtime not ready in 60s"; }
  say "runtime: ready; infer:"
  curl -fsS "http://127.0.0.1:$port/v2/models/iris/infer" -H 'content-type: application/json' \
    -d '{"inputs":[{"name":"input-0","shape":[2,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2,6.7,3.0,5.2,2.3]}]}' >&2 \
    || { cat "$work/runtime.log" >&2; die "runtime infer failed"; }
  echo >&2
  ctr tasks kill runtime >/dev/null
  for _ in $(seq 60); do grep -q '^runtime .*STOPPED' <<<"$(ctr tasks ls)" && break; sleep 0.5; done
  say "runtime: log:"; cat "$work/runtime.log" >&2
  ctr tasks rm -f runtime >/dev/null; ctr containers rm runtime
}

main() {
  local what=${1:-all} tag archive name
  start_containerd
  say "throwaway containerd $(containerd --version | awk '{print $3}') on $sock"
  while read -r tag archive; do
    import_archive "$tag" "$archive"
    name=${tag##*/}; name=${name%%:*}
    # stdin is the archive list: keep ctr from reading it.
    "check_$name" "$tag" </dev/null
  done < <("$repo/hack/images.sh" list "$what")
  say "all good"
}

main "$@"
