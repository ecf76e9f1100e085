"""One JSON request to a serving runtime's inference endpoint (smoke tests, `modelroll predict`)."""

from __future__ import annotations

import json
from typing import Any

from modelroll.outbound import DEFAULT_DEADLINE_SECONDS, MAX_BODY_BYTES, Answer, request
from modelroll.tls import Trust


def infer_path(model: str, protocol: str) -> str:
    if protocol == "v1":
        return f"/v1/models/{model}:predict"
    return f"/v2/models/{model}/infer"


def post_inference(
    base_url: str,
    model: str,
    protocol: str,
    body: Any,
    timeout: float = DEFAULT_DEADLINE_SECONDS,
    max_bytes: int = MAX_BODY_BYTES,
    token: str | None = None,
    trust: Trust | None = None,
) -> Answer:
    """The answer of any non-redirect status; a failure to get one raises OSError
    (`modelroll.outbound.OutboundError`). `timeout` bounds the whole request; `token`, when
    given, goes as `Authorization: Bearer <token>` (the runtime's auth); `trust` verifies an
    https:// runtime (the runtime's TLS)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return request(
        "POST",
        base_url.rstrip("/") + infer_path(model, protocol),
        body=json.dumps(body).encode(),
        headers=headers,
        deadline=timeout,
        max_bytes=max_bytes,
        trust=trust,
    )


def runtime_error(body: bytes) -> str | None:
    """The message of the runtime's own error answer (`{"error": "<text>"}`, see
    modelroll_runtime.errors), shortened to one line; None for any other body."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or set(document) != {"error"}:
        return None
    message = document["error"]
    if not isinstance(message, str):
        return None
    line = " ".join(message.split())
    return line if len(line) <= 200 else line[:199] + "…"
