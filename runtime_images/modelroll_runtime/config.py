"""Runtime settings, read once from the MODELROLL_* environment the operator renders.

A value the runtime cannot use, and a MODELROLL_* variable it does not read, stop it at
start (ConfigError; `modelroll-runtime` logs `InvalidConfig: …` and exits 2). An unknown
name is nearly always a typo, and ignoring it would silently run with the default: with
`MODELROLL_AUTH_TOKNE` the model would be served without auth. In a pod these names come
only from the operator (tests/unit/test_runtime_env.py feeds every example's rendered env to
this parser): the credentials Secret reaches the pod only under the storage clients' own
names (AWS_*, GOOGLE_*), so the exit, shown as the container's termination message, points
at the one variable to fix.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .formats import FORMATS

# prometheus-client reads this when it is first imported: the launcher must set it before
# anything imports prometheus_client (workers may be forked from the launcher)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "MODELROLL_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# A download cap even outside the operator (which renders its own, from the emptyDir's size).
DEFAULT_MAX_MODEL_BYTES = 10 * 2**30
# Request bytes one worker may hold and decode at once: four bodies of the default 16 MiB
# limit. See docs/runtime.md, "Bounded memory", for what it bounds and why it is fixed.
DEFAULT_DECODE_BYTES = 64 * 1024 * 1024
# Kubernetes' default terminationGracePeriodSeconds is 30: drain for a bit less than that.
DRAIN_SECONDS = 25
DEFAULT_GRPC_PORT = 8081
# the metrics sidecar (proxy.py): which answers it reads predictions from
PROXY_PROTOCOLS = ("v2", "v1", "none")
# the sidecar shares the pod's network namespace with the server it fronts: an upstream
# anywhere else would make it an open relay, and its metrics another pod's
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ConfigError(ValueError):
    """A MODELROLL_* variable holds a value the runtime cannot use."""


@dataclass(frozen=True)
class Settings:
    model_name: str
    model_uri: str
    model_format: str
    model_version: str
    model_sha256: str | None
    http_host: str
    http_port: int
    grpc_port: int | None  # None: no gRPC server
    workers: int
    max_batch_size: int
    max_inflight: int
    max_body_bytes: int
    max_model_bytes: int
    max_decode_bytes: int
    body_timeout_seconds: float
    auth_token: str | None
    tls_cert_file: Path | None
    tls_key_file: Path | None
    allow_unpinned_pickle: bool
    model_dir: Path
    cache_dir: Path
    log_level: str
    exit_on_load_failure: bool
    termination_log: Path
    # drift telemetry, for a package with a reference profile (docs/drift.md)
    drift_telemetry: bool = True
    drift_max_rows_per_second: int = 1000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings in `env` (by default the process environment).

        Raises ConfigError naming the first unknown MODELROLL_* variable or invalid value."""
        env = os.environ if env is None else env
        known = runtime_names()
        unknown = sorted(k for k in env if k.startswith(PREFIX) and k not in known)
        if unknown:
            raise ConfigError("; ".join(_unknown(name, known, "runtime") for name in unknown))
        return cls._parse(env)

    @classmethod
    def _parse(cls, env: Mapping[str, str]) -> Settings:
        tmp = Path(tempfile.gettempdir()) / "modelroll"
        model_format = env.get("MODELROLL_MODEL_FORMAT", "").strip().lower()
        if model_format not in FORMATS:
            raise ConfigError(
                f"MODELROLL_MODEL_FORMAT must be one of {', '.join(FORMATS)}, got {model_format!r}"
            )
        uri = env.get("MODELROLL_MODEL_URI", "").strip()
        if not uri:
            raise ConfigError("MODELROLL_MODEL_URI is required")
        sha = env.get("MODELROLL_MODEL_SHA256", "").strip().lower() or None
        if sha is not None:
            sha = sha.removeprefix("sha256:")
            if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
                raise ConfigError("MODELROLL_MODEL_SHA256 must be 64 hex digits")
        workers_raw = env.get("MODELROLL_WORKERS", "").strip()
        max_body = _int(env, "MODELROLL_MAX_BODY_BYTES", 16 * 1024 * 1024, 1, 2**40)
        http_port = _int(env, "MODELROLL_HTTP_PORT", 8080, 1, 65535)
        grpc_port = _port_or_off(env, "MODELROLL_GRPC_PORT", DEFAULT_GRPC_PORT)
        if grpc_port == http_port:
            raise ConfigError(f"MODELROLL_GRPC_PORT and MODELROLL_HTTP_PORT are both {http_port}")
        tls_cert = env.get("MODELROLL_TLS_CERT_FILE", "").strip()
        tls_key = env.get("MODELROLL_TLS_KEY_FILE", "").strip()
        if bool(tls_cert) != bool(tls_key):
            # one without the other would serve plain HTTP where HTTPS was asked for
            raise ConfigError("MODELROLL_TLS_CERT_FILE and MODELROLL_TLS_KEY_FILE go together")
        return cls(
            model_name=env.get("MODELROLL_MODEL_NAME", "model").strip() or "model",
            model_uri=uri,
            model_format=model_format,
            model_version=env.get("MODELROLL_MODEL_VERSION", "1").strip() or "1",
            model_sha256=sha,
            http_host=env.get("MODELROLL_HTTP_HOST", "0.0.0.0"),
            http_port=http_port,
            grpc_port=grpc_port,
            workers=(_int(env, "MODELROLL_WORKERS", 1, 1, 1024) if workers_raw else cpu_limit()),
            max_batch_size=_int(env, "MODELROLL_MAX_BATCH_SIZE", 32, 1, 1_000_000),
            max_inflight=_int(env, "MODELROLL_MAX_INFLIGHT", 1024, 1, 10_000_000),
            max_body_bytes=max_body,
            max_model_bytes=_int(
                env, "MODELROLL_MAX_MODEL_BYTES", DEFAULT_MAX_MODEL_BYTES, 1, 2**50
            ),
            # a cap below one body's limit would refuse every body of the largest size
            max_decode_bytes=_int(
                env,
                "MODELROLL_MAX_DECODE_BYTES",
                max(DEFAULT_DECODE_BYTES, max_body),
                max_body,
                2**40,
            ),
            body_timeout_seconds=_float(env, "MODELROLL_BODY_TIMEOUT_SECONDS", 30.0, minimum=0.001),
            auth_token=env.get("MODELROLL_AUTH_TOKEN") or None,
            tls_cert_file=Path(tls_cert) if tls_cert else None,
            tls_key_file=Path(tls_key) if tls_key else None,
            allow_unpinned_pickle=_bool(env, "MODELROLL_ALLOW_UNPINNED_PICKLE"),
            model_dir=Path(env.get("MODELROLL_MODEL_DIR") or tmp / "models"),
            cache_dir=Path(env.get("MODELROLL_CACHE_DIR") or tmp / "cache"),
            log_level=_choice(env, "MODELROLL_LOG_LEVEL", "INFO", LOG_LEVELS),
            exit_on_load_failure=_bool(env, "MODELROLL_EXIT_ON_LOAD_FAILURE"),
            termination_log=Path(env.get("MODELROLL_TERMINATION_LOG", "/dev/termination-log")),
            drift_telemetry=_bool(env, "MODELROLL_DRIFT_TELEMETRY", default=True),
            drift_max_rows_per_second=_int(
                env, "MODELROLL_DRIFT_MAX_ROWS_PER_SECOND", 1000, 0, 1_000_000_000
            ),
        )


