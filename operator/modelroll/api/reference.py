"""docs/api-reference.md: one table row per field of the CRD's schema, in schema order."""

from __future__ import annotations

import json
from typing import Any

JSON = dict[str, Any]
LIMITS = (
    ("minimum", "min"),
    ("maximum", "max"),
    ("maxLength", "max length"),
    ("maxItems", "max items"),
    ("pattern", "pattern"),
)


def type_of(schema: JSON) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "int or string"
    kind = str(schema.get("type", "object"))
    if kind == "array":
        return f"[]{type_of(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        return f"map[string]{type_of(schema['additionalProperties'])}"
    return kind


def constraints(schema: JSON) -> str:
    parts = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    if "default" in schema:
        parts.append(f"default `{json.dumps(schema['default'])}`")
    parts += [f"{label} `{schema[key]}`" for key, label in LIMITS if key in schema]
    return "; ".join(parts)


def rows(schema: JSON, path: str, required: set[str]) -> list[str]:
    lines = []
    for name, child in schema.get("properties", {}).items():
        field = f"{path}.{name}" if path else name
        mark = " (required)" if name in required else ""
        cells = [" ".join(str(child.get("description", "")).split()), constraints(child)]
        description, limits = (c.replace("|", "\\|") for c in cells)  # keep the table intact
        lines.append(f"| `{field}`{mark} | {type_of(child)} | {description} | {limits} |")
        target = child.get("items", child) if child.get("type") == "array" else child
        suffix = "[]" if child.get("type") == "array" else ""
        lines += rows(target, field + suffix, set(target.get("required", [])))
    return lines


def render(crd: JSON) -> str:
    version = crd["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    out = [
        "# ModelDeployment API reference",
        "",
        f"`{crd['spec']['group']}/{version['name']}`, kind `{crd['spec']['names']['kind']}`. "
        "Generated from the typed API (`operator/modelroll/api/v1alpha1.py`) by "
        "`python -m modelroll.api.generate`; do not edit by hand.",
        "",
    ]
    for part in ("spec", "status"):
        schema = root["properties"][part]
        out += [
            f"## {part}",
            "",
            " ".join(str(schema.get("description", "")).split()),
            "",
            "| field | type | description | constraints |",
            "|---|---|---|---|",
        ]
        out += rows(schema, part, set(schema.get("required", [])))
        out.append("")
    rules = list(root["properties"]["spec"].get("x-kubernetes-validations", []))
    if rules:
        out += ["## Validation rules on spec", ""]
        out += [f"- {r['message']}" for r in rules]
        out.append("")
    return "\n".join(out)
