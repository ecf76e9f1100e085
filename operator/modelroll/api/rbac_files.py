"""The RBAC files of the install forms, written from `modelroll.api.rbac`.

Each rule goes on one line under a comment saying why, so a reviewer of config/ sees the
reason without opening the Python source.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

from modelroll.api import rbac
from modelroll.api.rbac import JSON, Rule

HEADER = """\
# Generated from operator/modelroll/api/rbac.py by `python -m modelroll.api.generate`
# (or `make generate`); do not edit.
"""
CLUSTER_ROLE_FILE = Path("config/rbac/role.yaml")
TENANT_ROLES_FILE = Path("config/tenant-roles/tenant_roles.yaml")
NAMESPACED_CLUSTER_ROLE_FILE = Path("config/namespaced/cluster_role.yaml")
NAMESPACE_ROLE_FILE = Path("config/namespaced/watched-namespace/role.yaml")
LEADER_ROLE_FILE = Path("config/operator-account/leader_role.yaml")
CHART_FILE = Path("charts/modelroll/files/rbac.yaml")


def _flow(value: JSON) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1000, sort_keys=False).strip()


def _block(document: JSON) -> str:
    return yaml.safe_dump(document, sort_keys=False, width=100)


def _role(document: JSON, rules: list[Rule]) -> str:
    """A Role or ClusterRole with one commented line per rule."""
    lines = [_block(document).rstrip(), "rules:"]
    for rule in rules:
        lines += textwrap.wrap(rule.why, 96, initial_indent="# ", subsequent_indent="# ")
        lines.append(f"- {_flow(rule.manifest())}")
    return "\n".join(lines) + "\n"


def _documents(*texts: str) -> str:
    return HEADER + "---\n".join(texts)


def _without_rules(role: JSON) -> JSON:
    return {key: value for key, value in role.items() if key != "rules"}


def _operator_role(documents: list[JSON], role_rules: list[Rule]) -> str:
    role, binding = documents
    assert role["rules"] == [rule.manifest() for rule in role_rules]
    return _documents(_role(_without_rules(role), role_rules), _block(binding))


def generated_files() -> dict[Path, str]:
    tenants = [
        _role(_without_rules(role), list(rbac.TENANT_ROLES[role["metadata"]["name"]][1]))
        for role in rbac.tenant_roles()
    ]
    chart = (
        "# The chart's RBAC rules, read by templates/rbac.yaml.\n"
        + HEADER
        + yaml.safe_dump(rbac.chart_values(), sort_keys=False, width=100)
    )
    return {
        CLUSTER_ROLE_FILE: _operator_role(rbac.cluster_role(rbac.rules()), rbac.operator_rules()),
        NAMESPACED_CLUSTER_ROLE_FILE: _operator_role(
            rbac.cluster_role(rbac.rules(namespaced=False)),
            rbac.operator_rules(namespaced=False),
        ),
        NAMESPACE_ROLE_FILE: _operator_role(
            rbac.namespace_role(), rbac.operator_rules(namespaced=True)
        ),
        LEADER_ROLE_FILE: _operator_role(rbac.leader_role(), list(rbac.LEADER_RULES)),
        TENANT_ROLES_FILE: _documents(*tenants),
        CHART_FILE: chart,
    }
