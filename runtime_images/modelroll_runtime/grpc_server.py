"""The Open Inference Protocol over gRPC: inference.GRPCInferenceService, on its own port.

It runs on the worker's event loop beside granian's HTTP server, on the same RuntimeApp:
the same model, batcher, in-flight slots, byte budget, auth token and metrics (protocol
"grpc"). A ModelInfer arrives as the raw message bytes, so a large one is parsed and decoded
in the decoder child, as a large REST body is (decoder.py), and never stalls the loop.

Request errors keep the REST path's messages and map to gRPC codes: 400 INVALID_ARGUMENT,
401 UNAUTHENTICATED, 404 NOT_FOUND, 503 UNAVAILABLE (not ready, overloaded, or the byte
budget full: retry). A failure inside the model is INTERNAL, and the server serves on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc
import grpc.aio

from . import decoder, grpc_codec
from .errors import RequestError
from .oip import grpc_predict_v2_pb2 as pb

if TYPE_CHECKING:
    from .app import RuntimeApp

log = logging.getLogger("modelroll.runtime")

SERVICE = "inference.GRPCInferenceService"
# The REST path's status of a RequestError, as a gRPC code.
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
# the status a call cancelled by its client is counted under (nginx's "client closed")
CLIENT_CLOSED = 499

Request = TypeVar("Request")
Context = grpc.aio.ServicerContext[Any, Any]


class GrpcServer:
    def __init__(self, app: RuntimeApp, host: str, port: int) -> None:
        self._app = app
        self._address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        options = [
            # the REST body limit holds for a gRPC message too
            ("grpc.max_receive_message_length", app.settings.max_body_bytes),
            ("grpc.max_send_message_length", -1),
            # each of several workers binds the port (the kernel spreads the connections);
            # with one, a port already taken is an error rather than shared
            ("grpc.so_reuseport", 1 if app.settings.workers > 1 else 0),
        ]
        self._server = grpc.aio.server(options=options)
        unary = grpc.unary_unary_rpc_method_handler
        handlers = {
            "ServerLive": unary(self._server_live, pb.ServerLiveRequest.FromString, _serialize),
            "ServerReady": unary(self._server_ready, pb.ServerReadyRequest.FromString, _serialize),
            "ModelReady": unary(
                self._guarded(self._model_ready), pb.ModelReadyRequest.FromString, _serialize
            ),
            "ServerMetadata": unary(
                self._guarded(self._server_metadata),
                pb.ServerMetadataRequest.FromString,
                _serialize,
            ),
            "ModelMetadata": unary(
                self._guarded(self._model_metadata),
                pb.ModelMetadataRequest.FromString,
                _serialize,
            ),
            # bytes in and out: the message is parsed here, or in the decoder child
            "ModelInfer": unary(self._model_infer),
        }
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),)
        )

    async def start(self) -> None:
        # raises RuntimeError if it cannot bind
        settings = self._app.settings
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            # with TLS asked for, no port of ours may answer in the clear: gRPC is TLS too,
            # with the same certificate the HTTP port serves
            credentials = grpc.ssl_server_credentials(
                [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())]
            )
            self._server.add_secure_port(self._address, credentials)
        else:
            self._server.add_insecure_port(self._address)
        await self._server.start()
        log.info("gRPC serving", extra={"address": self._address, "service": SERVICE})

    async def stop(self, grace: float) -> None:
        """Refuse new calls, and give those in flight up to `grace` seconds to finish."""
        await self._server.stop(grace)

    # -- the calls --

    async def _server_live(self, request: pb.ServerLiveRequest, context: Context) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def _server_ready(self, request: pb.ServerReadyRequest, context: Context) -> Any:
        return pb.ServerReadyResponse(ready=self._app.ready())

    async def _model_ready(self, request: pb.ModelReadyRequest, context: Context) -> Any:
        self._app.check_model(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=self._app.model is not None)

    async def _server_metadata(self, request: pb.ServerMetadataRequest, context: Context) -> Any:
        return pb.ServerMetadataResponse(**self._app.server_metadata())

    async def _model_metadata(self, request: pb.ModelMetadataRequest, context: Context) -> Any:
        self._app.check_model(request.name, request.version or None)
        document = self._app.metadata()
        return pb.ModelMetadataResponse(
            name=document["name"],
            versions=document["versions"],
            platform=document["platform"],
            inputs=[
                pb.ModelMetadataResponse.TensorMetadata(**t) for t in document.get("inputs", [])
            ],
            outputs=[
                pb.ModelMetadataResponse.TensorMetadata(**t) for t in document.get("outputs", [])
            ],
        )

    async def _model_infer(self, message: bytes, context: Context) -> bytes:
        app = self._app
        try:  # as on REST, refused before the model's name is known: not counted
            app.check_authorization(_authorization(context))
            request = grpc_codec.parse(message)
            app.check_model(request.model_name, request.model_version or None)
        except RequestError as exc:
            await _abort(context, exc)
        started = time.perf_counter()
        status = 500
        taken = 0
        admitted = False
        try:
            model, batcher = app.serving()
            app.budget.take(len(message))
            taken = len(message)
            app.admit()
            admitted = True
            if decoder.inline(message, None):
                infer = grpc_codec.decode_request(request, model, app.allow_missing)
            else:
                infer = await app.decode_large("grpc", message, None)
            results = await batcher.predict(infer.inputs, infer.outputs, infer.rows)
            raw = bool(request.raw_input_contents)
            answer = grpc_codec.encode_response(app.name, app.version, infer, results, raw)
            status = 200
            return answer
        except RequestError as exc:
            status = exc.status
            await _abort(context, exc)
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        except Exception as exc:
            # the model failed on input we accepted: a server-side error, and we keep serving
            log.exception("prediction failed", extra={"protocol": "grpc"})
            await context.abort(
                grpc.StatusCode.INTERNAL, f"prediction failed: {type(exc).__name__}: {exc}"
            )
        finally:
            if admitted:
                app.release()
            app.give_back(taken)
            app.metrics.record("grpc", status, time.perf_counter() - started)

    def _guarded(
        self, call: Callable[[Request, Context], Awaitable[Any]]
    ) -> Callable[[Request, Context], Awaitable[Any]]:
        """The call behind the bearer token, its RequestErrors as gRPC status codes."""

        async def guarded(request: Request, context: Context) -> Any:
            try:
                self._app.check_authorization(_authorization(context))
                return await call(request, context)
            except RequestError as exc:
                await _abort(context, exc)

        return guarded


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


def _authorization(context: Context) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            return value
    return ""


async def _abort(context: Context, error: RequestError) -> NoReturn:
    """Ends the call with the error's code and message (context.abort raises)."""
    await context.abort(CODES.get(error.status, grpc.StatusCode.INTERNAL), error.message)
