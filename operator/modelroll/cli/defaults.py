"""Structural defaulting and null pruning, as the apiserver does before validation."""

from __future__ import annotations

import copy
from typing import Any

from modelroll.cli.crd import Schema


def _nullable(schema: Schema) -> bool:
    return bool(schema.get("nullable"))


def apply_defaults(value: Any, schema: Schema) -> Any:
    """A copy of `value` with schema defaults set and non-nullable nulls dropped."""
    if isinstance(value, dict):
        properties: dict[str, Schema] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        result: dict[str, Any] = {}
        for key, item in value.items():
            child = properties.get(key, additional if isinstance(additional, dict) else None)
            if item is None and child is not None and not _nullable(child):
                continue
            result[key] = apply_defaults(item, child) if child is not None else item
        for key, child in properties.items():
            if key not in result and "default" in child:
                # A default is itself defaulted: runtime: {} gains protocol: v2.
                result[key] = apply_defaults(copy.deepcopy(child["default"]), child)
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(item, schema["items"]) for item in value]
    return value
