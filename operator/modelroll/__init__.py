"""modelroll: a Kubernetes operator for model deployments."""

GROUP = "modelroll.io"
VERSION = "v1alpha1"
PLURAL = "modeldeployments"
KIND = "ModelDeployment"
FIELD_MANAGER = "modelroll"
