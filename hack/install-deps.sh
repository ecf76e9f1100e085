#!/usr/bin/env bash
# Installs the system packages the test suite needs on a fresh Debian/Ubuntu machine (CI):
#
#   prometheus   the real Prometheus server the canary-analysis tests start as a plain
#                process (/usr/bin/prometheus); the package's systemd service is not used
#   wrk          the HTTP load generator of the runtime benchmarks
#
# and for the real node (NODE=real, the e2e tests) and the images built without Docker:
#
#   containerd, runc, containernetworking-plugins, iptables, conntrack   the node itself
#   buildah, mmdebstrap, gcc, libc6-dev   hack/images.sh (Dockerfiles, base rootfs, pause)
#
# Idempotent: packages already installed are left alone, and `apt-get update` runs only
# when something is missing. Needs root (or sudo).
set -euo pipefail

say() { printf '[install-deps] %s\n' "$*" >&2; }
die() { printf '[install-deps] ERROR: %s\n' "$*" >&2; exit 1; }

packages=(prometheus wrk containerd runc containernetworking-plugins iptables conntrack
  buildah mmdebstrap gcc libc6-dev)

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "not root and no sudo: run as root"
  sudo=(sudo)
fi
command -v apt-get >/dev/null || die "apt-get not found: this installer supports Debian/Ubuntu only"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

missing=()
for pkg in "${packages[@]}"; do
  if installed "$pkg"; then
    say "$pkg: already installed ($(dpkg-query -W -f='${Version}' "$pkg"))"
  else
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  say "missing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  say "apt-get update"
  "${sudo[@]}" apt-get update -q
  say "apt-get install -y --no-install-recommends ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The tests start their own Prometheus on a free port with a temporary data dir. The
# package's service, if the package started one, would hold :9090 and scrape for nothing:
# stop it, and keep it from starting at boot.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  if systemctl is-active --quiet prometheus 2>/dev/null; then
    say "stopping the prometheus systemd service (the tests run their own)"
    "${sudo[@]}" systemctl stop prometheus
  fi
elif [ -x /etc/init.d/prometheus ] && /etc/init.d/prometheus status >/dev/null 2>&1; then
  # no systemd (a container): the postinst may have started it through its init script
  say "stopping the prometheus init.d service (the tests run their own)"
  "${sudo[@]}" /etc/init.d/prometheus stop >/dev/null || true
fi
# `systemctl disable` only edits symlinks, so it works without a running systemd too
if command -v systemctl >/dev/null && systemctl is-enabled --quiet prometheus 2>/dev/null; then
  say "disabling the prometheus service"
  "${sudo[@]}" systemctl disable --quiet prometheus 2>/dev/null \
    || say "could not disable the prometheus service (harmless: the tests use the binary)"
fi

# The Debian containerd package may start its own daemon (on /run/containerd): the real
# node runs its own containerd with its own root and socket, so stop the packaged one.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ] \
  && systemctl is-active --quiet containerd 2>/dev/null; then
  say "stopping the containerd systemd service (the real node runs its own)"
  "${sudo[@]}" systemctl stop containerd
  "${sudo[@]}" systemctl disable --quiet containerd 2>/dev/null || true
fi

for bin in /usr/bin/prometheus /usr/bin/wrk /usr/bin/containerd /usr/sbin/runc /usr/lib/cni/bridge \
  /usr/bin/buildah /usr/bin/mmdebstrap; do
  [ -x "$bin" ] || die "$bin missing after install"
done
say "prometheus: $(/usr/bin/prometheus --version 2>&1 | head -n1)"
say "wrk: $(/usr/bin/wrk --version 2>&1 | head -n1 || true)"
say "done"
