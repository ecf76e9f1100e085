"""The Lease decisions (modelroll.lease): who may take the hold, and what is written."""

from __future__ import annotations

import datetime

import pytest
from modelroll import lease
from modelroll.lease import Timing

WALL = datetime.datetime(2026, 12, 2, 3, 0, 0, 123456, tzinfo=datetime.UTC)


def held_by(holder: str, renew: str = "2026-12-02T03:00:00.000000Z", transitions: int = 0) -> dict:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "l", "namespace": "n", "resourceVersion": "7"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 8,
            "renewTime": renew,
            "leaseTransitions": transitions,
        },
    }


def test_a_live_hold_is_not_taken_until_it_stands_still_for_its_duration() -> None:
    seen = lease.observe(None, held_by("a"), now=100.0)
    assert not lease.may_acquire(seen, "b", held_by("a"), now=100.0)
    seen = lease.observe(seen, held_by("a"), now=107.9)
    assert seen.since == 100.0
    assert not lease.may_acquire(seen, "b", held_by("a"), now=107.9)
    assert lease.may_acquire(seen, "b", held_by("a"), now=108.0)


def test_a_renewal_restarts_the_standbys_clock_whatever_the_clocks_say() -> None:
    seen = lease.observe(None, held_by("a"), now=100.0)
    # renewTime is only compared for change, never with the local clock (skew).
    renewed = held_by("a", renew="1999-01-01T00:00:00.000000Z")
    seen = lease.observe(seen, renewed, now=106.0)
    assert seen.since == 106.0
    assert not lease.may_acquire(seen, "b", renewed, now=113.0)
    assert lease.may_acquire(seen, "b", renewed, now=114.0)


def test_a_released_or_own_lease_is_taken_at_once() -> None:
    for holder in ("", "b"):
        seen = lease.observe(None, held_by(holder), now=0.0)
        assert lease.may_acquire(seen, "b", held_by(holder), now=0.0)


def test_taking_over_counts_a_transition_and_keeps_the_resource_version() -> None:
    taken = lease.held(held_by("a", transitions=3), "b", Timing(), WALL)
    assert taken["metadata"]["resourceVersion"] == "7"  # the optimistic lock
    assert taken["spec"] == {
        "holderIdentity": "b",
        "leaseDurationSeconds": 8,
        "renewTime": "2026-12-02T03:00:00.123456Z",
        "acquireTime": "2026-12-02T03:00:00.123456Z",
        "leaseTransitions": 4,
    }
    renewed = lease.held(taken, "b", Timing(), WALL + datetime.timedelta(seconds=2))
    assert renewed["spec"]["acquireTime"] == "2026-12-02T03:00:00.123456Z"
    assert renewed["spec"]["renewTime"] == "2026-12-02T03:00:02.123456Z"
    assert renewed["spec"]["leaseTransitions"] == 4


def test_a_new_lease_is_held_from_the_start() -> None:
    created = lease.new_lease("n", "l", "a", Timing(), WALL)
    assert created["metadata"] == {"namespace": "n", "name": "l"}
    assert created["spec"]["holderIdentity"] == "a"
    assert created["spec"]["leaseTransitions"] == 0


def test_only_the_holder_releases() -> None:
    assert lease.released(held_by("a"), "b") is None
    given_back = lease.released(held_by("a"), "a")
    assert given_back is not None
    assert given_back["spec"]["holderIdentity"] == ""
    assert given_back["metadata"]["resourceVersion"] == "7"


def test_timing_keeps_the_old_leader_stopped_before_anyone_takes_over() -> None:
    timing = Timing()
    assert timing.renew < timing.deadline < timing.duration
    # The documented worst case: the hold, one more look, and ~2 s to start kopf.
    assert timing.duration + timing.retry + 2 <= 15
    with pytest.raises(ValueError, match="deadline < duration"):
        Timing(duration=5, deadline=5)


@pytest.mark.parametrize("raw", ["x", "/x", "x/", "a/b/c"])
def test_lease_names_are_namespace_slash_name(raw: str) -> None:
    with pytest.raises(ValueError, match="namespace/name"):
        lease.parse_lease_name(raw)


def test_no_lease_name_means_no_election() -> None:
    assert lease.parse_lease_name("") is None
    assert lease.parse_lease_name("modelroll-system/modelroll-operator") == (
        "modelroll-system",
        "modelroll-operator",
    )
