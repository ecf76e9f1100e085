#!/usr/bin/env bash
# One real Kubernetes node next to the kwok nodes: containerd (CRI) with runc, the kubelet,
# kube-proxy in iptables mode, a bridge CNI network with host-local IPAM, a locally built
# pause image, CoreDNS, and kube-network-policies (the NetworkPolicy engine kind ships, as
# a host process). hack/cluster.sh drives it when NODE=real.
#
#   hack/real-node.sh net-up    create the node's bridge; prints the host's address on it
#   hack/real-node.sh up        start containerd, import images, start kubelet, kube-proxy, DNS
#   hack/real-node.sh down      stop it all and remove every rule, link, mount and cgroup
#   hack/real-node.sh healthy   exit 0 when containerd, kubelet, kube-proxy and
#                               kube-network-policies run
#   hack/real-node.sh preflight exit 0 when this machine can run the node; else one line why
#   hack/real-node.sh host-ip | node-name
#
# Everything is loopback or on the bridge, which has no uplink: nothing listens beyond the
# machine. Only one real node can run per machine (kube-proxy owns the host's iptables
# rules); /run/modelroll-real-node names the cluster that holds it. Needs root.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER_DIR=${CLUSTER_DIR:-$repo/.cluster}
START_TIMEOUT=${START_TIMEOUT:-90}
NODE_NAME=real-0
BRIDGE=mpbr0
# Not 10.88.0.0/16: podman, buildah and containerd's sample config all default to it.
POD_SUBNET=10.211.0.0/16
HOST_IP=10.211.0.1
SERVICE_CIDR=10.96.0.0/16
CLUSTER_DNS=10.96.0.10
NODE_LABEL=modelroll.io/node=real
NODE_TAINT=modelroll.io/real-node=true:NoSchedule
CNI_BIN_DIR=/usr/lib/cni
# The nfqueue kube-network-policies decides new connections from, and the chain that steers
# them there where the kernel lacks nftables' queue expression (KUBE-*: removed on down).
NFQUEUE_ID=100
STEER_CHAIN=KUBE-NETWORK-POLICIES
LOCK=/run/modelroll-real-node
# The host settings the kubelet, kube-proxy and the bridge plugin change; restored on down.
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables vm.overcommit_memory
  vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
  kernel.keys.root_maxbytes)
# Fixed paths that CNI (its result cache), the kubelet (log links) and containerd 1.6 (shim
# sockets) use whatever the config says; removed on down when the node created them.
HOST_DIRS=(/var/lib/cni /var/log/containers /run/containerd)

node=$CLUSTER_DIR/node
run=$CLUSTER_DIR/run
logs=$CLUSTER_DIR/logs
pki=$CLUSTER_DIR/pki
sock=$node/containerd/containerd.sock

LOG_PREFIX=real-node
# shellcheck source=hack/lib.sh
. "$repo/hack/lib.sh"

bin() { echo "$(cat "$run/bin_dir")/$1"; }
kubectl() { "$(bin kubectl)" --kubeconfig "$CLUSTER_DIR/kubeconfig" "$@"; }
ctr_() { ctr --address "$sock" --namespace k8s.io "$@"; }
crictl_() { "$(bin crictl)" --runtime-endpoint "unix://$sock" --timeout 30s "$@"; }

# The same tools as tests/support/prerequisites.py REAL_NODE_TOOLS (a unit test compares).
REAL_NODE_TOOLS=(containerd ctr runc "$CNI_BIN_DIR/bridge" iptables ip6tables conntrack nft ip sysctl
  buildah mmdebstrap gcc git)

