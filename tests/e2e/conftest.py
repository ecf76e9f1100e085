"""Fixtures for end-to-end tests on the real node: pods that run the real runtime image.

The package starts its own cluster with NODE=real (hack/cluster.sh: containerd, runc,
kubelet, kube-proxy, CoreDNS, images built by hack/images.sh), or uses the one named by
MODELROLL_E2E_KUBECONFIG. The operator runs in-cluster from its image, installed with
dist/install.yaml, for every test here.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.integration.helpers import eventually, get_json
from tests.support.cluster import Cluster, existing_cluster, private_cluster
from tests.support.prerequisites import REAL_NODE_TOOLS, require, require_root

REPO = Path(__file__).resolve().parents[2]
HOST_IP = subprocess.run(
    [str(REPO / "hack" / "real-node.sh"), "host-ip"], capture_output=True, text=True, check=True
).stdout.strip()
NODE_NAME = "real-0"
RUNTIME_IMAGE = "docker.io/modelroll/runtime:0.1.0"
OPERATOR_IMAGE = "docker.io/modelroll/operator:0.1.0"
# examples/custom-fastapi: a user's own server (spec.runtime.container). hack/images.sh
# builds it with the others, and the real node imports it the same way.
CUSTOM_FASTAPI_IMAGE = "localhost/modelroll/custom-fastapi:0.1.0"
# What every workload of these tests carries to land on the real node (it is tainted, so
# nothing from other tests lands there by accident).
ON_REAL_NODE: dict[str, Any] = {
    "nodeSelector": {"modelroll.io/node": "real"},
    "tolerations": [
        {"key": "modelroll.io/real-node", "operator": "Exists", "effect": "NoSchedule"}
    ],
}


@pytest.fixture(scope="package")
def real_cluster() -> Iterator[Cluster]:
    existing = os.environ.get("MODELROLL_E2E_KUBECONFIG")
    if existing:
        yield existing_cluster(existing)
        return
    # host_state() runs iptables and ip before hack/cluster.sh would check for them
    require_root("the real node (hack/real-node.sh)")
    require(*REAL_NODE_TOOLS, needed_by="the real node (hack/real-node.sh, hack/images.sh)")
    before = host_state()
    with private_cluster("real") as started:
        yield started
    # `hack/cluster.sh down` has run: the host must be exactly as it was.
    after = host_state()
    assert after == before, f"the real node left things behind: {leftovers(before, after)}"


def host_state() -> dict[str, Any]:
    """What the real node changes on the host: links, iptables chains, nftables tables and
    nfqueues, mounts, sysctls, dirs."""

    def run(*args: str) -> str:
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout

    chains = sorted(
        f"{cmd} {table} {line.split()[1]}"
        for cmd in ("iptables", "ip6tables")
        for table in ("filter", "nat", "mangle")
        for line in run(cmd, "-t", table, "-S").splitlines()
        if line.startswith("-N ")
    )
    return {
        "links": sorted(
            line.split(":")[1].strip().split("@")[0]
            for line in run("ip", "-o", "link").splitlines()
        ),
        "routes": sorted(run("ip", "route").splitlines()),
        "chains": chains,
        "mounts": sorted(
            line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
        ),
        "sysctls": run(
            "sysctl",
            "net.ipv4.ip_forward",
            "kernel.panic",
            "kernel.panic_on_oops",
            "vm.overcommit_memory",
            "vm.panic_on_oom",
        ),
        # kube-network-policies: its nftables table (kube-proxy's iptables rules live in the
        # ip and ip6 families) and its nfqueue binding
        "nftables": sorted(run("nft", "list", "tables", "inet").splitlines()),
        "nfqueues": sorted(
            line.split()[0]
            for line in Path("/proc/net/netfilter/nfnetlink_queue").read_text().splitlines()
        ),
        "cgroups": sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods")),
        "dirs": sorted(
            d
            for d in (
                "/var/lib/cni",
                "/var/log/containers",
                "/run/containerd",
                "/run/modelroll-real-node",
            )
            if os.path.exists(d)
        ),
    }


def leftovers(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What changed, as {"added": [...], "removed": [...]} per list (counted, since a mount
    can be stacked twice on one path), or the new value."""
    changed: dict[str, Any] = {}
    for key in after:
        if after[key] == before[key]:
            continue
        if isinstance(after[key], list):
            now, then = Counter(after[key]), Counter(before[key])
            changed[key] = {
                "added": sorted((now - then).elements()),
                "removed": sorted((then - now).elements()),
            }
        else:
            changed[key] = after[key]
    return changed


@pytest.fixture(scope="package")
def installed_operator(real_cluster: Cluster) -> None:
    """The install bundle as users apply it, with the operator pinned to the real node."""
    real_cluster.kubectl("apply", "--server-side", "-k", str(REPO / "crds"))
    real_cluster.wait_established("modeldeployments.modelroll.io")
    docs = [d for d in yaml.safe_load_all((REPO / "dist" / "install.yaml").read_text()) if d]
    operator = next(
        d
        for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "modelroll-operator"
    )
    operator["spec"]["template"]["spec"].update(ON_REAL_NODE)
    real_cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump_all(docs)
    )
    real_cluster.kubectl(
        "-n",
        "modelroll-system",
        "rollout",
        "status",
        "deployment/modelroll-operator",
        "--timeout=300s",
        timeout=320,
    )


OPERATOR_NAMESPACE = "modelroll-system"


