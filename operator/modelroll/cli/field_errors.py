"""Validation errors in the apiserver's words (k8s.io/apimachinery field.Error)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

NIL_PATH = "<nil>"


def go_value(value: Any) -> str:
    """Formats a bad value as field.Error does: numbers bare, strings quoted, the rest JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True)
class FieldError:
    """One error; `kind` is the field.ErrorType's text, such as "Invalid value"."""

    path: str
    kind: str
    detail: str = ""
    value: Any = None
    shows_value: bool = True

    def body(self) -> str:
        text = f"{self.kind}: {go_value(self.value)}" if self.shows_value else self.kind
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.path or NIL_PATH}: {self.body()}"


def required(path: str) -> FieldError:
    return FieldError(path, "Required value", shows_value=False)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, "Invalid value", detail, value)


def not_supported(path: str, value: Any, allowed: list[Any]) -> FieldError:
    values = ", ".join(json.dumps(v if isinstance(v, str) else json.dumps(v)) for v in allowed)
    return FieldError(path, "Unsupported value", f"supported values: {values}", value)


def too_long(path: str, max_length: int) -> FieldError:
    unit = "byte" if max_length == 1 else "bytes"
    return FieldError(
        path, "Too long", f"may not be more than {max_length} {unit}", shows_value=False
    )


def too_many(path: str, actual: int, maximum: int) -> FieldError:
    return FieldError(path, "Too many", f"must have at most {maximum} items", actual)


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError(path, "Duplicate value", value=value)


@dataclass(frozen=True)
class UnknownField:
    """Strict decoding rejects the whole object (400) before any validation."""

    path: str

    def __str__(self) -> str:
        return f'strict decoding error: unknown field "{self.path}"'
