"""Compile a native model to ONNX, and keep it only where it answers exactly like the native one.

Runs as a child process (`python -m modelroll_runtime.compiler FORMAT MODEL_FILE OUT_DIR`)
so that scikit-learn, skl2onnx and friends never load into the server process: the server
stays small and starts fast. The result lands in OUT_DIR as `model.onnx` plus `meta.json`;
`meta.json` alone, with backend "native" and a reason, when the server must serve natively.

Exactness is checked on probe rows spanning the model's own input range (see probe.py):
labels must be equal, values within 1e-9 relative and of the native dtype (bit-equal where
the native model answers float32). `meta.json` keeps the evidence: the verdict, the probe
size, the worst errors, the dtypes, and every graph dtype tried.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import jsonlog
from .formats import FORMATS, Model
from .formats.base import PREDICT, PREDICT_PROBA, Array
from .probe import probe_rows

log = logging.getLogger("modelroll.compiler")

META_FILE = "meta.json"
ONNX_FILE = "model.onnx"
# Bumped whenever the check gets stricter: an "onnx" verdict from an older check is redone.
# 3: the meta records the model's column names, without which a graph stacked columns sent by
# name (PandasCodec) in the request's order
VERIFIER = 3
# A float64 value is exact when within RTOL of the native value, relative to that value or
# to FLOOR for smaller ones (probabilities the native model rounds to 0 may come out 1e-17).
RTOL = 1e-9
FLOOR = 1e-3

# Verdicts, also the `verdict` label of modelroll_model_compilation
EXACT = "Exact"  # the ONNX graph answers like the native model on every probe row
NOT_EXACT = "NotExact"  # it does not: served natively
NO_CONVERTER = "NoConverter"  # no ONNX graph could be built: served natively


class ConversionUnavailable(Exception):
    """No converter exists for this model, or its library is not installed."""


def convert(
    model_format: str, native: Any, n_features: int, dtype: str = "float32"
) -> tuple[bytes, dict[str, str]]:
    """ONNX bytes and the map from graph output names to our output names."""
    to_onnx = FORMATS[model_format].to_onnx
    if to_onnx is None:
        raise ConversionUnavailable(f"no ONNX converter for format {model_format}")
    classifier = PREDICT_PROBA in native.output_names
    try:
        onx = to_onnx(native, n_features, dtype)
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


def compare(native: dict[str, Array], compiled: dict[str, Array]) -> dict[str, Any]:
    """Per output: dtypes, values that differ, worst absolute and relative error."""
    evidence: dict[str, Any] = {}
    for name, expected_raw in native.items():
        expected = np.asarray(expected_raw)
        got_raw = compiled.get(name)
        if got_raw is None:
            evidence[name] = {"missing": True, "differ": expected.size}
            continue
        got = np.asarray(got_raw).reshape(expected.shape)
        entry: dict[str, Any] = {"dtype": str(expected.dtype), "compiled_dtype": str(got.dtype)}
        if expected.dtype.kind not in "fc":  # labels must match exactly
            entry["differ"] = int((expected.astype(got.dtype) != got).sum())
        else:
            error = np.abs(got.astype(np.float64) - expected)
            relative = error / np.maximum(np.abs(expected), FLOOR)
            if expected.dtype != got.dtype:  # float32 answers for float64 ones are not exact
                entry["differ"] = expected.size
            elif expected.dtype == np.float32:
                entry["differ"] = int((got != expected).sum())
            else:
                entry["differ"] = int((relative > RTOL).sum())
            entry["max_abs_error"] = float(error.max(initial=0.0))
            entry["max_rel_error"] = float(relative.max(initial=0.0))
        evidence[name] = entry
    return evidence


def outputs_match(native: dict[str, Array], compiled: dict[str, Array]) -> str | None:
    """None when the compiled model answers like the native one; else what differs."""
    problems = []
    for name, entry in compare(native, compiled).items():
        if entry.get("missing"):
            problems.append(f"output {name} missing from the ONNX model")
        elif entry["differ"]:
            what = f"output {name}: {entry['differ']} of {np.asarray(native[name]).size} differ"
            if entry["dtype"] != entry["compiled_dtype"]:
                what += f" ({entry['compiled_dtype']} where the native model answers "
                what += f"{entry['dtype']})"
            elif "max_rel_error" in entry:
                what += f" (max relative error {entry['max_rel_error']:.3g})"
            problems.append(what)
    return "; ".join(problems) or None


def _try_dtype(
    model_format: str, native: Model, n_features: int, dtype: str, probe: Array, out_dir: Path
) -> dict[str, Any]:
    """One graph dtype: convert, run on the probe rows, compare. The attempt's evidence."""
    from .formats.onnx_model import OnnxModel

    attempt: dict[str, Any] = {"input_dtype": dtype}
    try:
        onnx_bytes, aliases = convert(model_format, native, n_features, dtype)
        onnx_path = out_dir / ONNX_FILE
        onnx_path.write_bytes(onnx_bytes)
        compiled = OnnxModel(aliases)
        compiled.load(onnx_path)
    except ConversionUnavailable as exc:
        return {**attempt, "verdict": NO_CONVERTER, "reason": str(exc)}
    except Exception as exc:  # a graph onnxruntime refuses (skl2onnx's float64 trees)
        reason = f"onnxruntime cannot load the {dtype} graph: {type(exc).__name__}: {exc}"
        return {**attempt, "verdict": NO_CONVERTER, "reason": reason[:500]}
    wanted = native.output_names
    expected = native.predict({"input-0": probe}, wanted)
    got = compiled.predict({compiled.inputs[0].name: probe.astype(dtype)}, wanted)
    evidence = compare(expected, got)
    mismatch = outputs_match(expected, got)
    attempt["aliases"] = aliases
    attempt["output_dtypes"] = {n: e.get("compiled_dtype") for n, e in evidence.items()}
    errors = [e for e in evidence.values() if "max_abs_error" in e]
    attempt["max_abs_error"] = max((e["max_abs_error"] for e in errors), default=0.0)
    attempt["max_rel_error"] = max((e["max_rel_error"] for e in errors), default=0.0)
    if mismatch is not None:
        attempt["verdict"] = NOT_EXACT
        attempt["reason"] = "ONNX outputs differ from the native model on the probe batch: "
        attempt["reason"] += f"{mismatch} ({dtype} graph, {len(probe)} rows)"
    else:
        attempt["verdict"] = EXACT
        attempt["reason"] = (
            f"the {dtype} ONNX graph answers like the native model on {len(probe)} probe rows "
            f"spanning the model's input range (max relative error "
            f"{attempt['max_rel_error']:.3g})"
        )
    return attempt


