"""The CustomResourceDefinition, built in memory from the typed models.

pydantic's JSON schema is close to, but not, a Kubernetes structural schema: it uses $refs,
spells optional fields as anyOf-with-null, adds titles and writes `default: null`. This
module turns it into structural OpenAPI v3 and wraps it in the CRD.
"""

from __future__ import annotations

import functools
from typing import Any, cast

from modelroll import GROUP, KIND, PLURAL, VERSION
from modelroll.api import v1alpha1

JSON = dict[str, Any]
NULL: JSON = {"type": "null"}
# Keys first in each schema, so that the YAML reads top-down; the rest keep pydantic's order.
LEADING = ("type", "format", "description", "required", "default")
TRAILING = ("properties", "additionalProperties", "items")


def _structural(node: Any, defs: JSON) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:  # a model: its own schema, with the field's keys (description) on top
        referenced = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**referenced, **node}
    branches = node.get("anyOf")
    if isinstance(branches, list) and NULL in branches:  # Optional[X] is X, left out when unset
        rest = [branch for branch in branches if branch != NULL]
        del node["anyOf"]
        node = {**rest[0], **node} if len(rest) == 1 else {**node, "anyOf": rest}
        if "$ref" in node:
            return _structural(node, defs)
    if node.get("default", ...) is None:
        del node["default"]
    node.pop("title", None)
    if node.get("additionalProperties") is True:  # extra="allow": a pass-through object
        del node["additionalProperties"]
        node["x-kubernetes-preserve-unknown-fields"] = True
    if isinstance(node.get("description"), str):
        node["description"] = " ".join(node["description"].split())
    out = {key: _structural(value, defs) for key, value in node.items()}
    if isinstance(out.get("properties"), dict):  # property names are data, not schemas
        out["properties"] = {k: _structural(v, defs) for k, v in node["properties"].items()}
    ordered = {key: out.pop(key) for key in LEADING if key in out}
    ordered.update({key: value for key, value in out.items() if key not in TRAILING})
    ordered.update({key: out[key] for key in TRAILING if key in out})
    return ordered


def openapi_schema() -> JSON:
    """The openAPIV3Schema of ModelDeployment: structural, with every $ref inlined."""
    raw = v1alpha1.ModelDeployment.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return cast(JSON, _structural(raw, defs))


@functools.cache
def _crd() -> JSON:
    version: JSON = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "subresources": v1alpha1.SUBRESOURCES,
        "additionalPrinterColumns": list(v1alpha1.PRINTER_COLUMNS),
        "schema": {"openAPIV3Schema": openapi_schema()},
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {
                "app.kubernetes.io/name": "modelroll",
                "app.kubernetes.io/part-of": "modelroll",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": list(v1alpha1.SHORT_NAMES),
                "categories": list(v1alpha1.CATEGORIES),
            },
            "versions": [version],
        },
    }


def crd() -> JSON:
    """The CRD manifest. Callers get a copy-free shared dict: treat it as read-only."""
    return _crd()
