"""PyTorch and TensorFlow models through `modelroll package`: the framework's own exporter
(torch.onnx, tf2onnx) makes the ONNX graph, and the graph must answer like the framework on
every reference row, within a stated tolerance, before it is packaged as an `onnx` model.

This module is the part that needs no framework: which framework a file is, the tolerance
and the check against it, and naming the operators a graph cannot run. The exporters are in
torch_convert.py and tf_convert.py, imported only when such a model is packaged (the
`package-torch` and `package-tensorflow` extras); the server never imports any of them.

Why a tolerance, where the runtime's own compiler demands exactness (compiler.py): the
frameworks compute in float32, and onnxruntime's kernels (its own GEMM, fused ops, other
summation orders) round differently from torch's and TensorFlow's, by a few units in the
last place per layer. No graph is bit-equal to the framework, so "answers like the model"
means every output within ABS + REL * |expected| of the framework's (numpy.isclose's rule):
REL = 1e-4 is about 800 float32 ulps (2**-23 each), ABS = 1e-5 covers values near zero.
Integer outputs (labels) must be equal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .formats.base import PREDICT, Array

PYTORCH = "pytorch"
TENSORFLOW = "tensorflow"
FRAMEWORKS = (PYTORCH, TENSORFLOW)
# the pip extra that brings each framework's exporter
EXTRAS = {PYTORCH: "package-torch", TENSORFLOW: "package-tensorflow"}
# file suffixes: TorchScript (torch.jit.save), torch.export (torch.export.save), Keras
SUFFIXES = {".pt": PYTORCH, ".pth": PYTORCH, ".pt2": PYTORCH, ".keras": TENSORFLOW}
SAVED_MODEL_FILE = "saved_model.pb"  # a TensorFlow SavedModel is a directory holding it
INPUT = "input-0"  # the graph's input, named like every packaged model's one matrix input
ABS = 1e-5
REL = 1e-4
# ONNX domains whose operators onnxruntime runs besides the standard ones
RUNTIME_DOMAINS = ("com.microsoft",)


class ConversionError(Exception):
    """The model cannot become a graph that answers like it: said as one message."""


@dataclass(frozen=True)
class Tolerance:
    abs: float = ABS
    rel: float = REL

    def document(self) -> dict[str, Any]:
        return {
            "abs": self.abs,
            "rel": self.rel,
            "rule": "|onnx - framework| <= abs + rel * |framework|",
        }


@dataclass(frozen=True)
class Converted:
    onnx: Any  # the onnx.ModelProto, inputs and outputs named as we serve them
    expected: dict[str, Array]  # the framework's own answers on the rows, by output name
    framework: str  # "torch 2.15.0"
    converter: str  # "torch.onnx (opset 18)"


def framework_of(model_file: Path) -> str | None:
    """The framework a model file or directory is for, None when it is none of them."""
    if model_file.is_dir():
        return TENSORFLOW if (model_file / SAVED_MODEL_FILE).is_file() else None
    return SUFFIXES.get(model_file.suffix.lower())


def output_names(count: int) -> list[str]:
    """One output is `predict`, as every packaged model's; several are output-0, output-1..."""
    return [PREDICT] if count == 1 else [f"output-{i}" for i in range(count)]


