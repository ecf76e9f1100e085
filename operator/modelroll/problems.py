"""Why a pod is not serving, read from what the scheduler and kubelet report."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelroll.spec import JSON

WAITING_REASONS = {
    "CrashLoopBackOff": "CrashLoopBackOff",
    "ImagePullBackOff": "ImagePullBackOff",
    "ErrImagePull": "ImagePullBackOff",
    "InvalidImageName": "ImagePullBackOff",
    "CreateContainerConfigError": "CreateContainerConfigError",
}
GPU_SHORTAGE = re.compile(r"Insufficient (nvidia\.com/[\w.\-]*[\w\-])")
# The node label NVIDIA GPU Feature Discovery sets, which spec.gpu.product selects on.
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
# Problems the scheduler reports; whether the GPU product exists anywhere changes their meaning.
SCHEDULING_REASONS = frozenset({"InsufficientGPU", "Unschedulable"})
# What the model-fetch init container (modelroll_runtime.fetch) writes to its termination
# log when the download or the pin fails, and the reason status shows for it.
FETCH_FAILED = "ModelFetchFailed"


@dataclass(frozen=True)
class PodProblem:
    reason: str
    message: str


def pod_problem(pod: JSON) -> PodProblem | None:
    """The most specific reason a pod is not serving, if it has one."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            message = str(condition.get("message", ""))
            shortage = GPU_SHORTAGE.search(message)
            if shortage:
                return PodProblem(
                    "InsufficientGPU", f"no node has a free {shortage.group(1)}: {message}"
                )
            return PodProblem("Unschedulable", message)
    for container in status.get("initContainerStatuses") or []:
        problem = init_problem(container)
        if problem:  # the serving containers wait behind it (PodInitializing)
            return problem
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("lastState") or {}).get("terminated") or {}
        recovered = container.get("ready") is True
        if not recovered and str(terminated.get("message", "")).startswith("ModelLoadFailed"):
            return PodProblem("ModelLoadFailed", str(terminated["message"]).strip())
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = WAITING_REASONS.get(str(waiting.get("reason", "")))
        if reason:
            return PodProblem(reason, str(waiting.get("message", waiting.get("reason"))))
    return None


def init_problem(container: JSON) -> PodProblem | None:
    """An init container that keeps the pod from serving: the model fetch's own reason
    (`ModelFetchFailed: ...` in its termination message, from this try or the last one),
    or a waiting reason such as an image that cannot be pulled."""
    state = container.get("state") or {}
    if (state.get("terminated") or {}).get("exitCode") == 0:
        return None  # it finished: whatever failed before healed
    for terminated in (
        state.get("terminated"),
        (container.get("lastState") or {}).get("terminated"),
    ):
        message = str((terminated or {}).get("message", ""))
        if message.startswith(FETCH_FAILED):
            return PodProblem(FETCH_FAILED, message.strip())
    waiting = state.get("waiting") or {}
    reason = WAITING_REASONS.get(str(waiting.get("reason", "")))
    if reason:
        return PodProblem(reason, str(waiting.get("message", waiting.get("reason"))))
    return None


def problem_fields(pod: JSON) -> JSON:
    """The part of a pod's status `pod_problem` reads: what the watch cache keeps of a pod."""
    status = pod.get("status") or {}
    conditions = [
        {k: c[k] for k in ("type", "status", "message") if k in c}
        for c in status.get("conditions") or []
        if c.get("type") == "PodScheduled" and c.get("status") == "False"
    ]
    containers = []
    for container in status.get("containerStatuses") or []:
        slim: JSON = {"ready": container.get("ready") is True}
        terminated = (container.get("lastState") or {}).get("terminated") or {}
        if str(terminated.get("message", "")).startswith("ModelLoadFailed"):
            slim["lastState"] = {"terminated": {"message": terminated["message"]}}
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in WAITING_REASONS:
            slim["state"] = {"waiting": waiting}
        containers.append(slim)
    return {
        "conditions": conditions,
        "initContainerStatuses": [
            init_fields(c) for c in status.get("initContainerStatuses") or []
        ],
        "containerStatuses": containers,
    }


def init_fields(container: JSON) -> JSON:
    """The part of an init container's status `init_problem` reads."""
    slim: JSON = {}
    for key in ("state", "lastState"):
        state = container.get(key) or {}
        terminated = state.get("terminated") or {}
        kept: JSON = {}
        if terminated:
            kept["terminated"] = {
                k: terminated[k] for k in ("exitCode", "message") if k in terminated
            }
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in WAITING_REASONS:
            kept["waiting"] = waiting
        if kept:
            slim[key] = kept
    return slim


def gpu_not_offered(product: str) -> PodProblem:
    """Pods that select a GPU product no node carries: waiting will not schedule them."""
    return PodProblem(
        "GPUNotOffered",
        f"no node offers the GPU product {product} (no node has the label "
        f"{GPU_PRODUCT_LABEL}={product}): the pods cannot be scheduled until such a node "
        "joins the cluster or spec.gpu.product changes",
    )
