"""The one source of every RBAC rule modelroll installs: the operator's and the tenants'.

`python -m modelroll.api.generate` writes them into config/ (kustomize), the chart's
files/rbac.yaml (read by its templates) and so into dist/; no install form lists a rule of
its own. Each operator rule says which code needs it (`tests/unit/test_rbac.py` checks
that every verb is used and that what kopf and the Kube calls need is granted).

A rule is `namespaced` when its resources live in the watched namespaces: a namespaced
install grants it with a Role per watched namespace. The others are cluster-scoped
resources and stay in a (small) ClusterRole in every install.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelroll import GROUP, PLURAL

JSON = dict[str, Any]
OPERATOR = "modelroll-operator"
OPERATOR_NAMESPACE = "modelroll-system"
LABELS = {"app.kubernetes.io/name": "modelroll", "app.kubernetes.io/component": "operator"}
SERVICE_MONITOR_CRD = "servicemonitors.monitoring.coreos.com"
PROMETHEUS_RULE_CRD = "prometheusrules.monitoring.coreos.com"
RBAC_API = "rbac.authorization.k8s.io/v1"


@dataclass(frozen=True)
class Rule:
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    # Which code needs it; written next to the rule in the generated files.
    why: str
    namespaced: bool = True
    resource_names: tuple[str, ...] = ()

    def manifest(self) -> JSON:
        rule: JSON = {"apiGroups": list(self.api_groups), "resources": list(self.resources)}
        if self.resource_names:
            rule["resourceNames"] = list(self.resource_names)
        rule["verbs"] = list(self.verbs)
        return rule


# Watched through kopf (indexes and event handlers: list, watch), looked up by name before
# the first write (get), written by server-side apply (patch; create when the apply creates)
# and pruned (delete). A new child kind is one more Rule here, with the verbs its code uses
# (tests/unit/test_rbac.py derives them from kube.PLURALS, handlers.CHILD_KINDS and
# reconcile.SHARED_KINDS), then `make generate`.
CHILDREN = (
    Rule(
        ("apps",),
        ("deployments",),
        ("get", "list", "watch", "create", "patch", "delete"),
        "revisions: watched, applied, pruned",
    ),
    Rule(
        ("",),
        ("services",),
        ("get", "list", "watch", "create", "patch", "delete"),
        "Services (main, preview, per revision): watched, applied, pruned",
    ),
    Rule(
        ("",),
        ("serviceaccounts",),
        ("get", "list", "watch", "create", "patch"),
        "the pods' ServiceAccount: watched and applied; every plan wants it, so never pruned",
    ),
    Rule(
        ("autoscaling",),
        ("horizontalpodautoscalers",),
        ("get", "list", "watch", "create", "patch", "delete"),
        "HPAs: watched, applied, pruned",
    ),
    Rule(
        ("policy",),
        ("poddisruptionbudgets",),
        ("get", "list", "watch", "create", "patch", "delete"),
        "PDBs: watched, applied, pruned",
    ),
    Rule(
        ("networking.k8s.io",),
        ("networkpolicies",),
        ("get", "list", "watch", "create", "patch", "delete"),
        "the NetworkPolicy around the pods: watched, applied, pruned (when turned off)",
    ),
    Rule(
        ("gateway.networking.k8s.io",),
        ("httproutes",),
        ("get", "list", "watch", "create", "patch"),
        "HTTPRoutes: watched and applied; never pruned (traffic always needs one)",
    ),
    Rule(
        ("monitoring.coreos.com",),
        ("servicemonitors",),
        ("get", "create", "patch"),
        "ServiceMonitors: applied only (not watched, not pruned)",
    ),
    Rule(
        ("monitoring.coreos.com",),
        ("prometheusrules",),
        ("get", "create", "patch"),
        "drift recording rules (PrometheusRule): applied only (not watched, not pruned)",
    ),
)

OPERATOR_RULES = (
    Rule(
        (GROUP,),
        (PLURAL,),
        ("list", "watch", "patch"),
        "watched by kopf; a handled action's annotation (modelroll.io/retry, ...) is removed by a patch",
    ),
    Rule((GROUP,), (f"{PLURAL}/status",), ("patch",), "the status the operator writes"),
    Rule(
        (GROUP,),
        (f"{PLURAL}/finalizers",),
        ("update",),
        "children carry blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement "
        "admission plugin (OpenShift) allows only with this",
    ),
    *CHILDREN,
    Rule(("",), ("pods",), ("list", "watch"), "watched to explain why a revision is not ready"),
    Rule(
        ("discovery.k8s.io",),
        ("endpointslices",),
        ("list", "watch"),
        "watched so that traffic moves to a preview only once its Service routes to its pods",
    ),
    Rule(
        ("",),
        ("secrets", "persistentvolumeclaims"),
        ("get",),
        "referenced ones are checked to exist; the smoke test reads the auth token",
    ),
    Rule(("",), ("events",), ("create",), "Events about ModelDeployments (ours and kopf's)"),
    Rule(
        ("",),
        ("nodes",),
        ("list",),
        "whether any node carries a GPU product pods wait for (optional: without it the "
        "scheduler's message stands)",
        namespaced=False,
    ),
    Rule(
        ("apiextensions.k8s.io",),
        ("customresourcedefinitions",),
        ("get",),
        "whether the ServiceMonitor and PrometheusRule CRDs are installed (optional: without "
        "them no ServiceMonitors and no drift recording rules)",
        namespaced=False,
        resource_names=(SERVICE_MONITOR_CRD, PROMETHEUS_RULE_CRD),
    ),
)

# Leader election (modelroll.leader): one Lease in the operator's own namespace, granted by
# a Role there in every install (the watched namespaces never see it). create cannot be
# limited to a name (the name is in the body), so it is a rule of its own.
LEASE = OPERATOR
LEADER_RULES = (
    Rule(
        ("coordination.k8s.io",),
        ("leases",),
        ("create",),
        "leader election: the first replica creates the Lease",
    ),
    Rule(
        ("coordination.k8s.io",),
        ("leases",),
        ("get", "update"),
        "leader election: the replicas read the Lease; its holder renews it, a standby takes it "
        "over (an update carrying the resourceVersion read: one writer wins)",
        resource_names=(LEASE,),
    ),
)

AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
TENANT_ROLES: dict[str, tuple[tuple[str, ...], tuple[Rule, ...]]] = {
    # Everything a tenant does with its ModelDeployments; the status stays the operator's.
    "modelroll-edit": (
        ("edit", "admin"),
        (
            Rule(
                (GROUP,),
                (PLURAL,),
                ("get", "list", "watch", "create", "update", "patch", "delete"),
                "tenants manage their ModelDeployments",
            ),
            Rule(
                (GROUP,),
                (f"{PLURAL}/scale",),
                ("get", "update", "patch"),
                "kubectl scale",
            ),
        ),
    ),
    "modelroll-view": (
        ("view",),
        (
            Rule(
                (GROUP,),
                (PLURAL,),
                ("get", "list", "watch"),
                "tenants read their ModelDeployments",
            ),
        ),
    ),
}


def operator_rules(*, namespaced: bool | None = None) -> list[Rule]:
    """All of the operator's rules, the namespaced ones first (the chart concatenates the
    two lists in that order), or only the (non-)namespaced ones."""
    if namespaced is None:
        return operator_rules(namespaced=True) + operator_rules(namespaced=False)
    return [rule for rule in OPERATOR_RULES if rule.namespaced == namespaced]


def rules(*, namespaced: bool | None = None) -> list[JSON]:
    """The operator's rules as RBAC JSON."""
    return [rule.manifest() for rule in operator_rules(namespaced=namespaced)]


