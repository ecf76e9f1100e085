"""KServe and MLServer, each installed from PyPI into a venv of its own, for the peer
compatibility tests (tests/runtime/test_peer_compat.py) and the benchmark
(benchmarks/runtime/run.py).

A venv is cached outside the repository, keyed by the peer's version and a hash of its
requirements, so a warm run installs nothing: pip runs only when the venv's marker is
missing (a first run, or a changed pin). The model libraries are pinned to the versions the
runtime's own venv has, so every server loads the same model files with the same library.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

KSERVE_VERSION = "0.21.0"
MLSERVER_VERSION = "1.7.1"
# the libraries the model files were written with (the runtime's venv has these versions)
MODEL_LIBRARIES = ("scikit-learn==1.9.1", "lightgbm==4.7.0", "joblib")
XGBOOST = "3.2.0"
PEERS: dict[str, tuple[str, ...]] = {
    # the SDK only: sklearnserver, xgbserver and lgbserver are not on PyPI; their model
    # classes are in tests/runtime/peers/kserve_server.py (pandas<3: sklearnserver's own
    # pin). xgboost-cpu is the same module without the CUDA wheels (~300 MB less to fetch)
    "kserve": (
        f"kserve=={KSERVE_VERSION}",
        "pandas<3",
        f"xgboost-cpu=={XGBOOST}",
        *MODEL_LIBRARIES,
    ),
    # mlserver-xgboost requires the "xgboost" distribution itself
    "mlserver": (
        f"mlserver=={MLSERVER_VERSION}",
        f"mlserver-sklearn=={MLSERVER_VERSION}",
        f"mlserver-xgboost=={MLSERVER_VERSION}",
        f"mlserver-lightgbm=={MLSERVER_VERSION}",
        f"xgboost=={XGBOOST}",
        *MODEL_LIBRARIES,
    ),
}
VERSIONS = {"kserve": KSERVE_VERSION, "mlserver": MLSERVER_VERSION}
REPO = Path(__file__).resolve().parents[2]
KSERVE_SERVER = REPO / "tests/runtime/peers/kserve_server.py"
# MLServer's runtime class for each of our formats
MLSERVER_IMPLEMENTATIONS = {
    "sklearn": "mlserver_sklearn.SKLearnModel",
    "xgboost": "mlserver_xgboost.XGBoostModel",
    "lightgbm": "mlserver_lightgbm.LightGBMModel",
}
CACHE = Path(os.environ.get("MODELROLL_PEERS_CACHE", Path.home() / ".cache/modelroll/peers"))
MARKER = ".installed"


class PeerInstallError(RuntimeError):
    """pip could not install a peer; the message says what to check."""


def venv_dir(name: str) -> Path:
    digest = hashlib.sha256("\n".join(PEERS[name]).encode()).hexdigest()[:8]
    return CACHE / f"{name}-{VERSIONS[name]}-{digest}"


def ensure_venv(name: str) -> Path:
    """The peer's venv, installed first where its marker is missing."""
    venv = venv_dir(name)
    marker = venv / MARKER
    if marker.exists():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    # one installer at a time (test runs of several worktrees share the cache)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            _install(name, venv)
    return venv


def _install(name: str, venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)  # a half-made venv from an interrupted install
    started = time.monotonic()
    log = venv.parent / f"{venv.name}.install.log"
    with log.open("w") as out:
        for command in (
            [sys.executable, "-m", "venv", str(venv)],
            [str(venv / "bin/pip"), "install", "--disable-pip-version-check", *PEERS[name]],
        ):
            if subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                tail = log.read_text(errors="replace").strip().splitlines()[-15:]
                shutil.rmtree(venv, ignore_errors=True)
                raise PeerInstallError(
                    f"installing {name} ({' '.join(PEERS[name])}) from PyPI failed; it needs "
                    f"network access to PyPI and a Python {sys.version_info[0]}."
                    f"{sys.version_info[1]} that can make venvs; full log: {log}\n"
                    + "\n".join(tail)
                )
    seconds = time.monotonic() - started
    (venv / MARKER).write_text(f"{' '.join(PEERS[name])}\ninstalled in {seconds:.0f} s\n")


def kserve_command(port: int, models: list[tuple[str, str, Path]]) -> list[str]:
    """One KServe ModelServer on `port` serving each (format, name, directory) with
    sklearnserver's, xgbserver's or lgbserver's model class; a directory holds one model file."""
    python = ensure_venv("kserve") / "bin/python"
    specs = [f"{fmt}:{name}:{directory}" for fmt, name, directory in models]
    return [str(python), str(KSERVE_SERVER), str(port), *specs]


def mlserver_command(
    ports: tuple[int, int, int], models: list[tuple[str, str, Path]], repo: Path
) -> list[str]:
    """`mlserver start` on a repository made in `repo`, one folder per (format, name, model
    file); ports are HTTP, gRPC and metrics (MLServer opens all three)."""
    http, grpc, metrics = ports
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "settings.json").write_text(json.dumps({
        "http_port": http, "grpc_port": grpc, "metrics_port": metrics,
        "parallel_workers": 0, "debug": False,
    }))  # fmt: skip
    for fmt, name, model_file in models:
        (repo / name).mkdir(exist_ok=True)
        (repo / name / "model-settings.json").write_text(json.dumps({
            "name": name, "implementation": MLSERVER_IMPLEMENTATIONS[fmt],
            "parameters": {"uri": str(model_file)},
        }))  # fmt: skip
    return [str(ensure_venv("mlserver") / "bin/mlserver"), "start", str(repo)]


if __name__ == "__main__":  # python tests/support/peers.py [kserve mlserver]: install ahead
    for peer in sys.argv[1:] or list(PEERS):
        begun = time.monotonic()
        print(peer, ensure_venv(peer), f"{time.monotonic() - begun:.0f} s", flush=True)
