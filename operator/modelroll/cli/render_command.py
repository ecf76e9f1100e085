"""`modelroll render`: the children the operator would create, computed offline."""

from __future__ import annotations

import dataclasses

from modelroll.cli.crd import crd_schema
from modelroll.cli.defaults import apply_defaults
from modelroll.config import OperatorConfig
from modelroll.render import Owner, RenderContext, render_children
from modelroll.revision import revision_of
from modelroll.spec import JSON

# Children reference their owner by uid, which only the apiserver assigns.
PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"


def render_model_deployment(
    body: JSON,
    namespace: str | None = None,
    runtime_image: str | None = None,
    service_monitor: bool = False,
) -> list[JSON]:
    """The children of a settled ModelDeployment, from its schema-defaulted spec."""
    config = OperatorConfig()
    if runtime_image:
        config = dataclasses.replace(config, runtime_image=runtime_image)
    defaulted = apply_defaults(body, crd_schema())
    metadata = defaulted["metadata"]
    owner = Owner(
        metadata["name"],
        namespace or metadata.get("namespace") or "default",
        metadata.get("uid") or PLACEHOLDER_UID,
    )
    spec = defaulted["spec"]
    revision = revision_of(spec, config.runtime_image)
    return render_children(owner, spec, revision, RenderContext(config, service_monitor))
