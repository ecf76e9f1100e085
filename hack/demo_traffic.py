"""Ships a new model version as a canary under load, and shows the split as clients see it.

  demo_traffic.py canary NAMESPACE NAME CLUSTER_IP MANIFEST

A small paced load (a new connection per request, so kube-proxy picks an endpoint each
time) runs from the host against the Service's ClusterIP. MANIFEST is applied, and every
TICK seconds one line sets the answers by X-Model-Version beside the status's effective
weights (watched, so each change is timed), until the new version is stable and answers
alone. Exits 1 unless a split was measured at a canary step: answers from both versions
while the status gave both a weight.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.traffic import Answer, Load, infer  # the e2e tests' own client

TICK = 2.0
TIMEOUT = 300.0
# Requests per second of each of the two load threads: small, on a machine of 2 cores.
RATE = 25.0
# Answers this soon after the status changed may predate kube-proxy's new rules.
SETTLE = 2.0
MIN_ANSWERS = 20
ROWS = np.array([[6.8, 2.8, 4.8, 1.4]])
Weights = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Status:
    """One status the API server sent: the effective weight of each version, and more."""

    seen: float
    weights: Weights
    message: str
    promoted: str  # the stable version once the rollout is over, else ""


def parse_status(md: dict[str, Any], seen: float) -> Status:
    status = md.get("status", {})
    revisions = status.get("revisions", [])
    # Only versions with weight: a revision at 0% (a canary coming up, the old stable
    # scaling down) serves nothing, so it starts no new split.
    weights = tuple(
        sorted((str(r.get("version")), int(r["weight"])) for r in revisions if r.get("weight"))
    )
    progressing = [c for c in status.get("conditions", []) if c["type"] == "Progressing"]
    message = str(progressing[0].get("message", "")) if progressing else ""
    stable = [r for r in revisions if r.get("role") == "stable" and r.get("weight") == 100]
    over = (
        md["metadata"]["generation"] == status.get("observedGeneration")
        and not status.get("canaryRevision")
        and len(stable) == 1
    )
    return Status(seen, weights, message, str(stable[0].get("version")) if over else "")


@dataclass
class StatusWatch:
    """`kubectl get --watch` on the ModelDeployment: every status, timed as it arrives."""

    namespace: str
    name: str
    statuses: list[Status] = field(default_factory=list)

    def __enter__(self) -> StatusWatch:
        self._watch = subprocess.Popen(
            [
                "kubectl",
                "-n",
                self.namespace,
                "get",
                "modeldeployment",
                self.name,
                "-w",
                "-o",
                "json",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        # kubectl prints each object as indented JSON: a line "}" ends one. (A jsonpath
        # template with a range in it made kubectl 1.34 end the watch after one event.)
        assert self._watch.stdout is not None
        lines: list[str] = []
        for line in self._watch.stdout:
            lines.append(line)
            if line != "}\n":
                continue
            status = parse_status(json.loads("".join(lines)), time.time())
            lines.clear()
            if not self.statuses or self.statuses[-1].weights != status.weights:
                self.statuses.append(status)
            else:  # the same weights: keep when they began, take the newer message
                self.statuses[-1] = replace(status, seen=self.statuses[-1].seen)

    def __exit__(self, *exc: object) -> None:
        self._watch.terminate()
        self._watch.wait(timeout=10)

    def latest(self) -> Status | None:
        return self.statuses[-1] if self.statuses else None


class PacedLoad(Load):
    """The e2e tests' Load, at RATE requests per second per thread."""

    def _run(self) -> None:
        while not self._stop.is_set():
            answer = infer(self.host, self.model, self.rows)
            with self._lock:
                self.answers.append(answer)
            self._stop.wait(max(0.0, 1 / RATE - (answer.finished - answer.started)))


def shares(answers: list[Answer]) -> str:
    served = Counter(
        f"v{a.version}" if a.status == 200 else f"HTTP {a.status}" if a.status else "no answer"
        for a in answers
    )
    total = sum(served.values())
    if not total:
        return "no answers"
    parts = [f"{k} {100 * n / total:3.0f}%" for k, n in sorted(served.items())]
    return f"{'  '.join(parts)}  ({total} answers)"


def weights_text(weights: Weights) -> str:
    return "  ".join(f"v{v} {w:3d}%" for v, w in weights) or "none"


def by_status(statuses: list[Status], answers: list[Answer]) -> list[tuple[Status, list[Answer]]]:
    """The answers sent under each status, less those of its first SETTLE seconds."""
    out = []
    for i, status in enumerate(statuses):
        end = statuses[i + 1].seen if i + 1 < len(statuses) else float("inf")
        out.append((status, [a for a in answers if status.seen + SETTLE <= a.started < end]))
    return out


def measured_split(status: Status, answers: list[Answer]) -> bool:
    """A canary step: two versions with weight, both answered, enough answers to tell."""
    weighted = {v for v, w in status.weights if 0 < w < 100}
    served = {a.version for a in answers if a.status == 200}
    return len(weighted) >= 2 and weighted <= served and len(answers) >= MIN_ANSWERS


def line(start: float, status: Status | None, fresh: list[Answer]) -> str:
    weights, message = (status.weights, status.message) if status else ((), "")
    return (
        f"canary split {time.time() - start:4.0f}s  status: {weights_text(weights):16}"
        f"  measured: {shares(fresh):32}  | {message}"
    )


def main(namespace: str, name: str, host: str, manifest: str) -> int:
    # Until the watch sends the applied spec, the latest status is the old, finished one.
    target = str(yaml.safe_load(Path(manifest).read_text())["spec"]["model"]["version"])
    start = time.time()
    with StatusWatch(namespace, name) as watch, PacedLoad(host, name, ROWS) as load:
        time.sleep(TICK)
        seen = load.count()
        print(line(start, watch.latest(), load.answers[:seen]), flush=True)
        subprocess.run(["kubectl", "apply", "-n", namespace, "-f", manifest], check=True)
        over_at = None
        while True:
            time.sleep(TICK)
            status, fresh = watch.latest(), load.answers[seen:]
            seen += len(fresh)
            print(line(start, status, fresh), flush=True)
            promoted = bool(status and status.promoted == target)
            if promoted and over_at is None:
                over_at = time.time()
            # After promotion, until the new version answers alone (kube-proxy's sync).
            if promoted and fresh and {a.version for a in fresh} == {target}:
                break
            if time.time() - (over_at or start) > (30 if over_at else TIMEOUT):
                print(
                    "the rollout did not finish, or the old version kept answering", file=sys.stderr
                )
                return 1
        answers, statuses = list(load.answers), list(watch.statuses)
    print(f"canary split by status (answers sent under each, less its first {SETTLE:.0f} s):")
    measured = False
    for status, of_status in by_status(statuses, answers):
        print(f"  status {weights_text(status.weights):16}  measured {shares(of_status)}")
        measured = measured or measured_split(status, of_status)
    failed = [a for a in answers if a.status != 200]
    print(f"{len(answers)} answers in all, {len(failed)} failed", end="")
    print(f" (first: {failed[0].error or failed[0].status})" if failed else "")
    if not measured:
        print("no canary split was measured from real answers", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] != "canary":
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[2:]))