# What the node needs from this machine; dies with one line naming the first thing missing.
require_host() {
  [ "$(id -u)" -eq 0 ] || die "a real node needs root (network namespaces, mounts, cgroups, iptables)"
  local tool
  for tool in "${REAL_NODE_TOOLS[@]}"; do
    case $tool in
      /*) [ -x "$tool" ] || die "$tool not found: run hack/install-deps.sh" ;;
      *) command -v "$tool" >/dev/null || die "$tool not found: run hack/install-deps.sh" ;;
    esac
  done
  [ -d /sys/fs/cgroup/cpu ] || die "the kubelet here needs cgroup v1 hierarchies under /sys/fs/cgroup"
  grep -qw overlay /proc/filesystems || die "the kernel has no overlay filesystem (containerd's snapshotter): modprobe overlay"
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] ||
    die "bridged traffic does not pass iptables (kube-proxy's Service rules): modprobe br_netfilter"
  iptables -t nat -S >/dev/null 2>&1 || die "iptables -t nat does not work here (kube-proxy's Service rules need it)"
}

take_lock() {
  if [ -f "$LOCK" ] && [ "$(cat "$LOCK")" != "$CLUSTER_DIR" ]; then
    [ -d "$(cat "$LOCK")/node" ] && die "a real node already runs for $(cat "$LOCK"); stop it with CLUSTER_DIR=$(cat "$LOCK") hack/cluster.sh down"
    say "taking over a stale lock from $(cat "$LOCK")"
  fi
  echo "$CLUSTER_DIR" >"$LOCK"
}

net_up() {
  require_host
  take_lock
  mkdir -p "$node" "$run"
  if [ ! -f "$node/sysctl.saved" ]; then
    local key
    for key in "${SYSCTLS[@]}"; do echo "$key=$(sysctl -n "$key")"; done >"$node/sysctl.saved"
    local dir
    for dir in "${HOST_DIRS[@]}"; do [ -d "$dir" ] || echo "$dir"; done >"$node/created-dirs"
    kube_chains >"$node/kube-chains.before"
  fi
  local other
  other=$(ip -o route show to match "$HOST_IP" | awk -v b="$BRIDGE" '$1 != "default" && $0 !~ "dev " b " " {print}')
  [ -z "$other" ] || die "the pod subnet $POD_SUBNET overlaps a route of this machine: $other"
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$HOST_IP/${POD_SUBNET#*/}" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  # Without a default route, a connect() to a ClusterIP fails before kube-proxy's DNAT runs.
  ip route replace "$SERVICE_CIDR" dev "$BRIDGE" src "$HOST_IP"
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  echo "$HOST_IP"
}

write_configs() {
  mkdir -p "$node"/{containerd/root,containerd/state,cni/net.d,cni/ipam,kubelet,pod-logs,volume-plugins}
  cat >"$node/containerd/config.toml" <<EOF
version = 2
root = "$node/containerd/root"
state = "$node/containerd/state"
[grpc]
  address = "$sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$node/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$(image_ref pause)"
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = false
  # This sandbox lacks CAP_SYS_RESOURCE, so no process may lower its OOM score below its
  # parent's; without this, runc fails every pause container on oom_score_adj=-998.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$node/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$node/cni/net.d"
EOF
  # No ipMasq and no portmap: pods only talk to the host and each other, so the bridge
  # plugin adds no iptables rules of its own.
  cat >"$node/cni/net.d/10-modelroll.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "modelroll",
  "plugins": [{
    "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local", "dataDir": "$node/cni/ipam",
      "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$HOST_IP"}]],
      "routes": [{"dst": "0.0.0.0/0"}]
    }
  }]
}
EOF
  # Pods resolve only cluster names: the node's resolv.conf has no upstream to offer them.
  printf 'nameserver %s\n' "$CLUSTER_DNS" >"$node/resolv.conf"
  cat >"$node/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $HOST_IP
