"""The ModelDeployment CRD's schema, read from the CRD manifest that the cluster gets."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, cast

import yaml

from modelroll import VERSION

# Package data, like the templates: operator/modelroll/crds links to the repository's crds/.
CRD_PATH = resources.files("modelroll") / "crds" / "modelroll.io_modeldeployments.yaml"

Schema = dict[str, Any]


@functools.cache
def crd_version() -> Schema:
    """The CRD's entry for the served version: schema and subresources."""
    crd = yaml.safe_load(CRD_PATH.read_text(encoding="utf-8"))
    for version in crd["spec"]["versions"]:
        if version["name"] == VERSION:
            return cast(Schema, version)
    raise LookupError(f"{CRD_PATH} does not serve {VERSION}")


def crd_schema() -> Schema:
    """The openAPIV3Schema of the served version."""
    return cast(Schema, crd_version()["schema"]["openAPIV3Schema"])


def spec_replicas_path() -> str:
    """The scale subresource's specReplicasPath, such as ".spec.replicas", or ""."""
    scale = (crd_version().get("subresources") or {}).get("scale") or {}
    return str(scale.get("specReplicasPath", ""))
