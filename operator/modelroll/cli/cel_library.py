"""Kubernetes' CEL extension functions that cel-python lacks (k8s.io/apiserver/pkg/cel/library).

The lists library (isSorted, sum, min, max, indexOf, lastIndexOf) and the strings
extensions CRD rules commonly use. Standard CEL (size, matches, startsWith, exists_one,
has, map, all, exists) comes with cel-python.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from celpy import celtypes


def is_sorted(items: Sequence[Any]) -> celtypes.BoolType:
    return celtypes.BoolType(all(a <= b for a, b in itertools.pairwise(items)))


def list_sum(items: Sequence[Any]) -> Any:
    total: Any = celtypes.IntType(0)
    for item in items:
        total = item if total == 0 and not isinstance(item, celtypes.IntType) else total + item
    return total


def list_min(items: Sequence[Any]) -> Any:
    if not items:
        raise ValueError("min called on empty list")
    return min(items)


def list_max(items: Sequence[Any]) -> Any:
    if not items:
        raise ValueError("max called on empty list")
    return max(items)


def index_of(container: Any, item: Any, *start: Any) -> celtypes.IntType:
    if isinstance(container, str):
        offset = int(start[0]) if start else 0
        return celtypes.IntType(container.find(item, offset))
    return celtypes.IntType(next((i for i, x in enumerate(container) if x == item), -1))


def last_index_of(container: Any, item: Any) -> celtypes.IntType:
    if isinstance(container, str):
        return celtypes.IntType(container.rfind(item))
    matches = [i for i, x in enumerate(container) if x == item]
    return celtypes.IntType(matches[-1] if matches else -1)


def lower_ascii(text: str) -> celtypes.StringType:
    return celtypes.StringType(text.lower())


def upper_ascii(text: str) -> celtypes.StringType:
    return celtypes.StringType(text.upper())


def trim(text: str) -> celtypes.StringType:
    return celtypes.StringType(text.strip())


def split(text: str, separator: str, *limit: Any) -> celtypes.ListType:
    count = int(limit[0]) - 1 if limit else -1
    return celtypes.ListType(celtypes.StringType(p) for p in text.split(separator, count))


def join(items: Sequence[Any], *separator: Any) -> celtypes.StringType:
    return celtypes.StringType(str(separator[0] if separator else "").join(str(i) for i in items))


def replace(text: str, old: str, new: str, *limit: Any) -> celtypes.StringType:
    return celtypes.StringType(text.replace(old, new, int(limit[0]) if limit else -1))


def substring(text: str, start: Any, *end: Any) -> celtypes.StringType:
    return celtypes.StringType(text[int(start) : int(end[0]) if end else None])


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "isSorted": is_sorted,
    "sum": list_sum,
    "min": list_min,
    "max": list_max,
    "indexOf": index_of,
    "lastIndexOf": last_index_of,
    "lowerAscii": lower_ascii,
    "upperAscii": upper_ascii,
    "trim": trim,
    "split": split,
    "join": join,
    "replace": replace,
    "substring": substring,
}
