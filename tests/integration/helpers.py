"""Small polling and object helpers shared by the integration tests."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.support.cluster import Cluster

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 60, interval: float = 0.5) -> T:
    """Polls `check` until it returns something truthy without raising AssertionError."""
    deadline = time.monotonic() + timeout
    last_error: AssertionError | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except AssertionError as error:
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout}s: {last_error or check}")


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def condition(md: dict[str, Any], type_: str) -> dict[str, Any]:
    for item in (md.get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}


def model_deployment(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelroll.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {
                "format": "sklearn",
                "uri": "https://models.example.com/iris/",
                "version": "1",
            }
        },
    }
    body["spec"].update(spec)
    return body


def apply(cluster: Cluster, namespace: str, body: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))


def apply_md(cluster: Cluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    """A ModelDeployment written by server-side apply, as GitOps tools write it."""
    body = {
        "apiVersion": "modelroll.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "--field-manager=test", "-f", "-",
        input=json.dumps(body),
    )  # fmt: skip


def service_account_kubeconfig(cluster: Cluster, namespace: str, name: str, path: Path) -> Cluster:
    """The cluster as ServiceAccount namespace/name sees it: a kubeconfig with its token."""
    token = cluster.kubectl("create", "token", name, "-n", namespace).stdout.strip()
    config = json.loads(cluster.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    config["users"] = [{"name": name, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = name
    path.write_text(json.dumps(config))
    os.chmod(path, 0o600)
    return Cluster(str(path), cluster.bin_dir)


def can_i_list(cluster: Cluster, user: str, namespace: str) -> dict[tuple[str, str], set[str]]:
    """`kubectl auth can-i --list` as `user` in `namespace`: (resource, resource names) ->
    verbs, for resources only (the non-resource URLs every user has are left out)."""
    listed = cluster.kubectl("auth", "can-i", "--list", "--as", user, "-n", namespace).stdout
    print(f"kubectl auth can-i --list --as {user} -n {namespace}:\n{listed}")
    header, *lines = listed.splitlines()
    # Columns are padded to the header's positions; the resource column is blank for URLs.
    starts = [header.index(c) for c in ("Non-Resource URLs", "Resource Names", "Verbs")]
    rows: dict[tuple[str, str], set[str]] = {}
    for line in lines:
        resource, urls, names, verbs = (
            line[a:b].strip() for a, b in zip([0, *starts], [*starts, None], strict=True)
        )
        if resource and urls == "[]":
            rows.setdefault((resource, names), set()).update(verbs.strip("[]").split())
    return rows


SETOSA = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}
    ]
}


def smoke_tested_iris_spec(version: str, runtime: dict[str, Any]) -> dict[str, Any]:
    """A one-replica blue-green iris spec whose smoke test asks for setosa; `runtime` adds
    the runtime fields under test (auth, TLS)."""
    smoke = {
        "name": "setosa",
        "body": SETOSA,
        "expectOutputs": {"outputs": [{"name": "predict", "data": [0]}]},
    }
    return {
        "model": {
            "format": "sklearn",
            "uri": "https://models.example.com/iris/",
            "version": version,
        },
        "runtime": {
            "image": "modelroll/runtime:test",  # revision_of then needs no operator default
            **runtime,
        },
        "replicas": 1,
        "rollout": {
            "strategy": "BlueGreen",
            "blueGreen": {"autoPromote": True, "smokeTest": {"requests": [smoke]}},
        },
    }
