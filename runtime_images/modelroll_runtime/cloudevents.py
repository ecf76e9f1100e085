"""CloudEvents binary mode, as KServe answers it: a request that carries the required ce-*
attributes as headers gets its response described as an event in ce-* headers too.

KServe builds the response event with a fresh id and time and with its own type and source
(`io.kserve.inference.response`, `io.kserve.inference.<model>`); the body stays the plain
inference response. Structured mode (the event as the JSON body) is not read.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

# the attributes the CloudEvents spec requires of every event
_REQUIRED = ("ce-specversion", "ce-id", "ce-source", "ce-type")
RESPONSE_TYPE = "io.kserve.inference.response"


class Headers(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...


def is_binary_event(headers: Headers) -> bool:
    return all(headers.get(name) for name in _REQUIRED)


def response_headers(model_name: str) -> list[tuple[str, str]]:
    now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return [
        ("ce-specversion", "1.0"),
        ("ce-id", str(uuid.uuid4())),
        ("ce-source", f"io.kserve.inference.{model_name}"),
        ("ce-type", RESPONSE_TYPE),
        ("ce-time", now),
    ]
