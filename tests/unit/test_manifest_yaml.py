"""`modelroll render`'s YAML: label and annotation values quoted, nothing Go reads as a number.

Python's yaml.safe_load reads `903118e1` as a string either way, so these tests read the
YAML text itself: its scalar nodes and their quoting style.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from modelroll.cli.main import app
from modelroll.cli.manifest_yaml import dump_manifests
from modelroll.cli.render_command import render_model_deployment
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests/unit is no package; the shared helpers are in one
from tests.support.numeric_revisions import looks_numeric, with_numeric_revisions  # noqa: E402

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
LABEL_MAPS = {"labels", "annotations", "matchLabels", "selector", "nodeSelector"}
# Plain scalars that Go's YAML reader (yaml.v2) resolves to booleans, null or special floats.
WORDS = ["y", "yes", "n", "no", "true", "false", "on", "off", "null"]
GO_KEYWORDS = {case(w) for w in WORDS for case in (str.lower, str.capitalize, str.upper)}
GO_KEYWORDS |= {"~", "<<", ".nan", ".NaN", ".NAN"}
GO_KEYWORDS |= {sign + inf for sign in ("", "-", "+") for inf in (".inf", ".Inf", ".INF")}
STR_TAG = "tag:yaml.org,2002:str"
RESOLVER = yaml.resolver.Resolver()
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
runner = CliRunner()


def go_reads_as_non_string(plain: str) -> bool:
    return plain == "" or plain in GO_KEYWORDS or looks_numeric(plain)


def label_value_nodes(node: yaml.Node, key: str = "") -> list[yaml.ScalarNode]:
    """Every scalar value of a label, annotation or selector map in the document."""
    found: list[yaml.ScalarNode] = []
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if key in LABEL_MAPS and isinstance(v, yaml.ScalarNode):
                found.append(v)
            found += label_value_nodes(v, k.value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found += label_value_nodes(item)
    return found


def plain_scalars(node: yaml.Node) -> list[str]:
    if isinstance(node, yaml.ScalarNode):
        return [node.value] if node.style is None else []
    if isinstance(node, yaml.MappingNode):
        return [s for k, v in node.value for s in plain_scalars(k) + plain_scalars(v)]
    if isinstance(node, yaml.SequenceNode):
        return [s for item in node.value for s in plain_scalars(item)]
    return []


def render(path: Path, *flags: str) -> str:
    result = runner.invoke(app, ["render", str(path), *flags])
    assert result.exit_code == 0, result.output
    return result.output


def check_text(text: str) -> int:
    """Asserts the rules on one render's text; the number of label values it checked."""
    checked = 0
    for document in yaml.compose_all(text, Loader=Loader):
        for value in label_value_nodes(document):
            assert value.style == '"', f"label or annotation value {value.value!r} not quoted"
            checked += 1
        for plain in plain_scalars(document):
            # Typed values (ints, booleans, null) are plain on purpose: Go reads them as meant.
            if RESOLVER.resolve(yaml.ScalarNode, plain, (True, False)) != STR_TAG:
                continue
            assert not go_reads_as_non_string(plain), f"{plain!r} is plain: Go reads no string"
    return checked


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_label_and_annotation_value_is_quoted(path: Path) -> None:
    text = render(path, "--service-monitor")
    assert check_text(text) > 10


def test_numeric_looking_revisions_are_quoted_strings() -> None:
    bodies = with_numeric_revisions(numeric=3)
    text = dump_manifests([m for body in bodies for m in render_model_deployment(body)])
    check_text(text)
    revisions = {
        d["metadata"]["labels"]["modelroll.io/revision"]
        for d in yaml.safe_load_all(text)
        if d["kind"] == "Deployment"
    }
    numeric = sorted(r for r in revisions if looks_numeric(r))
    assert len(numeric) >= 3, revisions
    for revision in numeric:
        assert f'modelroll.io/revision: "{revision}"' in text


@given(
    st.text(st.characters(codec="utf-8"), max_size=12)
    | st.from_regex(r"[0-9a-f]{8}", fullmatch=True)
)
def test_any_string_comes_back_as_the_same_string(value: str) -> None:
    manifest: dict[str, Any] = {
        "metadata": {"name": value, "labels": {"a": value}, "annotations": {value: value}},
        "spec": {"env": [{"name": "X", "value": value}], "selector": {"b": value}},
    }
    text = dump_manifests([manifest])
    assert yaml.safe_load(text) == manifest
    check_text(text)


def test_typed_values_keep_their_type() -> None:
    text = dump_manifests([{"spec": {"replicas": 2, "paused": False, "weight": 0.5}}])
    assert text == "spec:\n  replicas: 2\n  paused: false\n  weight: 0.5\n"