port: $(cat "$run/kubelet.port")
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $(cat "$run/kubelet-healthz.port")
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$sock
clusterDNS: [$CLUSTER_DNS]
clusterDomain: cluster.local
resolvConf: $node/resolv.conf
podLogsDir: $node/pod-logs
volumePluginDir: $node/volume-plugins
registerWithTaints:
- {key: ${NODE_TAINT%%=*}, value: "$(t=${NODE_TAINT#*=}; echo "${t%%:*}")", effect: ${NODE_TAINT##*:}}
maxPods: 50
serializeImagePulls: false
nodeStatusReportFrequency: 10s
# The sandbox's disk is shared with everything else on it: do not evict pods over it.
evictionHard: {memory.available: 100Mi, nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
  cat >"$node/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $node/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
bindAddress: $HOST_IP
healthzBindAddress: 127.0.0.1:$(cat "$run/kube-proxy-healthz.port")
metricsBindAddress: 127.0.0.1:$(cat "$run/kube-proxy-metrics.port")
clusterCIDR: $POD_SUBNET
nodePortAddresses: [$HOST_IP/32]
iptables: {localhostNodePorts: false}
# 0 leaves the host's conntrack limits and timeouts as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  write_kubeconfig "$node/kubelet.kubeconfig" node
  write_kubeconfig "$node/kube-proxy.kubeconfig" kube-proxy
}

# "<ref> <archive>" lines from hack/images.sh, built or reused.
images() {
  [ -s "$run/images" ] || "$repo/hack/images.sh" build all >"$run/images"
  cat "$run/images"
}
image_ref() { images | awk -v n="/$1:" 'index($1, n) {print $1}'; }

# Reads the whole list first: `ctr ... | grep -q` under pipefail fails when grep exits
# before ctr has written its last line (SIGPIPE).
has_image() {
  local listed
  listed=$(ctr_ images ls -q)
  grep -qxF "$1" <<<"$listed"
}

import_images() {
  local ref archive
  while read -r ref archive; do
    if has_image "$ref"; then continue; fi
    say "importing $ref"
    ctr_ images import "$archive" >/dev/null
    has_image "$ref" || die "$archive did not import as $ref"
  done < <(images)
}

up() {
  require_host
  local t0
  t0=$(date +%s)
  [ -f "$run/apiserver.host" ] || die "start the cluster with NODE=real hack/cluster.sh up"
  [ "$(cat "$run/apiserver.host")" = "$HOST_IP" ] || die "the API server is not on $HOST_IP: start the cluster with NODE=real"
  net_up >/dev/null
  say "building or reusing the images (pause, runtime, operator, coredns)"
  images >/dev/null
  for p in kubelet kubelet-healthz kube-proxy-healthz kube-proxy-metrics network-policies-metrics; do
    free_port >"$run/$p.port"
  done
  write_configs

  say "starting containerd ($sock)"
  start containerd containerd --config "$node/containerd/config.toml" --log-level warn
  wait_for containerd "its socket" ctr --address "$sock" version
  import_images
  local t_images=$(( $(date +%s) - t0 ))

  say "starting the kubelet ($NODE_NAME on $HOST_IP)"
  start kubelet "$(bin kubelet)" --config "$node/kubelet/config.yaml" \
    --kubeconfig "$node/kubelet.kubeconfig" --root-dir "$node/kubelet" \
    --cert-dir "$node/kubelet/pki" --hostname-override "$NODE_NAME" --node-ip "$HOST_IP" \
    --node-labels "$NODE_LABEL" --v=1
  wait_for kubelet "node $NODE_NAME Ready" kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s

  say "starting kube-proxy (iptables mode)"
  start kube-proxy "$(bin kube-proxy)" --config "$node/kube-proxy.yaml" --v=1
  wait_for kube-proxy "healthz" curl -sf "http://127.0.0.1:$(cat "$run/kube-proxy-healthz.port")/healthz"

  start_network_policies

  say "starting CoreDNS"
  sed "s|__COREDNS_IMAGE__|$(image_ref coredns)|" "$repo/hack/coredns/coredns.yaml" | kubectl apply -f - >/dev/null
  wait_for kubelet "CoreDNS available" kubectl -n kube-system wait --for=condition=Available deployment/coredns --timeout=2s
  say "real node $NODE_NAME ready in $(( $(date +%s) - t0 ))s (images ${t_images}s); label $NODE_LABEL, taint $NODE_TAINT"
}

# kube-network-policies runs on the host, with its own identity: it reads pods, namespaces
# and NetworkPolicies and decides each new connection of a pod in userspace (fail closed).
# NETWORK_POLICIES_V=2 logs every verdict.
start_network_policies() {
  local knp
  say "building or reusing kube-network-policies"
  knp=$("$repo/hack/kube-network-policies/build.sh")
  kubectl apply --server-side -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kube-network-policies}
rules:
- {apiGroups: [""], resources: [pods, namespaces], verbs: [list, watch]}
- {apiGroups: [networking.k8s.io], resources: [networkpolicies], verbs: [list, watch]}
- {apiGroups: ["", events.k8s.io], resources: [events], verbs: [create, patch, update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kube-network-policies}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kube-network-policies}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:kube-network-policies"}
EOF
  write_kubeconfig "$node/network-policies.kubeconfig" network-policies
  echo "$knp" >"$run/kube-network-policies.bin"
  say "starting kube-network-policies (NetworkPolicy enforcement, nfqueue $NFQUEUE_ID)"
  start kube-network-policies "$knp" --kubeconfig "$node/network-policies.kubeconfig" \
    --hostname-override "$NODE_NAME" --nfqueue-id "$NFQUEUE_ID" \
    --metrics-bind-address "127.0.0.1:$(cat "$run/network-policies-metrics.port")" \
    --v="${NETWORK_POLICIES_V:-1}"
  wait_for kube-network-policies "nfqueue $NFQUEUE_ID bound" queue_bound
  if nft list table inet kube-network-policies >/dev/null 2>&1; then
    say "kube-network-policies steers new connections to nfqueue $NFQUEUE_ID with its nftables table"
  else
    say "this kernel has no nftables queue expression (nft_queue): steering with iptables' NFQUEUE target"
    steer_with_iptables
  fi
}

queue_bound() {
  awk -v q="$NFQUEUE_ID" '$1 == q {found = 1} END {exit !found}' /proc/net/netfilter/nfnetlink_queue
}

# The rules kube-network-policies would install in nftables (its postrouting chain), as
# iptables rules: root's own traffic (kubelet probes) and established flows pass, every
# other new connection from or to a pod is decided by the controller.
steer_with_iptables() {
  iptables -t mangle -N "$STEER_CHAIN" 2>/dev/null || iptables -t mangle -F "$STEER_CHAIN"
  iptables -t mangle -A "$STEER_CHAIN" -m owner --uid-owner 0 -j RETURN
  iptables -t mangle -A "$STEER_CHAIN" -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
  iptables -t mangle -A "$STEER_CHAIN" -s "$POD_SUBNET" -j NFQUEUE --queue-num "$NFQUEUE_ID"
  iptables -t mangle -A "$STEER_CHAIN" -d "$POD_SUBNET" -j NFQUEUE --queue-num "$NFQUEUE_ID"
  iptables -t mangle -C POSTROUTING -j "$STEER_CHAIN" 2>/dev/null \
    || iptables -t mangle -A POSTROUTING -j "$STEER_CHAIN"
}

healthy() {
  alive containerd && alive kubelet && alive kube-proxy && alive kube-network-policies
}

# Mount points under a directory, deepest first.
mounts_under() {
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r
}

down() {
  local errors=0
  # The kubelet goes first so that it restarts nothing; crictl then stops every sandbox
  # through the CRI, which runs the CNI DEL that removes its veth and IP.
  stop kubelet
  if alive containerd; then
    crictl_ rmp --all --force >/dev/null 2>&1 || { say "crictl rmp failed"; errors=1; }
  fi
  stop containerd
  # Shims outlive containerd by design; ours are the ones started with our socket.
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null || true
  if [ -f "$node/kube-proxy.yaml" ]; then
    stop kube-proxy
    "$(bin kube-proxy)" --cleanup --v=0 >"$logs/kube-proxy-cleanup.log" 2>&1 || {
      say "kube-proxy --cleanup failed; see $logs/kube-proxy-cleanup.log"; errors=1; }
  fi
  # Its own nftables table goes with it (--cleanup, in case it was killed); the iptables
  # chain that steered packets to it is a KUBE-* chain, removed below.
  stop kube-network-policies
  if [ -s "$run/kube-network-policies.bin" ]; then
    "$(cat "$run/kube-network-policies.bin")" --cleanup >"$logs/kube-network-policies-cleanup.log" 2>&1 || {
      say "kube-network-policies --cleanup failed; see $logs/kube-network-policies-cleanup.log"; errors=1; }
  fi
  local m
  while read -r m; do
    [ -n "$m" ] && { umount -l "$m" 2>/dev/null || { say "could not unmount $m"; errors=1; }; }
  done < <(mounts_under "$node")
  remove_kube_chains
  remove_cgroups
  remove_container_log_links
  ip route del "$SERVICE_CIDR" dev "$BRIDGE" 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  if [ -f "$node/sysctl.saved" ]; then
    while IFS= read -r kv; do sysctl -qw "$kv" || errors=1; done <"$node/sysctl.saved"
  fi
  local dir
  while read -r dir; do
    [ -d "$dir" ] && find "$dir" -depth -type d -empty -delete 2>/dev/null
    [ -d "$dir" ] && { say "left $dir: it is not empty"; errors=1; }
  done <"$node/created-dirs" 2>/dev/null || true
  rm -rf "$node"
  [ "$(cat "$LOCK" 2>/dev/null)" = "$CLUSTER_DIR" ] && rm -f "$LOCK"
  if [ "$errors" -eq 0 ]; then say "real node removed"; else say "real node removed, with the errors above"; fi
}

# "<iptables command> <table> <chain>" for every KUBE-* chain on the host.
kube_chains() {
  local cmd table
  for cmd in iptables ip6tables; do
    for table in filter nat mangle; do
      "$cmd" -t "$table" -S 2>/dev/null | awk -v c="$cmd" -v t="$table" '$1 == "-N" && $2 ~ /^KUBE-/ {print c, t, $2}'
    done
  done
}

# kube-proxy --cleanup leaves the kubelet's own chains (KUBE-FIREWALL, the canaries):
# remove the jumps to them, then the chains, except any that predate the node.
remove_kube_chains() {
  local cmd table chain rule
  while read -r cmd table chain; do
    grep -qxF "$cmd $table $chain" "$node/kube-chains.before" 2>/dev/null && continue
    while read -r rule; do
      # eval, not word splitting: -S output quotes what has spaces (--comment "...")
      eval "$cmd -t $table ${rule/-A/-D}" 2>/dev/null || true
    done < <("$cmd" -t "$table" -S | grep -E -- "^-A [^ ]+ .*-j $chain( |\$)" || true)
    "$cmd" -t "$table" -F "$chain" 2>/dev/null || true
    "$cmd" -t "$table" -X "$chain" 2>/dev/null || true
  done < <(kube_chains)
}

# The kubelet (cgroupfs driver) makes /kubepods in every v1 hierarchy; children go first.
remove_cgroups() {
  local h
  for h in /sys/fs/cgroup/*/kubepods; do
    [ -d "$h" ] || continue
    find "$h" -depth -type d -exec rmdir {} + 2>/dev/null || say "could not remove all of $h"
  done
}

# The kubelet links every container log into /var/log/containers, a fixed path.
remove_container_log_links() {
  local link
  for link in /var/log/containers/*.log; do
    [ -L "$link" ] || continue
    case $(readlink "$link") in "$node"/*) rm -f "$link" ;; esac
  done
}

case ${1:-} in
  net-up) net_up ;;
  up) up ;;
  down) down ;;
  healthy) healthy ;;
  preflight) require_host ;;
  host-ip) echo "$HOST_IP" ;;
  node-name) echo "$NODE_NAME" ;;
  *) die "usage: $0 net-up|up|down|healthy|preflight|host-ip|node-name" ;;
esac
