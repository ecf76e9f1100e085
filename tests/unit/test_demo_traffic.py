"""hack/demo_traffic.py: how `make demo` reads the rollout's status and when it counts a
canary split as measured (it exits 1 otherwise, which fails the demo)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests/unit is no package; the demo imports tests.e2e
from tests.e2e.traffic import Answer  # noqa: E402


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_traffic", REPO / "hack" / "demo_traffic.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["demo_traffic"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


demo = load_demo()


def md(generation: int, observed: int, canary: str, revisions: list[dict[str, Any]]) -> Any:
    status = {
        "observedGeneration": observed,
        "revisions": revisions,
        "conditions": [{"type": "Progressing", "message": "step 1/2"}],
    }
    if canary:
        status["canaryRevision"] = canary
    return {"metadata": {"generation": generation}, "status": status}


def answers(at: float, versions: str) -> list[Answer]:
    return [Answer(at + i / 100, at + i / 100, 200, v, {}) for i, v in enumerate(versions)]


def test_a_canary_step_is_weights_by_version_and_not_yet_promoted() -> None:
    body = md(
        2,
        2,
        "r2",
        [
            {"name": "r1", "version": "1", "role": "stable", "weight": 67},
            {"name": "r2", "version": "2", "role": "canary", "weight": 33},
        ],
    )
    status = demo.parse_status(body, 5.0)
    assert status.weights == (("1", 67), ("2", 33))
    assert status.message == "step 1/2" and status.promoted == ""


def test_promoted_only_once_the_applied_spec_is_observed() -> None:
    revisions = [
        {"name": "r2", "version": "2", "role": "stable", "weight": 100},
        {"name": "r1", "version": "1", "role": "previous", "weight": 0},
    ]
    assert demo.parse_status(md(3, 3, "", revisions), 0).promoted == "2"
    assert demo.parse_status(md(3, 3, "", revisions), 0).weights == (("2", 100),)
    assert demo.parse_status(md(4, 3, "", revisions), 0).promoted == ""


def test_a_split_is_measured_only_when_both_weighted_versions_answered() -> None:
    step = demo.Status(10.0, (("1", 67), ("2", 33)), "", "")
    assert demo.measured_split(step, answers(12, "1122" * 10))
    assert not demo.measured_split(step, answers(12, "1" * 40))  # the canary never answered
    assert not demo.measured_split(step, answers(12, "12" * 5))  # too few to tell
    stable = demo.Status(10.0, (("1", 100),), "", "")
    assert not demo.measured_split(stable, answers(12, "12" * 20))  # no canary weight


def test_answers_go_to_the_status_they_were_sent_under_less_its_first_seconds() -> None:
    first = demo.Status(0.0, (("1", 100),), "", "")
    second = demo.Status(10.0, (("1", 50), ("2", 50)), "", "")
    sent = answers(1, "1") + answers(9, "1") + answers(11, "2") + answers(13, "2")
    (s1, a1), (s2, a2) = demo.by_status([first, second], sent)
    assert (s1, [a.started for a in a1]) == (first, [9.0])
    assert (s2, [a.started for a in a2]) == (second, [13.0])
