#!/usr/bin/env bash
# The in-cluster demo on a machine with Docker: a kind cluster, both images built and
# loaded, the operator deployed from dist/install.yaml, the iris example served by the
# runtime image, and a prediction through a port-forward.
#
#   hack/kind-demo.sh          create (or reuse) the cluster and run the demo
#   hack/kind-demo.sh down     delete the cluster
#
# Needs docker, kind and kubectl on PATH. Not exercised in CI (no Docker there).
# The model is trained at image build time (hack/demo_model.py, scikit-learn from the
# runtime image) and baked into a demo image, so that no pod needs the internet.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
CLUSTER=${KIND_CLUSTER:-modelroll}
TAG=${TAG:-dev}
OPERATOR_IMAGE=modelroll/operator:$TAG
RUNTIME_IMAGE=modelroll/runtime:$TAG
MODEL_IMAGE=modelroll/runtime-iris-demo:$TAG
NAMESPACE=${DEMO_NAMESPACE:-demo}
LOCAL_PORT=${LOCAL_PORT:-8080}
export KUBECONFIG=${KUBECONFIG:-${XDG_CACHE_HOME:-$HOME/.cache}/modelroll/kind-$CLUSTER.kubeconfig}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "kind-demo needs $1 on PATH" >&2; exit 1; }; }

if [ "${1:-}" = down ]; then
  kind delete cluster --name "$CLUSTER"
  exit 0
fi
for tool in docker kind kubectl curl; do need "$tool"; done
mkdir -p "$(dirname "$KUBECONFIG")"

step "1. kind cluster '$CLUSTER' (KUBECONFIG=$KUBECONFIG)"
if grep -qxF "$CLUSTER" <<<"$(kind get clusters 2>/dev/null)"; then
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
else
  kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 120s
fi
kubectl get nodes

step "2. build the operator and runtime images, and the demo model image"
docker build -t "$OPERATOR_IMAGE" -f Dockerfile .
docker build -t "$RUNTIME_IMAGE" -f runtime_images/Dockerfile runtime_images
# The runtime image with a freshly trained iris model in /opt/models/iris.
docker build -t "$MODEL_IMAGE" -f - hack <<DOCKERFILE
FROM $RUNTIME_IMAGE AS train
COPY demo_model.py /tmp/demo_model.py
RUN python /tmp/demo_model.py /tmp/model
FROM $RUNTIME_IMAGE
COPY --from=train /tmp/model/model.joblib /opt/models/iris/model.joblib
DOCKERFILE

step "3. kind load the images"
kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$RUNTIME_IMAGE" "$MODEL_IMAGE"

step "4. install modelroll from dist/install.yaml with these images"
sed -e "s|image: modelroll/operator:[^[:space:]]*|image: $OPERATOR_IMAGE|" \
    -e "s|value: modelroll/runtime:[^[:space:]]*|value: $RUNTIME_IMAGE|" \
    -e "s|imagePullPolicy: IfNotPresent|imagePullPolicy: Never|" \
    dist/install.yaml | kubectl apply --server-side --force-conflicts -f -
hack/wait-crd.sh modeldeployments.modelroll.io 60
kubectl -n modelroll-system set env deployment/modelroll-operator \
  MODELROLL_RUNTIME_IMAGE_PULL_POLICY=Never >/dev/null
kubectl -n modelroll-system rollout status deployment/modelroll-operator --timeout=180s

step "5. kubectl apply examples/sklearn-iris.yaml (the model baked into $MODEL_IMAGE)"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
sha=$(docker run --rm --entrypoint sha256sum "$MODEL_IMAGE" /opt/models/iris/model.joblib | cut -d' ' -f1)
# Same ModelDeployment, pointed at the baked file (pinned by its sha256) and the demo image.
sed -e "s|uri: .*|uri: file:///opt/models/iris/model.joblib\n    sha256: \"$sha\"|" \
    -e "s|^  replicas: .*|  replicas: 2\n  runtime: {image: \"$MODEL_IMAGE\", imagePullPolicy: Never}|" \
    examples/sklearn-iris.yaml | kubectl -n "$NAMESPACE" apply -f -
ready=""
for _ in $(seq 1 180); do
  kubectl -n "$NAMESPACE" get md iris --no-headers 2>/dev/null || true
  ready=$(kubectl -n "$NAMESPACE" get md iris \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  [ "$ready" = True ] && break
  sleep 2
done
if [ "$ready" != True ]; then
  kubectl -n "$NAMESPACE" describe md iris >&2
  kubectl -n modelroll-system logs deployment/modelroll-operator --tail=50 >&2
  exit 1
fi
kubectl -n "$NAMESPACE" get md,deployments,pods,services -o wide

step "6. port-forward service/iris and send a prediction"
kubectl -n "$NAMESPACE" port-forward service/iris "$LOCAL_PORT:80" >/dev/null 2>&1 &
forward=$!
trap 'kill "$forward" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  curl -sf "http://127.0.0.1:$LOCAL_PORT/v2/health/ready" >/dev/null && break
  sleep 0.2
done
request='{"inputs":[{"name":"input-0","shape":[2,4],"datatype":"FP32","data":[[6.8,2.8,4.8,1.4],[5.1,3.5,1.4,0.2]]}]}'
echo "POST http://127.0.0.1:$LOCAL_PORT/v2/models/iris/infer"
curl -sf -H 'Content-Type: application/json' -d "$request" \
  "http://127.0.0.1:$LOCAL_PORT/v2/models/iris/infer"
echo

step "done: the cluster stays up"
echo "export KUBECONFIG=$KUBECONFIG"
echo "delete it with: hack/kind-demo.sh down"
