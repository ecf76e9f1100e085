"""The error of a metrics query, apart from the HTTP client that raises it.

Analysis (pure) catches it and the Prometheus client (I/O) raises it; defining it here keeps
the pure layer from importing the client, and with it urllib.
"""

from __future__ import annotations


class PrometheusError(Exception):
    """Prometheus could not answer the query with one number."""