@dataclass(frozen=True)
class ProxySettings:
    """The metrics sidecar's settings (`python -m modelroll_runtime.proxy`, docs/runtime.md,
    "Metrics sidecar"): the same names as the runtime's where they mean the same."""

    upstream: str  # http://127.0.0.1:PORT, no path
    protocol: str  # one of PROXY_PROTOCOLS
    model_name: str
    model_version: str
    model_dir: Path
    http_host: str
    http_port: int
    max_inflight: int
    max_body_bytes: int
    max_decode_bytes: int
    body_timeout_seconds: float
    log_level: str
    drift_telemetry: bool
    drift_max_rows_per_second: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProxySettings:
        """Raises ConfigError naming the first variable the sidecar does not read (the
        runtime's MODELROLL_AUTH_TOKEN, say: ignored, it would look like auth it does not
        do) or invalid value."""
        env = os.environ if env is None else env
        known = proxy_names() | _IMAGE_DEFAULTS
        unknown = sorted(k for k in env if k.startswith(PREFIX) and k not in known)
        if unknown:
            raise ConfigError("; ".join(_unknown(name, known, "sidecar") for name in unknown))
        return cls._parse(env)

    @classmethod
    def _parse(cls, env: Mapping[str, str]) -> ProxySettings:
        # the runtime's own parser gives the shared names their defaults and limits
        shared = {k: env[k] for k in _PROXY_SHARED if k in env}
        base = Settings._parse(
            {**shared, "MODELROLL_MODEL_FORMAT": "onnx", "MODELROLL_MODEL_URI": "-",
             "MODELROLL_WORKERS": "1", "MODELROLL_GRPC_PORT": "off"}
        )  # fmt: skip
        protocol = env.get("MODELROLL_PROXY_PROTOCOL", "").strip().lower() or "v2"
        if protocol not in PROXY_PROTOCOLS:
            raise ConfigError(
                f"MODELROLL_PROXY_PROTOCOL must be one of {', '.join(PROXY_PROTOCOLS)}, "
                f"got {protocol!r}"
            )
        return cls(
            upstream=_upstream(env.get("MODELROLL_PROXY_UPSTREAM", "")),
            protocol=protocol,
            model_name=base.model_name,
            model_version=base.model_version,
            model_dir=Path(env.get("MODELROLL_MODEL_DIR") or "/mnt/models"),
            http_host=base.http_host,
            http_port=base.http_port,
            max_inflight=base.max_inflight,
            max_body_bytes=base.max_body_bytes,
            max_decode_bytes=base.max_decode_bytes,
            body_timeout_seconds=base.body_timeout_seconds,
            log_level=base.log_level,
            drift_telemetry=base.drift_telemetry,
            drift_max_rows_per_second=base.drift_max_rows_per_second,
        )


