"""What GitOps tools see: the Argo CD health check (gitops/argocd-health.lua, run through
lupa) and kstatus / Flux health checks, on statuses computed by the operator's own code
(rollout.plan and status.compute_status), the same shape reconcile writes."""

from __future__ import annotations

import copy
import datetime
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import celpy
import lupa
import pytest
import yaml
from celpy.adapter import json_to_cel
from modelroll.analysis import AnalysisResult
from modelroll.problems import PodProblem
from modelroll.rollout import PROMOTE, RolloutInput, SmokeResult, plan
from modelroll.rollout_state import state_from_status
from modelroll.spec import parse_spec
from modelroll.status import (
    Observed,
    RevisionState,
    compute_status,
    revision_view,
    with_products_not_offered,
)

from tests.support.kstatus import kstatus

JSON = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
HEALTH_LUA = (REPO / "gitops" / "argocd-health.lua").read_text()
T0 = 1_750_000_000.0
ANALYSIS = {"prometheus": {"endpoint": "main"}, "intervalSeconds": 30}
CANARY = {
    "strategy": "Canary",
    "canary": {"steps": [{"weight": 10, "pauseSeconds": 60}, {"weight": 50, "pauseSeconds": 60}]},
}
CANARY_WITH_ANALYSIS = {
    "strategy": "Canary",
    "canary": {"steps": [{"weight": 20, "pauseSeconds": 0}], "analysis": ANALYSIS},
}
BLUE_GREEN_MANUAL = {"strategy": "BlueGreen", "blueGreen": {"autoPromote": False}}
BLUE_GREEN_SMOKE = {
    "strategy": "BlueGreen",
    "blueGreen": {
        "autoPromote": True,
        "smokeTest": {"requests": [{"name": "one", "body": {"inputs": []}, "expectStatus": 200}]},
    },
}


def ready(revision: str, replicas: int) -> RevisionState:
    return RevisionState(
        name=f"iris-{revision}",
        revision=revision,
        version=revision,
        desired=replicas,
        replicas=replicas,
        ready=replicas,
        available=replicas,
        updated=replicas,
        up_to_date=True,
        deadline_exceeded=False,
        serving=replicas,
    )


def starting(revision: str, replicas: int, problem: PodProblem | None = None) -> RevisionState:
    return RevisionState(
        name=f"iris-{revision}",
        revision=revision,
        version=revision,
        desired=replicas,
        replicas=replicas,
        ready=0,
        available=0,
        updated=replicas,
        up_to_date=True,
        deadline_exceeded=False,
        problems=(problem,) if problem else (),
    )


