"""The runtime's bearer token as its Secret holds it: what makes it unusable, and messages
that name the Secret and key but never the value."""

from __future__ import annotations

import base64

import pytest
from modelroll.bearer import token_of, token_problem
from modelroll.spec import JSON, SecretKey

REF = SecretKey("iris-token", "token")


def secret(**data: bytes) -> JSON:
    return {"data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


def test_a_usable_token_is_decoded_and_has_no_problem() -> None:
    found = secret(token=b"s3cr3t-Token_~+/=")
    assert token_problem(found, "models", REF) == ""
    assert token_of(found, "token") == "s3cr3t-Token_~+/="


def test_a_missing_secret_or_key_is_named() -> None:
    assert token_problem(None, "models", REF) == (
        "spec.runtime.auth.tokenSecretRef: Secret models/iris-token not found"
    )
    assert token_problem(secret(other=b"x"), "models", REF) == (
        "spec.runtime.auth.tokenSecretRef: Secret models/iris-token has no key token"
    )
    assert "has no key token" in token_problem({}, "models", REF)


@pytest.mark.parametrize("value", [b"", b"zq9 x7", b"zq9x7\n", b" zq9x7", "zq9x7é".encode()])
def test_a_token_no_header_can_carry_is_refused_without_showing_it(value: bytes) -> None:
    problem = token_problem(secret(token=value), "models", REF)
    assert "key token is not a usable bearer token" in problem
    assert "zq9" not in problem


def test_data_that_is_not_base64_reads_as_empty() -> None:
    assert token_of({"data": {"token": "not base64!"}}, "token") == ""
    assert token_of({"data": {}}, "token") == ""
