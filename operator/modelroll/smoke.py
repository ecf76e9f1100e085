"""Blue-green smoke tests: sample requests to the preview Service, checked for status and outputs."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Sequence

from modelroll.drift import is_subset
from modelroll.inference import post_inference, runtime_error
from modelroll.outbound import DeadlineExceeded, OutboundError
from modelroll.rollout import SmokeResult
from modelroll.spec import JSON
from modelroll.tls import Trust

# A preview that is Ready may not be reachable yet: kube-proxy programs a Service's new
# endpoints, and a NetworkPolicy engine learns a new pod, a moment after the pod is Ready
# (seconds on a busy node). Until then a connection is refused or its packets are dropped.
# That is no answer from the model, so the FIRST request of a smoke run is tried again after
# these pauses (Argo Rollouts, too, counts errors apart from failures). Once the preview has
# answered anything, every outcome is final: retrying later requests would only let a tenant
# hold a check worker longer.
UNREACHABLE_PAUSES = (1.0, 2.0, 4.0)


def unanswered(error: OSError) -> bool:
    """Nothing answered: the connection failed, or the deadline passed. A redirect, an
    answer too large or not HTTP at all, or a certificate we do not trust is an answer, and
    final."""
    if isinstance(error, DeadlineExceeded):
        return True
    cause = error.__cause__
    return isinstance(cause, OSError) and not isinstance(cause, (OutboundError, ssl.SSLError))


def protocol_of(body: JSON) -> str:
    """V1 bodies carry `instances`; everything else is an Open Inference Protocol V2 request."""
    return "v1" if "instances" in body else "v2"


def expectation_met(expected: JSON, answer: JSON) -> bool:
    """Expected outputs match by name (V2) or as a subset of the answer (V1 and the rest)."""
    wanted_outputs = expected.get("outputs")
    if isinstance(wanted_outputs, list):
        got = {o.get("name"): o for o in answer.get("outputs") or []}
        return all(is_subset(o, got.get(o.get("name"))) for o in wanted_outputs)
    return is_subset(expected, answer)


def run_smoke_tests(
    base_url: str,
    model: str,
    tests: tuple[JSON, ...],
    timeout: float = 10,
    token: str | None = None,
    trust: Trust | None = None,
    pauses: Sequence[float] = UNREACHABLE_PAUSES,
    sleep: Callable[[float], None] = time.sleep,
) -> SmokeResult:
    """Messages name the request and the expectation that failed, never the answer's bytes:
    the preview runs the tenant's image, and its answer must not reach status or Events.
    `token` is sent as the bearer token (the runtime's auth) and appears in no message;
    `trust` verifies the preview's certificate (the runtime's TLS)."""
    reached = False
    for index, test in enumerate(tests):
        name = test.get("name") or f"request {index + 1}"
        body = test.get("body") or {}
        expected_status = int(test["expectStatus"])  # parse_spec filled in the default
        for pause in (*(() if reached else pauses), None):
            try:
                answer = post_inference(
                    base_url, model, protocol_of(body), body, timeout, token=token, trust=trust
                )
                reached = True
                break
            except OSError as error:
                if pause is None or not unanswered(error):
                    message = f"{name}: no answer from the preview at {base_url}: {error}"
                    return SmokeResult(False, message)
                sleep(pause)
        if answer.status != expected_status:
            error_message = runtime_error(answer.body)
            said = f" (runtime error: {error_message})" if error_message else ""
            return SmokeResult(
                False, f"{name}: HTTP {answer.status}, expected {expected_status}{said}"
            )
        expected = test.get("expectOutputs")
        if expected:
            try:
                document = json.loads(answer.body)
            except ValueError:
                return SmokeResult(False, f"{name}: the answer is not JSON")
            if not isinstance(document, dict) or not expectation_met(expected, document):
                return SmokeResult(False, f"{name}: unexpected outputs (see expectOutputs)")
    return SmokeResult(True, f"{len(tests)} smoke request(s) answered as expected")
