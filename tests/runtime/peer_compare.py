"""Field-by-field comparison of two servers' answers, and the differences we allow.

An answer is {"status": ..., "body": ...}. Two answers agree where every field is present in
both, strings, booleans and integers are equal, and numbers are within RTOL relative. Error
answers (4xx, 5xx) are compared by status only: each server words its own errors.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import Any

from .runtime_process import Response

RTOL = 1e-9
MISSING = "<missing>"


def answer(response: Response) -> dict[str, Any]:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.body.decode(errors="replace")
    return {"status": response.status, "body": body}


def differences(ours: Any, theirs: Any, path: str = "") -> dict[str, tuple[Any, Any]]:
    """Every path where the two JSON documents differ, with both values there."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        if path == "" and (ours["status"] != theirs["status"] or ours["status"] >= 400):
            same = ours["status"] == theirs["status"]
            return {} if same else {"status": (ours["status"], theirs["status"])}
        found: dict[str, tuple[Any, Any]] = {}
        for key in [*ours, *(k for k in theirs if k not in ours)]:
            found.update(
                differences(ours.get(key, MISSING), theirs.get(key, MISSING), _join(path, key))
            )
        return found
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        found = {}
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            found.update(differences(a, b, f"{path}[{i}]"))
        return found
    return {} if _same(ours, theirs) else {path: (ours, theirs)}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return math.isclose(a, b, rel_tol=RTOL, abs_tol=0.0)
    return bool(a == b)


@dataclass(frozen=True)
class Allowed:
    """A difference from a peer that stays, and why (docs/runtime.md lists each one)."""

    peer: str  # "kserve" or "mlserver"
    call: str  # the call's label, a glob: "v2", "v2*", "GET /v2"
    models: tuple[str, ...]  # globs over model names: ("*",), ("xgb-*", "linear")
    path: str  # a field, and everything under it: "body.outputs[0]"
    reason: str

    def for_model(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, glob) for glob in self.models)

    def covers(self, peer: str, call: str, model: str, path: str) -> bool:
        return (
            peer == self.peer
            and fnmatch.fnmatchcase(call, self.call)
            and self.for_model(model)
            and (path == self.path or path.startswith((f"{self.path}.", f"{self.path}[")))
        )


def unexplained(
    found: dict[str, tuple[Any, Any]], allowed: list[Allowed], peer: str, call: str, model: str
) -> tuple[dict[str, tuple[Any, Any]], list[Allowed]]:
    """The differences no allowance covers, and the allowances for this call that covered
    none (a stale entry is as wrong as a missing one)."""
    applicable = [
        a
        for a in allowed
        if a.peer == peer and fnmatch.fnmatchcase(call, a.call) and a.for_model(model)
    ]
    left = {
        path: values
        for path, values in found.items()
        if not any(a.covers(peer, call, model, path) for a in applicable)
    }
    # a different status hides the bodies: what they would differ in cannot be seen
    hidden = "status" in found
    unused = [
        a
        for a in applicable
        if not any(a.covers(peer, call, model, p) for p in found)
        and not (hidden and a.path.startswith("body"))
    ]
    return left, unused
