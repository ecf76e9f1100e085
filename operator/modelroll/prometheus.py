"""A small client for the Prometheus HTTP API: one instant query, one number back (or, with
`query_by`, one number per value of a label, for counts per bin).

Requests go through `modelroll.outbound` (no redirects, a capped body, a total deadline).
Every failure (connection, timeout, HTTP status, a body that is not a Prometheus answer, a
query that returns more than one series) is a `PrometheusError` naming the address; its
message quotes nothing of the body but Prometheus's own error fields.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from modelroll.outbound import MAX_BODY_BYTES, request
from modelroll.prometheus_error import PrometheusError

__all__ = ["PrometheusClient", "PrometheusError"]

DEFAULT_TIMEOUT_SECONDS = 10.0
# query_by: more series than this is not a bounded set of bins (the body cap bounds it too);
# the runtime's cap is 1024 feature bins per model (docs/drift.md).
MAX_SERIES = 2048
SERIES_BODY_BYTES = MAX_SERIES * 512  # room for that many samples with long label values


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
        data = self._data(promql)
        result_type, result = data.get("resultType"), data.get("result")
        if result_type == "scalar":
            return _sample_value(self.address, result)
        samples = _vector(self.address, result_type, result)
        if not samples:
            return None
        if len(samples) > 1:
            raise PrometheusError(
                f"query returned {len(samples)} series from Prometheus at {self.address}; it "
                "must return one (aggregate it, for example with sum() or max())"
            )
        return _sample_value(self.address, samples[0].get("value"))

    def query_by(self, promql: str, label: str) -> dict[str, float]:
        """Evaluates `promql` now; the value of each sample by its `label` (for example
        `sum by (bin) (...)`). Every sample must carry the label, once."""
        return {key[0]: value for key, value in self.query_by_labels(promql, (label,)).items()}

    def query_by_labels(self, promql: str, labels: tuple[str, ...]) -> dict[tuple[str, ...], float]:
        """As query_by, keyed by the values of several labels (`sum by (feature, bin)`)."""
        data = self._data(promql, SERIES_BODY_BYTES)
        samples = _vector(self.address, data.get("resultType"), data.get("result"))
        if len(samples) > MAX_SERIES:
            raise PrometheusError(
                f"query returned {len(samples)} series from Prometheus at {self.address}; "
                f"at most {MAX_SERIES} are read"
            )
        values: dict[tuple[str, ...], float] = {}
        for sample in samples:
            metric = sample.get("metric")
            key = tuple(metric.get(label) if isinstance(metric, dict) else None for label in labels)
            if not all(isinstance(part, str) for part in key) or key in values:
                raise PrometheusError(
                    f"Prometheus at {self.address} answered a series without a unique "
                    f"{_short(', '.join(labels), 60)} label"
                )
            values[tuple(str(part) for part in key)] = _sample_value(
                self.address, sample.get("value")
            )
        return values

    def _data(self, promql: str, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
        scheme = urllib.parse.urlsplit(self.address).scheme
        if scheme not in ("http", "https"):
            raise PrometheusError(
                f"Prometheus address {self.address!r} is not an http:// or https:// URL"
            )
        url = f"{self.address}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            answer = request(
                "GET",
                url,
                headers={"Accept": "application/json"},
                deadline=self.timeout,
                max_bytes=max_bytes,
            )
        except OSError as exc:
            raise PrometheusError(f"Prometheus at {self.address} is unreachable: {exc}") from exc
        if answer.status >= 400:
            raise PrometheusError(
                f"Prometheus at {self.address} answered HTTP {answer.status}"
                + _error_text(answer.body)
            )
        return _parse(self.address, answer.body)


def _error_text(body: bytes) -> str:
    """Prometheus's own error fields (`{"status": "error", "errorType", "error"}`), shortened;
    nothing for any other body."""
    try:
        document = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(document, dict) or not isinstance(document.get("error"), str):
        return ""
    error_type = document.get("errorType")
    kind = error_type if isinstance(error_type, str) else "error"
    return f": {_short(kind, 40)}: {_short(document['error'], 200)}"


def _short(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _parse(address: str, raw: bytes) -> dict[str, Any]:
    """The `data` object of a successful answer."""
    try:
        document: Any = json.loads(raw)
    except ValueError as exc:
        raise PrometheusError(f"Prometheus at {address} answered with invalid JSON") from exc
    if not isinstance(document, dict):
        raise PrometheusError(f"Prometheus at {address} answered with an unexpected document")
    if document.get("status") != "success":
        raise PrometheusError(
            f"Prometheus at {address} reported an error" + (_error_text(raw) or " (no details)")
        )
    data = document.get("data")
    if not isinstance(data, dict):
        raise PrometheusError(f"Prometheus at {address} answered without data")
    return data


def _vector(address: str, result_type: Any, result: Any) -> list[dict[str, Any]]:
    if result_type != "vector" or not isinstance(result, list):
        raise PrometheusError(
            f"Prometheus at {address} answered a {_short(str(result_type), 20)}; the query must give an "
            "instant vector or a scalar"
        )
    if not all(isinstance(sample, dict) for sample in result):
        raise PrometheusError(f"Prometheus at {address} answered a malformed sample")
    return result


def _sample_value(address: str, pair: Any) -> float:
    """`[<unix time>, "<value>"]` → value; Prometheus spells NaN and ±Inf as strings."""
    if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[1], str):
        raise PrometheusError(f"Prometheus at {address} answered a malformed sample")
    try:
        value = float(pair[1])
    except ValueError as exc:
        raise PrometheusError(f"Prometheus at {address} answered a non-numeric sample") from exc
    return value
