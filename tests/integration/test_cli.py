"""The `modelroll` CLI against the local control plane and the real operator.

lint against the apiserver's own verdicts, render against what the operator applied,
status (one view and --watch) on live objects, and the four rollout actions consumed
by the operator. `predict` needs pods that run; see tests/unit/test_cli_predict.py.
"""

from __future__ import annotations

import copy
import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from modelroll.cli.cluster import connect
from modelroll.cli.lint import lint_object
from modelroll.cli.main import app
from modelroll.cli.status_command import snapshot, watch
from modelroll.drift import SPEC_HASH_ANNOTATION, is_subset, stamp
from rich.console import Console
from typer.testing import CliRunner

from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.helpers import apply, condition, eventually, get_json, model_deployment
from tests.support.numeric_revisions import looks_numeric, with_numeric_revisions

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CASES = yaml.safe_load((REPO / "tests" / "cases" / "invalid_modeldeployments.yaml").read_text())
IRIS = REPO / "examples" / "sklearn-iris.yaml"
GROUP, VERSION, PLURAL = "modelroll.io", "v1alpha1", "modeldeployments"
REVISION = "modelroll.io/revision"
Json = dict[str, Any]
runner = CliRunner()


def cli(cluster: Cluster, *args: str) -> str:
    if args[0] != "render":  # the only command that never reaches a cluster
        args = (*args, "--kubeconfig", cluster.kubeconfig)
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def ready(cluster: Cluster, namespace: str, name: str) -> Json:
    def check() -> Json:
        md: Json = get_json(cluster, "md", name, "-n", namespace)
        assert condition(md, "Ready").get("status") == "True", md.get("status")
        return md

    return eventually(check, timeout=90)


def annotation_consumed(cluster: Cluster, namespace: str, name: str, action: str) -> Json:
    def check() -> Json:
        md: Json = get_json(cluster, "md", name, "-n", namespace)
        assert f"modelroll.io/{action}" not in (md["metadata"].get("annotations") or {})
        return md

    return eventually(check, timeout=60)


# --- lint: the same verdicts and messages as the apiserver ------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_lint_reports_exactly_what_the_apiserver_reports(
    case: Json, crd_installed: None, api_client: client.ApiClient, namespace: str
) -> None:
    custom = client.CustomObjectsApi(api_client)
    body = copy.deepcopy(case["manifest"])
    with pytest.raises(client.ApiException) as rejected:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict"
        )
    rejection = json.loads(rejected.value.body or "{}")
    message = rejection["message"]
    problems = [str(p) for p in lint_object(copy.deepcopy(case["manifest"]))]
    assert problems, message
    for problem in problems:
        assert problem in message, f"lint: {problem}\napiserver: {message}"
    if rejected.value.status == 422:
        causes = rejection["details"]["causes"]
        assert len(causes) == len(problems), f"lint: {problems}\napiserver: {message}"


# --- render and status on a Ready ModelDeployment -----------------------------------------


