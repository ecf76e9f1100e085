"""`modelroll package`: a model file and reference data in, a package directory out
(docs/drift.md, "Package format").

The work the runtime would otherwise do in every new pod happens here, once, in the user's
CI: loading the model with its own library, converting it to ONNX with the runtime's own
compiler, and checking the graph answers exactly like the model, on the compiler's probe
rows and on every reference row. This module needs the model libraries and converters (the
runtime's sklearn, xgboost and lightgbm extras, `pip install 'modelroll-runtime[package]'`);
the server never imports it.

PyTorch and TensorFlow models are converted by their frameworks' own exporters instead
(conversion.py; the `package-torch` and `package-tensorflow` extras) and packaged as `onnx`
models: the graph must answer like the framework on every reference row within the
tolerance the manifest states, float32 frameworks being exact to no graph.

Also runnable as `python -m modelroll_runtime.packager MODEL --reference DATA --output DIR`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, conversion, package, profile, reference_data, tensors
from .compiler import NO_CONVERTER, ONNX_FILE, compile_native
from .formats import FORMATS, Model
from .formats.base import PREDICT_PROBA, Array
from .formats.onnx_model import OnnxModel
from .reference_data import ReferenceError, Table
from .source import sha256_of

REFERENCE_ROWS_KEPT = 256  # reference.npy: the warm-up's rows, and a sample to look at
SCHEMA_VERSION = 1


class PackagingError(Exception):
    """What the user must fix: said as one message, no traceback."""


@dataclass(frozen=True)
class Packaged:
    directory: Path
    digest: str  # model.sha256: what spec.model.sha256 pins
    model_format: str
    backend: str  # "onnx" when a verified graph is in the package
    verdict: str
    reason: str
    rows: int
    features: int
    unprofiled: tuple[str, ...] = ()
    files: tuple[str, ...] = field(default=())
    framework: str | None = None  # pytorch or tensorflow: converted by its own exporter


@dataclass(frozen=True)
class _Inputs:
    feed: dict[str, Array]  # the reference rows as the model takes them
    matrix: Array | None  # the one float input matrix, for models that take one
    features: list[tuple[str, int, Array, bool]]  # name, matrix column or -1, values, categorical


def guess_format(model_file: Path) -> str:
    framework = conversion.framework_of(model_file)
    if framework is not None:
        return framework
    suffix = model_file.suffix.lower()
    matches = [f.name for f in FORMATS.values() if any(n.endswith(suffix) for n in f.model_files)]
    if len(matches) == 1 and suffix:
        return matches[0]
    known = ", ".join([*FORMATS, *conversion.FRAMEWORKS])
    if matches:
        raise PackagingError(
            f"{model_file.name}: {suffix} files may be {' or '.join(matches)} models; "
            f"pass --format ({known})"
        )
    raise PackagingError(
        f"cannot tell the format of {model_file.name} from its name; pass --format ({known})"
    )


def build(
    model_file: Path,
    reference_file: Path,
    output: Path,
    model_format: str | None = None,
    categorical: Sequence[str] = (),
    target: str | None = None,
    bins: int = profile.DEFAULT_BINS,
    top_k: int = profile.DEFAULT_TOP_K,
) -> Packaged:
    """Write the package of `model_file` into `output` (new or empty)."""
    if not model_file.is_file() and conversion.framework_of(model_file) is None:
        raise PackagingError(f"model file {model_file} does not exist")
    fmt = (model_format or guess_format(model_file)).lower()
    if fmt not in FORMATS and fmt not in conversion.FRAMEWORKS:
        known = ", ".join([*FORMATS, *conversion.FRAMEWORKS])
        raise PackagingError(f"unknown format {fmt!r}; one of {known}")
    try:
        table = reference_data.read(reference_file)
        if target is not None:
            table = table.without(target)
    except ReferenceError as exc:
        raise PackagingError(str(exc)) from None
    unknown = sorted(set(categorical) - set(table.names))
    if unknown:
        raise PackagingError(f"--categorical names no reference column: {', '.join(unknown)}")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise PackagingError(f"output {output} exists and is not an empty directory")
    if fmt in conversion.FRAMEWORKS:
        with tempfile.TemporaryDirectory(prefix="modelroll-package-") as scratch:
            graph, source = _convert(fmt, model_file, table, Path(scratch))
            return _build(graph, table, output, "onnx", categorical, bins, top_k, source)
    return _build(model_file, table, output, fmt, categorical, bins, top_k, None)


def _build(
    model_file: Path,
    table: Table,
    output: Path,
    fmt: str,
    categorical: Sequence[str],
    bins: int,
    top_k: int,
    source: dict[str, Any] | None,
) -> Packaged:
    native = _load(fmt, model_file)
    inputs = _model_inputs(native, table, set(categorical))
    output_name = native.default_outputs[0]
    try:
        predictions = np.asarray(native.predict(inputs.feed, (output_name,))[output_name])
    except Exception as exc:
        raise PackagingError(
            f"the model cannot predict the reference rows: {type(exc).__name__}: {exc}"
        ) from None
    classifier = PREDICT_PROBA in native.output_names or predictions.dtype.kind not in "f"
    try:
        document = profile.build(inputs.features, predictions, classifier, bins, top_k)
    except profile.ProfileError as exc:
        raise PackagingError(str(exc)) from None
    document["prediction"]["output"] = output_name
    output.mkdir(parents=True, exist_ok=True)
    model_name = _well_known_name(fmt, model_file)
    shutil.copyfile(model_file, output / model_name)
    meta = _compile(fmt, native, output, inputs.matrix)
    if source is not None:
        meta["reason"] = _conversion_reason(source)
    onnx = model_name if fmt == "onnx" else (ONNX_FILE if meta["backend"] == "onnx" else None)
    _write_json(output / package.COMPILATION_FILE, meta)
    _write_json(output / package.SCHEMA_FILE, _schema(native, inputs, set(categorical)))
    _write_json(output / package.PROFILE_FILE, document)
    if inputs.matrix is not None:
        np.save(output / package.REFERENCE_FILE, inputs.matrix[:REFERENCE_ROWS_KEPT])
    digest = package.write_manifest(
        output, fmt, model_name, onnx, f"modelroll package {__version__}", source
    )
    return Packaged(
        output, digest, fmt, "onnx" if onnx else "native", str(meta.get("verdict", "")),
        str(meta.get("reason", "")), table.rows, len(document["features"]),
        tuple(document["unprofiled"]), tuple(sorted(p.name for p in output.iterdir())),
        source["framework"] if source else None,
    )  # fmt: skip


def _convert(
    framework: str, model_file: Path, table: Table, scratch: Path
) -> tuple[Path, dict[str, Any]]:
    """The framework's model as a verified ONNX file in `scratch`, and the manifest's
    `source`: what it was converted from, by what, and how closely it answers."""
    rows = _float_rows(table)
    exporter = _exporter(framework)
    try:
        converted = exporter.convert(model_file, rows)
        unknown = conversion.unknown_operators(converted.onnx)
        if unknown:
            raise conversion.unsupported(framework, unknown, converted.converter)
        graph = scratch / ONNX_FILE
        graph.write_bytes(converted.onnx.SerializeToString())
        served = OnnxModel()
        served.load(graph)
        answers = served.predict({conversion.INPUT: rows}, tuple(converted.expected))
        tolerance = conversion.Tolerance()
        evidence = conversion.check(converted.expected, answers, tolerance)
    except conversion.ConversionError as exc:
        raise PackagingError(str(exc)) from None
    return graph, {
        "framework": framework,
        "file": model_file.name,
        "sha256": _tree_digest(model_file),
        "library": converted.framework,
        "converter": converted.converter,
        "tolerance": tolerance.document(),
        "verifiedRows": len(rows),
        "outputs": evidence,
    }


def _exporter(framework: str) -> Any:
    """torch_convert or tf_convert, whose imports need the framework's extra."""
    try:
        if framework == conversion.PYTORCH:
            from . import torch_convert

            torch_convert.require()
            return torch_convert
        from . import tf_convert

        tf_convert.require()
        return tf_convert
    except ImportError as exc:
        extra = conversion.EXTRAS[framework]
        raise PackagingError(
            f"packaging a {framework} model needs {exc.name or exc}: "
            f"pip install 'modelroll-runtime[{extra}]'"
        ) from None


