"""`modelroll package`: the runtime's packager (modelroll_runtime.packager) behind the CLI.

The packager loads models with their own libraries and converts them with the runtime's
compiler, so it lives with the runtime and needs its model extras; the operator's CLI only
imports it when this command runs, and says what to install when it cannot.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

MISSING = (
    "modelroll package needs the runtime's packager and model libraries: "
    "pip install './runtime_images[package]' (the modelroll-runtime distribution)"
)


class PackageFailed(Exception):
    """What to tell the user: one message."""


def run(
    model_file: Path,
    reference: Path,
    output: Path,
    model_format: str | None,
    categorical: Sequence[str],
    target: str | None,
    bins: int,
    top_k: int,
) -> list[str]:
    """The lines to print once the package is written."""
    try:
        from modelroll_runtime import packager
    except ImportError as error:
        raise PackageFailed(f"{MISSING} ({error})") from None
    try:
        result = packager.build(
            model_file, reference, output, model_format, categorical, target, bins, top_k
        )
    except packager.PackagingError as error:
        raise PackageFailed(str(error)) from None
    return packager.describe(result)
