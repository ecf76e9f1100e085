"""Blue-green smoke tests: sample requests to the preview Service, checked for status and outputs."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from modelplane.drift import is_subset
from modelplane.rollout import SmokeResult
from modelplane.spec import JSON


def request_path(model: str, body: JSON) -> str:
    """V1 bodies carry `instances`; everything else is an Open Inference Protocol V2 request."""
    if "instances" in body:
        return f"/v1/models/{model}:predict"
    return f"/v2/models/{model}/infer"


def expectation_met(expected: JSON, answer: JSON) -> bool:
    """Expected outputs match by name (V2) or as a subset of the answer (V1 and the rest)."""
    wanted_outputs = expected.get("outputs")
    if isinstance(wanted_outputs, list):
        got = {o.get("name"): o for o in answer.get("outputs") or []}
        return all(is_subset(o, got.get(o.get("name"))) for o in wanted_outputs)
    return is_subset(expected, answer)


def run_smoke_tests(
    base_url: str, model: str, tests: tuple[JSON, ...], timeout: float = 10
) -> SmokeResult:
    for index, test in enumerate(tests):
        name = test.get("name") or f"request {index + 1}"
        body = test.get("body") or {}
        expected_status = int(test.get("expectStatus", 200))
        request = urllib.request.Request(
            base_url.rstrip("/") + request_path(model, body),
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode(errors="replace")
        except OSError as error:
            return SmokeResult(False, f"{name}: preview unreachable at {base_url}: {error}")
        if status != expected_status:
            return SmokeResult(
                False, f"{name}: HTTP {status}, expected {expected_status}: {text[:200]}"
            )
        expected = test.get("expectOutputs")
        if expected:
            try:
                answer = json.loads(text)
            except ValueError:
                return SmokeResult(False, f"{name}: answer is not JSON: {text[:200]}")
            if not expectation_met(expected, answer):
                return SmokeResult(False, f"{name}: unexpected outputs {text[:300]}")
    return SmokeResult(True, f"{len(tests)} smoke request(s) answered as expected")
