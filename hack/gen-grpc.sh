#!/usr/bin/env bash
# Regenerates the runtime's protobuf modules (grpc_predict_v2_pb2.py and its .pyi) from
# runtime_images/modelroll_runtime/oip/grpc_predict_v2.proto, with grpcio-tools (a test extra
# of the runtime). usage: hack/gen-grpc.sh [OUT_DIR]; tests/unit/test_grpc_stubs.py
# generates into a temporary OUT_DIR and compares.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
proto_dir=runtime_images/modelroll_runtime/oip
out=${1:-$proto_dir}
"$PYTHON" -m grpc_tools.protoc -I "$proto_dir" --python_out="$out" --pyi_out="$out" \
  "$proto_dir/grpc_predict_v2.proto"
