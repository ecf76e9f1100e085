"""Reserved variables stay reserved, and quotas are on by default (issue 12), on the real
apiserver: a credentials Secret cannot set the runtime's own MODELROLL_* settings, and the
Deployment the operator writes carries limits and sized emptyDirs the apiserver accepts."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from modelroll_runtime.config import Settings

from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.helpers import apply, condition, eventually, get_json, model_deployment

pytestmark = pytest.mark.integration


def effective_env(container: dict[str, Any], secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The environment the kubelet would give the container: envFrom first, then env (which
    wins), with secretKeyRefs resolved; an optional reference to a missing key sets nothing."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(secrets[source["secretRef"]["name"]])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        data = secrets.get(ref["name"], {})
        if ref["key"] in data:
            env[entry["name"]] = data[ref["key"]]
        else:
            assert ref.get("optional") is True, entry
    return env


def secret_data(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    secret = get_json(cluster, "-n", namespace, "secret", name)
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_a_secret_key_named_like_a_runtime_setting_does_not_reach_the_pod(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    cluster.kubectl(
        "create", "secret", "generic", "tenant-creds", "-n", namespace,
        "--from-literal=AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
        "--from-literal=AWS_SECRET_ACCESS_KEY=secret",
        "--from-literal=MODELROLL_ALLOW_UNPINNED_PICKLE=true",
        "--from-literal=MODELROLL_AUTH_TOKEN=chosen-by-the-tenant",
    )  # fmt: skip
    # an unpinned pickle from a remote URI: what the opt-in in the Secret would unlock
    body = model_deployment("reserved")
    body["spec"]["model"]["credentials"] = {"secretRef": {"name": "tenant-creds"}}
    apply(cluster, namespace, body)

    def ready() -> dict[str, Any]:
        md = get_json(cluster, "-n", namespace, "md", "reserved")
        assert condition(md, "Ready").get("status") == "True", md.get("status")
        return md

    eventually(ready, timeout=90)
    (deployment,) = get_json(
        cluster, "-n", namespace, "deployments", "-l", "modelroll.io/deployment=reserved"
    )["items"]
    pod_spec = deployment["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    assert "envFrom" not in container

    secrets = {"tenant-creds": secret_data(cluster, namespace, "tenant-creds")}
    env = effective_env(container, secrets)
    # the storage client's own names come through, mapped key by key
    assert env["AWS_ACCESS_KEY_ID"] == "AKIDEXAMPLE"
    assert env["AWS_SECRET_ACCESS_KEY"] == "secret"
    # the runtime's reserved settings do not
    assert "MODELROLL_ALLOW_UNPINNED_PICKLE" not in env
    assert "MODELROLL_AUTH_TOKEN" not in env
    from_secret = [e["name"] for e in container["env"] if "valueFrom" in e]
    assert not [n for n in from_secret if n.startswith("MODELROLL_")]
    # and what the runtime would read from that environment: the pickle stays refused
    settings = Settings.from_env({**env, "MODELROLL_WORKERS": "1"})
    assert settings.allow_unpinned_pickle is False
    assert settings.auth_token is None

    # the pods the apiserver created from it carry the same environment
    pods = get_json(cluster, "-n", namespace, "pods", "-l", "modelroll.io/deployment=reserved")
    assert pods["items"]
    for pod in pods["items"]:
        (pod_container,) = pod["spec"]["containers"]
        assert "envFrom" not in pod_container
        assert "MODELROLL_ALLOW_UNPINNED_PICKLE" not in effective_env(pod_container, secrets)


def test_the_written_deployment_has_limits_and_sized_emptydirs(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(
        cluster,
        namespace,
        model_deployment("quota", resources={"requests": {"memory": "3Gi"}}),
    )

    def written() -> dict[str, Any]:
        items = get_json(
            cluster, "-n", namespace, "deployments", "-l", "modelroll.io/deployment=quota"
        )["items"]
        assert items
        return dict(items[0])

    deployment = eventually(written, timeout=60)
    pod_spec = deployment["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    # the operator's default requests and limits, with the user's memory request winning
    # and the default memory limit raised to meet it (the apiserver refuses request > limit)
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "3Gi"},
        "limits": {"cpu": "2", "memory": "3Gi"},
    }
    empty_dirs = {v["name"]: v["emptyDir"] for v in pod_spec["volumes"] if "emptyDir" in v}
    assert empty_dirs == {
        "tmp": {"sizeLimit": "1Gi"},
        "model-download": {"sizeLimit": "10Gi"},
        "model-cache": {"sizeLimit": "10Gi"},
    }
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODELROLL_MAX_MODEL_BYTES"] == str(10 * 2**30 - 10 * 2**30 // 20)
    eventually(
        lambda: (
            condition(get_json(cluster, "-n", namespace, "md", "quota"), "Ready").get("status")
            == "True"
        ),
        timeout=90,
    )
