"""The operator's entry point refuses a liveness URL that kopf would misread."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from modelroll.__main__ import DEFAULT_LIVENESS, liveness_args


def test_a_liveness_url_with_a_real_port_is_passed_to_kopf() -> None:
    assert liveness_args("http://127.0.0.1:8081/healthz") == [
        "--liveness=http://127.0.0.1:8081/healthz"
    ]
    assert liveness_args(DEFAULT_LIVENESS) == [f"--liveness={DEFAULT_LIVENESS}"]


def test_an_empty_liveness_url_turns_the_probe_off() -> None:
    assert liveness_args("") == []


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("http://127.0.0.1:0/healthz", "port 0 would make kopf bind port 80"),
        ("http://127.0.0.1:http/healthz", "could not be cast to integer"),
        ("http://127.0.0.1:70000/healthz", "out of range"),
    ],
)
def test_port_zero_and_bad_ports_are_refused(value: str, says: str) -> None:
    with pytest.raises(SystemExit, match=says):
        liveness_args(value)


def test_the_operator_stops_at_start_on_port_zero_before_binding_anything() -> None:
    env = {
        **os.environ,
        "MODELROLL_LIVENESS": "http://127.0.0.1:0/healthz",
        "KUBECONFIG": os.devnull,  # it must stop before it looks for a cluster
    }
    result = subprocess.run(
        [sys.executable, "-m", "modelroll"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "MODELROLL_LIVENESS=http://127.0.0.1:0/healthz: port 0 would make kopf bind port 80; "
        "give a real port (e.g. http://127.0.0.1:8081/healthz), "
        "or set MODELROLL_LIVENESS= to turn the probe off"
    ]
