"""Writes the files generated from the typed API and the RBAC rules into a checkout.

    python -m modelroll.api.generate            # rewrite them
    python -m modelroll.api.generate --check    # write nothing; exit 1 naming each stale file

crds/, docs/api-reference.md and the RBAC files (modelroll.api.rbac_files) come from here;
hack/render-install.sh runs this first and then copies the CRD into the chart and renders
dist/ with kustomize.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from modelroll.api.crd import crd
from modelroll.api.rbac_files import generated_files as rbac_files
from modelroll.api.reference import render

CRD_FILE = Path("crds/modelroll.io_modeldeployments.yaml")
REFERENCE_FILE = Path("docs/api-reference.md")
CRD_HEADER = """\
# ModelDeployment: one small object that becomes a correctly shaped, GPU-aware, autoscaled
# model service, with canary and blue-green rollouts of new model versions.
#
# Generated from operator/modelroll/api/v1alpha1.py by `python -m modelroll.api.generate`
# (or `make generate`); do not edit. See docs/api-reference.md.
"""


def crd_yaml() -> str:
    return CRD_HEADER + yaml.safe_dump(crd(), sort_keys=False, width=100, allow_unicode=True)


def generated() -> dict[Path, str]:
    """Each generated file, relative to the checkout, and its content."""
    return {CRD_FILE: crd_yaml(), REFERENCE_FILE: render(crd()), **rbac_files()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelroll.api.generate")
    parser.add_argument("--check", action="store_true", help="only report stale files")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the checkout (default: .)")
    args = parser.parse_args(argv)
    stale = 0
    for relative, text in generated().items():
        target = args.root / relative
        if target.exists() and target.read_text() == text:
            continue
        if args.check:
            print(f"stale: {relative} (run make generate)", file=sys.stderr)
            stale = 1
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            print(f"wrote {relative}", file=sys.stderr)
    return stale


if __name__ == "__main__":
    sys.exit(main())
