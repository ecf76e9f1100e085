"""The three install paths render the same operator: kustomize (config/default), the
generated single file (dist/install.yaml) and the Helm chart (charts/modelroll).

helm and kubectl are real binaries built from their Go modules (hack/helm/build.sh,
hack/control-plane/build.sh) and cached in ~/.cache/modelroll; the first run builds them.
When they cannot be built these tests fail with the reason; they are never skipped.
"""

from __future__ import annotations

import copy
import functools
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

JSON = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "modelroll"
NAMESPACE = "modelroll-system"
CORE_KINDS = (
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ServiceAccount",
    "Deployment",
    "Service",
    "NetworkPolicy",
    # High availability: the leader Lease's Role and binding, and the replicas' PDB.
    "Role",
    "RoleBinding",
    "PodDisruptionBudget",
)
# The tenants' aggregated ClusterRoles, beside the operator's.
TENANT_ROLES = ("modelroll-edit", "modelroll-view")
# Labels only Helm adds (release bookkeeping); everything else must match.
HELM_ONLY_LABELS = (
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
)
KUBERNETES_VERSION = "1.34"


# --- binaries -------------------------------------------------------------------------------


def _build(script: Path, env: dict[str, str] | None = None) -> str:
    try:
        built = subprocess.run(
            [str(script)],
            capture_output=True,
            text=True,
            timeout=1800,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{script.relative_to(REPO)} timed out: {error}")
    if built.returncode != 0:
        pytest.fail(f"{script.relative_to(REPO)} failed:\n{built.stderr[-4000:]}")
    return built.stdout.strip().splitlines()[-1]


@functools.cache
def helm_binary() -> str:
    return _build(REPO / "hack" / "helm" / "build.sh")


@functools.cache
def kubectl_binary() -> str:
    bin_dir = _build(REPO / "hack" / "control-plane" / "build.sh", {"COMPONENTS": "kubectl"})
    return os.path.join(bin_dir, "kubectl")


def run(*args: str) -> str:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def documents(text: str) -> list[JSON]:
    return [d for d in yaml.safe_load_all(text) if d]


def helm_template(*values: str) -> list[JSON]:
    sets = [arg for value in values for arg in ("--set", value)]
    return documents(
        run(
            helm_binary(),
            "template",
            "modelroll",
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--include-crds",
            *sets,
        )
    )


def kustomize(path: Path) -> list[JSON]:
    return documents(run(kubectl_binary(), "kustomize", str(path)))


# --- a pure-Python reading of our kustomizations (no binary needed) ------------------------

SUPPORTED_KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "components"}


def resolve_kustomization(directory: Path) -> list[JSON]:
    """Objects of a kustomization that only lists resources and components.

    Our bases transform nothing (no patches, prefixes or generators); this refuses any
    other field so that it can never silently disagree with kustomize."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED_KUSTOMIZATION_KEYS
    assert not unsupported, f"{directory}: extend resolve_kustomization for {unsupported}"
    objects: list[JSON] = []
    for entry in [*kustomization.get("resources", []), *kustomization.get("components", [])]:
        path = (directory / entry).resolve()
        if path.is_dir():
            objects += resolve_kustomization(path)
        else:
            objects += documents(path.read_text())
    return objects


# --- normalization --------------------------------------------------------------------------


def key(obj: JSON) -> tuple[str, str, str]:
    metadata = obj["metadata"]
    return obj["kind"], metadata.get("namespace", ""), metadata["name"]


def normalized(obj: JSON) -> JSON:
    """The object as the apiserver would compare it: without Helm's bookkeeping labels."""
    result = copy.deepcopy(obj)
    labels = result["metadata"].get("labels") or {}
    for label in HELM_ONLY_LABELS:
        labels.pop(label, None)
    if labels:
        result["metadata"]["labels"] = labels
    else:
        result["metadata"].pop("labels", None)
    return result


