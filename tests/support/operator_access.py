"""What `kubectl auth can-i --list` must show for the operator's ServiceAccount, written
out by hand (not from modelroll.api.rbac) so that a changed rule changes a test too.

Rows are (resource, resource names) -> verbs, as tests/integration/helpers.can_i_list
reads them.
"""

from __future__ import annotations

OPERATOR_SA = "system:serviceaccount:modelroll-system:modelroll-operator"
# What every authenticated user may do (system:basic-user), beside what we grant.
SELF_REVIEWS = {
    ("selfsubjectreviews.authentication.k8s.io", "[]"): {"create"},
    ("selfsubjectaccessreviews.authorization.k8s.io", "[]"): {"create"},
    ("selfsubjectrulesreviews.authorization.k8s.io", "[]"): {"create"},
}
CLUSTER_READS = {
    ("nodes", "[]"): {"list"},
    ("customresourcedefinitions.apiextensions.k8s.io", "[servicemonitors.monitoring.coreos.com]"): {
        "get"
    },
    ("customresourcedefinitions.apiextensions.k8s.io", "[prometheusrules.monitoring.coreos.com]"): {
        "get"
    },
}
IN_WATCHED_NAMESPACE = {
    ("modeldeployments.modelroll.io", "[]"): {"list", "watch", "patch"},
    ("modeldeployments.modelroll.io/status", "[]"): {"patch"},
    ("modeldeployments.modelroll.io/finalizers", "[]"): {"update"},
    ("deployments.apps", "[]"): {"get", "list", "watch", "create", "patch", "delete"},
    ("services", "[]"): {"get", "list", "watch", "create", "patch", "delete"},
    ("serviceaccounts", "[]"): {"get", "list", "watch", "create", "patch"},
    ("horizontalpodautoscalers.autoscaling", "[]"): {
        "get",
        "list",
        "watch",
        "create",
        "patch",
        "delete",
    },
    ("poddisruptionbudgets.policy", "[]"): {"get", "list", "watch", "create", "patch", "delete"},
    ("networkpolicies.networking.k8s.io", "[]"): {
        "get",
        "list",
        "watch",
        "create",
        "patch",
        "delete",
    },
    ("httproutes.gateway.networking.k8s.io", "[]"): {"get", "list", "watch", "create", "patch"},
    ("servicemonitors.monitoring.coreos.com", "[]"): {"get", "create", "patch"},
    ("prometheusrules.monitoring.coreos.com", "[]"): {"get", "create", "patch"},
    ("pods", "[]"): {"list", "watch"},
    ("endpointslices.discovery.k8s.io", "[]"): {"list", "watch"},
    ("secrets", "[]"): {"get"},
    ("persistentvolumeclaims", "[]"): {"get"},
    ("events", "[]"): {"create"},
}

# Leader election, in the operator's own namespace only (a Role there in every install).
IN_OPERATOR_NAMESPACE = {
    ("leases.coordination.k8s.io", "[]"): {"create"},
    ("leases.coordination.k8s.io", "[modelroll-operator]"): {"get", "update"},
}
