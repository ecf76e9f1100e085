#!/usr/bin/env bash
# Builds the modelroll container images without a Docker engine (buildah, mmdebstrap, gcc)
# and exports each one to an OCI archive that `ctr -n k8s.io images import` takes.
#
#   hack/images.sh build [runtime|operator|custom-fastapi|pause|coredns|all]   build what is missing
#   hack/images.sh list  [runtime|operator|custom-fastapi|pause|coredns|all]   print archives only
#
# custom-fastapi is examples/custom-fastapi: a user's own serving container (spec.runtime.container).
#
# stdout: one "<tag> <archive>" line per image; progress and timings go to stderr.
# An archive is named after the sha256 of its inputs, so a warm run only hashes files.
set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "$0")/.." && pwd)
CACHE_ROOT=${MODELROLL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelroll}
ARCHIVE_DIR=${ARCHIVE_DIR:-$CACHE_ROOT/images}
BUILDAH_DIR=${BUILDAH_DIR:-$CACHE_ROOT/buildah}
STORAGE_DRIVER=${STORAGE_DRIVER:-overlay}
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
BASE_PACKAGES=${BASE_PACKAGES:-python3,python3-pip,python3-venv,python-is-python3,ca-certificates}
BASE_IMAGE=${BASE_IMAGE:-localhost/modelroll/python:3.11-$DEBIAN_SUITE}
K8S_VERSION=${K8S_VERSION:-v1.34.4}
PAUSE_VERSION=${PAUSE_VERSION:-3.10}
# RUN steps reach PyPI with the host's CA bundle (a TLS-intercepting proxy's CA may be in it),
# mounted for the build only, never committed; empty to use the image's own bundle.
BUILD_CA_BUNDLE=${BUILD_CA_BUNDLE-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}
[ -f "$BUILD_CA_BUNDLE" ] || BUILD_CA_BUNDLE=
# Bump to invalidate every archive when this script changes how images are made.
RECIPE=1
ALL_IMAGES="runtime operator custom-fastapi pause coredns"

tmpdirs=()
trap 'rm -rf "${tmpdirs[@]}"' EXIT

say() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }

bh() {
  buildah --root "$BUILDAH_DIR/$STORAGE_DRIVER/root" --runroot "$BUILDAH_DIR/$STORAGE_DRIVER/run" \
    --storage-driver "$STORAGE_DRIVER" "$@"
}

need() {
  local t
  for t; do
    command -v "$t" >/dev/null || die "$t not found (Debian: apt-get install buildah mmdebstrap gcc libc6-dev git)"
  done
}

now() { date +%s%N; }
since() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1fs", (e - s) / 1e9 }'; }

sha() { sha256sum | cut -d' ' -f1; }

# --- the base image: Debian's own python3, in place of python:3.11-slim ---

# Options that shape the rootfs, with paths relative to the repo; with the files they name,
# their hash is the base image's cache key.
# shellcheck disable=SC2016 # the hook's $1 (the chroot) is for mmdebstrap to expand
debootstrap_args() {
  printf '%s\n' --variant=apt "--include=$BASE_PACKAGES" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --aptopt=hack/images/base-apt.conf --dpkgopt=hack/images/base-dpkg.cfg \
    '--customize-hook=rm -f "$1/etc/resolv.conf" "$1/etc/hostname"' \
    "$DEBIAN_SUITE" - \
    "deb $DEBIAN_MIRROR $DEBIAN_SUITE main" \
    "deb $DEBIAN_MIRROR $DEBIAN_SUITE-updates main" \
    "deb $DEBIAN_SECURITY_MIRROR $DEBIAN_SUITE-security main"
}

# What python:3.11-slim sets, less its own-build variables; pip may install into the system.
base_config() {
  printf '%s\n' --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --env PIP_BREAK_SYSTEM_PACKAGES=1 --cmd '["python3"]'
}

base_key() {
  { echo "$RECIPE"; debootstrap_args; base_config; cat "$repo"/hack/images/base-{apt.conf,dpkg.cfg}; } | sha
}

base_id_file() { echo "$ARCHIVE_DIR/base-$(base_key).id"; }

# The id recorded when the base was made; python images include it in their key.
recorded_base_id() { cat "$(base_id_file)" 2>/dev/null || echo none; }

stored_base_id() {
  bh inspect --type image --format '{{.FromImageID}}' "$BASE_IMAGE" 2>/dev/null || true
}

ensure_base() {
  local recorded; recorded=$(recorded_base_id)
  if [ "$recorded" != none ] && [ "$(stored_base_id)" = "${recorded#sha256:}" ]; then return; fi
  make_base
}

