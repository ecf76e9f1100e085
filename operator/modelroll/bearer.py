"""The runtime's bearer token as its Secret holds it: present, decoded, fit for a header.

The token is a secret of the tenant's: nothing here puts it into a message; messages name
the Secret and the key only.
"""

from __future__ import annotations

import base64
import binascii
import re

from modelroll.spec import JSON, SecretKey

FIELD = "spec.runtime.auth.tokenSecretRef"
# What a header value can carry unchanged: visible ASCII. A token with a trailing newline
# (`echo token > file; kubectl create secret --from-file`) could never be sent, so every
# request would get 401.
HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


def token_of(secret: JSON, key: str) -> str:
    """The decoded value of `key` ("" when absent or not base64)."""
    encoded = (secret.get("data") or {}).get(key)
    if not isinstance(encoded, str):
        return ""
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


def token_problem(secret: JSON | None, namespace: str, ref: SecretKey) -> str:
    """Why the referenced key cannot serve as the token, or "" when it can."""
    where = f"{FIELD}: Secret {namespace}/{ref.name}"
    if secret is None:
        return f"{where} not found"
    if ref.key not in (secret.get("data") or {}):
        return f"{where} has no key {ref.key}"
    if not HEADER_SAFE.fullmatch(token_of(secret, ref.key)):
        return (
            f"{where} key {ref.key} is not a usable bearer token: it must be non-empty visible"
            " ASCII, without spaces or a trailing newline"
        )
    return ""
