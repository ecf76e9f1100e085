"""`modelroll predict`: one inference request, sent to a ready pod of the ModelDeployment.

The HTTP half takes a base URL, so it runs against any runtime; the port-forward half
(kubectl port-forward to a pod) only works on pods that really run, not on kwok's.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelroll.bearer import token_of, token_problem
from modelroll.cli.cluster import Target, list_json
from modelroll.inference import post_inference
from modelroll.render import DEPLOYMENT_LABEL, REVISION_LABEL
from modelroll.spec import JSON, SecretKey
from modelroll.tls import Trust, tls_problem, trust_of

RUNTIME_PORT = 8080
# The answer goes to the user's own terminal, so it may be larger than a smoke test's; the
# cap still keeps a runaway answer from filling memory.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def document(self) -> Any:
        return json.loads(self.body)


def load_data(data: str) -> Any:
    """The request body from inline JSON or @file, as curl's --data takes it."""
    text = Path(data[1:]).read_text() if data.startswith("@") else data
    return json.loads(text)


def send(
    base_url: str,
    model: str,
    protocol: str,
    body: Any,
    timeout: float = 30,
    token: str | None = None,
    trust: Trust | None = None,
) -> Answer:
    """The runtime's answer; OSError when there is none (unreachable, redirect, deadline,
    a certificate `trust` does not verify)."""
    answer = post_inference(
        base_url, model, protocol, body, timeout, MAX_ANSWER_BYTES, token=token, trust=trust
    )
    return Answer(answer.status, answer.body)


def auth_token(target: Target, md: JSON) -> str | None:
    """The runtime's bearer token when the ModelDeployment turns auth on, read with the
    user's own credentials (who may not read the Secret cannot call the model this way).
    LookupError names the Secret and key when they cannot serve, never the value."""
    ref = spec_token_ref(md)
    if ref is None:
        return None
    secret = target.kube.get(f"/api/v1/namespaces/{target.namespace}/secrets/{ref.name}")
    if problem := token_problem(secret, target.namespace, ref):
        raise LookupError(problem)
    assert secret is not None  # token_problem reports a missing Secret
    return token_of(secret, ref.key)


def runtime_trust(target: Target, md: JSON) -> Trust | None:
    """What the runtime's certificate is verified with when the ModelDeployment turns TLS
    on (None: plain HTTP), read with the user's credentials, as the operator does: ca.crt,
    or the pinned tls.crt. LookupError says why the Secret cannot tell, without its data."""
    name = spec_tls_secret(md)
    if not name:
        return None
    secret = target.kube.get(f"/api/v1/namespaces/{target.namespace}/secrets/{name}")
    if problem := tls_problem(secret, target.namespace, name):
        raise LookupError(problem)
    assert secret is not None  # tls_problem reports a missing Secret
    return trust_of(secret, target.name, target.namespace)


def spec_tls_secret(md: JSON) -> str:
    runtime = (md.get("spec") or {}).get("runtime") or {}
    return str(((runtime.get("tls") or {}).get("secretRef") or {}).get("name") or "")


def https_url(base_url: str) -> str:
    """The port-forward's URL for a runtime that serves TLS (spec.runtime.tls)."""
    return "https://" + base_url.removeprefix("http://")


def spec_token_ref(md: JSON) -> SecretKey | None:
    ref = ((md.get("spec") or {}).get("runtime") or {}).get("auth", {}).get("tokenSecretRef")
    return SecretKey(str(ref["name"]), str(ref["key"])) if ref else None


def _ready(pod: JSON) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def ready_pod(target: Target, md: JSON) -> str:
    """A ready pod, from the stable revision when it has one."""
    pods = list_json(
        target,
        f"/api/v1/namespaces/{target.namespace}/pods",
        labelSelector=f"{DEPLOYMENT_LABEL}={target.name}",
    )
    ready = [p for p in pods if _ready(p) and not p["metadata"].get("deletionTimestamp")]
    stable = (md.get("status") or {}).get("stableRevision")
    ready.sort(key=lambda p: p["metadata"].get("labels", {}).get(REVISION_LABEL) != stable)
    if not ready:
        raise LookupError(f"no ready pod of {target.namespace}/{target.name}")
    return str(ready[0]["metadata"]["name"])


@contextmanager
def port_forward(
    target: Target, pod: str, kubectl: str = "kubectl", port: int = RUNTIME_PORT
) -> Iterator[str]:
    """A local base URL forwarded to the pod's serving port (the runtime's, or that of the
    user's own container or its sidecar), for as long as the block runs."""
    command = [kubectl, "port-forward", "-n", target.namespace, f"pod/{pod}", f":{port}"]
    if target.kubeconfig:
        command[1:1] = ["--kubeconfig", target.kubeconfig]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = FORWARDING.search(line)
        if not match:
            error = process.stderr.read() if process.stderr and process.poll() is not None else ""
            raise RuntimeError(f"kubectl port-forward failed: {line.strip()} {error.strip()}")
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        process.terminate()
        process.wait(timeout=10)
