"""Reaching the cluster from the CLI: the current kubeconfig, or an explicit one."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client, config

from modelroll import GROUP, KIND, VERSION
from modelroll.kube import Kube, object_path
from modelroll.kube_transport import Query
from modelroll.spec import JSON


@dataclass(frozen=True)
class Target:
    """One ModelDeployment on one cluster."""

    kube: Kube
    namespace: str
    name: str
    kubeconfig: str | None

    @property
    def path(self) -> str:
        return object_path(f"{GROUP}/{VERSION}", KIND, self.namespace, self.name)

    @property
    def ref(self) -> JSON:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": self.name, "namespace": self.namespace},
        }


class NotFound(Exception):
    pass


def current_namespace(kubeconfig: str | None) -> str:
    """The kubeconfig context's namespace, as kubectl uses it; else "default"."""
    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError):
        return "default"
    return str((active or {}).get("context", {}).get("namespace") or "default")


class ClientTransport:
    """Requests through the kubernetes client's connection, so the CLI reads kubeconfigs the
    way kubectl does: an explicit file, exec plugins and refreshed tokens included (the
    operator itself logs in as kopf does, modelroll.kube_transport)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client

    def send(
        self,
        method: str,
        path: str,
        query: Query,
        headers: dict[str, str],
        body: bytes | None,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        # param_serialize adds the credentials (refreshing an exec plugin's token); the body
        # is already encoded, so it goes straight to the client's urllib3 pool
        method, url, headers, _, _ = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query,
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        response = self.api_client.rest_client.pool_manager.request(
            method, url, body=body, headers=headers, timeout=timeout, redirect=False
        )
        return response.status, response.data


def kube_of(kubeconfig: str | None) -> Kube:
    api_client = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    return Kube(ClientTransport(api_client))


def connect(name: str, namespace: str | None, kubeconfig: str | None) -> Target:
    return Target(kube_of(kubeconfig), namespace or current_namespace(kubeconfig), name, kubeconfig)


def get_model_deployment(target: Target) -> JSON:
    body = target.kube.get(target.path)
    if body is None:
        raise NotFound(f"{KIND} {target.namespace}/{target.name} not found")
    return body


def list_json(target: Target, path: str, **query: str) -> list[JSON]:
    items: list[JSON] = (
        target.kube.request("GET", path, query=list(query.items())).get("items") or []
    )
    return items


def events_of(target: Target, uid: str) -> list[JSON]:
    """Events about the ModelDeployment, oldest first."""
    events = list_json(
        target,
        f"/api/v1/namespaces/{target.namespace}/events",
        fieldSelector=f"involvedObject.uid={uid}",
    )
    return sorted(events, key=event_time)


def event_time(event: JSON) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or event["metadata"].get("creationTimestamp")
        or ""
    )
