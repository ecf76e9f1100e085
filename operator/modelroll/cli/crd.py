"""The ModelDeployment CRD's schema, read from the CRD manifest that the cluster gets."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, cast

import yaml

from modelroll import VERSION

# Like render.TEMPLATES_DIR: an image or package may point elsewhere; a checkout has crds/.
CRD_PATH = Path(
    os.environ.get(
        "MODELROLL_CRD",
        Path(__file__).resolve().parents[3] / "crds" / "modelroll.io_modeldeployments.yaml",
    )
)

Schema = dict[str, Any]


@functools.cache
def crd_version(path: Path = CRD_PATH) -> Schema:
    """The CRD's entry for the served version: schema and subresources."""
    crd = yaml.safe_load(path.read_text())
    for version in crd["spec"]["versions"]:
        if version["name"] == VERSION:
            return cast(Schema, version)
    raise LookupError(f"{path} does not serve {VERSION}")


def crd_schema(path: Path = CRD_PATH) -> Schema:
    """The openAPIV3Schema of the served version."""
    return cast(Schema, crd_version(path)["schema"]["openAPIV3Schema"])


def spec_replicas_path() -> str:
    """The scale subresource's specReplicasPath, such as ".spec.replicas", or ""."""
    scale = (crd_version().get("subresources") or {}).get("scale") or {}
    return str(scale.get("specReplicasPath", ""))
