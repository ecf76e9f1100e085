#!/usr/bin/env bash
# A real local Kubernetes control plane as plain processes: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok with fake CPU, GPU and MIG nodes.
#
#   hack/cluster.sh up      start (or reuse) the cluster in $CLUSTER_DIR
#   hack/cluster.sh down    stop it and remove everything it created
#   hack/cluster.sh env     print the two export lines
#   hack/cluster.sh stats   resident memory of each component
#
# NODE=real adds one real node (containerd, runc, kubelet, kube-proxy, kube-network-policies;
# hack/real-node.sh).
# Everything listens on 127.0.0.1 only, or with NODE=real on the node's host-local bridge
# address, which pods need to reach the API server. Each component has its own data dir
# and log.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER_DIR=${CLUSTER_DIR:-$repo/.cluster}
KWOK_CPU_NODES=${KWOK_CPU_NODES:-3}
KWOK_GPU_NODES=${KWOK_GPU_NODES:-2}
KWOK_NODE_PODS=${KWOK_NODE_PODS:-250}
START_TIMEOUT=${START_TIMEOUT:-90}
# kube-controller-manager's client-side rate limit (its own defaults: 20 and 30). The scale
# benchmark raises them, as production clusters do, to see past the controllers' limit.
KCM_API_QPS=${KCM_API_QPS:-20}
KCM_API_BURST=${KCM_API_BURST:-30}
NODE=${NODE:-kwok}
GPU_PRODUCT=NVIDIA-A100-SXM4-80GB
GPUS_PER_NODE=4
MIG_RESOURCE=nvidia.com/mig-1g.10gb

pki=$CLUSTER_DIR/pki
logs=$CLUSTER_DIR/logs
run=$CLUSTER_DIR/run

LOG_PREFIX=cluster
# shellcheck source=hack/lib.sh
. "$repo/hack/lib.sh"

