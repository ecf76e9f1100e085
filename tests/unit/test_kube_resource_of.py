"""The resource label of the operator's API request metric: a plural, never a name."""

from __future__ import annotations

import pytest
from modelroll.kube import resource_of


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/api/v1/namespaces/team-a/services/payments", "services"),
        ("/api/v1/namespaces/team-a/events", "events"),
        ("/apis/apps/v1/namespaces/team-a/deployments/m-1a2b", "deployments"),
        (
            "/apis/modelroll.io/v1alpha1/namespaces/team-a/modeldeployments/m/status",
            "modeldeployments/status",
        ),
        ("/apis/modelroll.io/v1alpha1/modeldeployments", "modeldeployments"),
        ("/api/v1/nodes", "nodes"),
        ("/api/v1/namespaces/team-a", "namespaces"),
        (
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x.y",
            "customresourcedefinitions",
        ),
        ("/api/v1/namespaces/team-a/secrets/s?x=1", "secrets"),
    ],
)
def test_the_resource_is_the_plural(path: str, resource: str) -> None:
    assert resource_of(path) == resource