def operator_pods(cluster: Cluster, terminating: bool = False) -> list[dict[str, Any]]:
    """The operator's pods (two replicas: a leader and a standby); with `terminating`, also
    those on their way out after a rollout, which another test may have just started."""
    pods = get_json(
        cluster, "-n", OPERATOR_NAMESPACE, "pods", "-l", "app.kubernetes.io/name=modelroll"
    )["items"]
    return [p for p in pods if terminating or not p["metadata"].get("deletionTimestamp")]


def leader_pod(cluster: Cluster) -> str:
    """The pod whose operator holds the leader Lease (its identity is `<pod>_<uuid>`)."""
    lease = get_json(cluster, "-n", OPERATOR_NAMESPACE, "lease", "modelroll-operator")
    holder = str(lease["spec"].get("holderIdentity") or "")
    pods = {p["metadata"]["name"] for p in operator_pods(cluster)}
    name = holder.rpartition("_")[0]
    assert name in pods, f"lease held by {holder!r}, pods {sorted(pods)}"
    return name


@dataclass(frozen=True)
class ModelStore:
    """Model files served over HTTP from the host's bridge address, as a bucket would be."""

    base_url: str
    sha256: dict[str, str]
    models: dict[str, LogisticRegression]

    def uri(self, version: str) -> str:
        return f"{self.base_url}/iris/{version}/model.joblib"


@pytest.fixture(scope="package")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelStore]:
    root = tmp_path_factory.mktemp("models")
    x, y = load_iris(return_X_y=True)
    models = {
        "1": LogisticRegression(max_iter=1000).fit(x, y),
        "2": LogisticRegression(C=0.05, max_iter=1000).fit(x, y),
    }
    digests = {}
    for version, model in models.items():
        path = root / "iris" / version / "model.joblib"
        path.parent.mkdir(parents=True)
        joblib.dump(model, path)
        digests[version] = hashlib.sha256(path.read_bytes()).hexdigest()
    handler = partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer((HOST_IP, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ModelStore(f"http://{HOST_IP}:{server.server_address[1]}", digests, models)
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def create_namespace(cluster: Cluster, name: str, labels: dict[str, str] | None = None) -> None:
    """A namespace that enforces Pod Security Standards "restricted", with its default
    ServiceAccount in place (pods can be created in it)."""
    restricted = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {**restricted, **(labels or {})}},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))
    eventually(
        lambda: cluster.kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0
    )


@pytest.fixture
def restricted_namespace(real_cluster: Cluster) -> Iterator[str]:
    """A namespace that enforces Pod Security Standards "restricted"."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    create_namespace(real_cluster, name)
    yield name
    # Waits, so that the next test gets the node's CPU (2 cores) that these pods requested.
    real_cluster.kubectl("delete", "namespace", name, "--timeout=180s", timeout=200)


def model_deployment_from_example(example: str, store: ModelStore, version: str) -> dict[str, Any]:
    """An example from examples/, pointed at the local model store and pinned to the real node."""
    body: dict[str, Any] = yaml.safe_load((REPO / "examples" / example).read_text())
    set_version(body, store, version)
    body["spec"].update(ON_REAL_NODE)
    # The node has 2 cores: small requests let a blue-green rollout run both colours.
    body["spec"]["resources"] = {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "512Mi"},
    }
    return body


def set_version(body: dict[str, Any], store: ModelStore, version: str) -> None:
    model = body["spec"]["model"]
    model.update(uri=store.uri(version), version=version, sha256=store.sha256[version])


def wait_ready(cluster: Cluster, namespace: str, name: str, timeout: float = 300) -> dict[str, Any]:
    def ready() -> dict[str, Any]:
        md: dict[str, Any] = get_json(cluster, "-n", namespace, "modeldeployment", name)
        conditions = {c["type"]: c for c in md.get("status", {}).get("conditions", [])}
        ready = conditions.get("Ready", {})
        assert ready.get("status") == "True", ready
        assert md["status"].get("observedGeneration") == md["metadata"]["generation"]
        return md

    return eventually(ready, timeout=timeout, interval=1)


def cluster_ip(cluster: Cluster, namespace: str, service: str) -> str:
    return str(get_json(cluster, "-n", namespace, "service", service)["spec"]["clusterIP"])


def iris_rows(n: int) -> np.ndarray:
    x, _ = load_iris(return_X_y=True)
    return np.asarray(x[:: max(1, len(x) // n)][:n], dtype=np.float64)


def set_prometheus_endpoints(cluster: Cluster, value: str) -> None:
    """The installed operator's MODELROLL_PROMETHEUS_ENDPOINTS, in effect: rolled out, and
    the Lease held by a new pod. A rolled-out Deployment can still have its old leader
    (terminating, or not yet handed over), whose analyses would use the old endpoints."""
    name = "MODELROLL_PROMETHEUS_ENDPOINTS"
    operator = ("-n", OPERATOR_NAMESPACE)
    cluster.kubectl(*operator, "set", "env", "deployment/modelroll-operator", f"{name}={value}")
    cluster.kubectl(
        *operator, "rollout", "status", "deployment/modelroll-operator", "--timeout=300s",
        timeout=320,
    )  # fmt: skip

    def leader_has_it() -> bool:
        leader = leader_pod(cluster)
        pod = get_json(cluster, *operator, "pod", leader)
        env = {
            e["name"]: e.get("value", "")
            for c in pod["spec"]["containers"]
            for e in c.get("env", [])
        }
        assert env.get(name, "") == value and not pod["metadata"].get("deletionTimestamp"), leader
        return True

    eventually(leader_has_it, timeout=90, interval=1)
    # and the old pods gone, so that a later test finds the two replicas, not four
    eventually(
        lambda: len(operator_pods(cluster, terminating=True)) == len(operator_pods(cluster)),
        timeout=120,
        interval=1,
    )