def check(
    expected: Mapping[str, Array], got: Mapping[str, Array], tolerance: Tolerance
) -> dict[str, Any]:
    """The evidence per output (worst errors, values outside the tolerance); raises
    ConversionError naming the outputs that do not answer like the framework."""
    evidence: dict[str, Any] = {}
    problems = []
    for name, want_raw in expected.items():
        want = np.asarray(want_raw)
        if name not in got:
            raise ConversionError(f"the ONNX graph has no output {name}")
        have = np.asarray(got[name])
        if have.shape != want.shape:
            raise ConversionError(
                f"output {name}: the ONNX graph answers shape {list(have.shape)}, "
                f"the framework {list(want.shape)}"
            )
        entry: dict[str, Any] = {"dtype": str(want.dtype), "onnx_dtype": str(have.dtype)}
        if want.dtype.kind in "fc":
            error = np.abs(have.astype(np.float64) - want.astype(np.float64))
            bound = tolerance.abs + tolerance.rel * np.abs(want.astype(np.float64))
            outside = int((~(error <= bound)).sum())  # NaN where the framework has none: outside
            entry["max_abs_error"] = float(error.max(initial=0.0))
            entry["max_rel_error"] = float(
                (error / np.maximum(np.abs(want.astype(np.float64)), 1e-30)).max(initial=0.0)
            )
        else:
            outside = int((have != want).sum())
        entry["outside"] = outside
        evidence[name] = entry
        if outside:
            worst = (
                f", max abs error {entry['max_abs_error']:.3g}" if "max_abs_error" in entry else ""
            )
            problems.append(f"output {name}: {outside} of {want.size} values{worst}")
    if problems:
        raise ConversionError(
            "the ONNX graph does not answer like the framework on the reference rows within "
            f"abs {tolerance.abs:g} + rel {tolerance.rel:g}: " + "; ".join(problems)
        )
    return evidence


def unknown_operators(model: Any) -> list[str]:
    """The graph's operators that no ONNX runtime knows: a converter that left a framework
    op as it was (tf2onnx does, and logs it) rather than failing."""
    import onnx.defs

    local = {(f.domain, f.name) for f in model.functions}
    unknown: list[str] = []
    for node in _nodes(model):
        domain = node.domain or ""
        if (domain, node.op_type) in local or domain in RUNTIME_DOMAINS:
            continue
        if domain in ("", "ai.onnx", "ai.onnx.ml") and onnx.defs.has(node.op_type, domain):
            continue
        name = f"{domain}::{node.op_type}" if domain else node.op_type
        if name not in unknown:
            unknown.append(name)
    return unknown


def _nodes(model: Any) -> list[Any]:
    """Every node in graph order, then those of the model's functions and of If/Loop bodies."""
    nodes = list(model.graph.node)
    for function in model.functions:
        nodes.extend(function.node)
    for node in nodes:  # grows as it goes: bodies are visited too
        for attribute in node.attribute:
            nodes.extend(attribute.g.node)
            for graph in attribute.graphs:
                nodes.extend(graph.node)
    return nodes


# How torch.onnx's exporters name an operator they have no ONNX function for: the TorchScript
# one "Exporting the operator 'aten::linalg_svdvals' to ONNX opset version 18 is not
# supported", the torch.export based one "No ONNX function found for
# <OpOverload(op='aten._linalg_svd', overload='default')>"
_TORCH_OPERATOR = (
    re.compile(r"Exporting the operator '([\w:.]+)'"),
    re.compile(r"No ONNX function found for <OpOverload\(op='aten\.(\w+)'"),
)


def torch_operator(message: str) -> str | None:
    """The operator a torch.onnx error says it cannot export, as `aten::name`."""
    for pattern in _TORCH_OPERATOR:
        found = pattern.search(message)
        if found:
            name = found.group(1)
            return name if "::" in name else f"aten::{name}"
    return None


def unsupported(framework: str, operators: list[str], converter: str) -> ConversionError:
    return ConversionError(
        f"the {framework} model uses {', '.join(operators)}, which has no ONNX equivalent in "
        f"{converter}: rewrite that part of the model with supported operations, or serve it "
        "in its own container (spec.runtime.container)"
    )


def rename(model: Any, inputs: list[str], outputs: list[str]) -> None:
    """Give the graph's inputs and outputs our names, in place (tf2onnx names them after
    the TensorFlow tensors, `args_0:0`, `Identity:0`)."""
    graph = model.graph
    renames = {
        **{old.name: new for old, new in zip(graph.input, inputs, strict=True)},
        **{old.name: new for old, new in zip(graph.output, outputs, strict=True)},
    }
    for value in [*graph.input, *graph.output]:
        value.name = renames[value.name]
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
