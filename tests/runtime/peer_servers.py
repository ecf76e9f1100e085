"""KServe and MLServer as real server processes beside ours, serving the same model files.

One KServe ModelServer and one MLServer serve every model of the suite (each serves several
models in one process); ours serves one model per process, as in a pod. The peers' venvs
come from tests/support/peers.py, through tests/support/prerequisites.py's require_peers: a
failed install fails the test saying why, since the suite cannot say anything without them.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import peers

from .peer_models import PeerModel
from .runtime_process import RuntimeProcess, free_port


@dataclass
class PeerProcess(RuntimeProcess):
    """A peer server: RuntimeProcess's client and lifecycle with the peer's command line."""

    command: list[str] = field(default_factory=list)

    def start(self) -> PeerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELROLL_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(self.env)
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(self.command, env=env, stdout=log, stderr=log)
        return self


def start_kserve(models: list[PeerModel], logs: Path) -> PeerProcess:
    port = free_port()
    specs = [(m.model_format, m.name, m.directory) for m in models]
    command = peers.kserve_command(port, specs)
    return PeerProcess({}, logs / "kserve.log", port, command=command).start()


def start_mlserver(models: list[PeerModel], logs: Path) -> PeerProcess:
    port = free_port()
    specs = [(m.model_format, m.name, m.file) for m in models]
    command = peers.mlserver_command((port, free_port(), free_port()), specs, logs / "mlserver")
    return PeerProcess({}, logs / "mlserver.log", port, command=command).start()


def start_ours(model: PeerModel, logs: Path, cache: Path) -> RuntimeProcess:
    env = {
        "MODELROLL_MODEL_NAME": model.name,
        "MODELROLL_MODEL_URI": str(model.directory),
        "MODELROLL_MODEL_FORMAT": model.model_format,
        "MODELROLL_CACHE_DIR": str(cache),
        "MODELROLL_MODEL_DIR": str(logs / "downloads"),
        "MODELROLL_TERMINATION_LOG": str(logs / f"termination-{model.name}"),
    }
    return RuntimeProcess(env, logs / f"ours-{model.name}.log").start()
