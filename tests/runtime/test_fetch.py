"""`python -m modelroll_runtime.fetch`, the init container in front of a user's own server,
run as a real process against a real local HTTP server: the model lands verified in the
model dir under its own file name; a wrong pin, an unpinned remote pickle or an altered
package fails with `ModelFetchFailed: <reason>` in the termination log and exit 1."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from modelroll_runtime.package import write_manifest

from .models import TrainedModel

pytestmark = pytest.mark.runtime
RUNTIME = Path(__file__).resolve().parents[2] / "runtime_images"


@dataclass
class Store:
    url: str
    requested: list[str] = field(default_factory=list)


@pytest.fixture
def store(sklearn_model: TrainedModel, tmp_path: Path) -> Iterator[Store]:
    """sklearn_model's directory over HTTP, recording the paths asked for."""
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = partial(Handler, directory=str(sklearn_model.directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Store(f"http://127.0.0.1:{server.server_address[1]}", requested)
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Fetched:
    code: int
    termination: str
    model_dir: Path


def fetch(tmp_path: Path, uri: str, sha256: str = "", model_format: str = "sklearn") -> Fetched:
    model_dir = tmp_path / "mnt-models"
    termination = tmp_path / "termination-log"
    termination.unlink(missing_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(RUNTIME),
        "MODELROLL_MODEL_NAME": "iris",
        "MODELROLL_MODEL_URI": uri,
        "MODELROLL_MODEL_FORMAT": model_format,
        "MODELROLL_MODEL_DIR": str(model_dir),
        "MODELROLL_TERMINATION_LOG": str(termination),
        **({"MODELROLL_MODEL_SHA256": sha256} if sha256 else {}),
    }
    done = subprocess.run(
        [sys.executable, "-m", "modelroll_runtime.fetch"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    said = termination.read_text() if termination.exists() else ""
    return Fetched(done.returncode, said, model_dir)


def visible(directory: Path) -> list[str]:
    """What a server listing the model dir sees (the fetch's own marker is a dot file)."""
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def test_a_pinned_download_lands_under_its_own_name(
    store: Store, sklearn_model: TrainedModel, tmp_path: Path
) -> None:
    name = sklearn_model.file.name
    done = fetch(tmp_path, f"{store.url}/{name}", sklearn_model.sha256)
    assert done.code == 0, done.termination
    assert visible(done.model_dir) == [name]
    assert (done.model_dir / name).read_bytes() == sklearn_model.file.read_bytes()
    # a restarted pod keeps its emptyDir: verified again, not downloaded again
    again = fetch(tmp_path, f"{store.url}/{name}", sklearn_model.sha256)
    assert again.code == 0, again.termination
    assert store.requested == [f"/{name}"]


def test_a_wrong_pin_fails_with_the_reason_and_leaves_nothing(
    store: Store, sklearn_model: TrainedModel, tmp_path: Path
) -> None:
    name = sklearn_model.file.name
    wrong = hashlib.sha256(b"another model").hexdigest()
    done = fetch(tmp_path, f"{store.url}/{name}", wrong)
    assert done.code == 1
    assert done.termination.startswith(f"ModelFetchFailed: sha256 mismatch for {name}: ")
    assert f"expected {wrong}, got {sklearn_model.sha256}" in done.termination
    assert list(done.model_dir.iterdir()) == []


def test_an_unpinned_remote_pickle_is_refused(
    store: Store, sklearn_model: TrainedModel, tmp_path: Path
) -> None:
    done = fetch(tmp_path, f"{store.url}/{sklearn_model.file.name}")
    assert done.code == 1
    assert "ModelFetchFailed: refusing to unpickle" in done.termination
    assert "without a sha256 pin" in done.termination


def test_a_missing_model_names_the_download(store: Store, tmp_path: Path) -> None:
    done = fetch(tmp_path, f"{store.url}/nothing.joblib", "0" * 64)
    assert done.code == 1
    assert done.termination.startswith(f"ModelFetchFailed: download of {store.url}/nothing.joblib")
    assert "404" in done.termination


def test_a_package_is_verified_in_place_and_an_altered_one_fails(
    sklearn_model: TrainedModel, tmp_path: Path
) -> None:
    package = tmp_path / "package"
    package.mkdir()
    (package / sklearn_model.file.name).write_bytes(sklearn_model.file.read_bytes())
    digest = write_manifest(package, "sklearn", sklearn_model.file.name, None, "test")
    done = fetch(tmp_path, str(package), digest)  # a pvc mount: a plain path
    assert done.code == 0, done.termination
    (package / sklearn_model.file.name).write_bytes(b"not the model")
    altered = fetch(tmp_path, str(package), digest)
    assert altered.code == 1
    assert altered.termination.startswith("ModelFetchFailed: package file ")
    assert "refusing to load" in altered.termination
