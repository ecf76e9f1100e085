"""The runtime's committed protobuf modules are what grpcio-tools generates from the
committed grpc_predict_v2.proto: editing the .proto without regenerating, or generating with
another grpcio-tools, fails here (run: hack/gen-grpc.sh)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OIP = REPO / "runtime_images" / "modelroll_runtime" / "oip"
GENERATED = ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2.pyi")


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("oip")
    result = subprocess.run(
        [str(REPO / "hack" / "gen-grpc.sh"), str(out)],
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize("name", GENERATED)
def test_committed_module_is_what_the_proto_generates(regenerated: Path, name: str) -> None:
    assert (OIP / name).read_bytes() == (regenerated / name).read_bytes(), (
        f"{name} is stale: run hack/gen-grpc.sh"
    )


def test_the_proto_defines_the_protocols_service() -> None:
    # the names clients dial: a rename here would break every one of them
    text = (OIP / "grpc_predict_v2.proto").read_text()
    assert "package inference;" in text
    assert "service GRPCInferenceService {" in text
    for rpc in ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
                "ModelInfer"):  # fmt: skip
        assert f"rpc {rpc}({rpc}Request) returns ({rpc}Response)" in text
