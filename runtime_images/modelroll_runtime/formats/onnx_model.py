"""ONNX models through onnxruntime: user ONNX files, and the ones we compile at load."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import PREDICT, Array, ModelFormat, TensorSpec

# onnxruntime's input types as numpy dtype names (names: numpy is imported at load time)
_ORT_TYPES: dict[str, str] = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
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
        # the native model's column names, in the graph's input order, where it knew them
        self.columns: tuple[str, ...] = ()

    def load(self, model_file: Path) -> None:
        import numpy as np
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One thread per session: workers, not intra-op threads, use the other cores, and
        # small tabular models run slower with a thread pool than without.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # converters declare loose output shapes; ort warns per run
        # ort's arena keeps the peak of the largest batch ever run (18 MiB after one 15 MB
        # body for iris) and never gives it back; without it a 1-row run costs the same
        # (6.6-7.8 us either way, measured), and memory goes back after a burst
        options.enable_cpu_mem_arena = False
        self.session = onnxruntime.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = tuple(
            TensorSpec(
                i.name,
                np.dtype(_ORT_TYPES.get(i.type, "float32")),
                tuple(d if isinstance(d, int) else -1 for d in i.shape),
            )
            for i in self.session.get_inputs()
        )
        self._graph_outputs = [o.name for o in self.session.get_outputs()]
        self.output_names = tuple(self.output_aliases.get(n, n) for n in self._graph_outputs)
        self._graph_name = dict(zip(self.output_names, self._graph_outputs, strict=True))
        # per requested outputs: which graph outputs to run, under which names
        self._runs: dict[tuple[str, ...], tuple[list[str], tuple[str, ...]]] = {}
        # a compiled model answers with its predictions unless asked for more; a user's
        # ONNX model with all of its outputs
        aliased = PREDICT in self.output_aliases.values()
        self.default_outputs = (PREDICT,) if aliased else self.output_names

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        """The requested outputs (all of them for none): onnxruntime computes only the nodes
        those need, so a request for the labels does not pay for the probabilities (a
        classifier's second output; measured with callgrind on a 1-row run, 2.6% of the
        benchmark's iris and RandomForest graphs, more where probabilities need nodes of
        their own)."""
        key = tuple(outputs)
        run = self._runs.get(key)
        if run is None:
            names = tuple(n for n in self.output_names if n in key) or self.output_names
            run = ([self._graph_name[n] for n in names], names)
            if len(self._runs) < 64:  # the outputs a client can ask for: few combinations
                self._runs[key] = run
        graph_outputs, names = run
        results = self.session.run(graph_outputs, dict(inputs))
        return {
            name: _zipmap_as_tensor(result) if isinstance(result, list) else result
            for name, result in zip(names, results, strict=True)
        }


def _zipmap_as_tensor(rows: list[Any]) -> Array:
    """A ZipMap output (skl2onnx's default for classifiers: one {label: probability} dict per
    row) as the [rows, classes] float tensor it was made from, columns in the map's label
    order, which is the classifier's class order."""
    import numpy as np

    if not rows or not all(isinstance(row, dict) for row in rows):
        return np.asarray(rows, dtype=object)
    labels = list(rows[0])
    return np.array([[row[label] for label in labels] for row in rows], dtype=np.float32)


FORMAT = ModelFormat(
    name="onnx",
    model_files=("model.onnx",),
    model_class=OnnxModel,
    to_onnx=None,  # already ONNX: loaded as it is, no compiler child
    accepts_missing=False,
    runs_code=False,
)