def _float_rows(table: Table) -> Array:
    """The reference rows as the framework model's one float32 input matrix, columns in order."""
    strings = [n for n in table.names if table.column(n).dtype.kind == "O"]
    if strings:
        raise PackagingError(
            f"a framework model takes one float matrix; reference column(s) "
            f"{', '.join(strings)} hold strings (name a label column with --target)"
        )
    return np.column_stack([table.column(n) for n in table.names]).astype(np.float32)


def _tree_digest(path: Path) -> str:
    """sha256 of a model file; of a SavedModel directory, over its files' names and sha256s."""
    if path.is_file():
        return sha256_of(path)
    lines = [
        f"{p.relative_to(path).as_posix()} {sha256_of(p)}\n"
        for p in sorted(path.rglob("*"))
        if p.is_file()
    ]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _conversion_reason(source: dict[str, Any]) -> str:
    tolerance = source["tolerance"]
    worst = max((e.get("max_abs_error", 0.0) for e in source["outputs"].values()), default=0.0)
    return (
        f"converted from {source['library']} by {source['converter']}; the graph answers "
        f"within abs {tolerance['abs']:g} + rel {tolerance['rel']:g} of the framework on "
        f"{source['verifiedRows']} reference rows (max abs error {worst:.3g})"
    )


def _load(fmt: str, model_file: Path) -> Model:
    try:
        model: Model = FORMATS[fmt].load(model_file)
    except ImportError as exc:
        raise PackagingError(
            f"loading a {fmt} model needs {exc.name or exc}: install the runtime's {fmt} extra "
            "(pip install 'modelroll-runtime[package]')"
        ) from None
    except Exception as exc:
        raise PackagingError(
            f"cannot load {model_file.name} as a {fmt} model ({type(exc).__name__}: {exc}); "
            "is --format right?"
        ) from None
    return model


