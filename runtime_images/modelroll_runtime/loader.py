"""Fetch, verify, compile and load the model, in the order that keeps loading safe.

The sha256 pin is checked before any code could unpickle the file: in this process and in
the compiler child alike. Compiled ONNX files are cached under the model's sha256, so a
restart (or a second worker) skips the compiler.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import package, source
from .compiler import META_FILE, NO_CONVERTER, ONNX_FILE, VERIFIER
from .config import Settings
from .formats import FORMATS, Model, ModelFormat
from .formats.base import Array, TensorSpec

log = logging.getLogger("modelroll.loader")

COMPILE_TIMEOUT_S = 600
# after a SIGTERM, how long a compiler child may take to exit before it is killed
COMPILER_GRACE_S = 5

# The compiler children running now, so that a stopping server ends them rather than leave
# them orphaned (a pod's first start is when one runs, and when a rollout may stop it).
_compilers: set[subprocess.Popen[str]] = set()
_compilers_lock = threading.Lock()
_stopping = threading.Event()


class ModelLoadError(Exception):
    """Loading failed for a reason the operator should show (see the termination log)."""


@dataclass(frozen=True)
class LoadedModel:
    model: Model
    sha256: str
    load_seconds: float
    predict_seconds: float  # median warm-up cost of a one-row predict
    # every output as the warm-up answered it (dtype; shape with -1 for the batch), for the
    # metadata: the outputs' types are known only once the model has answered
    outputs: tuple[TensorSpec, ...]
    # the compiler's verdict and its evidence (meta.json), shown in the model's metadata
    compilation: dict[str, Any]
    # a package's reference profile (profile.json), the drift telemetry's bins
    profile: dict[str, Any] | None = None


def load(settings: Settings) -> LoadedModel:
    started = time.monotonic()
    model_format = FORMATS[settings.model_format]
    try:
        path = source.local_path(settings.model_uri, settings.model_dir, settings.max_model_bytes)
        model_file = path if package.is_package(path) else model_format.find_model_file(path)
    except source.SourceError as exc:  # says what went wrong with which (displayed) URI
        raise ModelLoadError(str(exc)) from exc
    except Exception as exc:
        raise ModelLoadError(f"model not found: {exc}") from exc
    if package.is_package(path):
        return _load_package(settings, model_format, path, started)
    digest = source.sha256_of(model_file)
    if settings.model_sha256 is not None and digest != settings.model_sha256:
        raise ModelLoadError(
            f"sha256 mismatch for {model_file.name}: expected {settings.model_sha256}, "
            f"got {digest}; refusing to load"
        )
    refuse_unpinned_pickle(settings, model_format, model_file.name)
    try:
        model, compilation = _load_fastest(settings, model_format, model_file, digest)
        predict_seconds, answered = _warm_up(model)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"{type(exc).__name__}: {exc}") from exc
    outputs = tuple(_output_spec(name, answered[name]) for name in model.output_names)
    return LoadedModel(
        model, digest, time.monotonic() - started, predict_seconds, outputs, compilation
    )


def refuse_unpinned_pickle(
    settings: Settings, model_format: ModelFormat[Any], file_name: str
) -> None:
    if (
        model_format.runs_code
        and settings.model_sha256 is None
        and source.is_remote(settings.model_uri)
        and not settings.allow_unpinned_pickle
    ):
        raise ModelLoadError(
            f"refusing to unpickle {file_name} from remote URI without a sha256 pin: "
            "loading a pickle runs code; set MODELROLL_MODEL_SHA256 "
            "(or MODELROLL_ALLOW_UNPINNED_PICKLE=true to accept the risk)"
        )


def _load_package(
    settings: Settings, model_format: ModelFormat[Any], directory: Path, started: float
) -> LoadedModel:
    """A packaged model: every file verified first, then its ONNX graph (no model library
    is imported) or, without one, its original model; warmed up on its reference rows."""
    try:
        manifest = package.verify(directory, settings.model_sha256)
    except (package.PackageError, OSError) as exc:
        raise ModelLoadError(str(exc)) from exc
    if manifest.model_format != model_format.name:
        raise ModelLoadError(
            f"the package holds a {manifest.model_format} model, "
            f"MODELROLL_MODEL_FORMAT is {model_format.name}"
        )
    try:
        compilation = _read_json(manifest, package.COMPILATION_FILE) or {}
        profile = _read_json(manifest, package.PROFILE_FILE)
        if manifest.onnx is not None:
            from .formats.onnx_model import OnnxModel

            aliases = compilation.get("aliases")
            onnx_model = OnnxModel(aliases if isinstance(aliases, dict) else {})
            onnx_model.load(directory / manifest.onnx)
            # a DataFrame-fitted model's columns: PandasCodec inputs are matched by name
            onnx_model.columns = tuple(str(c) for c in compilation.get("columns", ()))
            model: Model = onnx_model
            compilation["backend"] = "onnx"
        else:
            refuse_unpinned_pickle(settings, model_format, manifest.model)
            model = model_format.load(directory / manifest.model)
            compilation["backend"] = model.backend
        compilation.setdefault("verdict", NO_CONVERTER)
        compilation["package"] = manifest.digest
        predict_seconds, answered = _warm_up(model, _reference_feed(model, manifest))
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"{type(exc).__name__}: {exc}") from exc
    log.info(
        "package verified",
        extra={"package": manifest.digest, "files": len(manifest.files),
               "backend": model.backend, "profile": profile is not None},
    )  # fmt: skip
    outputs = tuple(_output_spec(name, answered[name]) for name in model.output_names)
    return LoadedModel(
        model, manifest.digest, time.monotonic() - started, predict_seconds, outputs,
        compilation, profile,
    )  # fmt: skip


def _read_json(manifest: package.Manifest, name: str) -> dict[str, Any] | None:
    path = manifest.path(name)
    if path is None:
        return None
    document = json.loads(path.read_text())
    if not isinstance(document, dict):
        raise ModelLoadError(f"package file {name} is not a JSON object")
    return document


def _reference_feed(model: Model, manifest: package.Manifest) -> dict[str, Array] | None:
    """The package's first reference row, as the model's one input matrix takes it."""
    path = manifest.path(package.REFERENCE_FILE)
    if path is None or len(model.inputs) != 1 or len(model.inputs[0].shape) != 2:
        return None
    rows = np.load(path, allow_pickle=False)
    spec = model.inputs[0]
    if rows.ndim != 2 or len(rows) == 0 or rows.shape[1] != spec.shape[1]:
        return None
    return {spec.name: rows[:1].astype(spec.dtype)}


def _load_fastest(
    settings: Settings, model_format: ModelFormat[Any], model_file: Path, digest: str
) -> tuple[Model, dict[str, Any]]:
    native: Model
    if model_format.to_onnx is None:  # ONNX already, or no converter: nothing to compile
        native = model_format.load(model_file)
        reason = f"format {model_format.name} is served as it is, without compiling"
        return native, {"backend": native.backend, "verdict": "NotCompiled", "reason": reason}
    cache = settings.cache_dir / f"{digest}-{model_format.name}"
    meta = _usable(_read_meta(cache))
    if meta is None:
        try:
            with source.exclusive(settings.cache_dir / f"{cache.name}.lock"):
                meta = _usable(_read_meta(cache)) or _compile(model_format.name, model_file, cache)
        except OSError as exc:
            meta = {"backend": "native", "reason": f"compile cache unusable: {exc}"}
    meta.setdefault("verdict", NO_CONVERTER)
    meta.setdefault("reason", "unknown")
    if meta.get("backend") == "onnx" and (cache / ONNX_FILE).is_file():
        from .formats.onnx_model import OnnxModel

        aliases = meta.get("aliases")
        model = OnnxModel(aliases if isinstance(aliases, dict) else {})
        model.load(cache / ONNX_FILE)
        model.columns = tuple(str(c) for c in meta.get("columns", ()))
        log.info(
            "backend onnx: %s",
            meta["reason"],
            extra={"backend": "onnx", "verdict": meta["verdict"], "cache": str(cache)},
        )
        return model, meta
    meta["backend"] = "native"
    log.warning(
        "backend native: ONNX compilation not used: %s",
        meta["reason"],
        extra={"backend": "native", "verdict": meta["verdict"], "reason": meta["reason"]},
    )
    native = model_format.load(model_file)
    return native, meta


def _read_meta(cache: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((cache / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _usable(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """A cached verdict, unless it is an "onnx" one from an older, weaker check: serving
    natively is always right, serving a graph is right only as far as the check went."""
    if meta is not None and meta.get("backend") == "onnx" and meta.get("verifier") != VERIFIER:
        return None
    return meta


def _compile(model_format: str, model_file: Path, cache: Path) -> dict[str, Any]:
    started = time.monotonic()
    command = [sys.executable, "-m", "modelroll_runtime.compiler", model_format]
    command += [str(model_file), str(cache)]
    with _compilers_lock:
        if _stopping.is_set():
            raise ModelLoadError("the server is stopping; not compiling")
        child = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        _compilers.add(child)
    try:
        stdout, stderr = child.communicate(timeout=COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise
    finally:
        with _compilers_lock:
            _compilers.discard(child)
    if _stopping.is_set():
        raise ModelLoadError("the server is stopping; compilation abandoned")
    meta = _read_meta(cache)
    if child.returncode != 0 or meta is None:
        tail = (stderr or stdout)[-2000:]
        meta = {"backend": "native", "reason": f"compiler exited {child.returncode}: {tail}"}
    log.info(
        "compiled",
        extra={
            "backend": meta.get("backend"),
            "reason": meta.get("reason"),
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    return meta


def stopping() -> bool:
    return _stopping.is_set()


def terminate_compilers() -> None:
    """End the running compiler children (SIGTERM, then SIGKILL after COMPILER_GRACE_S) and
    start no more: the server is stopping."""
    with _compilers_lock:
        _stopping.set()
        running = list(_compilers)
    for child in running:
        child.terminate()
    for child in running:
        try:
            child.wait(COMPILER_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _warm_up(
    model: Model, feed: dict[str, Array] | None = None, rounds: int = 9
) -> tuple[float, dict[str, Array]]:
    """Predictions on one row the model accepts (a package's reference row, the model's own
    example, else zeros): readiness means the model has answered. Returns the median cost
    and the last answer."""
    example = getattr(model, "example_inputs", None)
    if feed is None and callable(example):
        feed = example()
    if feed is None:
        feed = {}
        for spec in model.inputs:
            shape = tuple(1 if d < 0 else d for d in spec.shape) or (1,)
            feed[spec.name] = np.zeros(shape, dtype=spec.dtype)
    costs = []
    answered: dict[str, Array] = {}
    for _ in range(rounds):
        started = time.perf_counter()
        answered = model.predict(feed, model.output_names)
        costs.append(time.perf_counter() - started)
    return sorted(costs)[rounds // 2], answered


def _output_spec(name: str, answered: Array) -> TensorSpec:
    array = np.asarray(answered)
    # the V2 response reports a 1-D output as [N, 1] (MLServer's NumpyCodec), so does this
    rest = tuple(array.shape[1:]) if array.ndim > 1 else (1,)
    return TensorSpec(name, array.dtype, (-1, *rest))
