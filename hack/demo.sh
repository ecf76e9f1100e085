#!/usr/bin/env bash
# The main job, end to end, on real pods (no cloud, no Docker): a local control plane with
# one real node (containerd, kubelet, kube-proxy), the operator installed in-cluster from
# dist/install.yaml, the iris example running as pods of the runtime image on that node,
# a prediction sent from the host through the Service's ClusterIP, and version 2 shipped
# as a canary under load, with the split of real answers shown next to the status.
#
# Where this machine cannot run the real node (not root, a tool or a kernel feature
# missing), it says why in one line and runs hack/demo-kwok.sh instead, labelled SIMULATED.
# Exits non-zero unless a pod of the real node answered and a canary split was measured.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
py=${PY:-$repo/.venv/bin/python}
CLUSTER_DIR=${CLUSTER_DIR:-$repo/.cluster}
export CLUSTER_DIR
START_TIMEOUT=${START_TIMEOUT:-90}
NAMESPACE=demo
t0=$(date +%s)
step() { printf '\n\033[1m== %s\033[0m  [%ss]\n' "$*" "$(( $(date +%s) - t0 ))"; }
LOG_PREFIX=demo
# start/stop/wait_for keep the model store's pid and log with the cluster's components
run=$CLUSTER_DIR/run logs=$CLUSTER_DIR/logs
# shellcheck source=hack/lib.sh
. "$repo/hack/lib.sh"

if ! why=$(hack/real-node.sh preflight 2>&1); then
  echo "[demo] SIMULATED: the real node cannot start on this machine: ${why#*ERROR: }; running the kwok demo instead, where no container runs"
  NODE=kwok exec hack/demo-kwok.sh
fi

step "1. local control plane with a real node (containerd, runc, kubelet, kube-proxy, CoreDNS) next to kwok's fake nodes"
cluster_env=$(NODE=real hack/cluster.sh up)
eval "$cluster_env"
node_name=$(hack/real-node.sh node-name) host_ip=$(hack/real-node.sh host-ip)
work=$CLUSTER_DIR/demo
mkdir -p "$work"
kubectl get nodes -L modelroll.io/node

step "2. install the operator in-cluster from dist/install.yaml, pinned to $node_name"
kubectl apply --server-side --force-conflicts -k crds/ >/dev/null
hack/wait-crd.sh modeldeployments.modelroll.io
"$py" hack/demo_manifests.py operator | kubectl apply --server-side --force-conflicts -f - >/dev/null
kubectl -n modelroll-system rollout status deployment/modelroll-operator --timeout=300s
kubectl -n modelroll-system get pods -o wide

step "3. serve the iris models from the host, apply examples/sklearn-iris.yaml pinned to $node_name"
store=$work/models
for v in 1 2; do "$py" hack/demo_model.py "$store/iris/$v" "$v"; done
# Pods reach the host on the node's bridge, as they would reach a bucket; stopped by
# `make cluster-down` (hack/cluster.sh down) with the rest.
stop model-store
store_url=http://$host_ip:$(free_port)
start model-store "$py" -m http.server --bind "$host_ip" --directory "$store" "${store_url##*:}"
wait_for model-store "$store_url" curl -sf -o /dev/null "$store_url/iris/1/model.joblib"
echo "model store: $store_url/iris/{1,2}/model.joblib"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# A cluster kept from an earlier run still has version 2: start again from version 1.
kubectl -n "$NAMESPACE" delete modeldeployment iris --ignore-not-found --wait=true >/dev/null
"$py" hack/demo_manifests.py iris "$store" "$store_url" 1 >"$work/iris-v1.yaml"
"$py" hack/demo_manifests.py iris "$store" "$store_url" 2 >"$work/iris-v2.yaml"
kubectl -n "$NAMESPACE" apply -f "$work/iris-v1.yaml"
last="" ready=""
for _ in $(seq 1 300); do
  line=$(kubectl -n "$NAMESPACE" get md iris --no-headers 2>/dev/null || true)
  [ "$line" != "$last" ] && { echo "$line"; last=$line; }
  ready=$(kubectl -n "$NAMESPACE" get md iris -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  [ "$ready" = True ] && break
  sleep 1
done
[ "$ready" = True ] || die "iris did not become Ready; see: kubectl -n $NAMESPACE describe md iris"
kubectl -n "$NAMESPACE" get pods -o wide -l modelroll.io/deployment=iris

step "4. a prediction from the host to the Service's ClusterIP (kube-proxy's rules pick a pod)"
ip=$(kubectl -n "$NAMESPACE" get service iris -o jsonpath='{.spec.clusterIP}')
request='{"inputs":[{"name":"input-0","shape":[2,4],"datatype":"FP32","data":[[6.8,2.8,4.8,1.4],[5.1,3.5,1.4,0.2]]}]}'
echo "POST http://$ip/v2/models/iris/infer   (Service $NAMESPACE/iris)"
echo "$request"
answer=$(curl -sS --max-time 10 -D "$work/headers" -w '\n%{http_code} %{local_port}' \
  -H 'Content-Type: application/json' -d "$request" "http://$ip/v2/models/iris/infer") ||
  die "no answer from http://$ip (the Service's ClusterIP)"
echo "${answer%$'\n'*}"
read -r code local_port <<<"${answer##*$'\n'}"
version=$(awk 'tolower($1) == "x-model-version:" {print $2}' "$work/headers" | tr -d '\r')
# Which pod answered: the connection's conntrack entry holds kube-proxy's DNAT, and its
# reply tuple's source is the pod's address.
pod_ip=$(conntrack -L -p tcp --orig-dst "$ip" --orig-port-src "$local_port" 2>/dev/null |
  awk '{n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^src=/ && ++n == 2) {print substr($i, 5); exit}}')
read -r pod pod_node < <(kubectl -n "$NAMESPACE" get pods --field-selector "status.podIP=$pod_ip" \
  -o jsonpath='{.items[0].metadata.name} {.items[0].spec.nodeName}{"\n"}' 2>/dev/null || echo "? ?")
echo "prediction from the Service's ClusterIP answered by pod=${pod:-?} node=${pod_node:-?} version=${version:-?} (HTTP $code, pod IP ${pod_ip:-?})"
[ "$code" = 200 ] && [ -n "$version" ] && [ "${pod_node:-}" = "$node_name" ] ||
  die "no prediction answered by a pod of the real node $node_name"

step "5. ship version 2 as a canary under a small load: answers by X-Model-Version next to the status's effective weights"
"$py" hack/demo_traffic.py canary "$NAMESPACE" iris "$ip" "$work/iris-v2.yaml" ||
  die "no canary split measured from real answers"
kubectl -n "$NAMESPACE" get md iris -o wide

step "done: real pods of the runtime image on node $node_name answered; a canary split was measured from their answers"
echo "The cluster is still up for you to explore:"
hack/cluster.sh env
echo "Stop it with: make cluster-down"
