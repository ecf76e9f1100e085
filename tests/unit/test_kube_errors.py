"""ApiError reads the server's Status (bodies copied from kube-apiserver v1.34 answers)."""

from __future__ import annotations

import json

from modelroll.kube import ApiError

TERMINATING = json.dumps(
    {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": 'deployments.apps "d" is forbidden: unable to create new content in '
        "namespace t because it is being terminated",
        "reason": "Forbidden",
        "details": {
            "name": "d",
            "group": "apps",
            "kind": "deployments",
            "causes": [
                {
                    "reason": "NamespaceTerminating",
                    "message": "namespace t is being terminated",
                    "field": "metadata.namespace",
                }
            ],
        },
        "code": 403,
    }
)
RBAC_DENIED = json.dumps(
    {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": 'services is forbidden: User "system:serviceaccount:x:y" cannot create '
        'resource "services" in API group "" in the namespace "t"',
        "reason": "Forbidden",
        "details": {"kind": "services"},
        "code": 403,
    }
)


def test_namespace_terminating_is_recognised_by_its_cause() -> None:
    assert ApiError(403, TERMINATING).namespace_terminating


def test_rbac_denial_is_not_mistaken_for_a_terminating_namespace() -> None:
    assert not ApiError(403, RBAC_DENIED).namespace_terminating


def test_bodies_that_are_not_a_status_have_no_causes() -> None:
    assert not ApiError(403, "forbidden").has_cause("NamespaceTerminating")
    assert not ApiError(403, "[]").has_cause("NamespaceTerminating")
    assert not ApiError(500, TERMINATING).namespace_terminating


OWNER_GONE = json.dumps(
    {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": 'modeldeployments.modelroll.io "doomed-0" not found',
        "reason": "NotFound",
        "details": {"name": "doomed-0", "group": "modelroll.io", "kind": "modeldeployments"},
        "code": 404,
    }
)
API_MISSING = json.dumps(
    {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": "the server could not find the requested resource",
        "reason": "NotFound",
        "details": {},
        "code": 404,
    }
)


def test_a_deleted_owner_is_told_apart_from_a_missing_api() -> None:
    assert ApiError(404, OWNER_GONE).is_not_found("modelroll.io", "modeldeployments")
    assert not ApiError(404, OWNER_GONE).is_not_found("apps", "deployments")
    assert not ApiError(404, API_MISSING).is_not_found("modelroll.io", "modeldeployments")


NAMESPACE_GONE = json.dumps(
    {
        "kind": "Status",
        "status": "Failure",
        "message": 'namespaces "t-gone" not found',
        "reason": "NotFound",
        "details": {"name": "t-gone", "kind": "namespaces"},
        "code": 404,
    }
)


def test_a_namespace_that_is_gone_is_told_from_a_missing_object() -> None:
    assert ApiError(404, NAMESPACE_GONE).namespace_gone
    assert not ApiError(404, NAMESPACE_GONE).is_not_found("modelroll.io", "modeldeployments")
    assert not ApiError(403, TERMINATING).namespace_gone
