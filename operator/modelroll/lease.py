"""Leader election on a `coordination.k8s.io/v1` Lease, decided as client-go's
leaderelection decides it, as pure functions of what was read and when.

A Lease names its holder and how long its hold lasts. The holder renews it; a candidate
takes it over once the hold has not changed for `leaseDurationSeconds` on the candidate's
own clock (never by comparing `renewTime` with its clock, so skew between nodes does not
matter). Every write carries the resourceVersion that was read, so the apiserver's
optimistic concurrency picks one winner when two candidates race: no consensus of our own.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]
API_VERSION = "coordination.k8s.io/v1"


@dataclass(frozen=True)
class Timing:
    """How fast a standby takes over. The worst case after the leader dies is `duration`
    (the hold it renewed just before) plus one `retry` (the standby's next look), plus the
    operator's start; 8 + 1 + ~2 s keeps a takeover under 15 s (docs/install.md).

    The leader renews every `renew` seconds and exits once it could not renew for
    `deadline` seconds: `deadline` < `duration`, so an old leader cut off from the
    apiserver has stopped before anyone may take over from it."""

    duration: float = 8.0
    deadline: float = 5.0
    renew: float = 2.0
    retry: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.renew < self.deadline < self.duration or self.retry <= 0:
            raise ValueError(f"lease timing needs 0 < renew < deadline < duration: {self}")


@dataclass(frozen=True)
class Observed:
    """The last distinct hold a candidate saw, and when (its monotonic clock) it changed."""

    holder: str
    renew_time: str
    transitions: int
    since: float


def observe(previous: Observed | None, lease: JSON, now: float) -> Observed:
    """What the candidate knows after reading `lease` at `now`: a renewal or a new holder
    restarts the clock, an unchanged hold keeps the time it was first seen."""
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    renew_time = spec.get("renewTime") or ""
    transitions = int(spec.get("leaseTransitions") or 0)
    if previous is not None and (previous.holder, previous.renew_time, previous.transitions) == (
        holder,
        renew_time,
        transitions,
    ):
        return previous
    return Observed(holder, renew_time, transitions, now)


def may_acquire(observed: Observed, identity: str, lease: JSON, now: float) -> bool:
    """Whether `identity` may write itself as holder: it holds it already, nobody does
    (released), or the hold has not moved for the lease's own duration."""
    if observed.holder in ("", identity):
        return True
    duration = float((lease.get("spec") or {}).get("leaseDurationSeconds") or 0)
    return now - observed.since >= duration


def micro_time(moment: datetime.datetime) -> str:
    """Kubernetes' MicroTime format (RFC 3339 with microseconds, UTC)."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def held(lease: JSON, identity: str, timing: Timing, wall: datetime.datetime) -> JSON:
    """`lease` (as read, with its resourceVersion) written with `identity` holding it now."""
    spec = dict(lease.get("spec") or {})
    if spec.get("holderIdentity") != identity:
        spec["acquireTime"] = micro_time(wall)
        spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (
            1 if spec.get("holderIdentity") else 0
        )
    spec["holderIdentity"] = identity
    spec["leaseDurationSeconds"] = int(timing.duration)
    spec["renewTime"] = micro_time(wall)
    return {**lease, "spec": spec}


def new_lease(
    namespace: str, name: str, identity: str, timing: Timing, wall: datetime.datetime
) -> JSON:
    """The Lease created when none exists yet, held by `identity`."""
    body: JSON = {
        "apiVersion": API_VERSION,
        "kind": "Lease",
        "metadata": {"namespace": namespace, "name": name},
    }
    created = held(body, identity, timing, wall)
    created["spec"]["leaseTransitions"] = 0
    return created


def released(lease: JSON, identity: str) -> JSON | None:
    """`lease` handed back by a leader that stops cleanly, so a standby takes over at its
    next look instead of after the whole duration (client-go's ReleaseOnCancel); None when
    `identity` no longer holds it (nothing to give back)."""
    spec = dict(lease.get("spec") or {})
    if spec.get("holderIdentity") != identity:
        return None
    spec["holderIdentity"] = ""
    spec["leaseDurationSeconds"] = 1
    return {**lease, "spec": spec}


def parse_lease_name(raw: str) -> tuple[str, str] | None:
    """MODELROLL_LEADER_LEASE as `namespace/name`; empty turns election off (one replica)."""
    if not raw:
        return None
    namespace, _, name = raw.partition("/")
    if not namespace or not name or "/" in name:
        raise ValueError(f"MODELROLL_LEADER_LEASE={raw!r}: expected namespace/name")
    return namespace, name
