#!/usr/bin/env bash
# Installs what `make demo` and `make test` need from the system, on Debian/Ubuntu; both
# targets run it first. The packages:
#
#   prometheus   the real Prometheus server the canary-analysis tests start as a plain
#                process (/usr/bin/prometheus); the package's systemd service is not used
#   wrk          the HTTP load generator of the runtime benchmarks
#   curl, openssl                 the local control plane (health checks, certificates)
#   chromium, chromium-driver     the headless browser of the dashboard test (Selenium)
#
# and for the real node (NODE=real, the e2e tests) and the images built without Docker:
#
#   containerd, runc, containernetworking-plugins, iptables, conntrack, iproute2, procps
#                                 the node itself, and the host checks of the e2e tests
#   nftables                      nft: whether kube-network-policies' own nftables table is
#                                 there (hack/real-node.sh), and the e2e tests' host checks
#   buildah, mmdebstrap, gcc, libc6-dev, git   hack/images.sh (Dockerfiles, base rootfs, pause)
#   python3-venv                  only where python3 lacks the venv module (Debian's python3)
#
# It checks, without installing them, the two toolchains Debian's packages are too old for:
# Python >= 3.11 (the venv) and Go >= 1.26 (the Kubernetes binaries, CoreDNS and helm are
# built from their Go modules).
#
# Idempotent: with everything there it changes nothing and needs no root. Otherwise it
# needs root (or sudo) and apt-get; where it has neither, it stops before changing
# anything, with one line that says what is missing and the command that fixes it.
#
# usage: hack/install-deps.sh [--root-for COMMAND]
#   --root-for COMMAND   COMMAND itself needs root (the real node, the image builds):
#                        stop at once unless running as root
set -euo pipefail

say() { printf '[install-deps] %s\n' "$*" >&2; }
die() { printf '[install-deps] ERROR: %s\n' "$*" >&2; exit 1; }

root_for=""
while [ $# -gt 0 ]; do
  case $1 in
    --root-for) root_for=${2:?--root-for needs the command}; shift 2 ;;
    *) die "usage: $0 [--root-for COMMAND]" ;;
  esac
done

# package=what proves it is there: a command, or a path. Checked after installing, and in
# place of the package where there is no dpkg.
provides=(prometheus=/usr/bin/prometheus wrk=wrk curl=curl openssl=openssl
  chromium=/usr/bin/chromium chromium-driver=/usr/bin/chromedriver
  containerd=containerd runc=runc containernetworking-plugins=/usr/lib/cni/bridge
  iptables=iptables conntrack=conntrack iproute2=ip procps=sysctl nftables=nft
  buildah=buildah mmdebstrap=mmdebstrap gcc=gcc libc6-dev=/usr/include/stdio.h git=git)

# A command on PATH, or in the sbin directories a non-root PATH may lack; or a path.
have() {
  case $1 in
    /*) [ -e "$1" ] ;;
    *) command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] ;;
  esac
}

if [ -n "$root_for" ] && [ "$(id -u)" -ne 0 ]; then
  die "$root_for runs a real node and builds images, which need root: run: sudo $root_for"
fi

# --- what is missing ---

debian=false
command -v dpkg-query >/dev/null && command -v apt-get >/dev/null && debian=true
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

missing=()
for pair in "${provides[@]}"; do
  pkg=${pair%%=*} proof=${pair#*=}
  if $debian; then installed "$pkg" || missing+=("$pkg")
  else have "$proof" || missing+=("$proof"); fi
done

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || die "python3 >= 3.11 is needed (found: $(python3 --version 2>&1 || echo none)): install it and put it first on PATH"
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  $debian || die "python3 $(python3 -c 'import platform; print(platform.python_version())') has no venv module: install it for this python3"
  missing+=(python3-venv)
fi

go_version=$(go env GOVERSION 2>/dev/null || true)
go_minor=${go_version#go1.}; go_minor=${go_minor%%.*}
case $go_minor in
  ''|*[!0-9]*) die "go >= 1.26 is needed (found: ${go_version:-none}): install Go 1.26 or later and put it on PATH" ;;
esac
[ "$go_minor" -ge 26 ] \
  || die "go >= 1.26 is needed (found: $go_version): install Go 1.26 or later and put it on PATH"

# --- install it, or say exactly how ---

sudo=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo=(sudo); fi
privileged=false
{ [ "$(id -u)" -eq 0 ] || [ ${#sudo[@]} -gt 0 ]; } && privileged=true

if [ "${#missing[@]}" -eq 0 ]; then
  say "all ${#provides[@]} system packages present; $(python3 --version), $go_version"
elif ! $debian; then
  die "missing ${missing[*]}, and this installer needs Debian/Ubuntu (apt-get): install them with the system's package manager, then rerun"
elif ! $privileged; then
  die "missing Debian packages ${missing[*]} (not root, no sudo): run as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
else
  say "missing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  say "apt-get update"
  "${sudo[@]}" apt-get update -q
  say "apt-get install -y --no-install-recommends ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  for pair in "${provides[@]}"; do
    have "${pair#*=}" || die "${pair#*=} missing after installing ${pair%%=*}"
  done
  python3 -c 'import ensurepip, venv' 2>/dev/null \
    || die "$(command -v python3) still has no venv module: install one for this python3 (or put Debian's python3 first on PATH)"
  say "prometheus: $(/usr/bin/prometheus --version 2>&1 | head -n1)"
fi

# --- services the packages may have started ---

# Stopping them needs root; without it (everything was already installed) there is nothing
# this script started, and a running one is only reported.
run_privileged() {
  if $privileged; then "${sudo[@]}" "$@"; else say "not root: could not run: $*"; fi
}

# The tests start their own Prometheus on a free port with a temporary data dir. The
# package's service, if the package started one, would hold :9090 and scrape for nothing:
# stop it, and keep it from starting at boot.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  if systemctl is-active --quiet prometheus 2>/dev/null; then
    say "stopping the prometheus systemd service (the tests run their own)"
    run_privileged systemctl stop prometheus
  fi
elif [ -x /etc/init.d/prometheus ] && /etc/init.d/prometheus status >/dev/null 2>&1; then
  # no systemd (a container): the postinst may have started it through its init script
  say "stopping the prometheus init.d service (the tests run their own)"
  run_privileged /etc/init.d/prometheus stop >/dev/null || true
fi
# `systemctl disable` only edits symlinks, so it works without a running systemd too
if command -v systemctl >/dev/null && systemctl is-enabled --quiet prometheus 2>/dev/null; then
  say "disabling the prometheus service"
  run_privileged systemctl disable --quiet prometheus 2>/dev/null \
    || say "could not disable the prometheus service (harmless: the tests use the binary)"
fi

# The Debian containerd package may start its own daemon (on /run/containerd): the real
# node runs its own containerd with its own root and socket, so stop the packaged one.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ] \
  && systemctl is-active --quiet containerd 2>/dev/null; then
  say "stopping the containerd systemd service (the real node runs its own)"
  run_privileged systemctl stop containerd
  run_privileged systemctl disable --quiet containerd 2>/dev/null || true
fi
say "done"
