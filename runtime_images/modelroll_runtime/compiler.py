"""Compile a native model to ONNX and check it against the original on a probe batch.

Runs as a child process (`python -m modelroll_runtime.compiler FORMAT MODEL_FILE OUT_DIR`)
so that scikit-learn, skl2onnx and friends never load into the server process: the server
stays small and starts fast. The result lands in OUT_DIR as `model.onnx` plus `meta.json`;
`meta.json` alone, with backend "native" and a reason, when the server must fall back.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import jsonlog
from .formats import FORMATS
from .formats.base import PREDICT, PREDICT_PROBA, Array

log = logging.getLogger("modelroll.compiler")

PROBE_ROWS = 256
META_FILE = "meta.json"
ONNX_FILE = "model.onnx"


class ConversionUnavailable(Exception):
    """No converter exists for this model, or its library is not installed."""


def probe_batch(n_features: int, seed: int = 0) -> Array:
    """Rows at several scales, so that tree splits on both sides get exercised."""
    rng = np.random.default_rng(seed)
    quarter = PROBE_ROWS // 4
    parts = [
        rng.normal(0.0, 1.0, (quarter, n_features)),
        rng.normal(0.0, 10.0, (quarter, n_features)),
        rng.uniform(0.0, 10.0, (quarter, n_features)),
        rng.uniform(-100.0, 100.0, (quarter, n_features)),
    ]
    # float32 values, so the native model and ONNX see exactly the same numbers
    return np.concatenate(parts).astype(np.float32)


def convert(model_format: str, native: Any, n_features: int) -> tuple[bytes, dict[str, str]]:
    """ONNX bytes and the map from graph output names to our output names."""
    to_onnx = FORMATS[model_format].to_onnx
    if to_onnx is None:
        raise ConversionUnavailable(f"no ONNX converter for format {model_format}")
    classifier = PREDICT_PROBA in native.output_names
    try:
        onx = to_onnx(native, n_features)
    except ImportError as exc:
        raise ConversionUnavailable(f"converter not installed: {exc}") from exc
    except Exception as exc:  # converters raise bare RuntimeErrors for what they cannot do
        raise ConversionUnavailable(f"conversion failed: {type(exc).__name__}: {exc}") from exc
    names = [output.name for output in onx.graph.output]
    if classifier and len(names) != 2:
        raise ConversionUnavailable(f"expected label and probability outputs, got {names}")
    # graph outputs come as (label, probabilities) from every converter we use
    aliases = {names[0]: PREDICT, names[1]: PREDICT_PROBA} if classifier else {names[0]: PREDICT}
    return onx.SerializeToString(), aliases


def outputs_match(native: dict[str, Array], compiled: dict[str, Array]) -> str | None:
    """None when the compiled model answers like the native one; else what differs."""
    for name, expected in native.items():
        got = compiled.get(name)
        if got is None:
            return f"output {name} missing from the ONNX model"
        expected_arr = np.asarray(expected)
        got_arr = np.asarray(got).reshape(expected_arr.shape)
        if expected_arr.dtype.kind in "iubUSO":  # labels must match exactly
            if not np.array_equal(expected_arr.astype(got_arr.dtype), got_arr):
                mismatched = int((expected_arr.astype(got_arr.dtype) != got_arr).sum())
                return f"output {name}: {mismatched} of {expected_arr.size} values differ"
        elif not np.allclose(expected_arr, got_arr, rtol=1e-4, atol=1e-5):
            worst = float(np.max(np.abs(expected_arr - got_arr)))
            return f"output {name}: max abs difference {worst:.3g}"
    return None


def compile_model(model_format: str, model_file: Path, out_dir: Path) -> dict[str, Any]:
    native = FORMATS[model_format].load(model_file)
    n_features = native.inputs[0].shape[1] if native.inputs else -1
    meta: dict[str, Any] = {"backend": "native", "format": model_format}
    if n_features < 1:
        meta["reason"] = "the model does not record its number of features"
        return meta
    try:
        onnx_bytes, aliases = convert(model_format, native, n_features)
    except ConversionUnavailable as exc:
        meta["reason"] = str(exc)
        return meta
    from .formats.onnx_model import OnnxModel

    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / ONNX_FILE
    onnx_path.write_bytes(onnx_bytes)
    compiled = OnnxModel(aliases)
    compiled.load(onnx_path)
    probe = probe_batch(n_features)
    wanted = native.output_names
    expected = native.predict({"input-0": probe.astype(np.float64)}, wanted)
    got = compiled.predict({compiled.inputs[0].name: probe}, wanted)
    mismatch = outputs_match(expected, got)
    if mismatch is not None:
        onnx_path.unlink()
        meta["reason"] = f"ONNX outputs differ from the native model on the probe batch: {mismatch}"
        return meta
    meta.update(backend="onnx", aliases=aliases, probe_rows=PROBE_ROWS)
    return meta


def main(argv: list[str]) -> int:
    jsonlog.configure("INFO")
    model_format, model_file, out_dir = argv[0], Path(argv[1]), Path(argv[2])
    try:
        meta = compile_model(model_format, model_file, out_dir)
    except Exception as exc:  # report anything; the server decides what to do with it
        log.exception("compilation failed")
        meta = {"backend": "native", "format": model_format, "reason": f"compiler error: {exc}"}
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta))
    tmp.replace(out_dir / META_FILE)  # atomic: readers never see half a meta file
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
