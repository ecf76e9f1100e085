"""Generates docs/api-reference.md from the CRD schema (tests fail when it is stale).

.venv/bin/python hack/gen_api_reference.py            # rewrite the file
.venv/bin/python hack/gen_api_reference.py --check    # exit 1 when stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CRD = REPO / "crds" / "modelroll.io_modeldeployments.yaml"
TARGET = REPO / "docs" / "api-reference.md"


def type_of(schema: dict[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "int or string"
    kind = str(schema.get("type", "object"))
    if kind == "array":
        return f"[]{type_of(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        return f"map[string]{type_of(schema['additionalProperties'])}"
    return kind


def constraints(schema: dict[str, Any]) -> str:
    parts = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    if "default" in schema:
        parts.append(f"default `{json.dumps(schema['default'])}`")
    for key, label in (
        ("minimum", "min"),
        ("maximum", "max"),
        ("maxLength", "max length"),
        ("maxItems", "max items"),
        ("pattern", "pattern"),
    ):
        if key in schema:
            parts.append(f"{label} `{schema[key]}`")
    return "; ".join(parts)


def rows(schema: dict[str, Any], path: str, required: set[str]) -> list[str]:
    lines = []
    for name, child in schema.get("properties", {}).items():
        field = f"{path}.{name}" if path else name
        description = " ".join(str(child.get("description", "")).split())
        mark = " (required)" if name in required else ""
        cells = [description, constraints(child)]
        description, limits = (c.replace("|", "\\|") for c in cells)  # keep the table intact
        lines.append(f"| `{field}`{mark} | {type_of(child)} | {description} | {limits} |")
        target = child.get("items", child) if child.get("type") == "array" else child
        suffix = "[]" if child.get("type") == "array" else ""
        lines += rows(target, field + suffix, set(target.get("required", [])))
    return lines


def render() -> str:
    crd = yaml.safe_load(CRD.read_text())
    version = crd["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    out = [
        "# ModelDeployment API reference",
        "",
        f"`{crd['spec']['group']}/{version['name']}`, kind `{crd['spec']['names']['kind']}`. "
        "Generated from `crds/` by `hack/gen_api_reference.py`; do not edit by hand.",
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
    rules = [r for r in root["properties"]["spec"].get("x-kubernetes-validations", [])]
    if rules:
        out += ["## Validation rules on spec", ""]
        out += [f"- {r['message']}" for r in rules]
        out.append("")
    return "\n".join(out)


def main() -> None:
    text = render()
    if "--check" in sys.argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            sys.exit(f"{TARGET} is stale: run .venv/bin/python hack/gen_api_reference.py")
        return
    TARGET.write_text(text)


if __name__ == "__main__":
    main()
