"""Revision identity: a short hash of every field that changes the pods."""

from __future__ import annotations

import hashlib
import json

from modelplane.spec import JSON

# Fields of the spec whose change must create a new revision (a new Deployment).
POD_AFFECTING_FIELDS = (
    "model",
    "runtime",
    "resources",
    "gpu",
    "nodeSelector",
    "tolerations",
    "affinity",
)


def revision_of(raw_spec: JSON, runtime_image: str) -> str:
    """Returns an 8-character revision id; the default image counts when the spec names none."""
    relevant = {key: raw_spec.get(key) for key in POD_AFFECTING_FIELDS}
    relevant["_image"] = (raw_spec.get("runtime") or {}).get("image") or runtime_image
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]
