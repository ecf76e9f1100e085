"""What the watch caches keep of each object: only what status, drift detection and planning
read. Pure functions, no I/O.

A pod is kept as its revision label and the fields `problems.pod_problem` reads. A child is
kept as one compact JSON string (a Python dict costs about ten times its JSON), unpacked only
by the reconcile that reads it; its status only where `status.revision_state` reads one.
A ModelDeployment is kept whole but for managedFields, as compact JSON too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from modelroll.problems import problem_fields
from modelroll.render import REVISION_LABEL
from modelroll.spec import JSON

# Written by kopf for its own diffing (a copy of the whole spec); the operator never reads it.
KOPF_DIFFBASE = "modelroll.io/last-handled-configuration"
CHILD_METADATA = (
    "name",
    "namespace",
    "labels",
    "annotations",
    "ownerReferences",
    "generation",
    "deletionTimestamp",
)
DEPLOYMENT_STATUS = (
    "replicas",
    "readyReplicas",
    "availableReplicas",
    "updatedReplicas",
    "observedGeneration",
)


def slim_pod(body: Mapping[str, Any]) -> JSON:
    metadata = body.get("metadata") or {}
    labels = metadata.get("labels") or {}
    return {
        "metadata": {
            "name": metadata.get("name"),
            "labels": {REVISION_LABEL: labels.get(REVISION_LABEL, "")},
        },
        "status": problem_fields(dict(body)),
    }


def slim_endpoint_slice(body: Mapping[str, Any]) -> JSON:
    """A Service's EndpointSlice as the names of the pods it lists as ready. A pod Ready in
    its Deployment's count is routable only once the EndpointSlice controller has seen it
    Ready too, which lags on a busy control plane."""
    metadata = body.get("metadata") or {}
    ready = sorted(
        str(ref.get("name"))
        for endpoint in body.get("endpoints") or []
        if (ref := endpoint.get("targetRef") or {}).get("kind") == "Pod"
        # An unset condition means ready (the EndpointSlice API's rule).
        and (endpoint.get("conditions") or {}).get("ready") is not False
    )
    return {"metadata": {"name": metadata.get("name")}, "readyPods": ready}


def pack_child(body: Mapping[str, Any]) -> str:
    """Everything drift detection compares (all but status: a ServiceAccount's fields are at
    the top), less the server's bookkeeping in metadata."""
    metadata = body.get("metadata") or {}
    slim: JSON = {k: v for k, v in body.items() if k not in ("metadata", "status")}
    slim["metadata"] = {k: metadata[k] for k in CHILD_METADATA if k in metadata}
    if body.get("kind") == "Deployment":
        status = body.get("status") or {}
        slim["status"] = {k: status[k] for k in DEPLOYMENT_STATUS if k in status}
        slim["status"]["conditions"] = [
            {k: c[k] for k in ("type", "status", "reason") if k in c}
            for c in status.get("conditions") or []
        ]
    return json.dumps(slim, separators=(",", ":"))


def unpack(packed: str) -> JSON:
    """A cached child or ModelDeployment back as the dict its reader works on."""
    body: JSON = json.loads(packed)
    return body


class PackedModelDeployment(NamedTuple):
    """A ModelDeployment as the watch cache keeps it: compact JSON, unpacked only by the
    reconcile that reads it (a status holds a spec per revision in its history, and as
    dicts a thousand of them were the largest part of the operator's memory), beside the
    two things read of every object at once: its version (the watch probe) and its
    conditions' types and statuses (the condition gauges)."""

    resource_version: str
    conditions: tuple[tuple[str, str], ...]
    packed: str


def pack_model_deployment(body: Mapping[str, Any]) -> PackedModelDeployment:
    metadata = dict(body.get("metadata") or {})
    metadata.pop("managedFields", None)
    if KOPF_DIFFBASE in (annotations := metadata.get("annotations") or {}):
        metadata["annotations"] = {k: v for k, v in annotations.items() if k != KOPF_DIFFBASE}
    conditions = (body.get("status") or {}).get("conditions") or []
    return PackedModelDeployment(
        str(metadata.get("resourceVersion", "")),
        tuple((str(c.get("type")), str(c.get("status"))) for c in conditions),
        json.dumps({**body, "metadata": metadata}, separators=(",", ":")),
    )