def by_key(objects: Iterable[JSON], kinds: tuple[str, ...] = CORE_KINDS) -> dict[Any, JSON]:
    selected = [normalized(o) for o in objects if o["kind"] in kinds]
    keyed = {key(o): o for o in selected}
    assert len(keyed) == len(selected), "duplicate objects"
    return keyed


def one(objects: list[JSON], kind: str) -> JSON:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def env_of(deployment: JSON) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


# --- dist/install.yaml ----------------------------------------------------------------------


def test_dist_install_yaml_is_what_hack_render_install_writes() -> None:
    """Fails when dist/install.yaml, the chart's CRD copy or its rule copy is stale."""
    checked = subprocess.run(
        [str(REPO / "hack" / "render-install.sh"), "--check"],
        capture_output=True,
        text=True,
        timeout=600,
        # The typed API's generator runs under this interpreter (it has pydantic).
        env={**os.environ, "KUBECTL": kubectl_binary(), "PYTHON": sys.executable},
    )
    assert checked.returncode == 0, checked.stderr + "\nrun: make dist"


def test_dist_install_yaml_holds_exactly_the_objects_of_config_default() -> None:
    """Needs no binary: a stale dist/install.yaml fails even `make unit` without Go."""
    dist = documents((REPO / "dist" / "install.yaml").read_text())
    source = resolve_kustomization(REPO / "config" / "default")
    assert {key(o): o for o in dist} == {key(o): o for o in source}, "run: make dist"


def test_kubectl_kustomize_and_the_pure_reading_agree() -> None:
    for overlay in ("default", "with-prometheus"):
        rendered = kustomize(REPO / "config" / overlay)
        assert {key(o): o for o in rendered} == {
            key(o): o for o in resolve_kustomization(REPO / "config" / overlay)
        }


def test_chart_copies_are_identical_to_their_sources() -> None:
    pairs = [
        (
            "charts/modelroll/crds/modelroll.io_modeldeployments.yaml",
            "crds/modelroll.io_modeldeployments.yaml",
        ),
        ("charts/modelroll/files/prometheusrule.yaml", "observability/prometheusrule.yaml"),
    ]
    for copy_path, source in pairs:
        assert (REPO / copy_path).read_bytes() == (REPO / source).read_bytes(), (
            f"{copy_path} differs from {source}: run make dist"
        )


# --- the three bundles agree ----------------------------------------------------------------


def test_helm_kustomize_and_dist_render_identical_core_objects() -> None:
    kustomized = by_key(kustomize(REPO / "config" / "default"))
    dist = by_key(documents((REPO / "dist" / "install.yaml").read_text()))
    helm = by_key(helm_template())
    assert sorted(kind for kind, _, _ in kustomized) == sorted(
        [*CORE_KINDS, *["ClusterRole"] * len(TENANT_ROLES)]
    )
    assert dist == kustomized
    assert set(helm) == set(kustomized)
    for object_key, expected in kustomized.items():
        assert helm[object_key] == expected, f"helm and kustomize differ on {object_key}"


def test_helm_adds_only_bookkeeping_labels() -> None:
    for obj in helm_template():
        if obj["kind"] == "CustomResourceDefinition":
            continue
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/instance"] == "modelroll"
        assert labels["app.kubernetes.io/name"] == "modelroll"