def test_render_equals_what_the_operator_created_and_status_shows_it(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(IRIS))
    md = ready(cluster, namespace, "iris")
    uid = md["metadata"]["uid"]
    monitors = cluster.kubectl("get", "servicemonitors", "-n", namespace, check=False)
    flags = ["--service-monitor"] if "iris" in monitors.stdout else []
    rendered = list(yaml.safe_load_all(cli(cluster, "render", str(IRIS), "-n", namespace, *flags)))
    assert rendered, "nothing rendered"
    for child in rendered:
        for ref in child["metadata"]["ownerReferences"]:
            ref["uid"] = uid
        kind, name = child["kind"], child["metadata"]["name"]
        live = get_json(cluster, kind, name, "-n", namespace)
        # The operator stamps the hash of the full manifest it applied: equal hashes mean
        # the operator applied exactly this manifest.
        expected = stamp(child)
        assert (
            live["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
            == (expected["metadata"]["annotations"][SPEC_HASH_ANNOTATION])
        ), f"{kind} {name} differs"
        assert is_subset(expected, live), f"{kind} {name} differs"

    text = cli(cluster, "promote", "iris", "-n", namespace)
    assert "nothing" not in text.lower() or "drop the annotation" in text
    annotation_consumed(cluster, namespace, "iris", "promote")
    revision = md["status"]["stableRevision"]

    def shown() -> str:
        view = cli(cluster, "status", "iris", "-n", namespace)
        assert "ActionIgnored" in view, view  # the Event about the idle promote
        return view

    view = eventually(shown, timeout=30)
    assert f"{namespace}/iris" in view
    row = next(line for line in view.splitlines() if line.strip("│ ").startswith(revision))
    assert "stable" in row and "2/2" in row and "100%" in row
    assert "Ready" in view and "Progressing" in view and "Degraded" in view
    assert "promote: nothing to act on" in view


# --- render's YAML as kubectl (Go's YAML reader) reads it ---------------------------------


def test_render_of_many_model_deployments_applies_with_kubectl(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    bodies = with_numeric_revisions(numeric=3, plain=1)
    manifests = tmp_path / "many.yaml"
    manifests.write_text(yaml.safe_dump_all(bodies))
    text = cli(cluster, "render", str(manifests), "-n", namespace)
    children = list(yaml.safe_load_all(text))
    revisions = {c["metadata"]["labels"][REVISION] for c in children}
    assert len([r for r in revisions if looks_numeric(r)]) >= 3, revisions
    # The same children written by PyYAML's own dumper: Go reads their hashes as numbers.
    unquoted = cluster.kubectl(
        "create", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(children), check=False
    )
    assert unquoted.returncode != 0
    assert "cannot unmarshal number" in unquoted.stderr, unquoted.stderr
    created = cluster.kubectl("create", "-f", "-", input=text, timeout=300)
    assert created.stdout.count(" created") == len(children), created.stdout
    applied = cluster.kubectl(
        "apply", "--server-side", "--field-manager=gitops", "-f", "-", input=text, timeout=300
    )
    assert applied.stdout.count("serverside-applied") == len(children), applied.stdout
    numeric = next(
        c
        for c in children
        if c["kind"] == "Deployment" and looks_numeric(c["metadata"]["labels"][REVISION])
    )
    # The objects as the apiserver stored them, from the apply itself: a later GET races the
    # garbage collector, which removes them (their owner, the rendered placeholder UID, does
    # not exist).
    stored = cluster.kubectl(
        "apply", "--server-side", "--field-manager=gitops", "-o", "json", "-f", "-", input=text,
        timeout=300,
    )  # fmt: skip
    items = json.loads(stored.stdout)["items"]
    live = next(i for i in items if i["metadata"]["name"] == numeric["metadata"]["name"])
    assert live["kind"] == "Deployment"
    assert live["metadata"]["labels"] == numeric["metadata"]["labels"]


# --- the rollout actions, seen live through status --watch ---------------------------------


def canary_spec(version: str) -> Json:
    spec: Json = model_deployment("churn")["spec"]
    spec["model"]["version"] = version
    spec["replicas"] = 2
    spec["rollout"] = {
        "strategy": "Canary",
        "canary": {"scaleDownDelaySeconds": 0, "steps": [{"weight": 50, "pauseSeconds": 3600}]},
    }
    return spec


def test_actions_are_consumed_and_watch_draws_the_rollout(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    body = model_deployment("churn")
    body["spec"] = canary_spec("1")
    apply(cluster, namespace, body)
    r1 = ready(cluster, namespace, "churn")["status"]["stableRevision"]

    console = Console(record=True, force_terminal=True, width=160, file=io.StringIO())
    target = connect("churn", namespace, cluster.kubeconfig)
    frames: list[int] = []
    watcher = threading.Thread(
        target=lambda: frames.append(watch(lambda: snapshot(target), console, 0.3, 60))
    )
    watcher.start()
    try:
        body["spec"] = canary_spec("2")
        apply(cluster, namespace, body)

        def canary_running() -> str:
            status = get_json(cluster, "md", "churn", "-n", namespace).get("status") or {}
            assert status.get("canaryRevision") and status.get("currentStep") == 0, status
            return str(status["canaryRevision"])

        r2 = eventually(canary_running, timeout=60)
        assert "is scaled down and all traffic returns to" in cli(
            cluster, "abort", "churn", "-n", namespace
        )
        md = annotation_consumed(cluster, namespace, "churn", "abort")
        degraded = eventually(
            lambda: condition(get_json(cluster, "md", "churn", "-n", namespace), "Degraded"),
            timeout=30,
        )
        assert degraded["status"] == "True" and degraded["reason"] == "Aborted", md["status"]
    finally:
        watcher.join(timeout=60)
    text = console.export_text()
    assert frames and frames[0] >= 2
    assert any("canary" in line and r2 in line for line in text.splitlines()), text[-3000:]
    assert "Aborted" in text

    assert f"The aborted revision {r2} is rolled out again" in cli(
        cluster, "retry", "churn", "-n", namespace
    )
    annotation_consumed(cluster, namespace, "churn", "retry")
    eventually(lambda: "RolloutRetried" in cli(cluster, "status", "churn", "-n", namespace))

    body["spec"] = canary_spec("3")
    apply(cluster, namespace, body)
    r3 = eventually(canary_running, timeout=60)
    assert r3 not in (r1, r2)
    assert "skips its remaining steps" in cli(cluster, "promote", "churn", "-n", namespace)
    annotation_consumed(cluster, namespace, "churn", "promote")

    def stable_is(revision: str) -> bool:
        status = get_json(cluster, "md", "churn", "-n", namespace).get("status") or {}
        assert status.get("stableRevision") == revision and not status.get("canaryRevision")
        return True

    eventually(lambda: stable_is(r3), timeout=60)
    assert f"previous stable revision {r1}" in cli(cluster, "rollback", "churn", "-n", namespace)
    annotation_consumed(cluster, namespace, "churn", "rollback")
    eventually(lambda: stable_is(r1), timeout=90)