make_base() {
  local start ctr mnt args=()
  start=$(now)
  mapfile -t args < <(debootstrap_args)
  say "base: bootstrapping Debian $DEBIAN_SUITE ($BASE_PACKAGES) with mmdebstrap ..."
  ctr=$(bh from --pull=never scratch) || die "base: buildah from scratch failed"
  mnt=$(bh mount "$ctr") ||
    die "base: buildah mount failed with the $STORAGE_DRIVER driver (STORAGE_DRIVER=vfs works without overlayfs)"
  # Device nodes are the runtime's job, as in the official images: keep /dev empty.
  if ! (cd "$repo" && mmdebstrap --quiet "${args[@]}") |
    tar -x -C "$mnt" --numeric-owner --exclude='./dev/*'; then
    bh umount "$ctr" >/dev/null; bh rm "$ctr" >/dev/null
    die "base: mmdebstrap $DEBIAN_SUITE failed (is $DEBIAN_MIRROR reachable?)"
  fi
  bh umount "$ctr" >/dev/null
  mapfile -t args < <(base_config)
  bh config "${args[@]}" --label "io.modelroll.base-key=$(base_key)" "$ctr"
  rm -f "$ARCHIVE_DIR"/base-*.id
  bh commit --quiet --rm --iidfile "$(base_id_file).tmp" "$ctr" "$BASE_IMAGE" >/dev/null \
    || die "base: buildah commit failed"
  mv "$(base_id_file).tmp" "$(base_id_file)"
  say "base: $BASE_IMAGE made in $(since "$start")"
}

# --- per-image inputs ---

image_tag() {
  case $1 in
    runtime) echo docker.io/modelroll/runtime:0.1.0 ;;
    operator) echo docker.io/modelroll/operator:0.1.0 ;;
    custom-fastapi) echo localhost/modelroll/custom-fastapi:0.1.0 ;;
    pause) echo "localhost/modelroll/pause:$PAUSE_VERSION" ;;
    coredns) echo "localhost/modelroll/coredns:$(coredns_version)" ;;
  esac
}

image_context() {
  case $1 in
    runtime) echo "$repo/runtime_images" ;;
    operator) echo "$repo" ;;
    custom-fastapi) echo "$repo/examples/custom-fastapi" ;;
    pause) echo "$repo/hack/images" ;;
    coredns) echo "$repo/hack/coredns" ;;
  esac
}

image_dockerfile() {
  case $1 in
    runtime) echo "$repo/runtime_images/Dockerfile" ;;
    operator) echo "$repo/Dockerfile" ;;
    custom-fastapi) echo "$repo/examples/custom-fastapi/Dockerfile" ;;
    pause) echo "$repo/hack/images/pause.Dockerfile" ;;
    coredns) echo "$repo/hack/coredns/Dockerfile" ;;
  esac
}

# The pinned version in hack/coredns/go.mod, which hack/coredns/build.sh builds.
coredns_version() {
  [ -n "${COREDNS_VERSION:-}" ] && { echo "$COREDNS_VERSION"; return; }
  awk '$1 == "require" && $2 == "github.com/coredns/coredns" { print $3 }' \
    "$repo/hack/coredns/go.mod" 2>/dev/null || true
}

pause_source() {
  need go
  local src; src="$(go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION/build/pause/linux/pause.c"
  [ -f "$src" ] || (cd "$repo/hack/control-plane" && go mod download "k8s.io/kubernetes@$K8S_VERSION") >&2 ||
    die "pause: cannot fetch k8s.io/kubernetes@$K8S_VERSION from the Go module proxy"
  echo "$src"
}

# The context paths the Dockerfile copies from: the operator's context is the whole repo,
# and tests or docs changing must not rebuild its image.
copied_paths() {
  awk 'toupper($1) == "COPY" || toupper($1) == "ADD" {
         if ($0 ~ /--from=/) next
         for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i
       }' "$1"
}

# Context files git knows (tracked, or new and not ignored) that the Dockerfile copies.
context_files() { # name; NUL-separated paths relative to the context
  local ctx paths=() f
  ctx=$(image_context "$1")
  mapfile -t paths < <(copied_paths "$(image_dockerfile "$1")")
  [ ${#paths[@]} -gt 0 ] || return 0
  (cd "$ctx" && git ls-files -z --cached --others --exclude-standard -- "${paths[@]}") |
    while IFS= read -r -d '' f; do if [ -e "$ctx/$f" ]; then printf '%s\0' "$f"; fi; done
}

# Inputs that are not files in the context.
extra_inputs() {
  case $1 in
    runtime | operator | custom-fastapi) echo "base $(recorded_base_id)" ;;
    pause) echo "gcc $(gcc -dumpfullversion) $K8S_VERSION"; sha256sum <"$(pause_source)" ;;
    coredns) (cd "$repo/hack/coredns" && sha256sum build.sh main.go go.mod go.sum) ;;
  esac
}

image_key() {
  local ctx df
  ctx=$(image_context "$1"); df=$(image_dockerfile "$1")
  [ -f "$df" ] || die "$1: no Dockerfile at $df"
  {
    echo "$RECIPE $1 $(image_tag "$1")"
    sha256sum <"$df"
    extra_inputs "$1"
    (cd "$ctx" && context_files "$1" | hash_files)
  } | sha
}

# sha256sum of each NUL-separated path; a symlink (operator/modelroll/templates, to a folder)
# counts by its target, since the files behind it are context files of their own.
hash_files() {
  local f
  while IFS= read -r -d '' f; do
    if [ -L "$f" ]; then printf 'link %s -> %s\n' "$f" "$(readlink "$f")"; else sha256sum "$f"; fi
  done
}

