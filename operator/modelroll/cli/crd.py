"""The ModelDeployment CRD's schema, as the cluster gets it: built from the typed API in
memory, so that an installed wheel lints and renders without a checkout."""

from __future__ import annotations

from typing import Any, cast

from modelroll import VERSION
from modelroll.api.crd import crd

Schema = dict[str, Any]


def crd_version() -> Schema:
    """The CRD's entry for the served version: schema and subresources."""
    for version in crd()["spec"]["versions"]:
        if version["name"] == VERSION:
            return cast(Schema, version)
    raise LookupError(f"the CRD does not serve {VERSION}")


def crd_schema() -> Schema:
    """The openAPIV3Schema of the served version."""
    return cast(Schema, crd_version()["schema"]["openAPIV3Schema"])


def spec_replicas_path() -> str:
    """The scale subresource's specReplicasPath, such as ".spec.replicas", or ""."""
    scale = (crd_version().get("subresources") or {}).get("scale") or {}
    return str(scale.get("specReplicasPath", ""))