make_pki() {
  mkdir -p "$pki"
  [ -f "$pki/ca.crt" ] && return
  say "creating certificates and tokens in $pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=modelroll-local-ca" 2>/dev/null
    cat >apiserver.ext <<EOF
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,IP:$("$repo/hack/real-node.sh" host-ip),DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
EOF
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
      -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out apiserver.crt -days 3650 -extfile apiserver.ext 2>/dev/null
    # the API server's client identity towards kubelets (logs, exec, port-forward)
    openssl req -newkey rsa:2048 -nodes -keyout kubelet-client.key -out kubelet-client.csr \
      -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" 2>/dev/null
    openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out kubelet-client.crt -days 3650 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    for who in admin controller-manager scheduler kwok node kube-proxy network-policies; do
      python3 -c 'import secrets, sys; sys.stdout.write(secrets.token_hex(24))' >"$who.token"
    done
    {
      echo "$(cat admin.token),modelroll-admin,admin,\"system:masters\""
      echo "$(cat controller-manager.token),system:kube-controller-manager,kcm,"
      echo "$(cat scheduler.token),system:kube-scheduler,scheduler,"
      echo "$(cat kwok.token),kwok-controller,kwok,\"system:masters\""
      # the real node's kubelet is limited by the Node authorizer to its own objects
      echo "$(cat node.token),system:node:$("$repo/hack/real-node.sh" node-name),node,\"system:nodes\""
      echo "$(cat kube-proxy.token),system:kube-proxy,kube-proxy,"
      # the NetworkPolicy engine of the real node; hack/real-node.sh grants it what it reads
      echo "$(cat network-policies.token),system:kube-network-policies,network-policies,"
    } >tokens.csv
    # Writes only, metadata level: enough to count who writes what (benchmarks use it).
    # Routing changes keep their bodies, to tell later which selector or endpoints were set.
    cat >audit-policy.yaml <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  resources: [{group: coordination.k8s.io, resources: [leases]}]
- level: Request
  verbs: [create, update, patch]
  resources: [{group: "", resources: [services]}, {group: discovery.k8s.io, resources: [endpointslices]}]
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
EOF
    chmod 600 ./*.key ./*.token tokens.csv
  )
}

node_manifests() {
  local i
  node() { # name, extra labels (yaml lines), taints yaml, extra allocatable (yaml lines)
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $1
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: $1
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
$2
spec:
$3
status:
  allocatable: &res
    cpu: "64"
    memory: 512Gi
    pods: "$KWOK_NODE_PODS"
$4
  capacity: *res
  nodeInfo:
    kubeletVersion: fake
    kubeProxyVersion: fake
    operatingSystem: linux
    architecture: amd64
EOF
  }
  local gpu_taint='  taints:
  - {key: nvidia.com/gpu, value: present, effect: NoSchedule}'
  for ((i = 0; i < KWOK_CPU_NODES; i++)); do
    node "kwok-cpu-$i" "    modelroll.io/pool: cpu" "  taints: []" ""
  done
  for ((i = 0; i < KWOK_GPU_NODES; i++)); do
    node "kwok-gpu-$i" "    modelroll.io/pool: gpu
    nvidia.com/gpu.present: \"true\"
    nvidia.com/gpu.product: $GPU_PRODUCT
    nvidia.com/gpu.count: \"$GPUS_PER_NODE\"
    nvidia.com/gpu.memory: \"81920\"" "$gpu_taint" "    nvidia.com/gpu: \"$GPUS_PER_NODE\""
  done
  node kwok-mig-0 "    modelroll.io/pool: mig
    nvidia.com/gpu.present: \"true\"
    nvidia.com/gpu.product: $GPU_PRODUCT-MIG-1g.10gb
    nvidia.com/gpu.count: \"1\"
    nvidia.com/mig.strategy: mixed" "$gpu_taint" "    $MIG_RESOURCE: \"7\""
}

print_env() {
  echo "export KUBECONFIG=$CLUSTER_DIR/kubeconfig"
  echo "export PATH=$(cat "$run/bin_dir"):\$PATH"
}

healthy() {
  local c
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do alive "$c" || return 1; done
  [ "$(cat "$run/node_mode" 2>/dev/null)" = "$NODE" ] || return 1
  if [ "$NODE" = real ]; then "$repo/hack/real-node.sh" healthy || return 1; fi
  "$(cat "$run/bin_dir")/kubectl" --kubeconfig "$CLUSTER_DIR/kubeconfig" get --raw /readyz >/dev/null 2>&1
}

up() {
  if [ -d "$run" ] && healthy; then
    say "already running in $CLUSTER_DIR"
    print_env
    return
  fi
  [ -d "$run" ] && { say "cleaning up a previous, unhealthy cluster"; down; }
  local t0 bin_dir
  t0=$(date +%s)
  if [ "$NODE" = real ]; then
    bin_dir=$(COMPONENTS=all "$repo/hack/control-plane/build.sh")
  else
    [ "$NODE" = kwok ] || die "NODE must be kwok or real, not '$NODE'"
    bin_dir=$("$repo/hack/control-plane/build.sh")
  fi
  mkdir -p "$run" "$logs" "$CLUSTER_DIR/etcd"
  echo "$bin_dir" >"$run/bin_dir"
  echo "$NODE" >"$run/node_mode"
  local api_host=127.0.0.1 reconciler=none
  if [ "$NODE" = real ]; then
    # Pods reach the API server through the kubernetes Service, whose endpoint is the
    # advertised address: the real node's bridge, which exists before the API server binds.
    api_host=$("$repo/hack/real-node.sh" net-up)
    reconciler=lease
  fi
  echo "$api_host" >"$run/apiserver.host"
  make_pki
  for p in etcd etcd-peer apiserver controller-manager scheduler kwok; do free_port >"$run/$p.port"; done
  local etcd_url peer_url
  etcd_url=http://127.0.0.1:$(cat "$run/etcd.port")
  peer_url=http://127.0.0.1:$(cat "$run/etcd-peer.port")

  say "starting etcd on $etcd_url"
  start etcd "$bin_dir/etcd" --name local --data-dir "$CLUSTER_DIR/etcd" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
    --initial-cluster "local=$peer_url" \
    --unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn
  wait_for etcd "a healthy etcd" curl -sf "$etcd_url/health"

  say "starting kube-apiserver on https://$api_host:$(cat "$run/apiserver.port")"
  start kube-apiserver "$bin_dir/kube-apiserver" \
    --etcd-servers "$etcd_url" \
    --bind-address "$api_host" --advertise-address "$api_host" \
    --secure-port "$(cat "$run/apiserver.port")" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" \
    --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --endpoint-reconciler-type "$reconciler" \
    --kubelet-client-certificate "$pki/kubelet-client.crt" --kubelet-client-key "$pki/kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --audit-policy-file "$pki/audit-policy.yaml" --audit-log-path "$logs/audit.log" \
    --audit-log-maxsize 100 --audit-log-maxbackup 1 \
    --allow-privileged=true --profiling=false --v=1
  write_kubeconfig "$CLUSTER_DIR/kubeconfig" admin
  write_kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" controller-manager
  write_kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" scheduler
  write_kubeconfig "$CLUSTER_DIR/kwok.kubeconfig" kwok
  local kubectl=("$bin_dir/kubectl" --kubeconfig "$CLUSTER_DIR/kubeconfig")
  wait_for kube-apiserver "/readyz" "${kubectl[@]}" get --raw /readyz
  say "installing the Gateway API CRDs"
  "${kubectl[@]}" apply --server-side -f "$bin_dir"/../gateway-api-*.yaml >/dev/null

  say "starting kube-controller-manager and kube-scheduler"
  start kube-controller-manager "$bin_dir/kube-controller-manager" \
    --kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$(cat "$run/controller-manager.port")" \
    --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --controllers '*,bootstrapsigner,tokencleaner' \
    --kube-api-qps "$KCM_API_QPS" --kube-api-burst "$KCM_API_BURST" \
    --horizontal-pod-autoscaler-sync-period 5s --v=1
  start kube-scheduler "$bin_dir/kube-scheduler" \
    --kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$(cat "$run/scheduler.port")" \
    --leader-elect=false --v=1
  wait_for kube-controller-manager "healthz" curl -skf "https://127.0.0.1:$(cat "$run/controller-manager.port")/healthz"
  wait_for kube-scheduler "healthz" curl -skf "https://127.0.0.1:$(cat "$run/scheduler.port")/healthz"

  say "starting kwok and registering fake nodes"
  start kwok "$bin_dir/kwok" --kubeconfig "$CLUSTER_DIR/kwok.kubeconfig" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --manage-nodes-with-label-selector= \
    --disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom \
    --disregard-status-with-label-selector= \
    --cidr=10.244.0.1/16 --node-ip=10.0.0.1 --node-lease-duration-seconds=40 \
    --server-address "127.0.0.1:$(cat "$run/kwok.port")"
  node_manifests >"$CLUSTER_DIR/nodes.yaml"
  "${kubectl[@]}" apply -f "$CLUSTER_DIR/nodes.yaml" >/dev/null
  wait_for kwok "all nodes Ready" "${kubectl[@]}" wait --for=condition=Ready node --all --timeout=2s
  wait_for kube-controller-manager "the default ServiceAccount" "${kubectl[@]}" -n default get serviceaccount default
  if [ "$NODE" = real ]; then
    CLUSTER_DIR=$CLUSTER_DIR START_TIMEOUT=$START_TIMEOUT "$repo/hack/real-node.sh" up
  fi

  say "control plane ready in $(( $(date +%s) - t0 ))s ($("${kubectl[@]}" get nodes --no-headers | wc -l) nodes); logs in $logs"
  print_env
}

down() {
  local c
  # The real node goes first: its teardown (pods, network, mounts) needs no API server.
  if [ -d "$CLUSTER_DIR/node" ] || [ "$(cat "$run/node_mode" 2>/dev/null)" = real ]; then
    CLUSTER_DIR=$CLUSTER_DIR "$repo/hack/real-node.sh" down || say "real node teardown reported errors (above)"
  fi
  # model-store: the demo's (hack/demo.sh), which the pods of its example download from.
  for c in model-store kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$c"; done
  rm -rf "$CLUSTER_DIR"
  say "stopped and removed $CLUSTER_DIR"
}

stats() {
  local c total=0 rss
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler kwok containerd kubelet kube-proxy kube-network-policies; do
    alive "$c" || continue
    rss=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$(cat "$run/$c.pid")/status")
    total=$((total + rss))
    printf '%-24s %5d MiB\n' "$c" "$rss"
  done
  printf '%-24s %5d MiB\n' total "$total"
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  env) print_env ;;
  stats) stats ;;
  *) die "usage: $0 up|down|env|stats" ;;
esac
