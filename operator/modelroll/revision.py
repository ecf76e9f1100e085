"""Revision identity: a short hash of every field that changes the pods."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from modelroll.spec import JSON, parse_spec

# Fields of the spec whose change must create a new revision (a new Deployment).
POD_AFFECTING_FIELDS = (
    "model",
    "runtime",
    "resources",
    "gpu",
    "node_selector",
    "tolerations",
    "affinity",
)


def revision_of(raw_spec: JSON, runtime_image: str) -> str:
    """An 8-character revision id of the parsed spec, so that schema defaults do not count.

    The operator's default image counts when the spec names none.
    """
    parsed = dataclasses.asdict(parse_spec(raw_spec))
    relevant = {key: parsed[key] for key in POD_AFFECTING_FIELDS}
    relevant["runtime"]["image"] = relevant["runtime"]["image"] or runtime_image
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]