def _model_inputs(native: Model, table: Table, categorical: set[str]) -> _Inputs:
    specs = native.inputs
    try:
        if len(specs) == 1 and len(specs[0].shape) == 2 and specs[0].dtype.kind == "f":
            return _matrix_inputs(native, table, categorical)
        if specs and all(len(s.shape) == 1 for s in specs):
            return _column_inputs(native, table, categorical)
    except ReferenceError as exc:
        raise PackagingError(str(exc)) from None
    shapes = ", ".join(f"{s.name} {list(s.shape)}" for s in specs)
    raise PackagingError(f"the model's inputs ({shapes}) are not a table of rows")


def _matrix_inputs(native: Model, table: Table, categorical: set[str]) -> _Inputs:
    (spec,) = native.inputs
    width = spec.shape[1]
    named: tuple[str, ...] = getattr(native, "columns", ())
    if named:
        names = named
    elif width in (-1, len(table.names)):
        names = table.names
    else:
        raise ReferenceError(
            f"the model takes {width} features, the reference data has {len(table.names)} "
            f"columns ({', '.join(table.names)}); name a label column with --target"
        )
    strings = [n for n in names if table.column(n).dtype.kind == "O"]
    if strings:
        raise ReferenceError(
            f"the model takes numbers; reference column(s) {', '.join(strings)} hold strings"
        )
    matrix = np.column_stack([table.column(n) for n in names]).astype(np.float64)
    features = [(n, j, matrix[:, j], n in categorical) for j, n in enumerate(names)]
    return _Inputs({spec.name: matrix.astype(spec.dtype)}, matrix, features)


