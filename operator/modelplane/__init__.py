"""modelplane: a Kubernetes operator for model deployments."""

GROUP = "modelplane.io"
VERSION = "v1alpha1"
PLURAL = "modeldeployments"
KIND = "ModelDeployment"
FIELD_MANAGER = "modelplane"