archive_path() {
  local tag=$1 key=$2 name
  name=${tag##*/}
  echo "$ARCHIVE_DIR/${name%%:*}-${name#*:}-${key:0:16}.oci.tar"
}

# --- building ---

# A clean build context: only the files the key covers (no venvs, egg-info or caches).
stage_context() { # name, dir
  local ctx bin; ctx=$(image_context "$1")
  (cd "$ctx" && context_files "$1" | tar --null -T - -cf -) | tar -xf - -C "$2"
  cp "$(image_dockerfile "$1")" "$2/Dockerfile"
  case $1 in
    pause) build_pause "$2/pause" ;;
    coredns) bin=$(coredns_binary); cp "$bin" "$2/coredns" ;;
  esac
}

build_pause() { # output
  local src; src=$(pause_source)
  need gcc strip
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION" -o "$1" "$src" \
    || die "pause: gcc -static failed (is libc6-dev installed?)"
  strip "$1"
}

coredns_binary() {
  local bin
  [ -x "$repo/hack/coredns/build.sh" ] || die "coredns: hack/coredns/build.sh is missing"
  bin=$("$repo/hack/coredns/build.sh") || die "coredns: hack/coredns/build.sh failed"
  [ -x "$bin" ] || die "coredns: build.sh printed '$bin', which is not an executable"
  echo "$bin"
}

uses_base() { case $1 in runtime | operator | custom-fastapi) true ;; *) false ;; esac; }

build_image() { # name, tag, archive
  local name=$1 tag=$2 archive=$3 stage start args=()
  start=$(now)
  stage=$(mktemp -d)
  tmpdirs+=("$stage")
  stage_context "$name" "$stage"
  if uses_base "$name"; then args+=(--build-arg "PYTHON_IMAGE=$BASE_IMAGE"); fi
  [ -z "$BUILD_CA_BUNDLE" ] || args+=(--volume "$BUILD_CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")
  say "$name: buildah build -t $tag ..."
  # stdout carries only the result lines, so the build log goes to stderr.
  bh build --pull=never --network host --layers --force-rm "${args[@]}" \
    -f "$stage/Dockerfile" -t "$tag" "$stage" >&2 || die "$name: buildah build failed (log above)"
  say "$name: exporting to $archive ..."
  rm -f "$archive.tmp"
  bh push --quiet "$tag" "oci-archive:$archive.tmp:$tag" >&2 || die "$name: buildah push to oci-archive failed"
  mv "$archive.tmp" "$archive"
  rm -rf "$stage"
  say "$name built in $(since "$start") ($(du -h "$archive" | cut -f1) archive)"
  prune_archives "$archive"
}

# Older archives of the same image and version: their inputs are gone.
prune_archives() { # current archive
  local old
  for old in "${1%-*}"-????????????????.oci.tar; do
    [ "$old" = "$1" ] || { rm -f "$old"; say "removed stale $(basename "$old")"; }
  done
}

# Prints "<tag> <archive>"; builds first unless only listing.
image() { # mode, name
  local mode=$1 name=$2 tag key archive
  tag=$(image_tag "$name")
  [ "${tag##*:}" != "" ] || die "$name: no version for the tag (set COREDNS_VERSION?)"
  key=$(image_key "$name")
  archive=$(archive_path "$tag" "$key")
  if [ ! -f "$archive" ] && [ "$mode" = build ]; then
    # The base may be missing from buildah's storage, and remaking it changes the key.
    if uses_base "$name"; then
      ensure_base
      key=$(image_key "$name")
      archive=$(archive_path "$tag" "$key")
    fi
    [ -f "$archive" ] || build_image "$name" "$tag" "$archive"
  fi
  [ -f "$archive" ] || die "$name: no archive for the current inputs; run: $0 build $name"
  echo "$tag $archive"
}

main() {
  local cmd=${1:-} names="" name what
  case $cmd in build | list) shift ;; *) die "usage: $0 build|list [runtime|operator|custom-fastapi|pause|coredns|all]..." ;; esac
  for what in "${@:-all}"; do
    case $what in
      all) names="$names $ALL_IMAGES" ;;
      runtime | operator | custom-fastapi | pause | coredns) names="$names $what" ;;
      *) die "unknown image '$what'; one of: $ALL_IMAGES all" ;;
    esac
  done
  [[ $ARCHIVE_DIR != *:* ]] || die "ARCHIVE_DIR must not contain ':' (it is part of an oci-archive: reference)"
  mkdir -p "$ARCHIVE_DIR"
  need git
  if [ "$cmd" = build ]; then
    [ "$(id -u)" = 0 ] || die "build needs root: mmdebstrap and buildah mount the image root filesystems"
    need buildah mmdebstrap gcc flock
    # One build at a time: buildah storage and the archive names are shared.
    exec 9>"$ARCHIVE_DIR/.lock"
    flock 9
  fi
  for name in $names; do image "$cmd" "$name"; done
}

main "$@"
