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
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlencode

import kopf
import urllib3
import yaml

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
SERVICE_ACCOUNT_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
# client-go rereads a projected service-account token every minute; the kubelet rotates it
# well before it expires
TOKEN_REREAD_SECONDS = 60.0
# the old client waited forever; a stuck API server must not hold a reconcile's thread
TIMEOUT = urllib3.Timeout(connect=10.0, read=60.0)

# a kubeconfig's paths, which kubectl reads relative to the file that holds them
FILE_KEYS = {"certificate-authority", "client-certificate", "client-key", "tokenFile"}

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


class Login(NamedTuple):
    info: kopf.ConnectionInfo
    token_file: str | None  # reread each minute: a service account's, or a kubeconfig's tokenFile


def _read_token(path: str) -> str | None:
    with open(path, encoding="utf-8") as file:
        return file.read().strip() or None


def _in_cluster() -> Login | None:
    """The pod's service account, as client-go's InClusterConfig finds it: the API server
    at $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT (no cluster DNS needed), the
    mounted token and CA. None outside a pod."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port or not os.path.exists(SERVICE_ACCOUNT_TOKEN):
        return None
    info = kopf.ConnectionInfo(
        server=f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}",
        ca_path=SERVICE_ACCOUNT_CA if os.path.exists(SERVICE_ACCOUNT_CA) else None,
        token=_read_token(SERVICE_ACCOUNT_TOKEN),
    )
    return Login(info, SERVICE_ACCOUNT_TOKEN)


def _from_kubeconfig() -> Login | None:
    """The current context of $KUBECONFIG (its files merged, the first value winning, as
    kubectl does) or ~/.kube/config. Certificates, a token or tokenFile, or a password;
    exec plugins are the CLI's (it has the kubernetes client), not the operator's."""
    paths = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    default = os.path.expanduser("~/.kube/config")
    if not paths and os.path.exists(default):
        paths = [default]
    if not paths:
        return None
    current: str | None = None
    named: dict[str, dict[str, Any]] = {"contexts": {}, "clusters": {}, "users": {}}
    for path in paths:
        with open(os.path.expanduser(path), encoding="utf-8") as file:
            config = yaml.safe_load(file) or {}
        base = os.path.dirname(os.path.abspath(os.path.expanduser(path)))
        current = current or config.get("current-context")
        for section, inner in (("contexts", "context"), ("clusters", "cluster"), ("users", "user")):
            for item in config.get(section) or []:
                entry = dict(item.get(inner) or {})
                for key in FILE_KEYS & entry.keys():  # relative to the file that names them
                    entry[key] = os.path.join(base, os.path.expanduser(entry[key]))
                named[section].setdefault(item["name"], entry)
    if current is None:
        raise kopf.LoginError(f"no current-context in {os.pathsep.join(paths)}")
    context = named["contexts"][current]
    cluster, user = named["clusters"][context["cluster"]], named["users"][context["user"]]
    if "exec" in user or "auth-provider" in user:
        raise kopf.LoginError(f"user {context['user']}: exec and auth-provider are not supported")
    token_file = user.get("tokenFile")
    info = kopf.ConnectionInfo(
        server=cluster["server"],
        ca_path=cluster.get("certificate-authority"),
        ca_data=cluster.get("certificate-authority-data"),
        insecure=cluster.get("insecure-skip-tls-verify"),
        certificate_path=user.get("client-certificate"),
        certificate_data=user.get("client-certificate-data"),
        private_key_path=user.get("client-key"),
        private_key_data=user.get("client-key-data"),
        username=user.get("username"),
        password=user.get("password"),
        token=user.get("token") or (_read_token(token_file) if token_file else None),
        default_namespace=context.get("namespace"),
    )
    return Login(info, None if user.get("token") else token_file)


def login() -> Login:
    """In a pod its service account, else $KUBECONFIG or ~/.kube/config. kopf logs in with
    it too (handlers.login), so the watches and the reconciles talk to the same server as
    the same user."""
    found = _in_cluster() or _from_kubeconfig()
    if found is None:
        raise kopf.LoginError("not in a pod, and no $KUBECONFIG or ~/.kube/config")
    return found


def connect(pool_size: int = 10) -> HttpTransport:
    """`pool_size`: connections kept open, one per thread that calls at once."""
    found = login()
    return HttpTransport(found.info, pool_size, token_file=found.token_file)