@dataclass
class ModelDeployment:
    """One ModelDeployment driven through the operator's pure planning and status code."""

    rollout: JSON = field(default_factory=lambda: {"strategy": "Rolling"})
    replicas: int = 2
    generation: int = 1
    status: JSON = field(default_factory=dict)
    now: float = T0
    version: str = "a1"

    def spec(self) -> JSON:
        return {
            "model": {"format": "onnx", "uri": f"s3://m/{self.version}", "version": self.version},
            "replicas": self.replicas,
            "rollout": self.rollout,
        }

    def change(self, version: str) -> None:
        """A new spec: the apiserver bumps metadata.generation."""
        self.version = version
        self.generation += 1

    def reconcile(
        self,
        revisions: list[RevisionState],
        annotations: tuple[str, ...] = (),
        analysis: AnalysisResult | None = None,
        smoke: SmokeResult | None = None,
        invalid_spec: str = "",
    ) -> JSON:
        raw = self.spec()
        planned = plan(
            RolloutInput(
                spec=parse_spec(raw),
                raw_spec=raw,
                desired=self.version,
                state=state_from_status(self.status),
                observed={r.revision: revision_view(r) for r in revisions},
                annotations=frozenset(annotations),
                now=self.now,
                analysis=analysis,
                smoke=smoke,
            )
        )
        observed = Observed(
            generation=self.generation,
            revision=self.version,
            revisions=tuple(revisions),
            previous_status=self.status,
            invalid_spec=invalid_spec,
        )
        stamp = datetime.datetime.fromtimestamp(self.now, datetime.UTC)
        self.status = compute_status(
            observed,
            planned,
            url="http://iris.models.svc.cluster.local/v2/models/iris/infer",
            selector="modelroll.io/deployment=iris",
            now=stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        return self.object()

    def object(self) -> JSON:
        return {
            "apiVersion": "modelroll.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "iris", "namespace": "models", "generation": self.generation},
            "spec": self.spec(),
            "status": copy.deepcopy(self.status),
        }


def stable(rollout: JSON | None = None) -> ModelDeployment:
    md = ModelDeployment(rollout=rollout or {"strategy": "Rolling"})
    md.reconcile([ready("a1", 2)])
    return md


# --- sample statuses: (name, object, Argo CD health, Ready status) ----------------------------


def samples() -> list[tuple[str, JSON, str]]:
    cases: list[tuple[str, JSON, str]] = []

    cases.append(("healthy", stable().object(), "Healthy"))

    md = ModelDeployment()
    cases.append(("first revision, no Deployment yet", md.reconcile([]), "Progressing"))
    cases.append(
        ("first revision, pods starting", md.reconcile([starting("a1", 2)]), "Progressing")
    )

    md = ModelDeployment()
    crash = PodProblem("CrashLoopBackOff", "back-off 5m0s restarting failed container")
    cases.append(
        ("crash looping", md.reconcile([starting("a1", 2, crash)]), "Degraded"),
    )

    md = stable()
    cases.append(
        (
            "invalid spec",
            md.reconcile([ready("a1", 2)], invalid_spec="secret s3-creds not found"),
            "Degraded",
        )
    )

    md = stable()
    md.change("b2")
    spec_not_seen = md.object()
    cases.append(("new generation not yet observed", spec_not_seen, "Progressing"))
    cases.append(
        (
            "rolling update in progress",
            md.reconcile([ready("a1", 2), starting("b2", 2)]),
            "Progressing",
        )
    )

    md = stable(CANARY)
    md.change("b2")
    md.reconcile([ready("a1", 2)])
    cases.append(
        ("canary step 1", md.reconcile([ready("a1", 2), ready("b2", 1)]), "Progressing"),
    )

    md = stable(CANARY_WITH_ANALYSIS)
    md.change("b2")
    md.reconcile([ready("a1", 2)])
    md.reconcile([ready("a1", 2), ready("b2", 1)])
    failed = AnalysisResult(False, "CanaryAnalysisFailed", "error rate 12.5% > 1% over 80 requests")
    cases.append(
        (
            "canary aborted by analysis",
            md.reconcile([ready("a1", 2), ready("b2", 1)], analysis=failed),
            "Degraded",
        )
    )

    md = stable(BLUE_GREEN_MANUAL)
    md.change("b2")
    md.reconcile([ready("a1", 2)])
    awaiting = md.reconcile([ready("a1", 2), ready("b2", 2)])
    cases.append(("blue-green awaiting promotion", awaiting, "Suspended"))
    md.now += 5
    promoted = md.reconcile([ready("a1", 2), ready("b2", 2)], annotations=(PROMOTE,))
    cases.append(("blue-green promoted", promoted, "Healthy"))

    md = stable(BLUE_GREEN_SMOKE)
    md.change("b2")
    md.reconcile([ready("a1", 2)])
    md.reconcile([ready("a1", 2), ready("b2", 2)])
    smoke = SmokeResult(False, "request 1: expected status 200, got 500")
    cases.append(
        (
            "smoke test failed",
            md.reconcile([ready("a1", 2), ready("b2", 2)], smoke=smoke),
            "Degraded",
        )
    )

    md = ModelDeployment()
    pending = PodProblem("Unschedulable", "0/6 nodes are available: 6 node(s) didn't match ...")
    waiting = replace(starting("a1", 2, pending), gpu_product="NVIDIA-H100-80GB-HBM3")
    (missing,) = with_products_not_offered((waiting,), frozenset({"NVIDIA-H100-80GB-HBM3"}))
    cases.append(("GPU product no node offers", md.reconcile([missing]), "Degraded"))

    md = ModelDeployment()
    shortage = PodProblem("InsufficientGPU", "no node has a free nvidia.com/gpu: 0/6 nodes ...")
    cases.append(("GPU shortage", md.reconcile([starting("a1", 2, shortage)]), "Degraded"))
    return cases


SAMPLES = samples()


def test_samples_are_the_states_they_claim() -> None:
    reasons = {name: _conditions(obj) for name, obj, _ in SAMPLES if obj.get("status")}
    assert reasons["blue-green awaiting promotion"]["Progressing"]["reason"] == "AwaitingPromotion"
    assert reasons["canary aborted by analysis"]["Degraded"]["reason"] == "CanaryAnalysisFailed"
    assert reasons["smoke test failed"]["Degraded"]["reason"] == "SmokeTestFailed"
    assert reasons["crash looping"]["Ready"]["reason"] == "CrashLoopBackOff"
    assert reasons["canary step 1"]["Progressing"]["reason"] == "CanaryProgressing"
    assert reasons["healthy"]["Progressing"]["reason"] == "RolloutComplete"
    assert reasons["GPU product no node offers"]["Ready"]["reason"] == "GPUNotOffered"
    assert reasons["GPU shortage"]["Ready"]["reason"] == "InsufficientGPU"


def _conditions(obj: JSON) -> dict[str, JSON]:
    return {c["type"]: c for c in obj["status"]["conditions"]}


# --- Argo CD ----------------------------------------------------------------------------------


def argocd_health(obj: JSON) -> JSON:
    """Runs the health script as Argo CD does: `obj` is a global, the script returns hs."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(copy.deepcopy(obj), recursive=True)
    result = lua.execute(HEALTH_LUA)
    return dict(result.items())


@pytest.mark.parametrize(("name", "obj", "expected"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_argocd_health(name: str, obj: JSON, expected: str) -> None:
    health = argocd_health(obj)
    assert health["status"] == expected, health
    assert isinstance(health["message"], str) and health["message"]
    if expected in ("Degraded", "Suspended"):
        reason = _conditions(obj)["Degraded" if expected == "Degraded" else "Progressing"]
        assert health["message"].startswith(reason["reason"] + ": ")
        assert reason["message"] in health["message"]


@pytest.mark.parametrize(("name", "obj", "expected"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_argocd_degraded_covers_every_stalled_status(name: str, obj: JSON, expected: str) -> None:
    """The health check reads Degraded, which every Stalled cause also sets: Argo CD and
    kstatus agree on what has failed, and Argo CD also flags what may still heal."""
    if _conditions(obj)["Stalled"]["status"] == "True":
        assert argocd_health(obj)["status"] == "Degraded"


def test_argocd_health_without_status_and_with_stale_generation() -> None:
    md = stable()
    bare = {**md.object(), "status": None}
    del bare["status"]
    assert argocd_health(bare) == {
        "status": "Progressing",
        "message": "Waiting for the modelroll operator to report status",
    }
    md.change("b2")
    assert argocd_health(md.object()) == {
        "status": "Progressing",
        "message": "Waiting for the modelroll operator to observe generation 2 (observed 1)",
    }
    no_conditions = md.object()
    no_conditions["status"] = {"observedGeneration": 2}
    assert argocd_health(no_conditions)["status"] == "Progressing"


def test_argocd_health_lua_is_the_one_in_the_readme_snippet() -> None:
    readme = (REPO / "gitops" / "README.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", readme, re.DOTALL)
    assert block is not None
    config_map = yaml.safe_load(block.group(1))
    key = "resource.customizations.health.modelroll.io_ModelDeployment"
    assert config_map["kind"] == "ConfigMap" and config_map["metadata"]["name"] == "argocd-cm"
    assert config_map["data"][key] == HEALTH_LUA


# --- kstatus (Flux, kpt, cli-utils) -------------------------------------------------------

# What kstatus itself (sigs.k8s.io/cli-utils, through hack/kstatus) must compute per sample:
# Current only once the spec is realized, InProgress while the operator still works towards
# it, Failed for what waiting does not heal.
KSTATUS = {
    "healthy": "Current",
    "first revision, no Deployment yet": "InProgress",
    "first revision, pods starting": "InProgress",
    "crash looping": "InProgress",
    "invalid spec": "Failed",
    "new generation not yet observed": "InProgress",
    "rolling update in progress": "InProgress",
    "canary step 1": "InProgress",
    "canary aborted by analysis": "Failed",
    "blue-green awaiting promotion": "InProgress",
    "blue-green promoted": "Current",
    "smoke test failed": "Failed",
    "GPU product no node offers": "Failed",
    "GPU shortage": "InProgress",
}


REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")  # metav1.Condition.reason
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.mark.parametrize(("name", "obj", "expected"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_status_follows_kstatus_conventions(name: str, obj: JSON, expected: str) -> None:
    status = obj["status"]
    generation = obj["metadata"]["generation"]
    assert isinstance(status["observedGeneration"], int)
    assert status["observedGeneration"] <= generation
    conditions = status["conditions"]
    assert len({c["type"] for c in conditions}) == len(conditions)
    for condition in conditions:
        assert condition["status"] in ("True", "False", "Unknown")
        assert REASON.match(condition["reason"]), condition
        assert isinstance(condition["message"], str)
        assert RFC3339.match(condition["lastTransitionTime"])
        assert condition["observedGeneration"] == status["observedGeneration"]
    assert _conditions(obj)["Ready"]["status"] in ("True", "False")
    # Reconciling and Stalled are abnormal-true; modelroll always writes both.
    for optional in ("Reconciling", "Stalled"):
        assert optional not in _conditions(obj) or _conditions(obj)[optional]["status"] in (
            "True",
            "False",
        )
    found = _conditions(obj)
    # Abnormal-true and exclusive: kstatus acts on the first True one of the two.
    assert not (found["Reconciling"]["status"] == found["Stalled"]["status"] == "True")
    if found["Stalled"]["status"] == "True" and found["Ready"]["status"] == "False":
        assert found["Stalled"]["reason"] == found["Ready"]["reason"]
    computed, message = kstatus(obj)
    assert computed == KSTATUS[name], (computed, message)
    if computed == "Failed":
        assert message == found["Stalled"]["message"]


def test_crd_has_a_status_subresource_with_kstatus_fields() -> None:
    """observedGeneration only means something if spec changes bump generation and
    status writes do not, which the status subresource guarantees."""
    crd = yaml.safe_load((REPO / "crds" / "modelroll.io_modeldeployments.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    assert version["subresources"]["status"] == {}
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["observedGeneration"]["type"] == "integer"
    condition = status["conditions"]["items"]["properties"]
    assert {"type", "status", "reason", "message", "lastTransitionTime"} <= set(condition)


# --- Flux healthCheckExprs (CEL), as documented in docs/observability.md --------------------


def flux_exprs() -> JSON:
    text = (REPO / "docs" / "observability.md").read_text()
    block = re.search(r"```yaml\n(# flux-health-check\n.*?)```", text, re.DOTALL)
    assert block is not None, "docs/observability.md lost its Flux healthCheckExprs block"
    kustomization = yaml.safe_load(block.group(1))
    (check,) = kustomization["spec"]["healthCheckExprs"]
    assert (check["apiVersion"], check["kind"]) == ("modelroll.io/v1alpha1", "ModelDeployment")
    return {k: check[k] for k in ("inProgress", "failed", "current")}


def flux_health(obj: JSON) -> str:
    """kustomize-controller's order: the generation check, then inProgress, failed and
    current; the first true wins, else InProgress."""
    status = obj.get("status") or {}
    if (
        status.get("observedGeneration", obj["metadata"]["generation"])
        != obj["metadata"]["generation"]
    ):
        return "InProgress"
    env = celpy.Environment()
    activation = {k: json_to_cel(v) for k, v in obj.items()}
    for status, expr in (
        ("InProgress", flux_exprs()["inProgress"]),
        ("Failed", flux_exprs()["failed"]),
        ("Current", flux_exprs()["current"]),
    ):
        if bool(env.program(env.compile(expr)).evaluate(activation)):
            return status
    return "InProgress"


FLUX_FROM_ARGO = {
    "Healthy": "Current",
    "Progressing": "InProgress",
    "Suspended": "InProgress",
    "Degraded": "Failed",
}


@pytest.mark.parametrize(("name", "obj", "expected"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_flux_health_check_exprs_agree_with_argocd(name: str, obj: JSON, expected: str) -> None:
    assert flux_health(obj) == FLUX_FROM_ARGO[expected]
