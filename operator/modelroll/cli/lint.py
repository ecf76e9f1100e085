"""Offline validation of a ModelDeployment: what the apiserver would say on create."""

from __future__ import annotations

import re
from typing import Any

from modelroll import GROUP, VERSION
from modelroll.cli.cel_rules import validate_rules
from modelroll.cli.crd import Schema, crd_schema, spec_replicas_path
from modelroll.cli.defaults import apply_defaults
from modelroll.cli.field_errors import FieldError, UnknownField, invalid
from modelroll.cli.schema_check import unknown_fields, unknown_metadata_fields, validate_schema

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
# Errors after which the apiserver does not run CEL rules (their input types are unknown).
BLOCKING = ("Unsupported value", "Required value", "Too long", "Too many")
INT32_MAX = 2**31 - 1
NOT_CHECKED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)

Problem = FieldError | UnknownField


def object_meta_errors(body: dict[str, Any]) -> list[FieldError]:
    """Generic ObjectMeta validation, which every object gets before the CRD's schema."""
    metadata = body.get("metadata") or {}
    name = metadata.get("name")
    if not name:
        if metadata.get("generateName"):
            return []
        return [
            FieldError(
                "metadata.name",
                "Required value",
                "name or generateName is required",
                shows_value=False,
            )
        ]
    if len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        return [invalid("metadata.name", name, SUBDOMAIN_MESSAGE)]
    return []


def type_meta_errors(body: dict[str, Any]) -> list[FieldError]:
    if body.get("apiVersion") != f"{GROUP}/{VERSION}":
        return [invalid("apiVersion", body.get("apiVersion"), f"must be {GROUP}/{VERSION}")]
    return []


def scale_errors(body: dict[str, Any]) -> list[FieldError]:
    """The scale subresource's own check of the replicas field, reported with its JSON path."""
    path = spec_replicas_path()
    value: Any = body
    for key in path.strip(".").split(".") if path else []:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, int) or isinstance(value, bool):
        return []
    if value < 0:
        return [invalid(path, value, "should be a non-negative integer")]
    if value > INT32_MAX:
        return [invalid(path, value, f"should be less than or equal to {INT32_MAX}")]
    return []


def _blocks_rules(error: FieldError) -> bool:
    return error.kind in BLOCKING or (
        error.kind == "Invalid value" and " must be of type " in error.detail
    )


def lint_object(body: dict[str, Any], schema: Schema | None = None) -> list[Problem]:
    """Every error the apiserver would report for creating `body`, in its words."""
    schema = schema or crd_schema()
    unknown = unknown_metadata_fields(body.get("metadata"))
    unknown += unknown_fields({k: v for k, v in body.items() if k != "metadata"}, schema)
    # The status subresource drops status on create; validation never sees it.
    defaulted = apply_defaults({k: v for k, v in body.items() if k != "status"}, schema)
    errors = type_meta_errors(body) + object_meta_errors(body)
    errors += validate_schema(defaulted, schema)
    errors += scale_errors(defaulted)
    if any(_blocks_rules(e) for e in errors):
        errors.append(invalid("", None, NOT_CHECKED))
    else:
        errors += validate_rules(defaulted, schema)
    return [*unknown, *errors]
