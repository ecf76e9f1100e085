"""A packaged model directory (docs/drift.md, "Package format"): its manifest, and the
verification that runs before any file of it is read.

`model.sha256` pins `manifest.json`, the manifest pins every other file. Nothing here
imports numpy or a model library: verifying is hashing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .source import sha256_of

MANIFEST_VERSION = 1
MANIFEST_FILE = "manifest.json"
PIN_FILE = "model.sha256"
COMPILATION_FILE = "compilation.json"
SCHEMA_FILE = "schema.json"
PROFILE_FILE = "profile.json"
REFERENCE_FILE = "reference.npy"


class PackageError(Exception):
    """The package is incomplete, altered or unreadable: it must not be served."""


@dataclass(frozen=True)
class Manifest:
    directory: Path
    digest: str  # sha256 of manifest.json: the package's identity
    model_format: str
    model: str  # the original model file
    onnx: str | None  # the verified ONNX graph, when there is one
    files: dict[str, dict[str, Any]]

    def path(self, name: str) -> Path | None:
        """A file of the package, None when the manifest does not list it."""
        return self.directory / name if name in self.files else None


def is_package(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST_FILE).is_file()


def verify(directory: Path, pin: str | None) -> Manifest:
    """The manifest, once every file checks out against it and it against its pins
    (`model.sha256`, and `pin`, MODELROLL_MODEL_SHA256, when set). Raises PackageError."""
    raw = (directory / MANIFEST_FILE).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        pinned = (directory / PIN_FILE).read_text().strip().lower().removeprefix("sha256:")
    except OSError:
        raise PackageError(f"package has no {PIN_FILE}; refusing to load") from None
    if pinned != digest:
        raise PackageError(
            f"{MANIFEST_FILE} does not match {PIN_FILE}: expected {pinned}, got {digest}; "
            "the package was altered, refusing to load"
        )
    if pin is not None and pin != digest:
        raise PackageError(
            f"sha256 mismatch for the package ({MANIFEST_FILE}): expected {pin}, got {digest}; "
            "refusing to load"
        )
    document = _parse(raw)
    files: dict[str, dict[str, Any]] = document["files"]
    for name, entry in files.items():
        path = directory / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise PackageError(f"package file {name} is missing; refusing to load")
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise PackageError(
                f"package file {name} has {size} bytes, the manifest says {entry.get('bytes')}; "
                "refusing to load"
            )
        got = sha256_of(path)
        if got != entry.get("sha256"):
            raise PackageError(
                f"sha256 mismatch for package file {name}: expected {entry.get('sha256')}, "
                f"got {got}; refusing to load"
            )
    known = {*files, MANIFEST_FILE, PIN_FILE}
    extra = sorted(
        p.name for p in directory.iterdir() if not p.name.startswith(".") and p.name not in known
    )
    if extra:
        raise PackageError(
            f"package holds files its manifest does not list: {', '.join(extra)}; refusing to load"
        )
    onnx = document.get("onnx")
    return Manifest(
        directory, digest, str(document["format"]), str(document["model"]),
        str(onnx) if onnx else None, files,
    )  # fmt: skip


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise PackageError(f"{MANIFEST_FILE} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("manifestVersion") != MANIFEST_VERSION:
        raise PackageError(f"{MANIFEST_FILE}: unknown manifestVersion")
    files = document.get("files")
    if not isinstance(files, dict) or not all(isinstance(e, dict) for e in files.values()):
        raise PackageError(f"{MANIFEST_FILE}: 'files' must map names to {{sha256, bytes}}")
    for key in ("format", "model"):
        if not isinstance(document.get(key), str):
            raise PackageError(f"{MANIFEST_FILE}: '{key}' must be a string")
    named = [document["model"], *([document["onnx"]] if document.get("onnx") else [])]
    for name in named:
        if name not in files:
            raise PackageError(f"{MANIFEST_FILE} names {name} but does not list it")
    return document


def write_manifest(
    directory: Path,
    model_format: str,
    model: str,
    onnx: str | None,
    created_by: str,
    source: dict[str, Any] | None = None,
) -> str:
    """Write manifest.json over every file in `directory`, and model.sha256; its digest.
    `source`: the PyTorch or TensorFlow model the ONNX graph was converted from, and the
    tolerance it was verified to (docs/drift.md, "Package format")."""
    files = {
        p.name: {"sha256": sha256_of(p), "bytes": p.stat().st_size}
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name not in (MANIFEST_FILE, PIN_FILE)
    }
    document = {
        "manifestVersion": MANIFEST_VERSION,
        "format": model_format,
        "model": model,
        "onnx": onnx,
        "createdBy": created_by,
        **({"source": source} if source is not None else {}),
        "files": files,
    }
    raw = (json.dumps(document, indent=2) + "\n").encode()
    (directory / MANIFEST_FILE).write_bytes(raw)
    digest = hashlib.sha256(raw).hexdigest()
    (directory / PIN_FILE).write_text(digest + "\n")
    return digest
