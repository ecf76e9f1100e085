"""A TorchScript (`torch.jit.save`, .pt/.pth) or `torch.export` program (`torch.export.save`,
.pt2) to ONNX with torch.onnx, and the model's own answers on the reference rows.

Imported by the packager only for PyTorch models
(`pip install 'modelroll-runtime[package-torch]'`). The graph takes a float32
[batch, features] matrix with the batch dimension left free. A TorchScript module goes
through torch.onnx's TorchScript exporter (`dynamo=False`: the torch.export based one does
not take ScriptModules), with the reference rows as its example input; a torch.export
program through the torch.export based exporter, as it was exported, so its batch
dimension must already be dynamic (`torch.export.Dim`).
"""

from __future__ import annotations

import importlib
import io
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .conversion import (
    INPUT,
    PYTORCH,
    ConversionError,
    Converted,
    output_names,
    torch_operator,
    unsupported,
)
from .formats.base import Array

OPSET = 18  # the opset both of torch.onnx's exporters default to
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def require() -> None:
    """Raises ImportError, naming the module, when the extra is not installed."""
    # torch first, so a venv without either names torch; onnxscript: torch.onnx's
    # torch.export based exporter builds its graphs with it
    for module in ("torch", "onnxscript", "onnx"):
        importlib.import_module(module)


def convert(model_file: Path, rows: Array) -> Converted:
    import onnx
    import torch

    example = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
    exported = model_file.suffix.lower() == ".pt2"
    model = _load(torch, model_file, exported)
    expected = _answers(torch, model.module() if exported else model, example)
    names = output_names(len(expected))
    converter = f"torch.onnx {torch.__version__} (opset {OPSET})"
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            if exported:
                program = torch.onnx.export(
                    model, input_names=[INPUT], output_names=names, opset_version=OPSET,
                    dynamo=True, verbose=False, report=False,
                )  # fmt: skip
                program.save(buffer)
            else:
                batch = {0: "batch"}
                torch.onnx.export(
                    model, (example,), buffer, input_names=[INPUT], output_names=names,
                    dynamic_axes={n: batch for n in [INPUT, *names]}, opset_version=OPSET,
                    dynamo=False,
                )  # fmt: skip
    except Exception as exc:
        message = _ANSI.sub("", f"{type(exc).__name__}: {exc}")
        operator = torch_operator(message)
        if operator is not None:
            raise unsupported(PYTORCH, [operator], converter) from None
        raise ConversionError(f"torch.onnx cannot export the model: {_summary(message)}") from None
    return Converted(
        onnx.load_from_string(buffer.getvalue()),
        dict(zip(names, expected, strict=True)),
        f"torch {torch.__version__}",
        converter,
    )


def _load(torch: Any, model_file: Path, exported: bool) -> Any:
    try:
        if exported:
            program = torch.export.load(str(model_file))
        else:
            return torch.jit.load(str(model_file), map_location="cpu").eval()
    except Exception as exc:
        raise ConversionError(
            f"cannot load {model_file.name} as a TorchScript (torch.jit.save, .pt) or "
            f"torch.export (torch.export.save, .pt2) program: {type(exc).__name__}: {exc}; "
            "a pickled nn.Module (torch.save) runs code of its own: script or export it first"
        ) from None
    users = set(program.graph_signature.user_inputs)
    shapes = [
        n.meta["val"].shape
        for n in program.graph.nodes
        if n.op == "placeholder" and n.name in users
    ]
    if len(shapes) != 1 or len(shapes[0]) != 2:
        raise ConversionError(
            f"the torch.export program takes {len(shapes)} inputs; a packaged model takes one "
            "[batch, features] matrix"
        )
    if not isinstance(shapes[0][0], torch.SymInt):
        raise ConversionError(
            f"the torch.export program takes exactly {shapes[0][0]} rows: export it with a "
            "dynamic batch, torch.export.export(model, (rows,), "
            "dynamic_shapes=({0: torch.export.Dim('batch')},))"
        )
    return program


def _answers(torch: Any, model: Any, example: Any) -> list[Array]:
    try:
        with torch.no_grad():
            result = model(example)
    except Exception as exc:
        raise ConversionError(
            f"the model cannot predict the reference rows as a float32 "
            f"{list(example.shape)} tensor: {type(exc).__name__}: {exc}"
        ) from None
    results = list(result) if isinstance(result, tuple | list) else [result]
    if not results or not all(isinstance(r, torch.Tensor) for r in results):
        raise ConversionError("the model must answer a tensor or a tuple of tensors")
    return [r.detach().cpu().numpy() for r in results]


def _summary(message: str) -> str:
    """The exporter's own summary line where it wrote one (its errors run to pages)."""
    lines = [line for line in message.splitlines() if line.startswith("<class '")]
    return lines[0] if lines else message.splitlines()[0]
