"""`modelroll status`: one view of a ModelDeployment, or a live one with --watch."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from modelroll.cli.cluster import NotFound, Target, events_of, get_model_deployment
from modelroll.cli.status_view import status_view
from modelroll.kube import ApiError


def snapshot(target: Target) -> RenderableType:
    md = get_model_deployment(target)
    return status_view(md, events_of(target, md["metadata"]["uid"]))


def _safe(fetch: Callable[[], RenderableType]) -> RenderableType:
    # A watch outlives brief apiserver hiccups and deletions; it shows them instead of dying.
    try:
        return fetch()
    except (NotFound, ApiError, OSError) as error:
        return Text(f"{error}", style="red")


def watch(
    fetch: Callable[[], RenderableType],
    console: Console,
    interval: float = 2.0,
    iterations: int | None = None,
) -> int:
    """Redraws `fetch()` every `interval` seconds until Ctrl-C (or `iterations` frames)."""
    frames = 0
    try:
        with Live(_safe(fetch), console=console, auto_refresh=False) as live:
            frames = 1
            while iterations is None or frames < iterations:
                time.sleep(interval)
                live.update(_safe(fetch), refresh=True)
                frames += 1
    except KeyboardInterrupt:
        pass
    return frames
