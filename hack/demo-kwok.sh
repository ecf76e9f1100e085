#!/usr/bin/env bash
# The fallback of hack/demo.sh where the real node cannot start, SIMULATED: the local
# control plane with kwok nodes only, where no container runs. It installs the CRD, runs
# the operator on the host, deploys the iris example and watches it become Ready and
# roll out a canary (on kwok's fake pods); then serves the same model with the runtime as
# a process on the host, not through the Service, and predicts.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
py=${PY:-$repo/.venv/bin/python}
CLUSTER_DIR=${CLUSTER_DIR:-$repo/.cluster}
export CLUSTER_DIR
work=$CLUSTER_DIR/demo
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
step() { printf '\n\033[1m== SIMULATED %s\033[0m\n' "$*"; }
LOG_PREFIX=demo
# shellcheck source=hack/lib.sh
. "$repo/hack/lib.sh"  # free_port

step "1. local control plane (etcd, kube-apiserver, controllers, scheduler, kwok nodes)"
cluster_env=$(hack/cluster.sh up)
eval "$cluster_env"
mkdir -p "$work"
kubectl get nodes -L nvidia.com/gpu.product

step "2. install the ModelDeployment CRD and start the operator"
kubectl apply --server-side --force-conflicts -k crds/ >/dev/null
hack/wait-crd.sh modeldeployments.modelroll.io
# Real free ports: kopf reads a liveness port of 0 as "no port" and would bind port 80.
metrics_port=$(free_port) liveness_port=$(free_port)
MODELROLL_METRICS_PORT=$metrics_port MODELROLL_LIVENESS=http://127.0.0.1:$liveness_port/healthz \
  MODELROLL_TIMER_INTERVAL_SECONDS=2 "$py" -m modelroll >"$work/operator.log" 2>&1 &
pids+=($!)
for i in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$liveness_port/healthz" >/dev/null && break
  if ! kill -0 "${pids[-1]}" 2>/dev/null || [ "$i" -eq 100 ]; then
    tail -n 20 "$work/operator.log" >&2
    die "the operator did not come up; log: $work/operator.log"
  fi
  sleep 0.3
done
echo "operator running (pid ${pids[-1]}), liveness http://127.0.0.1:$liveness_port/healthz, metrics :$metrics_port, log: $work/operator.log"

step "3. kubectl apply -f examples/sklearn-iris.yaml, and watch it become Ready"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n demo apply -f examples/sklearn-iris.yaml
last=""
for _ in $(seq 1 120); do
  line=$(kubectl -n demo get md iris --no-headers 2>/dev/null || true)
  [ "$line" != "$last" ] && { echo "$line"; last=$line; }
  ready=$(kubectl -n demo get md iris -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  [ "$ready" = True ] && break
  sleep 1
done
[ "$ready" = True ] || { echo "iris did not become Ready; operator log: $work/operator.log" >&2; exit 1; }
kubectl -n demo get md -o wide
echo
kubectl -n demo get deployments,services,serviceaccounts,poddisruptionbudgets,pods -l modelroll.io/deployment=iris

step "4. ship version 2 as a canary: 25% -> 50% -> promotion, watched live"
canary=$(mktemp)
"$py" - examples/sklearn-iris.yaml >"$canary" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
doc["spec"]["model"]["version"] = "2"
doc["spec"]["rollout"] = {"strategy": "Canary", "canary": {"scaleDownDelaySeconds": 5,
    "steps": [{"weight": 25, "pauseSeconds": 5}, {"weight": 50, "pauseSeconds": 5}]}}
print(yaml.safe_dump(doc))
PY
first=$(kubectl -n demo get md iris -o jsonpath='{.status.stableRevision}')
kubectl -n demo apply -f "$canary"
last=""
for _ in $(seq 1 120); do
  line=$(kubectl -n demo get md iris -o jsonpath='{.status.stableRevision} {.status.traffic} | {.status.conditions[?(@.type=="Progressing")].message}')
  [ "$line" != "$last" ] && { echo "stable=$line"; last=$line; }
  stable=$(kubectl -n demo get md iris -o jsonpath='{.status.stableRevision}')
  [ -n "$stable" ] && [ "$stable" != "$first" ] && break
  sleep 1
done
[ "$stable" != "$first" ] || { echo "the canary was not promoted; operator log: $work/operator.log" >&2; exit 1; }
kubectl -n demo get md iris -o wide

step "5. serve a real iris model with the modelroll runtime and send a prediction"
"$py" hack/demo_model.py "$work/model"
port=$(free_port)
# The runtime refuses MODELROLL_* variables it does not read: drop the shell's own
# (MODELROLL_CACHE and friends are for hack/ and the tests).
unset_own=()
while read -r name; do unset_own+=(-u "$name"); done < <(compgen -e MODELROLL_ || true)
env "${unset_own[@]}" \
  MODELROLL_MODEL_NAME=iris MODELROLL_MODEL_URI="$work/model" MODELROLL_MODEL_FORMAT=sklearn \
  MODELROLL_MODEL_VERSION=1 MODELROLL_HTTP_PORT="$port" MODELROLL_WORKERS=1 \
  "$py" -m modelroll_runtime >"$work/runtime.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break
  sleep 0.2
done
request='{"inputs":[{"name":"input-0","shape":[2,4],"datatype":"FP32","data":[[6.8,2.8,4.8,1.4],[5.1,3.5,1.4,0.2]]}]}'
echo "POST http://127.0.0.1:$port/v2/models/iris/infer"
echo "$request"
curl -sf -H 'Content-Type: application/json' -d "$request" "http://127.0.0.1:$port/v2/models/iris/infer"
echo

step "done"
echo "SIMULATED: the pods above ran on kwok nodes; the prediction came from a runtime process on the host."
echo "The cluster is still up for you to explore:"
hack/cluster.sh env
echo "Stop it with: make cluster-down"
