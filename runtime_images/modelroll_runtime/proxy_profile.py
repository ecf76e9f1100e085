"""The metrics sidecar's prediction telemetry: the reference profile of the packaged model in
MODELROLL_MODEL_DIR, when there is one, counted as the runtime counts it (telemetry.py), for
the predictions only.

The sidecar sees the requests in the user's server's own encoding, not as the model's input
matrix, so it counts no features: the profile's feature part is dropped, and with it the
feature series, so that a feature-drift check reads "no data" rather than a reference
without counts. The package was verified by the fetch init container; its profile is only
read here (hashing a large model file again would only delay the start).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from prometheus_client import CollectorRegistry

from .config import ProxySettings
from .package import PROFILE_FILE, is_package
from .profile import Layout, Profile, ProfileError
from .telemetry import DriftTelemetry

log = logging.getLogger("modelroll.proxy")


def profile_file(model_dir: Path) -> Path | None:
    """The package's profile.json: in `model_dir`, or in the one package directly inside."""
    packages = [model_dir] if is_package(model_dir) else []
    if not packages and model_dir.is_dir():
        packages = [p for p in sorted(model_dir.iterdir()) if is_package(p)]
    if len(packages) != 1:
        return None
    found = packages[0] / PROFILE_FILE
    return found if found.is_file() else None


def prediction_telemetry(
    settings: ProxySettings, registry: CollectorRegistry | None
) -> DriftTelemetry | None:
    if not settings.drift_telemetry:
        return None
    path = profile_file(settings.model_dir)
    if path is None:
        log.info(
            "no reference profile: no prediction telemetry", extra={"dir": str(settings.model_dir)}
        )
        return None
    try:
        profile = Profile.from_document(json.loads(path.read_bytes()))
    except (OSError, ValueError, TypeError, KeyError) as exc:  # ProfileError is a ValueError
        reason = exc if isinstance(exc, ProfileError) else f"{type(exc).__name__}: {exc}"
        log.warning("prediction telemetry off: %s", reason, extra={"reason": "ProfileUnusable"})
        return None
    predictions_only = dataclasses.replace(profile, features=Layout([]), feature_counts=())
    return DriftTelemetry(
        predictions_only, settings.model_name, settings.model_version, registry,
        settings.drift_max_rows_per_second,
    )  # fmt: skip