def test_namespace_is_restricted_in_kustomize_and_optional_in_helm() -> None:
    namespace = one(kustomize(REPO / "config" / "default"), "Namespace")
    assert namespace["metadata"] == {
        "name": NAMESPACE,
        "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
    }
    assert not [o for o in helm_template() if o["kind"] == "Namespace"]
    created = one(helm_template("namespace.create=true"), "Namespace")
    assert created["metadata"]["name"] == NAMESPACE
    assert created["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("bundle", ["kustomize", "helm"])
def test_operator_deployment_is_single_recreate_and_restricted(bundle: str) -> None:
    objects = kustomize(REPO / "config" / "default") if bundle == "kustomize" else helm_template()
    deployment = one(objects, "Deployment")
    spec = deployment["spec"]
    # Two replicas, one leading through the Lease (docs/install.md): a rolling update keeps
    # one up, the PDB keeps one through a drain, and they prefer different nodes.
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert env_of(deployment)["MODELROLL_LEADER_LEASE"] == (
        "$(MODELROLL_OPERATOR_NAMESPACE)/modelroll-operator"
    )
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"] == {"minAvailable": 1, "selector": spec["selector"]}
    (term,) = spec["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["podAffinityTerm"] == {
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": spec["selector"],
    }
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["serviceAccountName"] == "modelroll-operator"
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "metrics", "containerPort": 8000} in container["ports"]
    service = one(objects, "Service")
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("bundle", ["kustomize", "helm"])
def test_every_built_in_object_is_valid_against_the_kubernetes_schema(bundle: str) -> None:
    objects = (
        kustomize(REPO / "config" / "default")
        if bundle == "kustomize"
        else helm_template(
            "namespace.create=true",
            "watchNamespaces={a,b}",
            "extraEnv[0].name=MODELROLL_CLUSTER_DOMAIN",
            "extraEnv[0].value=example.org",
        )
    )
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


# --- Helm values ----------------------------------------------------------------------------


