"""ModelDeployments whose revision hashes Go's YAML reader would take for numbers.

A revision is 8 hex digits; about one in 30 is all digits (`12345678`) or digits around one
`e` (`903118e1`, a float to Go). The bodies differ in their name and model version only.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml
from modelroll.cli.render_command import render_model_deployment

# Go's sigs.k8s.io/yaml (yaml.v2 resolve): plain integers, and floats with or without a dot.
GO_NUMBER = re.compile(r"[-+]?(?:0x[0-9a-fA-F_]+|0o?[0-7_]+|0b[01_]+|[0-9][0-9_]*)")
GO_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")


def looks_numeric(text: str) -> bool:
    return bool(GO_NUMBER.fullmatch(text) or GO_FLOAT.fullmatch(text))


def model_deployment(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "modelroll.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": f"md-{index}"},
        "spec": {
            "model": {"format": "sklearn", "uri": "s3://models/iris/", "version": str(index)},
            "replicas": 0,  # no pods: applying the children starts nothing
        },
    }


def revision(body: dict[str, Any]) -> str:
    deployment = render_model_deployment(body)[0]
    return str(deployment["metadata"]["labels"]["modelroll.io/revision"])


def plain_to_pyyaml(text: str) -> bool:
    """PyYAML quotes what YAML 1.1 reads as a number (`12345678`) but writes `903118e1`
    plain, since its floats need a dot: the case that only Go's reader gets wrong. Go keeps
    a float that overflows (`54e92719`) a string, so only finite ones count."""
    unquoted = not yaml.safe_dump(text).startswith(("'", '"'))
    return unquoted and GO_FLOAT.fullmatch(text) is not None and math.isfinite(float(text))


def with_numeric_revisions(numeric: int, at_least: int = 0, plain: int = 0) -> list[dict[str, Any]]:
    """ModelDeployments md-0, md-1, ... up to the `numeric`-th whose revision looks numeric
    (and at least `at_least` in all, and `plain` of them left unquoted by PyYAML)."""
    bodies: list[dict[str, Any]] = []
    found = found_plain = 0
    for index in range(5000):
        body = model_deployment(index)
        bodies.append(body)
        hash_ = revision(body)
        found += looks_numeric(hash_)
        found_plain += looks_numeric(hash_) and plain_to_pyyaml(hash_)
        if found >= numeric and found_plain >= plain and len(bodies) >= at_least:
            return bodies
    raise AssertionError(f"fewer than {numeric} numeric-looking revisions in 5000 specs")
