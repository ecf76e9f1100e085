"""The RSGI application one worker serves: routing, limits, auth, and the V1/V2 endpoints;
it also runs the worker's gRPC server (grpc_server.py), on the same model and limits.

Granian parses HTTP in Rust and hands us the body as bytes, so per request the Python side
does only routing, an orjson parse, a numpy conversion, a queue hop to the predict thread,
and an orjson dump. No log line is written per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import importlib
import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import orjson

from . import __version__, cloudevents, decoder, loader, malloc, request_body, v1, v2
from .batcher import AdaptiveBatcher
from .byte_budget import ByteBudget
from .config import DRAIN_SECONDS, MULTIPROC_ENV, Settings
from .errors import RequestError, bad_request
from .formats import FORMATS, Model
from .formats.base import TensorSpec
from .loader import LoadedModel, ModelLoadError, load
from .metrics import RuntimeMetrics
from .source import display_uri
from .telemetry import DriftTelemetry

# the model libraries a packaged ONNX model is served without: the "model ready" log line
# says which of them are imported (tests/runtime/test_package.py reads it)
NATIVE_MODULES = ("sklearn", "xgboost", "lightgbm", "scipy")

if TYPE_CHECKING:
    from .grpc_server import GrpcServer

log = logging.getLogger("modelroll.runtime")

JSON = "application/json"
# Below this one-row predict cost, a hop to the predict thread costs more than the predict.
INLINE_PREDICT_BELOW_S = 50e-6
# "/" is KServe's liveness route, which the KServe SDK's V1 client checks
_OPEN_PATHS = frozenset({"/", "/v2/health/live", "/v2/health/ready", "/metrics"})
_LISTINGS = frozenset({"/v1/models", "/v2/models"})


class Headers(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...


class Scope(Protocol):
    method: str
    path: str

    @property
    def headers(self) -> Headers: ...


class HTTPProtocol(Protocol):
    async def __call__(self) -> bytes: ...

    def __aiter__(self) -> Any: ...

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...


class RuntimeApp:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name, self.version = settings.model_name, settings.model_version
        self.metrics = RuntimeMetrics(self.name, self.version)
        self.model: Model | None = None
        self.batcher: AdaptiveBatcher | None = None
        self.backend = ""
        self.outputs: tuple[TensorSpec, ...] = ()  # as the warm-up answered them
        self.load_error = ""
        self.compilation: dict[str, Any] = {}
        self.inflight = 0
        self.allow_missing = FORMATS[settings.model_format].accepts_missing
        self._v1_probabilities = FORMATS[settings.model_format].v1_probabilities
        self._json_headers = [
            ("content-type", JSON),
            ("x-model-name", self.name),
            ("x-model-version", self.version),
        ]
        self._token = settings.auth_token.encode() if settings.auth_token else None
        self.budget = ByteBudget(settings.max_decode_bytes)
        self._bodies = request_body.BodyReader(
            settings.max_body_bytes, settings.body_timeout_seconds, self.budget
        )
        self._decoder: decoder.Decoder | None = None  # for large bodies, once the model is here
        self._loader: threading.Thread | None = None
        self.telemetry: DriftTelemetry | None = None
        self._stop_flushing = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._grpc: asyncio.Task[GrpcServer] | None = None
        self.grpc_serving = False
        self._stopping = False
        self._closing: asyncio.Task[None] | None = None

    # -- lifecycle (granian calls these in each worker) --

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loader = threading.Thread(target=self._load, name="model-loader", daemon=True)
        self._loader.start()

    def _serve_grpc_soon(self) -> None:
        """The loader thread's last act: the gRPC server starts once the load has ended (ready
        or failed), so that its imports (grpc and protobuf: ~0.05 s of CPU, 0.1-0.4 s on a busy
        one) never slow the load, the HTTP side's readiness with it. /v2/health/ready (the
        pod's readiness) waits for it too; the model's own readiness does not."""
        if self.settings.grpc_port is None or self._loop is None:
            return
        # RuntimeError: the loop is closed, the server stopped meanwhile
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._begin_grpc)

    def _begin_grpc(self) -> None:
        if not self._stopping:
            self._grpc = asyncio.ensure_future(self._start_grpc())

    async def _start_grpc(self) -> GrpcServer:
        # imported on a thread, so that the loop keeps answering HTTP meanwhile (the import
        # is ~0.05 s of CPU), and here: only a server with gRPC on pays for it
        await asyncio.to_thread(importlib.import_module, f"{__package__}.grpc_server")
        from .grpc_server import GrpcServer

        assert self.settings.grpc_port is not None
        server = GrpcServer(self, self.settings.http_host, self.settings.grpc_port)
        try:
            await server.start()
        except Exception as exc:  # a port taken or not ours: stop, as granian does for HTTP
            self._fatal("GrpcListenFailed", f"gRPC port {self.settings.grpc_port}: {exc}")
        gc.freeze()  # grpc's and protobuf's modules, imported since the load's freeze
        self.grpc_serving = True
        return server

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stopping = True
        loader.terminate_compilers()  # a stop during the first compile must not orphan the child
        self._stop_flushing.set()
        if self._grpc is None:
            self._close()
        elif loop.is_running():  # granian's embedded server: __main__ awaits closed()
            self._closing = loop.create_task(self._stop_grpc_then_close())
        else:  # a granian worker process, whose loop has stopped
            loop.run_until_complete(self._stop_grpc_then_close())

    async def _stop_grpc_then_close(self) -> None:
        """gRPC stops taking calls and drains (up to DRAIN_SECONDS), like the HTTP side,
        before the batcher its calls wait on goes."""
        assert self._grpc is not None
        try:
            server = await self._grpc
            await server.stop(DRAIN_SECONDS)
        finally:
            self._close()

    async def closed(self) -> None:
        """Returns once __rsgi_del__'s work is done (the gRPC drain may outlast the call)."""
        if self._closing is not None:
            await self._closing

    def _close(self) -> None:
        if self.telemetry is not None:
            self.telemetry.flush()  # the last counts (gRPC's drain included) reach the files
        self._bodies.close()
        if self._decoder is not None:
            self._decoder.close()
        if self.batcher is not None:
            self.batcher.close()
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def _load(self) -> None:
        try:
            self._load_model()
        finally:
            self._serve_grpc_soon()

    def _load_model(self) -> None:
        settings = self.settings
        log.info(
            "loading model",
            extra={"model": self.name, "version": self.version,
                   "uri": display_uri(settings.model_uri), "format": settings.model_format},
        )  # fmt: skip
        try:
            loaded: LoadedModel = load(settings)
        except ModelLoadError as exc:
            self._load_failed(str(exc))
            return
        except Exception as exc:  # anything else is a load failure too, never a crash
            self._load_failed(f"{type(exc).__name__}: {exc}")
            return
        model = loaded.model
        inline = loaded.predict_seconds < INLINE_PREDICT_BELOW_S
        served = self._observed(model, loaded)
        self.batcher = AdaptiveBatcher(
            served, _batch_rows(model, settings.max_batch_size), self.metrics.observe_batch,
            inline=inline,
        )  # fmt: skip
        self.backend = model.backend
        self.outputs = loaded.outputs
        self.compilation = _public_evidence(loaded.compilation)
        self._decoder = decoder.Decoder(model, self.allow_missing)
        self.metrics.model_loaded(
            settings.model_format, model.backend, loaded.load_seconds,
            str(loaded.compilation.get("verdict", "")),
        )  # fmt: skip
        self.model = model  # readiness flips here, after the warm-up prediction
        log.info(
            "model ready",
            extra={"model": self.name, "version": self.version, "backend": model.backend,
                   "sha256": loaded.sha256, "load_seconds": round(loaded.load_seconds, 3),
                   "predict_us": round(loaded.predict_seconds * 1e6, 1), "inline": inline,
                   "drift_telemetry": self.telemetry is not None,
                   "native_modules": [m for m in NATIVE_MODULES if m in sys.modules]},
        )  # fmt: skip
        # What the start made (imports, the model, its session) lives as long as the process:
        # out of the collector's generations, a full collection walks only what came after,
        # instead of pausing every request in flight for the whole heap (GC_FROZEN).
        gc.freeze()

    def _observed(self, model: Model, loaded: LoadedModel) -> Model:
        """The model the batcher calls: counted by the drift telemetry where a profile says
        how, and the settings allow it; else the model itself."""
        if loaded.profile is None or not self.settings.drift_telemetry:
            return model
        from .profile import Profile, ProfileError
        from .telemetry import ObservedModel

        try:
            profile = Profile.from_document(loaded.profile)
        except (ProfileError, ValueError, TypeError, KeyError) as exc:  # served, not counted
            log.warning("drift telemetry off: %s", exc, extra={"reason": "ProfileUnusable"})
            return model
        self.telemetry = DriftTelemetry(
            profile, self.name, self.version, self.metrics.target_registry,
            self.settings.drift_max_rows_per_second,
        )  # fmt: skip
        if self.metrics.multiprocess:  # another worker may answer the scrape
            self.telemetry.flush_periodically(self._stop_flushing)
        return ObservedModel(model, self.telemetry)

    def _load_failed(self, reason: str) -> None:
        if loader.stopping():  # a stop ended the load: no failure to report, nor to exit for
            log.info("load abandoned: the server is stopping")
            return
        self.load_error = reason
        if not self.settings.exit_on_load_failure:
            log.error("ModelLoadFailed: %s", reason, extra={"reason": "ModelLoadFailed"})
            return
        self._fatal("ModelLoadFailed", reason)

    def _fatal(self, reason: str, message: str) -> NoReturn:
        """Log, write the termination message and exit 3 at once."""
        log.error("%s: %s", reason, message, extra={"reason": reason})
        try:
            with self.settings.termination_log.open("w") as out:
                out.write(f"{reason}: {message}"[:4096])
        except OSError:
            pass
        logging.shutdown()
        os._exit(3)  # granian sees a worker die and stops with a non-zero status

    # -- request handling --

    async def __rsgi__(self, scope: Scope, proto: HTTPProtocol) -> None:
        path = scope.path
        try:
            if path.startswith("/v2/models/"):
                self._check_auth(scope)
                await self._v2_model(scope, proto, path[len("/v2/models/") :])
            elif path.startswith("/v1/models/"):
                self._check_auth(scope)
                await self._v1_model(scope, proto, path[len("/v1/models/") :])
            elif path in _OPEN_PATHS:
                self._open_endpoint(scope, proto, path)
            elif path in _LISTINGS:  # KServe's model lists
                self._check_auth(scope)
                self._only(scope, "GET")
                self._json(proto, 200, {"models": [self.name]})
            elif path == "/v2/repository/index":
                self._check_auth(scope)
                self._only(scope, "POST")
                await self._repository_index(scope, proto)
            elif path == "/v2":
                self._check_auth(scope)
                self._only(scope, "GET")
                self._json(proto, 200, self.server_metadata())
            else:
                raise RequestError(404, f"no route for {path}")
        except RequestError as exc:
            self._error(proto, exc.status, exc.message)

    def _open_endpoint(self, scope: Scope, proto: HTTPProtocol, path: str) -> None:
        self._only(scope, "GET")
        if path == "/v2/health/live":
            self._json(proto, 200, {"live": True})
        elif path == "/":
            self._json(proto, 200, {"status": "alive"})
        elif path == "/v2/health/ready":
            ready = self.ready()
            self._json(proto, 200 if ready else 503, {"ready": ready})
        else:
            if self.telemetry is not None:
                self.telemetry.flush()
            body, content_type = self.metrics.exposition()
            proto.response_bytes(200, [("content-type", content_type)], body)

    async def _v2_model(self, scope: Scope, proto: HTTPProtocol, rest: str) -> None:
        name, _, tail = rest.partition("/")
        if tail.startswith("versions/"):
            version, _, tail = tail[len("versions/") :].partition("/")
            self.check_model(name, version)
        else:
            self.check_model(name, None)
        if tail == "infer":
            self._only(scope, "POST")
            await self._infer(scope, proto, "v2")
        elif tail == "ready":
            self._only(scope, "GET")
            ready = self.model is not None
            self._json(proto, 200 if ready else 503, {"name": self.name, "ready": ready})
        elif tail == "":
            self._only(scope, "GET")
            self._json(proto, 200, self.metadata())
        else:
            raise RequestError(404, f"no route for {scope.path}")

    async def _v1_model(self, scope: Scope, proto: HTTPProtocol, rest: str) -> None:
        if rest.endswith(":predict"):
            self.check_model(rest[: -len(":predict")], None)
            self._only(scope, "POST")
            await self._infer(scope, proto, "v1")
        elif ":" in rest or "/" in rest:
            raise RequestError(404, f"no route for {scope.path}; V1 serves :predict")
        else:
            self.check_model(rest, None)
            self._only(scope, "GET")
            self._json(proto, 200, {"name": self.name, "ready": self.model is not None})

    async def _infer(self, scope: Scope, proto: HTTPProtocol, protocol: str) -> None:
        started = time.perf_counter()
        try:
            model, batcher = self.serving()
        except RequestError:
            self.metrics.record(protocol, 503, time.perf_counter() - started)
            raise
        status = 500
        counted = False
        taken = 0  # bytes of the worker's ByteBudget this request holds
        try:
            # A request is in flight only once its body is here: a client that sends headers
            # and stalls holds no slot, only its connection, until the body deadline.
            body = await self._read_body(scope, proto)
            taken = request_body.size(body)
            self.admit()
            counted = True
            headers = scope.headers
            # a CloudEvent in binary mode has ce-specversion: one header read for the rest
            binary_event = headers.get("ce-specversion") and cloudevents.is_binary_event(headers)
            extra = cloudevents.response_headers(self.name) if binary_event else []
            json_headers = [*self._json_headers, *extra] if extra else self._json_headers
            if protocol == "v2":
                binary_header = headers.get(v2.BINARY_HEADER)
                if isinstance(body, bytes) and decoder.inline(body, binary_header):
                    request = v2.decode_request(body, binary_header, model, self.allow_missing)
                else:
                    request = await self.decode_large("v2", body, binary_header)
                body = b""  # the arrays replace it; the budget still counts it (see below)
                results = await batcher.predict(request.inputs, request.outputs, request.rows)
                payload, json_length = v2.encode_response(self.name, self.version, request, results)
                response_headers = json_headers
                if json_length is not None:
                    response_headers = [
                        ("content-type", "application/octet-stream"),
                        ("inference-header-content-length", str(json_length)),
                        *response_headers[1:],
                    ]
                status = 200
                proto.response_bytes(200, response_headers, payload)
            else:
                if isinstance(body, bytes) and decoder.inline(body, None):
                    inputs, rows = v1.decode_request(body, model, self.allow_missing)
                else:
                    inputs, rows = await self.decode_large("v1", body, None)
                body = b""
                output = v1.output_of(model, self._v1_probabilities)
                results = await batcher.predict(inputs, (output,), rows)
                status = 200
                proto.response_bytes(200, json_headers, v1.encode_response(results, output))
        except RequestError as exc:
            status = exc.status
            self._error(proto, status, exc.message)
        except Exception as exc:
            # the model failed on input we accepted: a server-side error, and we keep serving
            log.exception("prediction failed", extra={"protocol": protocol})
            status = 500
            self._error(proto, 500, f"prediction failed: {type(exc).__name__}: {exc}")
        finally:
            if counted:
                self.release()
            # held to the end: the body's arrays, the predict's results and the response are
            # all as large as the body, and free only now
            self.give_back(taken)
            self.metrics.record(protocol, status, time.perf_counter() - started)

    # -- the serving path both protocols take (grpc_server.py is the other) --

    def ready(self) -> bool:
        # not ready while every in-flight slot is taken: the probe then takes this pod
        # out of the Service until it can answer again, rather than let it answer 503s;
        # nor before the gRPC port listens, so that no gRPC client reaches a closed port
        return (
            self.model is not None
            and self.inflight < self.settings.max_inflight
            and (self.grpc_serving or self.settings.grpc_port is None)
        )

    def serving(self) -> tuple[Model, AdaptiveBatcher]:
        """The model and its batcher, or 503 while the model is not ready."""
        model, batcher = self.model, self.batcher
        if model is None or batcher is None:
            raise RequestError(503, f"model '{self.name}' is not ready")
        return model, batcher

    def admit(self) -> None:
        """Count a request in flight (release() uncounts it), or 503 when all slots are taken."""
        if self.inflight >= self.settings.max_inflight:
            raise RequestError(503, "server overloaded: too many requests in flight; retry")
        self.inflight += 1
        self.metrics.inflight_gauge.inc()

    def release(self) -> None:
        self.inflight -= 1
        self.metrics.inflight_gauge.dec()

    async def decode_large(
        self, protocol: str, body: request_body.Body, binary_header: str | None
    ) -> Any:
        """A large body's request, decoded in the decoder child (decoder.py)."""
        assert self._decoder is not None  # made with the model, before readiness
        return await self._decoder.decode(protocol, body, binary_header)

    def give_back(self, taken: int) -> None:
        """Return `taken` bytes to the worker's ByteBudget (self.budget)."""
        self.budget.give(taken)
        if taken >= decoder.INLINE_DECODE_BELOW and self.budget.used == 0:
            # the end of a burst of large bodies: hand the heaps' free pages back
            asyncio.get_running_loop().run_in_executor(None, malloc.trim)

    async def _read_body(self, scope: Scope, proto: HTTPProtocol) -> request_body.Body:
        return await self._bodies.read(scope.headers, proto)

    async def _repository_index(self, scope: Scope, proto: HTTPProtocol) -> None:
        """Triton's and MLServer's repository index: [{name, version, state, reason}]; with
        {"ready": true} only the models that are ready."""
        body = await self._read_body(scope, proto)
        try:
            raw = request_body.joined(body)
            request = v2.parse_json(raw) if raw.strip() else {}
        finally:
            self.give_back(request_body.size(body))
        if not isinstance(request, dict):
            raise bad_request("request body must be a JSON object")
        ready_only = request.get("ready", False)
        if not isinstance(ready_only, bool):
            raise bad_request("'ready' must be true or false")
        if self.model is not None:
            state, reason = "READY", ""
        elif self.load_error:
            state, reason = "UNAVAILABLE", self.load_error
        else:
            state, reason = "LOADING", ""
        entry = {"name": self.name, "version": self.version, "state": state, "reason": reason}
        self._json(proto, 200, [] if ready_only and state != "READY" else [entry])

    # -- helpers --

    def _check_auth(self, scope: Scope) -> None:
        self.check_authorization(scope.headers.get("authorization", ""))

    def check_authorization(self, header: str) -> None:
        """401 unless auth is off or `header` (HTTP's, or gRPC's `authorization` metadata)
        carries the bearer token."""
        if self._token is None:
            return
        # RFC 7235: the scheme is case-insensitive and is followed by one or more spaces
        scheme, _, credentials = header.partition(" ")
        right_token = hmac.compare_digest(credentials.lstrip(" ").encode(), self._token)
        if scheme.lower() != "bearer" or not right_token:
            raise RequestError(401, "missing or wrong bearer token")

    def check_model(self, name: str, version: str | None) -> None:
        if name != self.name:
            raise RequestError(404, f"model '{name}' not found; this server serves '{self.name}'")
        if version is not None and version != self.version:
            raise RequestError(
                404, f"model '{name}' has no version '{version}'; serving '{self.version}'"
            )

    @staticmethod
    def _only(scope: Scope, method: str) -> None:
        if scope.method != method:
            raise RequestError(
                405, f"method {scope.method} not allowed on {scope.path}; use {method}"
            )

    @staticmethod
    def server_metadata() -> dict[str, Any]:
        return {"name": "modelroll-runtime", "version": __version__,
                "extensions": ["binary_tensor_data"]}  # fmt: skip

    def metadata(self) -> dict[str, Any]:
        from . import tensors

        model = self.model
        document: dict[str, Any] = {
            "name": self.name,
            "versions": [self.version],
            "platform": f"modelroll-{self.settings.model_format}",
        }
        if model is not None:
            document["inputs"] = [
                {"name": s.name, "datatype": tensors.datatype_of(s.dtype), "shape": list(s.shape)}
                for s in model.inputs
            ]
            document["outputs"] = [
                {"name": s.name, "datatype": tensors.datatype_of(s.dtype), "shape": list(s.shape)}
                for s in self.outputs
            ]
            document["parameters"] = {"backend": self.backend, "compilation": self.compilation}
        return document

    def _json(self, proto: HTTPProtocol, status: int, document: Any) -> None:
        proto.response_bytes(status, self._json_headers, orjson.dumps(document))

    def _error(self, proto: HTTPProtocol, status: int, message: str) -> None:
        headers = self._json_headers
        if status == 401:
            headers = [*headers, ("www-authenticate", "Bearer")]
        elif status == 503:
            headers = [*headers, ("retry-after", "1")]
        elif status == 408:  # the rest of the body may still come: never read it
            headers = [*headers, ("connection", "close")]
        proto.response_bytes(status, headers, orjson.dumps({"error": message}))


def _batch_rows(model: Model, max_batch_size: int) -> int:
    """The most rows one predict call may take: with a fixed batch dimension, a request
    already has exactly that many rows, so merging requests would only break them."""
    fixed = [spec.shape[0] for spec in model.inputs if spec.shape and spec.shape[0] >= 0]
    return min([max_batch_size, *fixed])


def _public_evidence(meta: dict[str, Any]) -> dict[str, Any]:
    """The compiler's verdict and evidence for the metadata, without its internals."""
    return {k: v for k, v in meta.items() if k not in ("aliases", "columns", "format", "verifier")}


def create_app() -> RuntimeApp:
    """Granian's factory target: one app per worker process."""
    from . import jsonlog

    settings = Settings.from_env()
    jsonlog.configure(settings.log_level)
    malloc.limit_retention()
    return RuntimeApp(settings)
