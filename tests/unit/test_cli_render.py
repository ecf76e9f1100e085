"""`modelroll render`: the operator's children, from the schema-defaulted object."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from modelroll.cli.crd import crd_schema
from modelroll.cli.defaults import apply_defaults
from modelroll.cli.main import app
from modelroll.cli.render_command import PLACEHOLDER_UID, render_model_deployment
from modelroll.config import OperatorConfig
from modelroll.render import Owner, RenderContext, render_children
from modelroll.revision import revision_of
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
IRIS = REPO / "examples" / "sklearn-iris.yaml"
runner = CliRunner()


def test_defaults_are_applied_as_the_apiserver_does() -> None:
    body: dict[str, Any] = {
        "metadata": {"name": "x"},
        "spec": {
            "model": {"format": "sklearn", "uri": "s3://b/k"},
            "runtime": None,
            "rollout": {"strategy": "Canary", "canary": {"steps": [{"weight": 10}]}},
        },
    }
    spec = apply_defaults(body, crd_schema())["spec"]
    assert spec["runtime"] == {"protocol": "v2"}  # null replaced, then the default defaulted
    assert spec["replicas"] == 1
    assert spec["rollout"]["progressDeadlineSeconds"] == 600
    assert spec["rollout"]["canary"]["trafficRouting"] == {"mode": "Replicas"}
    assert spec["rollout"]["canary"]["steps"] == [{"weight": 10, "pauseSeconds": 0}]
    assert "batching" not in spec["runtime"]  # no default for the object itself
    assert body["spec"]["runtime"] is None  # the input is left alone


def test_render_equals_render_children_of_the_defaulted_object() -> None:
    body = yaml.safe_load(IRIS.read_text())
    rendered = render_model_deployment(copy.deepcopy(body), "prod", "example/runtime:1")
    config = OperatorConfig(runtime_image="example/runtime:1")
    spec = apply_defaults(body, crd_schema())["spec"]
    expected = render_children(
        Owner("iris", "prod", PLACEHOLDER_UID),
        spec,
        revision_of(spec, config.runtime_image),
        RenderContext(config),
    )
    assert rendered == expected
    assert [c["kind"] for c in rendered] == [
        "Deployment",
        "ServiceAccount",
        "Service",
        "NetworkPolicy",
        "PodDisruptionBudget",
    ]
    container = rendered[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "example/runtime:1"


def test_the_command_prints_yaml_documents_for_every_model_deployment(tmp_path: Path) -> None:
    result = runner.invoke(app, ["render", str(REPO / "examples" / "hpa.yaml"), "-n", "ml"])
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all(result.output))
    assert {d["metadata"]["namespace"] for d in documents} == {"ml"}
    assert "HorizontalPodAutoscaler" in {d["kind"] for d in documents}
    with_monitor = runner.invoke(app, ["render", str(IRIS), "--service-monitor"])
    assert "kind: ServiceMonitor" in with_monitor.output


@pytest.mark.parametrize("content", ["apiVersion: v1\nkind: List\n", ""])
def test_nothing_to_render_fails(tmp_path: Path, content: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(content)
    assert runner.invoke(app, ["render", str(path)]).exit_code == 1


def test_an_invalid_object_is_not_rendered(tmp_path: Path) -> None:
    body = yaml.safe_load(IRIS.read_text())
    body["spec"]["replicas"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(body))
    result = runner.invoke(app, ["render", str(path)])
    assert result.exit_code == 1
    assert "spec.replicas in body should be greater than or equal to 0" in result.output
