"""The operator's HTTP connection to the API server: urllib3, and one set of credentials
that kopf's watches use too.

The kubernetes client library is not used here: importing it costs the operator about 20 MiB
of its memory (its generated models and APIs, which modelroll never uses), more than anything
the operator caches for a thousand ModelDeployments.
"""

from __future__ import annotations

import base64
import os
import tempfile
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlencode

import kopf
import urllib3

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
SERVICE_ACCOUNT_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
# client-go rereads a projected service-account token every minute; the kubelet rotates it
# well before it expires
TOKEN_REREAD_SECONDS = 60.0
# the old client waited forever; a stuck API server must not hold a reconcile's thread
TIMEOUT = urllib3.Timeout(connect=10.0, read=60.0)

Query = list[tuple[str, str]]


class Transport(Protocol):
    def send(
        self,
        method: str,
        path: str,
        query: Query,
        headers: dict[str, str],
        body: bytes | None,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        """One request; the status code and the body, whatever the status."""
        ...


def _file_of(data: str | bytes) -> str:
    """A kubeconfig's inline base64 certificate or key as a file (0600), which is what
    Python's ssl can load."""
    descriptor, path = tempfile.mkstemp(prefix="modelroll-", suffix=".pem")
    with os.fdopen(descriptor, "wb") as file:
        file.write(base64.b64decode(data))
    return path


class HttpTransport:
    def __init__(
        self,
        info: kopf.ConnectionInfo,
        pool_size: int = 10,
        token_file: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server = info.server.rstrip("/")
        self.token_file = token_file
        self.clock = clock
        self._token = info.token
        self._token_read = clock()
        certificate = info.certificate_path or (
            _file_of(info.certificate_data) if info.certificate_data else None
        )
        key = info.private_key_path or (
            _file_of(info.private_key_data) if info.private_key_data else None
        )
        ca_data = base64.b64decode(info.ca_data).decode() if info.ca_data else None
        self._basic = (
            urllib3.make_headers(basic_auth=f"{info.username}:{info.password or ''}")
            if info.username
            else {}
        )
        self.pool = urllib3.PoolManager(
            maxsize=pool_size,
            cert_reqs="CERT_NONE" if info.insecure else "CERT_REQUIRED",
            ca_certs=os.fsdecode(info.ca_path) if info.ca_path else None,
            ca_cert_data=ca_data,
            cert_file=os.fsdecode(certificate) if certificate else None,
            key_file=os.fsdecode(key) if key else None,
        )

    def _authorization(self) -> dict[str, str]:
        if self.token_file and self.clock() - self._token_read >= TOKEN_REREAD_SECONDS:
            with open(self.token_file, encoding="utf-8") as file:
                self._token = file.read().strip() or self._token
            self._token_read = self.clock()
        if self._token:
            return {"Authorization": f"Bearer {self._token}"}
        return dict(self._basic)

    def send(
        self,
        method: str,
        path: str,
        query: Query,
        headers: dict[str, str],
        body: bytes | None,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        url = f"{self.server}{path}" + (f"?{urlencode(query)}" if query else "")
        response = self.pool.request(
            method,
            url,
            body=body,
            headers={**headers, **self._authorization()},
            timeout=TIMEOUT if timeout is None else timeout,
            redirect=False,
        )
        return response.status, response.data


def in_cluster() -> kopf.ConnectionInfo | None:
    """The pod's service account, as client-go's InClusterConfig finds it: the API server
    at $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT (no cluster DNS needed), the
    mounted token and CA. None outside a pod."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port or not os.path.exists(SERVICE_ACCOUNT_TOKEN):
        return None
    with open(SERVICE_ACCOUNT_TOKEN, encoding="utf-8") as file:
        token = file.read().strip()
    return kopf.ConnectionInfo(
        server=f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}",
        ca_path=SERVICE_ACCOUNT_CA if os.path.exists(SERVICE_ACCOUNT_CA) else None,
        token=token or None,
    )


def connection_info() -> kopf.ConnectionInfo:
    """In a pod its service account, else $KUBECONFIG or ~/.kube/config (kopf's reading of
    it: certificates, a token or a password). kopf logs in with it too (handlers.login), so
    the watches and the reconciles talk to the same server as the same user."""
    info = in_cluster() or kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    if info is None:
        raise kopf.LoginError("not in a pod, and no $KUBECONFIG or ~/.kube/config")
    return info


def connect(pool_size: int = 10) -> HttpTransport:
    """`pool_size`: connections kept open, one per thread that calls at once."""
    info = in_cluster()
    if info is not None:
        return HttpTransport(info, pool_size, token_file=SERVICE_ACCOUNT_TOKEN)
    return HttpTransport(connection_info(), pool_size)
