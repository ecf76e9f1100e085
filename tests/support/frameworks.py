"""PyTorch and TensorFlow, each installed from PyPI into a venv of its own, for the
framework packaging tests (tests/frameworks/, `make test-frameworks`).

`modelroll package` converts PyTorch and TensorFlow models with the frameworks' own
exporters (torch.onnx, tf2onnx), so the tests need the frameworks; the shared dev venv and
the runtime image must not carry them (several GB). A venv is cached outside the repository,
keyed by a hash of its requirements, so a warm run installs nothing (the same scheme as
tests/support/peers.py). The packager runs in that venv from this checkout's source
(PYTHONPATH): of the runtime's own dependencies it needs only numpy, onnx, onnxruntime and
orjson.

`python tests/support/frameworks.py --measure torch` reinstalls into a scratch venv and prints
what it cost: the download (size, time), the install from the downloaded wheels, the disk.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# what the packager itself imports besides the framework (the runtime venv's versions)
RUNTIME = ("numpy==2.4.6", "onnx==1.23.2", "onnxruntime==1.32.0", "orjson==3.13.0")
FRAMEWORKS: dict[str, tuple[str, ...]] = {
    # onnxscript: torch.onnx's exporter builds the graph with it (torch.export based)
    "torch": ("torch==2.15.0", "onnxscript==0.7.2", *RUNTIME),
    "tensorflow": ("tensorflow==2.21.0", "tf2onnx==1.17.0", *RUNTIME),
}
CACHE = Path(
    os.environ.get("MODELROLL_FRAMEWORKS_CACHE", Path.home() / ".cache/modelroll/frameworks")
)
MARKER = ".installed"
PIP = ("-m", "pip", "--disable-pip-version-check", "--no-input")


class FrameworkInstallError(RuntimeError):
    """pip could not install a framework; the message says what to check."""


def venv_dir(name: str) -> Path:
    digest = hashlib.sha256("\n".join(FRAMEWORKS[name]).encode()).hexdigest()[:8]
    return CACHE / f"{name}-{digest}"


def ensure_venv(name: str) -> Path:
    """The framework's venv, installed first where its marker is missing."""
    venv = venv_dir(name)
    marker = venv / MARKER
    if marker.exists():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    # one installer at a time (test runs of several worktrees share the cache)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            cost = _install(name, venv)
            marker.write_text(json.dumps(cost, indent=2) + "\n")
    return venv


def python(name: str) -> Path:
    return ensure_venv(name) / "bin/python"


def _run(command: list[str], log: Path, name: str) -> float:
    started = time.monotonic()
    with log.open("a") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        raise FrameworkInstallError(
            f"installing {name} ({' '.join(FRAMEWORKS[name])}) from PyPI failed; it needs "
            f"network access to PyPI and a Python {sys.version_info[0]}.{sys.version_info[1]} "
            f"that can make venvs; full log: {log}\n" + "\n".join(tail)
        )
    return time.monotonic() - started


def _install(name: str, venv: Path) -> dict[str, object]:
    """Download every wheel, then install from them alone: the two costs apart."""
    shutil.rmtree(venv, ignore_errors=True)  # a half-made venv from an interrupted install
    log = venv.parent / f"{venv.name}.install.log"
    log.write_text("")
    with tempfile.TemporaryDirectory(dir=venv.parent, prefix=f".{name}-wheels-") as wheels:
        try:
            _run([sys.executable, "-m", "venv", str(venv)], log, name)
            py = str(venv / "bin/python")
            download_s = _run(
                [py, *PIP, "download", "--no-cache-dir", "-d", wheels, *FRAMEWORKS[name]], log, name
            )
            files = list(Path(wheels).iterdir())
            install_s = _run(
                [py, *PIP, "install", "--no-index", "--find-links", wheels, *FRAMEWORKS[name]],
                log,
                name,
            )
        except FrameworkInstallError:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        download_bytes = sum(f.stat().st_size for f in files)
    return {
        "requirements": list(FRAMEWORKS[name]),
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "wheels": len(files),
        "download_mb": round(download_bytes / 1e6),
        "download_s": round(download_s),
        "install_s": round(install_s),
        "disk_mb": round(_disk(venv) / 1e6),
    }


def _disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def cost(name: str) -> dict[str, object]:
    """What installing the framework's venv cost, as its marker recorded it."""
    return dict(json.loads((ensure_venv(name) / MARKER).read_text()))


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("names", nargs="*", metavar="NAME", help=f"of {', '.join(FRAMEWORKS)}")
    cli.add_argument("--measure", action="store_true", help="reinstall and print the cost")
    args = cli.parse_args(argv)
    unknown = sorted(set(args.names) - set(FRAMEWORKS))
    if unknown:
        cli.error(f"unknown framework(s) {', '.join(unknown)}; of {', '.join(FRAMEWORKS)}")
    for name in args.names or list(FRAMEWORKS):
        if args.measure:
            shutil.rmtree(venv_dir(name), ignore_errors=True)
        begun = time.monotonic()
        venv = ensure_venv(name)
        print(name, venv, f"{time.monotonic() - begun:.0f} s", json.dumps(cost(name)), flush=True)
    return 0


if __name__ == "__main__":  # python tests/support/frameworks.py [torch tensorflow]: install ahead
    sys.exit(main())
