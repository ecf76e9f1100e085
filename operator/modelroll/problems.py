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
