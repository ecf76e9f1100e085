"""The status view and the action descriptions: pure functions of a ModelDeployment."""

from __future__ import annotations

import re
from typing import Any

import pytest
from modelroll.cli.actions import describe
from modelroll.cli.status_command import watch
from modelroll.cli.status_view import status_view
from rich.console import Console, RenderableType
from rich.text import Text

CANARY: dict[str, Any] = {
    "metadata": {"name": "iris", "namespace": "ml", "generation": 3, "uid": "u"},
    "spec": {
        "model": {"format": "sklearn", "version": "2"},
        "rollout": {
            "strategy": "Canary",
            "canary": {"steps": [{"weight": 10}, {"weight": 50}]},
        },
    },
    "status": {
        "observedGeneration": 3,
        "stableRevision": "aaaa1111",
        "canaryRevision": "bbbb2222",
        "traffic": "aaaa1111:90 bbbb2222:10",
        "currentStep": 0,
        "revisions": [
            {
                "name": "aaaa1111",
                "version": "1",
                "role": "stable",
                "replicas": 4,
                "readyReplicas": 4,
                "weight": 90,
            },
            {
                "name": "bbbb2222",
                "version": "2",
                "role": "canary",
                "replicas": 1,
                "readyReplicas": 1,
                "weight": 10,
            },
        ],
        "history": [{"revision": "cccc3333", "version": "0"}],
        "conditions": [
            {"type": "Degraded", "status": "False", "reason": "AsExpected", "message": "ok"},
            {"type": "Ready", "status": "True", "reason": "Serving", "message": "serving"},
            {"type": "Progressing", "status": "True", "reason": "CanaryStep", "message": "m"},
        ],
        "rollout": {
            "state": "Paused",
            "lastAnalysis": {"passed": True, "reason": "AnalysisPassed", "message": "0% 5xx"},
        },
    },
}
EVENTS = [
    {"type": "Normal", "reason": f"Reason{i}", "message": f"message {i}", "count": 1,
     "lastTimestamp": f"2030-01-01T00:00:{i:02d}Z", "metadata": {}}
    for i in range(12)
]  # fmt: skip


def text_of(renderable: RenderableType) -> str:
    console = Console(record=True, width=160, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def test_the_view_shows_revisions_rollout_conditions_and_recent_events() -> None:
    text = text_of(status_view(CANARY, EVENTS))
    assert "ml/iris" in text and "aaaa1111:90 bbbb2222:10" in text
    assert "bbbb2222" in text and "canary" in text and "1/1" in text and "10%" in text
    assert re.search(r"Step\s+1/2 \(canary weight 10%\)", text)
    assert "passed AnalysisPassed: 0% 5xx" in text
    assert text.index("Ready ") < text.index("Progressing") < text.index("Degraded")
    assert "Reason11" in text and "Reason2 " in text and "Reason1 " not in text  # last 10


def test_kstatus_conditions_come_last_and_stalled_is_red_when_true() -> None:
    from modelroll.cli.status_view import _condition_style, conditions_table

    stalled = {"type": "Stalled", "status": "True", "reason": "InvalidSpec", "message": "m"}
    reconciling = {"type": "Reconciling", "status": "False", "reason": "InvalidSpec"}
    md = {
        **CANARY,
        "status": {"conditions": [stalled, reconciling, *CANARY["status"]["conditions"]]},
    }
    text = text_of(conditions_table(md))
    assert text.index("Degraded") < text.index("Reconciling") < text.index("Stalled")
    assert _condition_style(stalled) == "red"
    assert _condition_style({**stalled, "status": "False"}) == "green"
    assert _condition_style({**reconciling, "status": "True"}) == "yellow"


def test_the_view_of_a_new_object_without_status() -> None:
    text = text_of(status_view({"metadata": {"name": "new"}, "spec": {}}, []))
    assert re.search(r"Rollout\s+-", text) and "Revisions" in text and "new" in text


@pytest.mark.parametrize(
    ("action", "fragment"),
    [
        ("promote", "bbbb2222 skips its remaining steps"),
        ("abort", "all traffic returns to aaaa1111"),
        ("retry", "No rollout was aborted"),
        ("rollback", "previous stable revision cccc3333 (version 0)"),
    ],
)
def test_each_action_says_what_will_happen(action: str, fragment: str) -> None:
    assert fragment in describe(action, CANARY)


def test_actions_without_anything_to_act_on_say_so() -> None:
    idle = {"metadata": {"name": "x"}, "status": {"stableRevision": "a", "history": []}}
    for action in ("promote", "abort", "retry", "rollback"):
        assert "drop the annotation" in describe(action, idle)


def test_watch_draws_a_frame_per_refresh_and_survives_errors() -> None:
    frames = iter(["first frame", "second frame"])

    def fetch() -> RenderableType:
        try:
            return Text(next(frames))
        except StopIteration:
            raise OSError("apiserver went away") from None

    console = Console(record=True, force_terminal=True, width=80, file=open("/dev/null", "w"))  # noqa: SIM115
    assert watch(fetch, console, interval=0.01, iterations=3) == 3
    text = console.export_text()
    assert "first frame" in text and "second frame" in text and "apiserver went away" in text
