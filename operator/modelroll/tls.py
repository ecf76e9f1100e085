"""The runtime's TLS Secret as the operator uses it: whether it can serve, and what a client
of the runtime trusts.

The Secret is the tenant's: messages name the Secret and its keys, never what they hold. A
client verifies the runtime's certificate under the main Service's name, against `ca.crt`
or, when the Secret has none, against the leaf of `tls.crt` itself (a pinned certificate).
Skipping verification is never an option here: the point of TLS is that a pod which is not
the runtime cannot answer in its place.
"""

from __future__ import annotations

import base64
import binascii
import re
import ssl
from dataclasses import dataclass

from modelroll.spec import JSON

FIELD = "spec.runtime.tls.secretRef"
SECRET_TYPE = "kubernetes.io/tls"
CERT_KEY = "tls.crt"
KEY_KEY = "tls.key"
CA_KEY = "ca.crt"
# Where the pods mount the Secret (read-only), and the files the runtime loads from it.
MOUNT_DIR = "/etc/modelroll/tls"
CERT_FILE = f"{MOUNT_DIR}/{CERT_KEY}"
KEY_FILE = f"{MOUNT_DIR}/{KEY_KEY}"
# A trust bundle this large is not a certificate chain; the cap keeps a tenant's Secret
# from costing the operator more than a few parses of a small bundle.
MAX_TRUST_BYTES = 64 * 1024
PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----"
)


@dataclass(frozen=True)
class Trust:
    """What a client of one ModelDeployment's runtime verifies its certificate with."""

    pem: str  # the anchors: every certificate of ca.crt, or the leaf of tls.crt
    server_name: str  # the name the certificate must carry


def server_name(name: str, namespace: str) -> str:
    """The name every client verifies: the main Service's, also for the preview Service
    (both serve the same Secret's certificate)."""
    return f"{name}.{namespace}.svc"


def trust_key(secret: JSON) -> str:
    """The key whose certificates clients trust: ca.crt when the Secret has one."""
    return CA_KEY if _decoded(secret, CA_KEY) else CERT_KEY


def tls_problem(secret: JSON | None, namespace: str, name: str) -> str:
    """Why the Secret cannot serve as the runtime's TLS Secret, or "" when it can."""
    where = f"{FIELD}: Secret {namespace}/{name}"
    if secret is None:
        return f"{where} not found"
    if secret.get("type") != SECRET_TYPE:
        return f"{where} is not of type {SECRET_TYPE}"
    for key in (CERT_KEY, KEY_KEY):
        if not _decoded(secret, key):
            return f"{where} has no key {key}"
    key = trust_key(secret)
    if len(_decoded(secret, key)) > MAX_TRUST_BYTES:
        return f"{where} key {key} is larger than {MAX_TRUST_BYTES // 1024} KiB"
    pem = _anchors(secret)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=pem or None)
    except (ssl.SSLError, ValueError, TypeError):
        return f"{where} key {key} holds no PEM certificate"
    return ""


def trust_of(secret: JSON, name: str, namespace: str) -> Trust:
    """The trust for a Secret that `tls_problem` found usable."""
    return Trust(_anchors(secret), server_name(name, namespace))


def _anchors(secret: JSON) -> str:
    key = trust_key(secret)
    text = _decoded(secret, key)[:MAX_TRUST_BYTES].decode("ascii", errors="replace")
    certificates = PEM_CERTIFICATE.findall(text)
    if key == CERT_KEY:
        # Only the leaf: tls.crt may carry its chain too, and trusting an intermediate
        # would trust every certificate it signs.
        certificates = certificates[:1]
    return "\n".join(certificates)


def _decoded(secret: JSON, key: str) -> bytes:
    encoded = (secret.get("data") or {}).get(key)
    if not isinstance(encoded, str):
        return b""
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return b""
