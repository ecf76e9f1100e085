"""Which objects are ours, the ServiceAccount's name, and the check registry (issue 12)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from modelroll.checks import Checks
from modelroll.config import OperatorConfig
from modelroll.ownership import conflict_message, controlled_by
from modelroll.render import Owner, RenderContext, render_children
from modelroll.revision import revision_of

OWNER = Owner("default", "team-a", "0b7c3b9e-0000-4000-8000-000000000001")
SPEC = {
    "model": {"format": "sklearn", "uri": "https://models.example.com/iris/", "version": "1"},
    "replicas": 1,
}


def test_only_the_controlling_owner_reference_with_our_uid_makes_an_object_ours() -> None:
    ours = {"metadata": {"ownerReferences": [{"uid": OWNER.uid, "controller": True}]}}
    assert controlled_by(ours, OWNER.uid)
    labelled_only = {"metadata": {"labels": {"app.kubernetes.io/managed-by": "modelroll"}}}
    assert not controlled_by(labelled_only, OWNER.uid)
    not_controller = {"metadata": {"ownerReferences": [{"uid": OWNER.uid}]}}
    assert not controlled_by(not_controller, OWNER.uid)
    someone_else = {"metadata": {"ownerReferences": [{"uid": "other", "controller": True}]}}
    assert not controlled_by(someone_else, OWNER.uid)


def test_conflict_message_names_the_object() -> None:
    message = conflict_message({"kind": "Service", "metadata": {"name": "payments"}})
    assert message.startswith("Service/payments already exists and is not owned")


def test_the_service_account_never_takes_a_users_name() -> None:
    context = RenderContext(OperatorConfig(), False)
    children = render_children(OWNER, SPEC, revision_of(SPEC, "img"), context)
    account = next(c for c in children if c["kind"] == "ServiceAccount")
    assert account["metadata"]["name"] == "default-modelroll"
    deployment = next(c for c in children if c["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "default-modelroll"
    longest = Owner("a" * 40, "ns", "uid")
    name = render_children(longest, SPEC, revision_of(SPEC, "img"), context)[1]["metadata"]["name"]
    assert len(name) <= 63


def test_a_check_runs_once_at_a_time_and_its_result_is_given_once() -> None:
    async def scenario() -> list[Any]:
        checks = Checks(workers=2)
        woken: list[tuple[str, str]] = []
        checks.wake = woken.append
        release = threading.Event()
        runs: list[str] = []

        def slow() -> str:
            runs.append("slow")
            release.wait(5)
            return "passed"

        key = ("ns", "md")
        seen = [checks.result(key, "smoke-r1", slow)]  # started
        seen.append(checks.result(key, "smoke-r1", slow))  # still running: not started again
        seen.append(checks.result(key, "smoke-r2", slow))  # another check waits for it
        assert checks.running(key)
        release.set()
        while checks.running(key):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)  # the done callback runs on the loop
        seen.append(woken == [key])
        seen.append(checks.result(key, "smoke-r1", slow))  # the finished result
        seen.append(checks.result(key, "smoke-r1", lambda: "again"))  # given once: starts anew
        while checks.running(key):
            await asyncio.sleep(0.01)
        seen.append(checks.result(key, "smoke-r1", slow))
        seen.append(runs)
        checks.shutdown()
        return seen

    assert asyncio.run(scenario()) == [None, None, None, True, "passed", None, "again", ["slow"]]


def test_a_check_that_raised_raises_once_then_runs_again() -> None:
    async def scenario() -> None:
        checks = Checks(workers=1)
        key = ("ns", "md")

        def broken() -> str:
            raise RuntimeError("bug")

        assert checks.result(key, "a", broken) is None
        while checks.running(key):
            await asyncio.sleep(0.01)
        with pytest.raises(RuntimeError, match="bug"):
            checks.result(key, "a", broken)
        assert checks.result(key, "a", lambda: "ok") is None
        while checks.running(key):
            await asyncio.sleep(0.01)
        assert checks.result(key, "a", broken) == "ok"
        checks.shutdown()

    asyncio.run(scenario())
