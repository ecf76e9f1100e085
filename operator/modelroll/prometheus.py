"""A small client for the Prometheus HTTP API: one instant query, one number back.

Only the standard library (urllib), so the operator needs no HTTP client dependency for it.
Every failure (connection, timeout, HTTP status, a body that is not a Prometheus answer, a
query that returns more than one series) is a `PrometheusError` naming the address.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from modelroll.prometheus_error import PrometheusError

__all__ = ["PrometheusClient", "PrometheusError"]

DEFAULT_TIMEOUT_SECONDS = 10.0


class PrometheusClient:
    """Instant queries against one Prometheus server (`http(s)://host:port[/prefix]`)."""

    def __init__(self, address: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.address = address.rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"PrometheusClient({self.address!r})"

    def query(self, promql: str) -> float | None:
        """Evaluates `promql` now; the value of its one sample, or None for an empty vector.

        A scalar answer is returned as is. NaN and infinities are returned as floats (PromQL
        yields NaN for 0/0 and for histogram_quantile over no observations); callers decide
        what they mean.
        """
        scheme = urllib.parse.urlsplit(self.address).scheme
        if scheme not in ("http", "https"):
            raise PrometheusError(
                f"Prometheus address {self.address!r} is not an http:// or https:// URL"
            )
        url = f"{self.address}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise PrometheusError(
                f"Prometheus at {self.address} answered HTTP {exc.code}: {_error_text(exc)}"
            ) from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise PrometheusError(
                f"Prometheus at {self.address} is unreachable: {reason or type(exc).__name__}"
            ) from exc
        return _parse(self.address, raw)


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read()
    except OSError:
        return str(exc.reason)
    try:
        document = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace").strip() or str(exc.reason)
    if isinstance(document, dict) and "error" in document:
        return f"{document.get('errorType', 'error')}: {document['error']}"
    return str(exc.reason)


def _parse(address: str, raw: bytes) -> float | None:
    try:
        document: Any = json.loads(raw)
    except ValueError as exc:
        raise PrometheusError(f"Prometheus at {address} answered with invalid JSON") from exc
    if not isinstance(document, dict):
        raise PrometheusError(f"Prometheus at {address} answered with an unexpected document")
    if document.get("status") != "success":
        raise PrometheusError(
            f"Prometheus at {address} reported {document.get('errorType', 'an error')}: "
            f"{document.get('error', document.get('status'))}"
        )
    data = document.get("data")
    if not isinstance(data, dict):
        raise PrometheusError(f"Prometheus at {address} answered without data")
    result_type, result = data.get("resultType"), data.get("result")
    if result_type == "scalar":
        return _sample_value(address, result)
    if result_type != "vector" or not isinstance(result, list):
        raise PrometheusError(
            f"Prometheus at {address} answered a {result_type}; the query must give an "
            "instant vector or a scalar"
        )
    if not result:
        return None
    if len(result) > 1:
        raise PrometheusError(
            f"query returned {len(result)} series from Prometheus at {address}; it must "
            "return one (aggregate it, for example with sum() or max())"
        )
    sample = result[0]
    if not isinstance(sample, dict):
        raise PrometheusError(f"Prometheus at {address} answered a malformed sample")
    return _sample_value(address, sample.get("value"))


def _sample_value(address: str, pair: Any) -> float:
    """`[<unix time>, "<value>"]` → value; Prometheus spells NaN and ±Inf as strings."""
    if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[1], str):
        raise PrometheusError(f"Prometheus at {address} answered a malformed sample")
    try:
        value = float(pair[1])
    except ValueError as exc:
        raise PrometheusError(
            f"Prometheus at {address} answered a non-numeric sample {pair[1]!r}"
        ) from exc
    return value
