"""Deciding whether a child must be (re)applied: pure comparisons, no I/O."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelroll.quantity import parse_quantity
from modelroll.spec import JSON

SPEC_HASH_ANNOTATION = "modelroll.io/spec-hash"


def _same_scalar(want: Any, have: Any) -> bool:
    # The apiserver returns quantities and int-or-string values as strings, and rewrites
    # quantities into canonical form ("0.5" comes back as "500m").
    if want == have or str(want) == str(have):
        return True
    try:
        return parse_quantity(want) == parse_quantity(have)
    except (ValueError, TypeError):
        return False


def is_subset(want: Any, have: Any) -> bool:
    """True when every field we set is present with the same value (defaults may add more)."""
    if isinstance(want, dict):
        # The apiserver drops empty maps and lists, so an empty one we set matches a missing key.
        return isinstance(have, dict) and all(
            is_subset(value, have[key]) if key in have else value in ({}, [])
            for key, value in want.items()
        )
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(want) == len(have)
            and all(is_subset(w, h) for w, h in zip(want, have, strict=True))
        )
    return _same_scalar(want, have)


def stamp(manifest: JSON) -> JSON:
    """Adds the hash of the manifest itself, so that fields we stop setting are noticed."""
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    metadata = manifest["metadata"]
    annotations = {**metadata.get("annotations", {}), SPEC_HASH_ANNOTATION: digest}
    return {**manifest, "metadata": {**metadata, "annotations": annotations}}


def needs_apply(desired: JSON, observed: JSON | None) -> bool:
    return (
        observed is None
        or not is_subset(desired, observed)
        or foreign_keys_patch(desired, observed) is not None
    )


# Maps where a key added by someone else changes behaviour (which pods get traffic),
# so extra keys count as drift and are removed, not shared.
EXACT_MAPS = {"Service": (("spec", "selector"),)}


def _at(obj: JSON, path: tuple[str, ...]) -> Any:
    for key in path:
        obj = obj.get(key) or {}
    return obj


def foreign_keys_patch(desired: JSON, observed: JSON | None) -> JSON | None:
    """A merge patch that deletes keys others added to maps we own exactly, or None."""
    if observed is None:
        return None
    patch: JSON = {}
    for path in EXACT_MAPS.get(desired["kind"], ()):
        extra = set(_at(observed, path)) - set(_at(desired, path))
        if extra:
            node = patch
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = {key: None for key in extra}
    return patch or None
