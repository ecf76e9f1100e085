"""OpenAPI v3 structural validation with the apiserver's messages (kube-openapi's validator).

Covers what the ModelDeployment CRD uses: type, enum, required, minimum/maximum,
minLength/maxLength, pattern, minItems/maxItems, minProperties/maxProperties,
x-kubernetes-int-or-string, list-type map keys and unknown (pruned) fields.
"""

from __future__ import annotations

import re
from typing import Any

from modelroll.cli.crd import Schema
from modelroll.cli.field_errors import (
    FieldError,
    UnknownField,
    duplicate,
    invalid,
    not_supported,
    required,
    too_long,
    too_many,
)

OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        # The apiserver decodes integral JSON numbers as int64.
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(expected: str, actual: str) -> bool:
    return expected == actual or (expected == "number" and actual == "integer")


def child_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate_schema(value: Any, schema: Schema, path: str = "") -> list[FieldError]:
    """Errors of `value` against `schema`; children are checked only under a matching type."""
    if schema.get("x-kubernetes-int-or-string"):
        if type_name(value) not in ("integer", "string"):
            detail = f"{path} in body must be of type integer-or-string: {type_name(value)!r}"
            return [invalid(path, type_name(value), detail)]
        return _scalar(value, schema, path)
    expected = schema.get("type")
    actual = type_name(value)
    if expected and not _type_ok(expected, actual):
        detail = f'{path} in body must be of type {expected}: "{actual}"'
        return [FieldError(path, "Invalid value", detail, actual)]
    if isinstance(value, dict):
        return _object(value, schema, path)
    if isinstance(value, list):
        return _array(value, schema, path)
    return _scalar(value, schema, path)


def _object(value: dict[str, Any], schema: Schema, path: str) -> list[FieldError]:
    errors = [
        required(child_path(path, key)) for key in schema.get("required", []) if key not in value
    ]
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(too_many(path, len(value), schema["maxProperties"]))
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        detail = f"{path} in body should have at least {schema['minProperties']} properties"
        errors.append(invalid(path, len(value), detail))
    properties: dict[str, Schema] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        child = properties.get(key, additional if isinstance(additional, dict) else None)
        if child is not None:
            errors += validate_schema(item, child, child_path(path, key))
    return errors


def _array(value: list[Any], schema: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(too_many(path, len(value), schema["maxItems"]))
    if "minItems" in schema and len(value) < schema["minItems"]:
        detail = f"{path} in body should have at least {schema['minItems']} items"
        errors.append(invalid(path, len(value), detail))
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            errors += validate_schema(item, items, f"{path}[{index}]")
    return errors + _list_map_duplicates(value, schema, path)


def _list_map_duplicates(value: list[Any], schema: Schema, path: str) -> list[FieldError]:
    if schema.get("x-kubernetes-list-type") != "map":
        return []
    keys = schema.get("x-kubernetes-list-map-keys") or []
    seen: set[str] = set()
    errors: list[FieldError] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            continue
        identity = {k: item[k] for k in keys if k in item}
        token = repr(sorted(identity.items()))
        if token in seen:
            errors.append(duplicate(f"{path}[{index}]", identity))
        seen.add(token)
    return errors


def _scalar(value: Any, schema: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(not_supported(path, value, schema["enum"]))
    if isinstance(value, int | float) and not isinstance(value, bool):
        shown = int(value) if float(value).is_integer() else value
        if "maximum" in schema and value > schema["maximum"]:
            detail = f"{path} in body should be less than or equal to {schema['maximum']}"
            errors.append(invalid(path, shown, detail))
        if "minimum" in schema and value < schema["minimum"]:
            detail = f"{path} in body should be greater than or equal to {schema['minimum']}"
            errors.append(invalid(path, shown, detail))
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(too_long(path, schema["maxLength"]))
        if "minLength" in schema and len(value) < schema["minLength"]:
            detail = f"{path} in body should be at least {schema['minLength']} chars long"
            errors.append(invalid(path, value, detail))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            detail = f"{path} in body should match '{schema['pattern']}'"
            errors.append(invalid(path, value, detail))
    return errors


def unknown_fields(value: Any, schema: Schema, path: str = "") -> list[UnknownField]:
    """Fields the apiserver would prune, which strict field validation rejects."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[UnknownField] = []
    if isinstance(value, dict):
        properties: dict[str, Schema] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                found += unknown_fields(item, properties[key], child_path(path, key))
            elif isinstance(additional, dict):
                found += unknown_fields(item, additional, child_path(path, key))
            elif additional is not True:
                found.append(UnknownField(child_path(path, key)))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{index}]")
    return found


def unknown_metadata_fields(metadata: Any) -> list[UnknownField]:
    if not isinstance(metadata, dict):
        return []
    return [UnknownField(f"metadata.{k}") for k in metadata if k not in OBJECT_META_FIELDS]
