"""The framework-free parts of packaging PyTorch and TensorFlow models (conversion.py): which
framework a file is, the tolerance check, naming operators a graph cannot run, and what the
packager says where the framework's extra is missing. The conversions themselves, with the
frameworks installed, are tests/frameworks/ (`make test-frameworks`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from modelroll_runtime import conversion, package, packager
from modelroll_runtime.conversion import ConversionError, Tolerance
from onnx import TensorProto, helper


def test_a_file_or_directory_tells_its_framework(tmp_path: Path) -> None:
    saved = tmp_path / "exported"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    (tmp_path / "plain").mkdir()
    for name in ("model.pt", "model.pth", "model.pt2", "model.keras", "model.joblib"):
        (tmp_path / name).write_bytes(b"")
    found = {p.name: conversion.framework_of(p) for p in sorted(tmp_path.iterdir())}
    assert found == {
        "exported": "tensorflow", "plain": None, "model.pt": "pytorch", "model.pth": "pytorch",
        "model.pt2": "pytorch", "model.keras": "tensorflow", "model.joblib": None,
    }  # fmt: skip
    assert packager.guess_format(tmp_path / "model.pt2") == "pytorch"
    assert packager.guess_format(saved) == "tensorflow"


def test_float32_round_off_is_within_the_tolerance_and_a_real_difference_is_not() -> None:
    rng = np.random.default_rng(0)
    framework = rng.random((150, 3), dtype=np.float32)
    # a few ulps per value, as another GEMM's summation order gives
    graph = np.nextafter(np.nextafter(framework, np.float32(2)), np.float32(2))
    evidence = conversion.check({"predict": framework}, {"predict": graph}, Tolerance())
    assert evidence["predict"]["outside"] == 0
    assert 0 < evidence["predict"]["max_abs_error"] < 1e-6
    wrong = graph.copy()
    wrong[3, 1] += 1e-3
    with pytest.raises(
        ConversionError,
        match=r"within abs 1e-05 \+ rel 0.0001: output predict: 1 of 450 values, max abs error 0.001",
    ):
        conversion.check({"predict": framework}, {"predict": wrong}, Tolerance())


def test_nan_shapes_and_labels_are_never_within_the_tolerance() -> None:
    framework = np.ones((4, 2), dtype=np.float32)
    nan = framework.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ConversionError, match="1 of 8"):
        conversion.check({"predict": framework}, {"predict": nan}, Tolerance())
    with pytest.raises(ConversionError, match=r"shape \[8\], the framework \[4, 2\]"):
        conversion.check({"predict": framework}, {"predict": framework.ravel()}, Tolerance())
    labels = np.array([0, 1, 2])
    with pytest.raises(ConversionError, match="1 of 3"):
        conversion.check({"label": labels}, {"label": np.array([0, 1, 1])}, Tolerance())
    with pytest.raises(ConversionError, match="no output label"):
        conversion.check({"label": labels}, {}, Tolerance())


def _graph(
    *nodes: onnx.NodeProto, functions: list[onnx.FunctionProto] | None = None
) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("args_0:0", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("Identity:0", TensorProto.FLOAT, [None, 4])
    graph = helper.make_graph(list(nodes), "g", [x], [y])
    return helper.make_model(graph, functions=functions or [])


def test_operators_no_runtime_knows_are_named_once_each() -> None:
    model = _graph(
        helper.make_node("Relu", ["args_0:0"], ["h"]),
        helper.make_node("Svd", ["h"], ["s"]),  # what tf2onnx leaves for tf.linalg.svd
        helper.make_node("Svd", ["s"], ["t"]),
        helper.make_node("FusedMatMul", ["t", "t"], ["u"], domain="com.microsoft"),
        helper.make_node("Whiten", ["u"], ["Identity:0"], domain="ai.onnx.contrib"),
    )
    assert conversion.unknown_operators(model) == ["Svd", "ai.onnx.contrib::Whiten"]
    assert (
        conversion.unknown_operators(_graph(helper.make_node("Relu", ["args_0:0"], ["Identity:0"])))
        == []
    )


def test_a_models_own_functions_are_known_operators() -> None:
    # torch.onnx's exporter writes some operators as functions of the model's own domain
    body = helper.make_function(
        "pkg.local", "Twice", ["x"], ["y"], [helper.make_node("Add", ["x", "x"], ["y"])],
        [helper.make_opsetid("", 18)],
    )  # fmt: skip
    model = _graph(
        helper.make_node("Twice", ["args_0:0"], ["Identity:0"], domain="pkg.local"),
        functions=[body],
    )
    assert conversion.unknown_operators(model) == []


def test_torch_errors_name_their_operator() -> None:
    # the two exporters' messages, as torch 2.15 writes them
    script = (
        "Exporting the operator 'aten::linalg_svdvals' to ONNX opset version 18 is not supported"
    )
    exported = (
        "Error when translating node %_linalg_svd : call_function[target=torch.ops.aten."
        "_linalg_svd.default]\n<class 'DispatchError'>: No ONNX function found for "
        "<OpOverload(op='aten._linalg_svd', overload='default')>. Failure message: ..."
    )
    assert conversion.torch_operator(script) == "aten::linalg_svdvals"
    assert conversion.torch_operator(exported) == "aten::_linalg_svd"
    assert conversion.torch_operator("TorchExportError: data-dependent control flow") is None
    message = str(
        conversion.unsupported("pytorch", ["aten::linalg_svdvals"], "torch.onnx 2.15.0 (opset 18)")
    )
    assert message.startswith(
        "the pytorch model uses aten::linalg_svdvals, which has no ONNX equivalent in torch.onnx"
    )


def test_rename_gives_the_graph_our_input_and_output_names() -> None:
    model = _graph(helper.make_node("Relu", ["args_0:0"], ["Identity:0"]))
    conversion.rename(model, [conversion.INPUT], conversion.output_names(1))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["input-0"]
    assert [o.name for o in model.graph.output] == ["predict"]
    assert list(model.graph.node[0].input) == ["input-0"]
    assert conversion.output_names(2) == ["output-0", "output-1"]


def test_a_framework_model_without_its_extra_names_the_extra(tmp_path: Path) -> None:
    # the dev venv has neither torch nor tensorflow: exactly a CI job without the extra
    reference = tmp_path / "reference.csv"
    reference.write_text("a,b\n1.0,2.0\n3.0,4.0\n")
    (tmp_path / "model.pt").write_bytes(b"not read")
    with pytest.raises(
        packager.PackagingError,
        match=r"needs torch: pip install 'modelroll-runtime\[package-torch\]'",
    ):
        packager.build(tmp_path / "model.pt", reference, tmp_path / "out")
    (tmp_path / "model.keras").write_bytes(b"not read")
    with pytest.raises(
        packager.PackagingError, match=r"needs tensorflow: .*\[package-tensorflow\]"
    ):
        packager.build(tmp_path / "model.keras", reference, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_strings_in_the_reference_rows_are_refused_before_any_framework_loads(
    tmp_path: Path,
) -> None:
    reference = tmp_path / "reference.csv"
    reference.write_text("a,species\n1.0,setosa\n")
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(packager.PackagingError, match=r"species hold strings.*--target"):
        packager.build(tmp_path / "model.pt", reference, tmp_path / "out")


def test_the_manifest_states_the_source_and_its_tolerance_and_still_verifies(
    tmp_path: Path,
) -> None:
    (tmp_path / "model.onnx").write_bytes(b"graph")
    source = {"framework": "pytorch", "tolerance": Tolerance().document()}
    digest = package.write_manifest(tmp_path, "onnx", "model.onnx", "model.onnx", "test", source)
    document = json.loads((tmp_path / package.MANIFEST_FILE).read_text())
    assert document["source"]["tolerance"] == {
        "abs": 1e-5,
        "rel": 1e-4,
        "rule": "|onnx - framework| <= abs + rel * |framework|",
    }
    assert package.verify(tmp_path, digest).onnx == "model.onnx"
    # a package without a source (sklearn, ...) keeps the manifest it always had
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.onnx").write_bytes(b"graph")
    package.write_manifest(other, "onnx", "model.onnx", "model.onnx", "test")
    assert "source" not in json.loads((other / package.MANIFEST_FILE).read_text())