def _metadata(name: str) -> JSON:
    # No namespace: the operator's is the install's, a watched one is set by the overlay.
    return {"name": name, "labels": dict(LABELS)}


def _binding(kind: str, role_kind: str) -> JSON:
    return {
        "apiVersion": RBAC_API,
        "kind": kind,
        "metadata": _metadata(OPERATOR),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": OPERATOR},
        "subjects": [{"kind": "ServiceAccount", "name": OPERATOR, "namespace": OPERATOR_NAMESPACE}],
    }


def cluster_role(role_rules: list[JSON]) -> list[JSON]:
    """The operator's ClusterRole with these rules, and its binding."""
    role = {
        "apiVersion": RBAC_API,
        "kind": "ClusterRole",
        "metadata": _metadata(OPERATOR),
        "rules": role_rules,
    }
    return [role, _binding("ClusterRoleBinding", "ClusterRole")]


def namespace_role() -> list[JSON]:
    """The Role and RoleBinding of one watched namespace (the namespace is set by kustomize)."""
    role = {
        "apiVersion": RBAC_API,
        "kind": "Role",
        "metadata": _metadata(OPERATOR),
        "rules": rules(namespaced=True),
    }
    return [role, _binding("RoleBinding", "Role")]


def leader_role() -> list[JSON]:
    """The Role and RoleBinding for the leader Lease, in the operator's namespace."""
    name = f"{OPERATOR}-leader"
    metadata = {"name": name, "namespace": OPERATOR_NAMESPACE, "labels": dict(LABELS)}
    role = {
        "apiVersion": RBAC_API,
        "kind": "Role",
        "metadata": metadata,
        "rules": [rule.manifest() for rule in LEADER_RULES],
    }
    binding = _binding("RoleBinding", "Role")
    binding["metadata"] = {**metadata, "labels": dict(LABELS)}
    binding["roleRef"]["name"] = name
    return [role, binding]


def tenant_roles() -> list[JSON]:
    """The aggregated ClusterRoles that give tenants ModelDeployments in edit/admin/view."""
    roles = []
    for name, (aggregate_to, role_rules) in TENANT_ROLES.items():
        # Not the operator's component label: these are the tenants' roles.
        labels = {"app.kubernetes.io/name": "modelroll"}
        labels |= {f"{AGGREGATE}{role}": "true" for role in aggregate_to}
        metadata = {"name": name, "labels": labels}
        roles.append(
            {
                "apiVersion": RBAC_API,
                "kind": "ClusterRole",
                "metadata": metadata,
                "rules": [rule.manifest() for rule in role_rules],
            }
        )
    return roles


def chart_values() -> JSON:
    """What the chart's templates read (charts/modelroll/files/rbac.yaml)."""
    return {
        "namespaced": rules(namespaced=True),
        "cluster": rules(namespaced=False),
        "leader": [rule.manifest() for rule in LEADER_RULES],
        "tenants": [
            {
                "name": role["metadata"]["name"],
                "labels": role["metadata"]["labels"],
                "rules": role["rules"],
            }
            for role in tenant_roles()
        ],
    }
