"""`python -m modelroll_runtime.fetch`: the init container in front of a user's own server.

It brings MODELROLL_MODEL_URI into MODELROLL_MODEL_DIR (the pod's /mnt/models emptyDir)
with the runtime's own download code (source.py: size cap, no https->http redirects, the
storage clients' credentials), verifies it as the runtime does before loading (the package
manifest, or the sha256 pin of the model file; an unpinned remote pickle is refused), and
exits. Nothing is imported from a model library: verifying is hashing.

Layout: a single-file model lands as /mnt/models/<its file name> (model.joblib stays
model.joblib), a directory's files land directly under /mnt/models, as KServe's storage
initializer does. A local path (a pvc:// claim the operator mounted at /mnt/models) is
verified where it is, not copied.

A failure writes `ModelFetchFailed: <reason>` to the termination log and exits 1: the
kubelet then never starts the serving container, and the operator shows the reason.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from pathlib import Path

from . import jsonlog, package, source
from .config import ConfigError, Settings
from .formats import FORMATS
from .loader import ModelLoadError, refuse_unpinned_pickle

log = logging.getLogger("modelroll.fetch")

REASON = "ModelFetchFailed"
# What was fetched and verified, so that a restarted pod (its emptyDir kept) re-verifies
# instead of downloading again. Hidden: servers and package.verify skip dot files.
MARKER = ".modelroll-fetched"
STAGING = ".modelroll-download"


class FetchError(Exception):
    """The model could not be fetched or did not verify."""


def fetch(settings: Settings) -> Path:
    """The verified model's local path: the model dir for a download, else the path itself."""
    if not source.is_remote(settings.model_uri):
        path = source.local_path(settings.model_uri, settings.model_dir, settings.max_model_bytes)
        if not path.exists():
            raise FetchError(f"model not found: {path} does not exist")
        verify(settings, path)
        return path
    target = settings.model_dir
    identity = f"{settings.model_uri}\n{settings.model_sha256 or ''}\n"
    marker = target / MARKER
    if marker.is_file() and marker.read_text() == identity:
        log.info("already fetched; verifying again", extra={"dir": str(target)})
    else:
        _empty(target)
        staging = target / STAGING
        try:
            downloaded = source.local_path(settings.model_uri, staging, settings.max_model_bytes)
        except source.SourceError as exc:
            raise FetchError(str(exc)) from exc
        for entry in downloaded.iterdir():
            if not entry.name.startswith("."):  # source.py's completion marker stays behind
                entry.rename(target / entry.name)  # one filesystem: no second copy
        shutil.rmtree(staging)
        marker.write_text(identity)
    try:
        verify(settings, target)
    except FetchError:
        _empty(target)  # a later try downloads afresh: the store may have been fixed
        raise
    return target


def verify(settings: Settings, path: Path) -> None:
    """As loader.load checks before it unpickles: the package manifest with its pins, or
    the sha256 of the one model file the format finds. Raises FetchError."""
    model_format = FORMATS[settings.model_format]
    try:
        if package.is_package(path):
            manifest = package.verify(path, settings.model_sha256)
            refuse_unpinned_pickle(settings, model_format, manifest.model)
            return
        if settings.model_sha256 is None:
            refuse_unpinned_pickle(settings, model_format, path.name)
            log.warning("no sha256 pin: the model is not verified", extra={"path": str(path)})
            return
        model_file = model_format.find_model_file(path)
    except (package.PackageError, ModelLoadError, OSError) as exc:
        raise FetchError(str(exc)) from exc
    except Exception as exc:  # the format's own "no model file" errors
        raise FetchError(f"model not found: {exc}") from exc
    digest = source.sha256_of(model_file)
    if digest != settings.model_sha256:
        raise FetchError(
            f"sha256 mismatch for {model_file.name}: expected {settings.model_sha256}, "
            f"got {digest}; refusing to serve it"
        )


def _empty(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _fail(settings: Settings | None, message: str) -> int:
    log.error("%s: %s", REASON, message, extra={"reason": REASON})
    path = settings.termination_log if settings else Path("/dev/termination-log")
    with contextlib.suppress(OSError):  # outside a pod there may be no termination log
        path.write_text(f"{REASON}: {message}"[:4096])
    return 1


def main() -> int:
    jsonlog.configure(os.environ.get("MODELROLL_LOG_LEVEL", "INFO"))
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return _fail(None, f"invalid settings: {exc}")
    try:
        path = fetch(settings)
    except FetchError as exc:
        return _fail(settings, str(exc))
    log.info("fetched", extra={"uri": source.display_uri(settings.model_uri), "path": str(path)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
