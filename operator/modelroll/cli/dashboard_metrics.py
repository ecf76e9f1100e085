"""Request rate and error share per revision from the runtimes' own /metrics: pure.

Without Prometheus the dashboard scrapes the pods itself, twice or more, and turns the growth
of `modelroll_requests_total` between two scrapes into a rate, the way `rate()` would.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

REQUESTS = "modelroll_requests"


@dataclass(frozen=True)
class Counts:
    """Cumulative requests of one revision (summed over its pods) at one moment."""

    at: float
    total: float
    errors: float  # HTTP 5xx


@dataclass(frozen=True)
class Rate:
    requests_per_second: float
    error_percent: float | None  # None without requests in the window


def counts(texts: list[str], at: float) -> Counts:
    """Sums the request counter over the pods' exposition texts."""
    total = errors = 0.0
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name != REQUESTS:
                continue
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                total += sample.value
                if sample.labels.get("code", "").startswith("5"):
                    errors += sample.value
    return Counts(at, total, errors)


def rate(previous: Counts, current: Counts) -> Rate | None:
    """The rate between two scrapes; None when there is no window or a pod restarted."""
    seconds = current.at - previous.at
    requests = current.total - previous.total
    errors = current.errors - previous.errors
    if seconds <= 0 or requests < 0 or errors < 0:
        return None
    return Rate(
        requests_per_second=requests / seconds,
        error_percent=100 * errors / requests if requests else None,
    )
