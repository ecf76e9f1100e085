"""The operator's settings: Prometheus endpoints (named, one default, customChecks gated),
the metrics address and the watched namespaces."""

from __future__ import annotations

import pytest
from modelroll.config import OperatorConfig, config_from_env


def test_no_prometheus_is_configured_by_default() -> None:
    config = config_from_env({})
    assert config.prometheus_endpoints == {}
    assert config.prometheus_url("") is None
    assert config.allow_custom_checks is False


def test_endpoints_are_named_and_the_first_is_the_default() -> None:
    config = config_from_env(
        {
            "MODELROLL_PROMETHEUS_ENDPOINTS": (
                "main=http://prometheus.monitoring.svc:9090/, "
                "tenants=https://prom-label-proxy.monitoring.svc:8443/prefix"
            )
        }
    )
    assert config.prometheus_endpoints == {
        "main": "http://prometheus.monitoring.svc:9090",
        "tenants": "https://prom-label-proxy.monitoring.svc:8443/prefix",
    }
    assert config.prometheus_url("") == "http://prometheus.monitoring.svc:9090"
    assert config.prometheus_url("tenants") == (
        "https://prom-label-proxy.monitoring.svc:8443/prefix"
    )
    assert config.prometheus_url("elsewhere") is None


def test_the_default_can_name_another_endpoint() -> None:
    config = config_from_env(
        {
            "MODELROLL_PROMETHEUS_ENDPOINTS": "main=http://a:9090,tenants=http://b:9090",
            "MODELROLL_PROMETHEUS_DEFAULT": "tenants",
        }
    )
    assert config.prometheus_default == "tenants"
    assert config.prometheus_url("") == "http://b:9090"


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("False", False)])
def test_custom_checks_are_enabled_only_by_the_setting(value: str, expected: bool) -> None:
    assert config_from_env({"MODELROLL_ALLOW_CUSTOM_CHECKS": value}).allow_custom_checks is expected
    assert OperatorConfig().allow_custom_checks is False


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"MODELROLL_PROMETHEUS_ENDPOINTS": "http://prometheus:9090"}, "is not name=url"),
        ({"MODELROLL_PROMETHEUS_ENDPOINTS": "Main=http://p:9090"}, "DNS-label name"),
        ({"MODELROLL_PROMETHEUS_ENDPOINTS": "main=prometheus:9090"}, "is not an http://"),
        # a fragment would swallow the /api/v1/query the client appends
        ({"MODELROLL_PROMETHEUS_ENDPOINTS": "main=http://p:9090/#"}, "without query or fragment"),
        ({"MODELROLL_PROMETHEUS_ENDPOINTS": "main=http://p:9090?x=1"}, "without query"),
        ({"MODELROLL_PROMETHEUS_ENDPOINTS": "a=http://p:1,a=http://q:1"}, "named twice"),
        (
            {"MODELROLL_PROMETHEUS_ENDPOINTS": "a=http://p:1", "MODELROLL_PROMETHEUS_DEFAULT": "b"},
            "MODELROLL_PROMETHEUS_DEFAULT",
        ),
        ({"MODELROLL_ALLOW_CUSTOM_CHECKS": "yes"}, "MODELROLL_ALLOW_CUSTOM_CHECKS"),
    ],
)
def test_invalid_prometheus_settings_stop_the_operator(
    variables: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        config_from_env(variables)


def test_metrics_listen_on_loopback_unless_an_address_is_given() -> None:
    # The installs pass the pod's IP (downward API); an empty value (no IP yet) is the default.
    assert config_from_env({}).metrics_address == "127.0.0.1"
    assert config_from_env({"MODELROLL_METRICS_ADDRESS": ""}).metrics_address == "127.0.0.1"
    pod_ip = config_from_env({"MODELROLL_METRICS_ADDRESS": "10.244.0.7"})
    assert pod_ip.metrics_address == "10.244.0.7"


@pytest.mark.parametrize(
    ("namespaces", "patterns", "exact"),
    [
        ("", False, False),  # all namespaces
        ("team-a,team-b", False, True),  # a namespaced install
        ("team-*", True, False),  # found by listing namespaces
        ("team-a,ml-?", True, False),
    ],
)
def test_named_namespaces_are_exact_and_globs_are_patterns(
    namespaces: str, patterns: bool, exact: bool
) -> None:
    config = config_from_env({"MODELROLL_NAMESPACES": namespaces})
    assert config.namespace_patterns() is patterns
    assert config.exact_namespaces() is exact


def test_reconcile_concurrency_and_the_api_rate_limit_are_settings() -> None:
    defaults = config_from_env({})
    assert (defaults.max_concurrent_reconciles, defaults.api_qps, defaults.api_burst) == (
        16,
        100.0,
        200,
    )
    tuned = config_from_env(
        {
            "MODELROLL_MAX_CONCURRENT_RECONCILES": "32",
            "MODELROLL_API_QPS": "400",
            "MODELROLL_API_BURST": "800",
            "MODELROLL_COALESCE_SECONDS": "0.5",
        }
    )
    assert (tuned.max_concurrent_reconciles, tuned.api_qps, tuned.api_burst) == (32, 400.0, 800)
    assert tuned.coalesce_seconds == 0.5
