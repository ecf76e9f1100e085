"""Operator-wide settings, read once at startup from MODELROLL_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class OperatorConfig:
    runtime_image: str = "modelroll/runtime:0.1.0"
    runtime_image_pull_policy: str = "IfNotPresent"
    cluster_domain: str = "cluster.local"
    default_requests: dict[str, str] = field(
        default_factory=lambda: {"cpu": "250m", "memory": "256Mi"}
    )
    metrics_port: int = 8000
    timer_interval_seconds: float = 15.0
    watch_stall_seconds: float = 120.0
    namespaces: tuple[str, ...] = ()
    # How the operator reaches a Service (smoke tests). Cluster DNS in-cluster; operators
    # run elsewhere point it at a gateway or port-forward.
    service_url_template: str = "http://{service}.{namespace}.svc.{cluster_domain}:{port}"

    def service_url(self, service: str, namespace: str, port: int = 80) -> str:
        return self.service_url_template.format(
            service=service, namespace=namespace, cluster_domain=self.cluster_domain, port=port
        )


def config_from_env(env: dict[str, str] | None = None) -> OperatorConfig:
    env = dict(os.environ) if env is None else env
    defaults = OperatorConfig()
    namespaces = tuple(n for n in env.get("MODELROLL_NAMESPACES", "").split(",") if n)
    return OperatorConfig(
        runtime_image=env.get("MODELROLL_RUNTIME_IMAGE", defaults.runtime_image),
        runtime_image_pull_policy=env.get(
            "MODELROLL_RUNTIME_IMAGE_PULL_POLICY", defaults.runtime_image_pull_policy
        ),
        cluster_domain=env.get("MODELROLL_CLUSTER_DOMAIN", defaults.cluster_domain),
        metrics_port=int(env.get("MODELROLL_METRICS_PORT", defaults.metrics_port)),
        timer_interval_seconds=float(
            env.get("MODELROLL_TIMER_INTERVAL_SECONDS", defaults.timer_interval_seconds)
        ),
        watch_stall_seconds=float(
            env.get("MODELROLL_WATCH_STALL_SECONDS", defaults.watch_stall_seconds)
        ),
        namespaces=namespaces,
        service_url_template=env.get(
            "MODELROLL_SERVICE_URL_TEMPLATE", defaults.service_url_template
        ),
    )