def compile_model(model_format: str, model_file: Path, out_dir: Path) -> dict[str, Any]:
    return compile_native(model_format, FORMATS[model_format].load(model_file), out_dir)


def compile_native(
    model_format: str, native: Model, out_dir: Path, reference: Array | None = None
) -> dict[str, Any]:
    """Convert a loaded native model and check it on the probe rows, plus `reference`
    rows where given (`modelroll package` passes the user's reference data)."""
    model_type = FORMATS[model_format]
    n_features = native.inputs[0].shape[-1] if native.inputs else -1
    meta: dict[str, Any] = {
        "backend": "native",
        "format": model_format,
        "verifier": VERIFIER,
        "verdict": NO_CONVERTER,
        # feature_names_in_: the graph takes one matrix, and named columns go in this order
        "columns": list(getattr(native, "columns", ())),
    }
    if not _one_float_matrix(native):
        # text and string columns: skl2onnx's tokenizer and encoders do not match sklearn's
        # on every input, and no probe of floats could show they do
        meta["reason"] = "the model takes strings (text or string columns); served natively"
        return meta
    if n_features < 1:
        meta["reason"] = "the model does not record its number of features"
        return meta
    notable = model_type.notable_values(native) if model_type.notable_values else {}
    probe = probe_rows(n_features, notable)
    meta["probe_rows"] = len(probe)
    if reference is not None:
        meta["reference_rows"] = len(reference)
        probe = np.concatenate([probe, reference.astype(np.float64)])
    out_dir.mkdir(parents=True, exist_ok=True)
    attempts = []
    for dtype in model_type.onnx_input_dtypes:
        attempt = _try_dtype(model_format, native, n_features, dtype, probe, out_dir)
        attempts.append({k: v for k, v in attempt.items() if k != "aliases"})
        if attempt["verdict"] == EXACT:
            meta.update(attempt, backend="onnx", attempts=attempts)
            if reference is not None:
                meta["reason"] += f", {len(reference)} of them the reference rows"
            return meta
    (out_dir / ONNX_FILE).unlink(missing_ok=True)
    # the most telling failure: a graph that ran and differed, over one that never built
    telling = [a for a in attempts if a["verdict"] == NOT_EXACT] or attempts
    meta.update(verdict=telling[-1]["verdict"], attempts=attempts)
    meta["reason"] = "; ".join(a["reason"] for a in telling)
    return meta


def _one_float_matrix(model: Model) -> bool:
    """Whether the model takes one 2-D float tensor: what an ONNX graph is built for."""
    return (
        len(model.inputs) == 1
        and len(model.inputs[0].shape) == 2
        and model.inputs[0].dtype.kind == "f"
    )


def main(argv: list[str]) -> int:
    jsonlog.configure("INFO")
    model_format, model_file, out_dir = argv[0], Path(argv[1]), Path(argv[2])
    try:
        meta = compile_model(model_format, model_file, out_dir)
    except Exception as exc:  # report anything; the server decides what to do with it
        log.exception("compilation failed")
        meta = {
            "backend": "native",
            "format": model_format,
            "verdict": NO_CONVERTER,
            "reason": f"compiler error: {exc}",
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta))
    tmp.replace(out_dir / META_FILE)  # atomic: readers never see half a meta file
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