# the image's ENV sets it for the runtime; the sidecar, the same image, compiles nothing
_IMAGE_DEFAULTS = frozenset({"MODELROLL_CACHE_DIR"})
# the runtime's settings that mean the same in the sidecar
_PROXY_SHARED = (
    "MODELROLL_MODEL_NAME", "MODELROLL_MODEL_VERSION", "MODELROLL_HTTP_HOST",
    "MODELROLL_HTTP_PORT", "MODELROLL_MAX_INFLIGHT", "MODELROLL_MAX_BODY_BYTES",
    "MODELROLL_MAX_DECODE_BYTES", "MODELROLL_BODY_TIMEOUT_SECONDS", "MODELROLL_LOG_LEVEL",
    "MODELROLL_DRIFT_TELEMETRY", "MODELROLL_DRIFT_MAX_ROWS_PER_SECOND",
)  # fmt: skip


def _upstream(raw: str) -> str:
    """MODELROLL_PROXY_UPSTREAM as `http://host:port`, or ConfigError unless it is plain
    HTTP to a loopback address with a port and nothing else."""
    raw = raw.strip()
    if not raw:
        raise ConfigError("MODELROLL_PROXY_UPSTREAM is required, e.g. http://127.0.0.1:8000")
    url = urllib.parse.urlsplit(raw)
    try:
        port = url.port
    except ValueError:
        port = None
    problem = ""
    if url.scheme != "http":
        problem = "its scheme must be http (the server shares the pod's loopback)"
    elif url.hostname not in LOOPBACK_HOSTS:
        problem = "its host must be 127.0.0.1, localhost or [::1]: the server in the same pod"
    elif port is None or not 1 <= port <= 65535:
        problem = "it needs a port between 1 and 65535"
    elif url.username is not None or url.path not in ("", "/") or url.query or url.fragment:
        problem = "it must be only scheme, host and port"
    if problem:
        raise ConfigError(f"MODELROLL_PROXY_UPSTREAM={raw!r}: {problem}")
    return f"http://{url.netloc}"


@functools.cache
def known_names() -> frozenset[str]:
    """Every variable the runtime or the sidecar reads (docs/runtime.md's table)."""
    return runtime_names() | proxy_names()


@functools.cache
def runtime_names() -> frozenset[str]:
    """Every variable the runtime's parser reads, recorded while it parses a valid
    environment: so this set is the parser itself, not a second list beside it that could
    drift."""
    reads = _RecordingEnv(
        {
            "MODELROLL_MODEL_FORMAT": "onnx",
            "MODELROLL_MODEL_URI": "model.onnx",
            "MODELROLL_WORKERS": "1",
        }
    )
    Settings._parse(reads)
    return frozenset(reads.looked_up)


@functools.cache
def proxy_names() -> frozenset[str]:
    """The variables the sidecar's parser reads, recorded the same way."""
    reads = _RecordingEnv({"MODELROLL_PROXY_UPSTREAM": "http://127.0.0.1:8000"})
    ProxySettings._parse(reads)
    return frozenset(reads.looked_up)


class _RecordingEnv(Mapping[str, str]):
    """A mapping that remembers which keys were looked up (get() goes through __getitem__)."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values
        self.looked_up: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.looked_up.add(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _unknown(name: str, known: frozenset[str], what: str) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
    hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(sorted(known))}"
    return f"{name} is not a {what} setting ({hint})"


def cpu_limit(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The container's CPU limit, rounded up, from cgroup v2 or v1; the host's CPUs if unset."""
    try:
        quota, period = (cgroup_root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((cgroup_root / "cpu" / "cpu.cfs_period_us").read_text())
        if quota_us > 0:
            return max(1, -(-quota_us // period_us))
    except (OSError, ValueError):
        pass
    return max(1, len(os.sched_getaffinity(0)))


def _int(env: Mapping[str, str], key: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{key} must be between {lo} and {hi}, got {value}")
    return value


def _port_or_off(env: Mapping[str, str], key: str, default: int) -> int | None:
    """A TCP port, or None for `0` or `off`."""
    if env.get(key, "").strip().lower() in ("0", "off"):
        return None
    return _int(env, key, default, 1, 65535)


def _float(env: Mapping[str, str], key: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{key} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{key} must be a finite number of at least {minimum:g}, got {raw!r}")
    return value


def _choice(env: Mapping[str, str], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(key, "").strip().upper() or default
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _bool(env: Mapping[str, str], key: str, default: bool = False) -> bool:
    raw = env.get(key, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key} must be true or false, got {raw!r}")
