"""Large request bodies are decoded in a child process, so the event loop keeps answering.

orjson holds the GIL for a whole parse (measured: 0.6-0.7 s for a 15 MB body of nested rows
on the 2-core CI machine, 0.15 s for a flat one), and numpy's conversion of the lists holds
it too, so a decode thread would stall the loop, and the health probes with it, just as
long. The child parses a body above INLINE_DECODE_BELOW bytes with the same v1/v2 code,
checks it against the model's inputs, and hands back the numpy arrays; the loop only moves
bytes. They travel over a socket pair as pickle protocol 5 with out-of-band buffers: each
array's bytes are received straight into the buffer the parent's array then wraps, one copy
in small steps, where a pipe read through asyncio's StreamReader costs three copies in one
go (measured: 50-100 ms of loop time for a 15 MB body's arrays on the 2-core CI machine).

The ~8x amplification of a JSON decode (Python floats and lists) is the child's memory, one
body at a time, and the child exits after IDLE_EXIT_S without work, so the whole burst's
memory goes back to the system with it. It runs at a lower CPU priority (nice), so on a busy
CPU the server's own loop, small requests and health probes go first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import socket
import struct
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import malloc
from .errors import RequestError
from .formats.base import Array, Model, TensorSpec
from .request_body import LARGE_BODY_BYTES, Body

# Below this many bytes a body is decoded on the loop: ~1-3 ms of parse, less than the trip
# to the child costs. The benchmark's bodies (1 and 32 rows) are 0.1-2 KB.
INLINE_DECODE_BELOW = LARGE_BODY_BYTES
IDLE_EXIT_S = 5.0
NICE = 10
# a request: lengths of its pickled part and of the raw body after it; an answer: lengths of
# its pickled part and of the number of out-of-band buffers (each then sent as its length
# and its bytes)
_FRAME = struct.Struct("<QQ")
_LENGTH = struct.Struct("<Q")


_PLAIN = (str, int, float, bool, tuple, list, dict, frozenset)
_PLAIN_BYTES = 64 * 1024


@dataclass  # not frozen: formats.base.Model declares plain attributes
class ModelShape:
    """What decoding reads of a model, without the model: the child never loads it."""

    backend: str
    inputs: tuple[TensorSpec, ...]
    output_names: tuple[str, ...]
    default_outputs: tuple[str, ...]

    @classmethod
    def of(cls, model: Model) -> ModelShape:
        """The model's public plain-data attributes (names, specs, flags; never its session,
        estimator or booster): whatever decoding reads of a model, now or later, the child
        has it too."""
        shape = cls(model.backend, model.inputs, model.output_names, model.default_outputs)
        for name in dir(model):
            value = getattr(model, name, None)
            if name.startswith("_") or hasattr(shape, name) or not isinstance(value, _PLAIN):
                continue
            try:
                if len(pickle.dumps(value)) <= _PLAIN_BYTES:
                    setattr(shape, name, value)
            except Exception:  # holds something that does not pickle: not plain after all
                continue
        return shape

    def load(self, model_file: Path) -> None:
        raise NotImplementedError("the decoder holds a model's shape, not the model")

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        raise NotImplementedError("the decoder holds a model's shape, not the model")


def inline(body: Body, binary_header: str | None) -> bool:
    """Whether a body is cheap enough to decode on the loop: only its JSON part is parsed
    (binary tensor data is one copy however large)."""
    if isinstance(body, bytes) and len(body) < INLINE_DECODE_BELOW:
        return True
    return (
        binary_header is not None
        and binary_header.isdigit()
        and (int(binary_header) < INLINE_DECODE_BELOW)
    )


class Decoder:
    """The parent's side: one child at a time, started on demand, one body at a time."""

    def __init__(self, model: Model, allow_missing: bool) -> None:
        shape = ModelShape.of(model)
        self._hello = pickle.dumps((shape, allow_missing), protocol=pickle.HIGHEST_PROTOCOL)
        self._child: subprocess.Popen[bytes] | None = None
        self._socket: socket.socket | None = None
        self._lock = asyncio.Lock()
        self._idle: asyncio.TimerHandle | None = None

    async def decode(self, protocol: str, body: Body, binary_header: str | None) -> Any:
        """What v2.decode_request (protocol "v2"), v1.decode_request ("v1") or
        grpc_codec.decode_request ("grpc") returns for the body; the same RequestError when
        it is malformed."""
        async with self._lock:
            if self._idle is not None:
                self._idle.cancel()
                self._idle = None
            try:
                sock = self._socket or await self._start()
                loop = asyncio.get_running_loop()
                meta = pickle.dumps((protocol, binary_header))
                chunks = [body] if isinstance(body, bytes) else body
                total = sum(len(chunk) for chunk in chunks)
                await loop.sock_sendall(sock, _FRAME.pack(len(meta), total) + meta)
                for chunk in chunks:
                    await loop.sock_sendall(sock, chunk)
                kind, value = await _receive_answer(loop, sock)
            except BaseException:
                self._stop()  # a frame half written or half read leaves the pipes unusable
                raise
            self._idle = asyncio.get_running_loop().call_later(IDLE_EXIT_S, self._stop)
        if kind == "error":
            raise RequestError(*value)
        if kind == "crash":
            raise RuntimeError(f"decoder failed: {value}")
        return value

    def close(self) -> None:
        if self._child is not None:
            self._child.kill()

    async def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair()
        try:
            # Popen, not the loop's subprocess API: CPython spawns with vfork, which takes
            # ~1 ms however large this process is; uvloop forks, measured at 50-90 ms of
            # blocked loop on the 2-core CI machine with the burst's bodies in memory
            child = subprocess.Popen(
                [sys.executable, "-m", "modelroll_runtime.decoder", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        with contextlib.suppress(OSError):  # at once, before it imports numpy: below the loop
            os.setpriority(os.PRIO_PROCESS, child.pid, NICE)
        ours.setblocking(False)
        self._child, self._socket = child, ours
        await asyncio.get_running_loop().sock_sendall(
            ours, _FRAME.pack(len(self._hello), 0) + self._hello
        )
        return ours

    def _stop(self) -> None:
        """End the child, idle between bodies or with a broken frame, and reap it."""
        child, self._child, self._idle = self._child, None, None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if child is None:
            return
        child.kill()
        asyncio.get_running_loop().run_in_executor(None, child.wait)  # reap it, off the loop


async def _receive_answer(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> Any:
    meta_size, buffers = _FRAME.unpack(await _receive(loop, sock, _FRAME.size))
    meta = await _receive(loop, sock, meta_size)
    received = []
    for _ in range(buffers):
        (size,) = _LENGTH.unpack(await _receive(loop, sock, _LENGTH.size))
        received.append(await _receive(loop, sock, size))
    return pickle.loads(meta, buffers=received)


async def _receive(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    done = 0
    while done < size:
        got = await loop.sock_recv_into(sock, view[done:])
        if got == 0:
            raise ConnectionError("the decoder exited")
        done += got
    return buffer


# -- the child --


def _read_frame(sock: socket.socket) -> tuple[bytes, bytes] | None:
    head = _receive_blocking(sock, _FRAME.size)
    if head is None:
        return None  # the parent closed its end (idle, or it exited): so do we
    meta_size, body_size = _FRAME.unpack(head)
    meta, body = _receive_blocking(sock, meta_size), _receive_blocking(sock, body_size)
    if meta is None or body is None:
        return None
    return bytes(meta), bytes(body)


def _receive_blocking(sock: socket.socket, size: int) -> bytearray | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    done = 0
    while done < size:
        got = sock.recv_into(view[done:])
        if got == 0:
            return None
        done += got
    return buffer


def _send_answer(sock: socket.socket, answer: object) -> None:
    buffers: list[pickle.PickleBuffer] = []
    meta = pickle.dumps(answer, protocol=5, buffer_callback=buffers.append)
    sock.sendall(_FRAME.pack(len(meta), len(buffers)) + meta)
    for buffer in buffers:
        raw = buffer.raw()
        sock.sendall(_LENGTH.pack(raw.nbytes))
        sock.sendall(raw)


def _decode(model: ModelShape, allow_missing: bool, meta: bytes, body: bytes) -> object:
    from . import v1, v2

    protocol, binary_header = pickle.loads(meta)
    try:
        if protocol == "v2":
            return ("ok", v2.decode_request(body, binary_header, model, allow_missing))
        if protocol == "grpc":  # a ModelInferRequest message (grpc_server.py)
            from . import grpc_codec

            return ("ok", grpc_codec.decode_request(grpc_codec.parse(body), model, allow_missing))
        return ("ok", v1.decode_request(body, model, allow_missing))
    except RequestError as exc:
        return ("error", (exc.status, exc.message))
    except Exception as exc:  # a bug here must cost one request, not the child
        return ("crash", f"{type(exc).__name__}: {exc}")


def main(fd: int) -> None:
    malloc.limit_retention()
    sock = socket.socket(fileno=fd)
    hello = _read_frame(sock)
    if hello is None:
        return
    model, allow_missing = pickle.loads(hello[0])
    while (frame := _read_frame(sock)) is not None:
        answer = _decode(model, allow_missing, *frame)
        del frame
        _send_answer(sock, answer)
        del answer
        malloc.trim()


if __name__ == "__main__":
    main(int(sys.argv[1]))