def _column_inputs(native: Model, table: Table, categorical: set[str]) -> _Inputs:
    specs = native.inputs
    if len(specs) == 1 and specs[0].name not in table.names and len(table.names) == 1:
        # a text model's one input: the reference's one column, not binned (free text)
        column = table.columns[0]
        return _Inputs({specs[0].name: column.astype(specs[0].dtype)}, None, [])
    feed: dict[str, Array] = {}
    features = []
    for spec in specs:
        column = table.column(spec.name)
        feed[spec.name] = column.astype(spec.dtype)
        features.append((spec.name, -1, column, spec.name in categorical))
    return _Inputs(feed, None, features)


def _compile(fmt: str, native: Model, output: Path, matrix: Array | None) -> dict[str, Any]:
    if fmt == "onnx":
        return {"backend": "onnx", "format": fmt, "verdict": "NotCompiled",
                "reason": "the model is an ONNX file: served as it is"}  # fmt: skip
    try:
        meta = compile_native(fmt, native, output, matrix)
    except Exception as exc:  # the model is still served, natively
        (output / ONNX_FILE).unlink(missing_ok=True)
        meta = {"backend": "native", "format": fmt, "verdict": NO_CONVERTER,
                "reason": f"compiler error: {type(exc).__name__}: {exc}"}  # fmt: skip
    return meta


def _schema(native: Model, inputs: _Inputs, categorical: set[str]) -> dict[str, Any]:
    return {
        "schemaVersion": SCHEMA_VERSION,
        "inputs": [
            {"name": s.name, "datatype": tensors.datatype_of(s.dtype), "shape": list(s.shape)}
            for s in native.inputs
        ],
        "features": [
            {
                "name": name,
                "index": index,
                "dtype": str(values.dtype),
                "categorical": name in categorical or values.dtype.kind == "O",
            }
            for name, index, values, _ in inputs.features
        ],
    }


def _well_known_name(fmt: str, model_file: Path) -> str:
    """The format's well-known file name with the file's suffix (libraries read by suffix)."""
    names = FORMATS[fmt].model_files
    suffix = model_file.suffix.lower()
    return next((n for n in names if n.endswith(suffix)), names[0])


def _write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")


def describe(result: Packaged) -> list[str]:
    """What `modelroll package` prints."""
    what = f"{result.model_format} model"
    if result.framework is not None:
        what = f"{result.framework} model as an {result.model_format} graph"
    lines = [
        f"packaged a {what} into {result.directory}",
        f"  backend {result.backend} ({result.verdict}): {result.reason}",
        f"  profile: {result.rows} reference rows, {result.features} features",
        f"  files: {', '.join(result.files)}",
    ]
    if result.unprofiled:
        lines.append(f"  not profiled (series cap): {', '.join(result.unprofiled)}")
    lines.append(f"  sha256 (spec.model.sha256): {result.digest}")
    return lines


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="modelroll package", description=__doc__)
    cli.add_argument("model_file", type=Path)
    cli.add_argument("--reference", type=Path, required=True, help="CSV, Parquet or .npy rows")
    cli.add_argument("--output", type=Path, required=True, help="new or empty directory")
    cli.add_argument("--format", dest="model_format", choices=[*FORMATS, *conversion.FRAMEWORKS])
    cli.add_argument("--categorical", action="append", default=[], help="a categorical column")
    cli.add_argument("--target", help="a reference column that is not a feature (the label)")
    cli.add_argument("--bins", type=int, default=profile.DEFAULT_BINS)
    cli.add_argument("--top-k", type=int, default=profile.DEFAULT_TOP_K)
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = build(
            args.model_file, args.reference, args.output, args.model_format,
            args.categorical, args.target, args.bins, args.top_k,
        )  # fmt: skip
    except PackagingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(describe(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
