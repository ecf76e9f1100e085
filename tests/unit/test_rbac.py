"""The operator's RBAC rules (modelroll.api.rbac) grant exactly what its code uses.

What the code needs is read from the code itself, not restated: the resources kopf watches
come from kopf's registry once modelroll.handlers is imported; the kinds the operator
applies from kube.PLURALS; the kinds it prunes from the reconciler's prune list and the
watch caches; the Secret, PVC, node, status and Event calls from the modules that make
them. A verb granted and not needed, or needed and not granted, fails here.
(tests/integration/test_install.py runs the operator with these rules on a real apiserver.)
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable

import kopf
import pytest
from modelroll import GROUP, KIND, PLURAL, handlers, kube, leader, reconcile, render
from modelroll.api import rbac

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)
# Needed by an admission check, not by a request: with the OwnerReferencesPermissionEnforcement
# plugin (OpenShift), setting blockOwnerDeletion on a child needs update on the owner's
# finalizers. Our test apiservers do not run that plugin, so only the code's use is checked.
ADMISSION_ONLY = {(GROUP, f"{PLURAL}/finalizers", "update")}


def granted(rules: Iterable[rbac.Rule]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.api_groups
        for resource in rule.resources
        for verb in rule.verbs
    }


def watched_by_kopf() -> set[tuple[str, str]]:
    """(group, plural) of every resource kopf lists and watches for our handlers."""
    registry = kopf.get_default_registry()
    found = set()
    for handlers_of in (registry._indexing, registry._watching, registry._changing):
        for handler in handlers_of.get_all_handlers():
            selector = handler.selector
            assert selector is not None
            found.add((selector.group or "", str(selector.any_name)))
    return found


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def applied_kinds() -> set[tuple[str, str]]:
    """(group, plural) of every child kind the operator writes with server-side apply."""
    return {
        (group_of(api_version), plural)
        for (api_version, kind), plural in kube.PLURALS.items()
        if kind != KIND
    }


def pruned_kinds() -> set[tuple[str, str]]:
    """Kinds the reconciler deletes: in its prune list and in a watch cache (only cached
    children are pruned)."""
    pruned = {"Deployment", *reconcile.SHARED_KINDS}
    return {
        (group, plural)
        for kind, (group, _, plural) in handlers.CHILD_KINDS.items()
        if kind in pruned
    }


def needed() -> set[Grant]:
    needs: set[Grant] = set()
    for group, plural in watched_by_kopf():
        needs |= {(group, plural, "list"), (group, plural, "watch")}
    for group, plural in applied_kinds():
        # get: who owns the name before the first write (reconcile._existing); an apply is a
        # patch, and a patch that creates is also authorized as create.
        needs |= {(group, plural, "get"), (group, plural, "patch"), (group, plural, "create")}
    for group, plural in pruned_kinds():
        needs.add((group, plural, "delete"))
    needs |= {
        # kopf's progress and diff-base annotations; the handled modelroll.io/* annotations.
        (GROUP, PLURAL, "patch"),
        (GROUP, f"{PLURAL}/status", "patch"),  # Kube.patch_status
        ("", "events", "create"),  # Kube.post_event and kopf's posting
        ("", "secrets", "get"),  # check_references, smoke_test
        ("", "persistentvolumeclaims", "get"),  # check_references
        ("", "nodes", "list"),  # products_not_offered
        ("apiextensions.k8s.io", "customresourcedefinitions", "get"),  # _crd_exists
    }
    return needs | ADMISSION_ONLY


def test_every_granted_verb_is_used_and_every_used_verb_is_granted() -> None:
    grants = granted(rbac.OPERATOR_RULES)
    assert not grants - needed(), f"granted but unused: {sorted(grants - needed())}"
    assert not needed() - grants, f"used but not granted: {sorted(needed() - grants)}"


def test_the_needs_above_are_the_calls_the_code_makes() -> None:
    # The hand-listed needs in needed() name real calls; if one goes, this fails too.
    sources = {
        "patch_status": inspect.getsource(kube.Kube.patch_status),
        "post_event": inspect.getsource(kube.Kube.post_event),
        "references": inspect.getsource(reconcile.check_references),
        "smoke": inspect.getsource(reconcile.smoke_test),
        "nodes": inspect.getsource(reconcile.products_not_offered),
        "crd": inspect.getsource(handlers.configure) + inspect.getsource(handlers._crd_exists),
    }
    assert '"PATCH"' in sources["patch_status"] and '"/status"' in sources["patch_status"]
    assert '"POST"' in sources["post_event"] and "/events" in sources["post_event"]
    assert (
        "/secrets/" in sources["references"] and "/persistentvolumeclaims/" in sources["references"]
    )
    assert "/secrets/" in sources["smoke"]
    assert '"GET", "/api/v1/nodes"' in sources["nodes"]
    assert "rbac.SERVICE_MONITOR_CRD" in sources["crd"]
    assert "rbac.PROMETHEUS_RULE_CRD" in sources["crd"]
    assert "customresourcedefinitions" in sources["crd"]
    # blockOwnerDeletion is what needs the finalizers update (ADMISSION_ONLY).
    assert render.owner_references(render.Owner("a", "b", "c"))[0]["blockOwnerDeletion"] is True


def test_the_only_cluster_scoped_rules_are_optional_reads_of_cluster_objects() -> None:
    cluster = rbac.operator_rules(namespaced=False)
    assert granted(cluster) == {
        ("", "nodes", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "get"),
    }
    (crd_rule,) = [r for r in cluster if "customresourcedefinitions" in r.resources]
    assert crd_rule.resource_names == (rbac.SERVICE_MONITOR_CRD, rbac.PROMETHEUS_RULE_CRD)
    # Both are optional: the code carries on without them (no 403 is raised to kopf).
    assert "except ApiError" in inspect.getsource(reconcile.products_not_offered)
    assert "except ApiError" in inspect.getsource(handlers._crd_exists)


def test_secrets_are_never_listed_or_watched_and_nothing_is_updated_or_deleted_wholesale() -> None:
    grants = granted(rbac.OPERATOR_RULES)
    assert not {g for g in grants if g[1] == "secrets" and g[2] != "get"}
    assert not {g for g in grants if g[2] in ("deletecollection", "*", "escalate", "bind")}
    assert not {g for g in grants if g[2] == "update"} - ADMISSION_ONLY
    assert not {g for g in grants if "*" in g[:2]}


def test_the_kube_client_sends_no_verb_the_rules_do_not_cover() -> None:
    # Every HTTP method the operator's Kube wrapper and reconciler send; PUT (update) is none.
    code = "\n".join(inspect.getsource(m) for m in (kube, reconcile, handlers))
    methods = set(re.findall(r'"(GET|POST|PUT|PATCH|DELETE)"', code))
    assert methods == {"GET", "POST", "PATCH", "DELETE"}


@pytest.mark.parametrize("name", list(rbac.TENANT_ROLES))
def test_tenant_roles_never_grant_the_status(name: str) -> None:
    _, rules = rbac.TENANT_ROLES[name]
    resources = {resource for rule in rules for resource in rule.resources}
    assert f"{PLURAL}/status" not in resources
    assert all(rule.api_groups == (GROUP,) for rule in rules)


def test_tenant_roles_aggregate_into_edit_admin_and_view() -> None:
    labels = {role["metadata"]["name"]: role["metadata"]["labels"] for role in rbac.tenant_roles()}
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"
    assert {k for k, v in labels["modelroll-edit"].items() if k.startswith(aggregate)} == {
        f"{aggregate}edit",
        f"{aggregate}admin",
    }
    assert {k for k in labels["modelroll-view"] if k.startswith(aggregate)} == {f"{aggregate}view"}
    edit = granted(rbac.TENANT_ROLES["modelroll-edit"][1])
    assert {v for g, r, v in edit if r == PLURAL} == {
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
    }
    view = granted(rbac.TENANT_ROLES["modelroll-view"][1])
    assert view == {(GROUP, PLURAL, verb) for verb in ("get", "list", "watch")}


def test_the_leader_lease_rules_are_exactly_what_leader_election_sends() -> None:
    # GET reads, POST creates (the first replica), PUT updates (renew, take over, release).
    code = inspect.getsource(leader)
    methods = set(re.findall(r'"(GET|POST|PUT|PATCH|DELETE)"', code)) | {"GET"}  # Kube.get
    verbs = {"GET": "get", "POST": "create", "PUT": "update"}
    assert methods == set(verbs)
    assert granted(rbac.LEADER_RULES) == {
        ("coordination.k8s.io", "leases", verb) for verb in verbs.values()
    }
    # Only the one Lease may be read or written; create cannot be limited to a name.
    for rule in rbac.LEADER_RULES:
        assert rule.resource_names == (() if rule.verbs == ("create",) else (rbac.LEASE,))
    assert "coordination.k8s.io/v1/namespaces/" in code
    # The leader rules are not the watched namespaces' (a namespaced install stays exact).
    assert not {r for r in rbac.OPERATOR_RULES if "leases" in r.resources}
