"""ONNX models through onnxruntime: user ONNX files, and the ones we compile at load."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import PREDICT, Array, TensorSpec

_ORT_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


class OnnxModel:
    backend = "onnx"

    def __init__(self, output_aliases: Mapping[str, str] | None = None) -> None:
        # aliases map graph output names to the names clients ask for (label -> predict)
        self.output_aliases = dict(output_aliases or {})
        self.session: Any = None
        self.inputs: tuple[TensorSpec, ...] = ()
        self.output_names: tuple[str, ...] = ()
        self.default_outputs: tuple[str, ...] = ()
        self._graph_outputs: list[str] = []

    def load(self, model_file: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One thread per session: workers, not intra-op threads, use the other cores, and
        # small tabular models run slower with a thread pool than without.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # converters declare loose output shapes; ort warns per run
        self.session = onnxruntime.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = tuple(
            TensorSpec(
                i.name,
                np.dtype(_ORT_TYPES.get(i.type, np.float32)),
                tuple(d if isinstance(d, int) else -1 for d in i.shape),
            )
            for i in self.session.get_inputs()
        )
        self._graph_outputs = [o.name for o in self.session.get_outputs()]
        self.output_names = tuple(self.output_aliases.get(n, n) for n in self._graph_outputs)
        # a compiled model answers with its predictions unless asked for more; a user's
        # ONNX model with all of its outputs
        aliased = PREDICT in self.output_aliases.values()
        self.default_outputs = (PREDICT,) if aliased else self.output_names

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        results = self.session.run(self._graph_outputs, dict(inputs))
        return dict(zip(self.output_names, results, strict=True))
