"""`modelroll lint`: the apiserver's verdicts and messages, offline."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from modelroll.cli.cel_rules import evaluate
from modelroll.cli.lint import lint_object
from modelroll.cli.main import app
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
CASES = yaml.safe_load((REPO / "tests" / "cases" / "invalid_modeldeployments.yaml").read_text())
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
# Cases lint cannot reproduce offline, with the reason. Keep it empty: every rule the
# apiserver applies to a ModelDeployment is in the CRD, which lint reads.
NOT_REPRODUCIBLE: dict[str, str] = {}
runner = CliRunner()


def messages(body: dict[str, Any]) -> list[str]:
    return [str(problem) for problem in lint_object(copy.deepcopy(body))]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_every_invalid_case_fails_with_the_apiservers_message(case: dict[str, Any]) -> None:
    if case["name"] in NOT_REPRODUCIBLE:
        pytest.xfail(NOT_REPRODUCIBLE[case["name"]])
    found = messages(case["manifest"])
    assert any(case["expect"] in line for line in found), found


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_lints_clean(example: Path) -> None:
    result = runner.invoke(app, ["lint", str(example)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output and "invalid" not in result.output


def test_the_command_prints_every_error_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump_all([case["manifest"] for case in CASES[:3]])
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ignored}\n"
    )
    result = runner.invoke(app, ["lint", str(bad), str(EXAMPLES[0])])
    assert result.exit_code == 1
    for case in CASES[:3]:
        assert case["expect"] in result.output
    assert "ConfigMap" not in result.output
    assert f"{EXAMPLES[0]}: ModelDeployment" in result.output


def test_a_file_without_model_deployments_fails(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    result = runner.invoke(app, ["lint", str(empty)])
    assert result.exit_code == 1 and "no ModelDeployment found" in result.output


VALID: dict[str, Any] = {
    "apiVersion": "modelroll.io/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "iris", "labels": {"team": "ml"}},
    "spec": {"model": {"format": "sklearn", "uri": "s3://models/iris/"}},
}


def test_messages_have_the_apiservers_exact_shape() -> None:
    body = copy.deepcopy(VALID)
    body["spec"]["autoscaling"] = {"minReplicas": 5, "maxReplicas": 2, "targetRequestsPerSecond": 9}
    body["spec"]["rollout"] = {"strategy": "Canary", "canary": {"steps": [{"weight": 5}] * 2}}
    assert messages(body) == [
        'spec.autoscaling.minReplicas: Invalid value: "object": spec.autoscaling.minReplicas '
        "must be less than or equal to spec.autoscaling.maxReplicas",
        'spec.rollout.canary.steps: Invalid value: "array": spec.rollout.canary.steps weights '
        "must strictly increase",
    ]


def test_unknown_fields_are_reported_where_strict_decoding_finds_them() -> None:
    body = copy.deepcopy(VALID)
    body["metadata"]["labelz"] = {}
    body["spec"]["rollout"] = {"strategy": "Rolling", "surge": 1}
    body["spec"]["runtime"] = {"env": [{"name": "A", "valueFrom": {"anything": 1}}]}
    assert messages(body) == [
        'strict decoding error: unknown field "metadata.labelz"',
        'strict decoding error: unknown field "spec.rollout.surge"',
    ]


def test_status_is_ignored_and_a_valid_object_passes() -> None:
    body = {**copy.deepcopy(VALID), "status": {"replicas": "not validated on create"}}
    assert messages(body) == []


def test_a_missing_name_is_an_object_meta_error() -> None:
    body = copy.deepcopy(VALID)
    del body["metadata"]["name"]
    assert "metadata.name: Required value: name or generateName is required" in messages(body)


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ("self.isSorted()", [1, 2, 2, 5], True),
        ("self.isSorted()", ["b", "a"], False),
        ("self.sum() == 6 && self.min() == 1 && self.max() == 3", [1, 2, 3], True),
        ("self.indexOf(2) == 1 && self.lastIndexOf(9) == -1", [1, 2, 2], True),
        ("self.lowerAscii() == 'abc' && self.upperAscii() == 'ABC'", "aBc", True),
        ("self.split('/').join('.') == 'a.b.c'", "a/b/c", True),
        ("self.replace('-', '') == 'ab' && self.substring(1) == '-b'", "a-b", True),
        ("self.trim() == 'x' && self.indexOf('x') == 1", " x ", True),
        ("self.exists_one(x, x > 2) && size(self) == 3", [1, 2, 3], True),
        ("self.matches('^a+$') && self.startsWith('a')", "aaa", True),
    ],
)
def test_kubernetes_cel_extensions(rule: str, value: Any, expected: bool) -> None:
    assert bool(evaluate(rule, value)) is expected