def test_helm_values_set_image_resources_namespaces_log_format_and_runtime_image() -> None:
    objects = helm_template(
        "image.repository=registry.example/modelroll/operator",
        "image.tag=v9",
        "image.pullPolicy=Always",
        "runtimeImage.repository=registry.example/modelroll/runtime",
        "runtimeImage.tag=r7",
        "runtimeImage.pullPolicy=Always",
        "watchNamespaces={team-a,team-b}",
        "logFormat=plain",
        "resources.requests.cpu=1",
        "resources.limits.memory=1Gi",
    )
    deployment = one(objects, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/modelroll/operator:v9"
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"]["requests"]["cpu"] == 1
    assert container["resources"]["limits"]["memory"] == "1Gi"
    env = env_of(deployment)
    assert env["MODELROLL_NAMESPACES"] == "team-a,team-b"
    assert env["MODELROLL_LOG_FORMAT"] == "plain"
    assert env["MODELROLL_RUNTIME_IMAGE"] == "registry.example/modelroll/runtime:r7"
    assert env["MODELROLL_RUNTIME_IMAGE_PULL_POLICY"] == "Always"


def test_helm_defaults_follow_the_chart_app_version_and_watch_all_namespaces() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    deployment = one(helm_template(), "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"modelroll/operator:{chart['appVersion']}"
    env = env_of(deployment)
    assert env["MODELROLL_RUNTIME_IMAGE"] == f"modelroll/runtime:{chart['appVersion']}"
    assert "MODELROLL_NAMESPACES" not in env  # all namespaces
    assert "MODELROLL_RUNTIME_IMAGE_PULL_POLICY" not in env


def test_helm_values_name_the_prometheus_endpoints_and_gate_custom_checks() -> None:
    default = env_of(one(helm_template(), "Deployment"))
    assert default["MODELROLL_PROMETHEUS_ENDPOINTS"] == "main=http://prometheus.monitoring.svc:9090"
    assert default["MODELROLL_ALLOW_CUSTOM_CHECKS"] == "false"
    assert "MODELROLL_PROMETHEUS_DEFAULT" not in default  # the first endpoint
    env = env_of(
        one(
            helm_template(
                "prometheus.endpoints[0].name=main",
                "prometheus.endpoints[0].url=http://prometheus.monitoring.svc:9090",
                "prometheus.endpoints[1].name=tenants",
                "prometheus.endpoints[1].url=https://prom-label-proxy.monitoring.svc:8443",
                "prometheus.default=tenants",
                "prometheus.allowCustomChecks=true",
            ),
            "Deployment",
        )
    )
    assert env["MODELROLL_PROMETHEUS_ENDPOINTS"] == (
        "main=http://prometheus.monitoring.svc:9090,"
        "tenants=https://prom-label-proxy.monitoring.svc:8443"
    )
    assert env["MODELROLL_PROMETHEUS_DEFAULT"] == "tenants"
    assert env["MODELROLL_ALLOW_CUSTOM_CHECKS"] == "true"


def test_helm_lint_passes() -> None:
    run(
        helm_binary(),
        "lint",
        str(CHART),
        "--strict",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
    )


# --- optional Prometheus Operator objects ---------------------------------------------------


def observability(name: str) -> JSON:
    loaded: JSON = yaml.safe_load((REPO / "observability" / name).read_text())
    return loaded


def test_monitoring_objects_are_off_by_default_everywhere() -> None:
    kinds = {"ServiceMonitor", "PrometheusRule"}
    assert not [o for o in helm_template() if o["kind"] in kinds]
    assert not [o for o in kustomize(REPO / "config" / "default") if o["kind"] in kinds]


def test_helm_toggles_render_the_observability_objects() -> None:
    objects = helm_template(
        "metrics.serviceMonitor.enabled=true",
        "metrics.prometheusRule.enabled=true",
        "metrics.serviceMonitor.labels.release=kube-prometheus-stack",
    )
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"] == observability("servicemonitor.yaml")["spec"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["metadata"]["namespace"] == NAMESPACE
    rule = one(objects, "PrometheusRule")
    assert rule["spec"] == observability("prometheusrule.yaml")["spec"]


def test_prometheus_component_adds_exactly_the_observability_objects() -> None:
    default = {key(o): o for o in kustomize(REPO / "config" / "default")}
    with_prometheus = {key(o): o for o in kustomize(REPO / "config" / "with-prometheus")}
    added = {k: v for k, v in with_prometheus.items() if k not in default}
    assert {k: v for k, v in with_prometheus.items() if k in default} == default
    assert added == {
        key(o): o
        for o in (observability("servicemonitor.yaml"), observability("prometheusrule.yaml"))
    }


def test_service_monitor_selects_the_operator_metrics_service() -> None:
    service = one(kustomize(REPO / "config" / "default"), "Service")
    monitor = observability("servicemonitor.yaml")
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    assert all(e.get("honorLabels") is True for e in monitor["spec"]["endpoints"])


# --- the namespaced install, the tenants' roles, the metrics fence --------------------------

NAMESPACED_KINDS = CORE_KINDS  # Role and RoleBinding are core too (the leader Lease's)


def test_dist_install_namespaced_yaml_holds_exactly_the_objects_of_config_namespaced() -> None:
    dist = documents((REPO / "dist" / "install-namespaced.yaml").read_text())
    assert {key(o): o for o in dist} == {
        key(o): o for o in kustomize(REPO / "config" / "namespaced")
    }, "run: make dist"


def test_helm_watch_namespaces_renders_the_namespaced_install_of_kustomize() -> None:
    kustomized = by_key(kustomize(REPO / "config" / "namespaced"), NAMESPACED_KINDS)
    helm = by_key(helm_template("watchNamespaces={models}"), NAMESPACED_KINDS)
    assert set(helm) == set(kustomized)
    for object_key, expected in kustomized.items():
        assert helm[object_key] == expected, f"helm and kustomize differ on {object_key}"
    roles = [o for o in kustomized.values() if o["kind"] in ("Role", "RoleBinding")]
    assert {(o["kind"], o["metadata"]["namespace"]) for o in roles} == {
        ("Role", "models"),
        ("RoleBinding", "models"),
        # The leader Lease's, in the operator's own namespace.
        ("Role", NAMESPACE),
        ("RoleBinding", NAMESPACE),
    }
    assert env_of(helm[("Deployment", NAMESPACE, "modelroll-operator")])[
        "MODELROLL_NAMESPACES"
    ] == ("models")


def test_a_namespaced_install_grants_only_the_cluster_scoped_reads_cluster_wide() -> None:
    for objects in (
        kustomize(REPO / "config" / "namespaced"),
        helm_template("watchNamespaces={team-a,team-b}"),
    ):
        operator_role = next(
            o
            for o in objects
            if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "modelroll-operator"
        )
        assert {r["resources"][0] for r in operator_role["rules"]} == {
            "nodes",
            "customresourcedefinitions",
        }
        bindings = [o for o in objects if o["kind"] == "ClusterRoleBinding"]
        assert [b["roleRef"]["name"] for b in bindings] == ["modelroll-operator"]
    helm = helm_template("watchNamespaces={team-a,team-b}")
    role_namespaces = sorted(o["metadata"]["namespace"] for o in helm if o["kind"] == "Role")
    assert role_namespaces == [NAMESPACE, "team-a", "team-b"]
    for role in (o for o in helm if o["kind"] == "Role"):
        assert "nodes" not in {r["resources"][0] for r in role["rules"]}


def test_helm_refuses_a_namespace_pattern_it_cannot_write_a_role_for() -> None:
    result = subprocess.run(
        [helm_binary(), "template", "modelroll", str(CHART), "--set", "watchNamespaces={team-*}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert '"team-*" is a pattern' in result.stderr


@pytest.mark.parametrize("bundle", ["kustomize", "helm", "kustomize-namespaced"])
def test_tenant_roles_are_aggregated_into_edit_admin_and_view(bundle: str) -> None:
    objects = {
        "kustomize": lambda: kustomize(REPO / "config" / "default"),
        "helm": helm_template,
        "kustomize-namespaced": lambda: kustomize(REPO / "config" / "namespaced"),
    }[bundle]()
    roles = {
        o["metadata"]["name"]: o
        for o in objects
        if o["kind"] == "ClusterRole" and o["metadata"]["name"] in TENANT_ROLES
    }
    assert set(roles) == set(TENANT_ROLES)
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"
    assert roles["modelroll-edit"]["metadata"]["labels"][f"{aggregate}edit"] == "true"
    assert roles["modelroll-edit"]["metadata"]["labels"][f"{aggregate}admin"] == "true"
    assert roles["modelroll-view"]["metadata"]["labels"][f"{aggregate}view"] == "true"
    for role in roles.values():
        assert all(
            not resource.endswith("/status")
            for rule in role["rules"]
            for resource in rule["resources"]
        )


@pytest.mark.parametrize("bundle", ["kustomize", "helm"])
def test_metrics_listen_on_the_pod_ip_and_only_monitoring_reaches_them(bundle: str) -> None:
    objects = kustomize(REPO / "config" / "default") if bundle == "kustomize" else helm_template()
    container = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    address = next(e for e in container["env"] if e["name"] == "MODELROLL_METRICS_ADDRESS")
    assert address["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    policy = one(objects, "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "modelroll",
        "app.kubernetes.io/component": "operator",
    }
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                    }
                }
            ],
            "ports": [{"port": "metrics", "protocol": "TCP"}],
        }
    ]


def test_helm_names_the_monitoring_namespace_or_drops_the_policy() -> None:
    policy = one(helm_template("metrics.networkPolicy.monitoringNamespace=obs"), "NetworkPolicy")
    selector = policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]
    assert selector == {"matchLabels": {"kubernetes.io/metadata.name": "obs"}}
    assert not [
        o
        for o in helm_template("metrics.networkPolicy.enabled=false")
        if o["kind"] == "NetworkPolicy"
    ]


def test_every_namespaced_install_object_is_valid_against_the_kubernetes_schema() -> None:
    for obj in [
        *kustomize(REPO / "config" / "namespaced"),
        *helm_template("watchNamespaces={team-a,team-b}"),
    ]:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
