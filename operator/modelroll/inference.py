"""One JSON request to a serving runtime's inference endpoint (smoke tests, `modelroll predict`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def infer_path(model: str, protocol: str) -> str:
    if protocol == "v1":
        return f"/v1/models/{model}:predict"
    return f"/v2/models/{model}/infer"


def post_inference(
    base_url: str, model: str, protocol: str, body: Any, timeout: float
) -> tuple[int, bytes]:
    """Returns (status, body) for any HTTP answer; connection failures raise OSError."""
    request = urllib.request.Request(
        base_url.rstrip("/") + infer_path(model, protocol),
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
