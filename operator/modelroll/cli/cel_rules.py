"""Evaluates a schema's x-kubernetes-validations rules on an object, as the apiserver does."""

from __future__ import annotations

import functools
from typing import Any

import celpy
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from modelroll.cli.cel_library import FUNCTIONS
from modelroll.cli.crd import Schema
from modelroll.cli.field_errors import FieldError, invalid
from modelroll.cli.schema_check import child_path

_ENV = celpy.Environment()


@functools.cache
def _program(rule: str) -> Any:
    return _ENV.program(_ENV.compile(rule), functions=FUNCTIONS)


def evaluate(rule: str, value: Any) -> Any:
    """The rule's result with `self` bound to `value`; CEL errors come back raised."""
    result = _program(rule).evaluate({"self": json_to_cel(value)})
    if isinstance(result, CELEvalError):
        raise result
    return result


def _message(rule: Schema, value: Any) -> str:
    if "messageExpression" in rule:
        try:
            return str(evaluate(rule["messageExpression"], value))
        except Exception:  # the apiserver falls back to the static message
            pass
    return str(rule.get("message") or f"failed rule: {rule['rule']}")


def _rule_errors(value: Any, schema: Schema, path: str) -> list[FieldError]:
    errors = []
    schema_type = schema.get("type", "object")
    for rule in schema.get("x-kubernetes-validations") or []:
        if "oldSelf" in rule["rule"]:
            continue  # transition rules only run on update; lint sees one version
        target = path
        if rule.get("fieldPath"):
            target = child_path(path, rule["fieldPath"].lstrip("."))
        try:
            passed = bool(evaluate(rule["rule"], value))
        except Exception as error:  # any CEL failure is a rejection
            errors.append(invalid(target, schema_type, str(error.args[0] if error.args else error)))
            continue
        if not passed:
            errors.append(invalid(target, schema_type, _message(rule, value)))
    return errors


def validate_rules(value: Any, schema: Schema, path: str = "") -> list[FieldError]:
    """Rules of this node, then of every child the schema describes."""
    errors = _rule_errors(value, schema, path)
    if isinstance(value, dict):
        properties: dict[str, Schema] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            child = properties.get(key, additional if isinstance(additional, dict) else None)
            if child is not None:
                errors += validate_rules(item, child, child_path(path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            errors += validate_rules(item, schema["items"], f"{path}[{index}]")
    return errors
