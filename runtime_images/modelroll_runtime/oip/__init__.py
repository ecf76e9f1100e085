"""The Open Inference Protocol's gRPC messages: grpc_predict_v2.proto and the modules
grpcio-tools generates from it (hack/gen-grpc.sh)."""
