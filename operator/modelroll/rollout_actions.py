"""The annotations a user sets on a ModelDeployment to act on its rollout."""

from __future__ import annotations

PROMOTE = "modelroll.io/promote"
ABORT = "modelroll.io/abort"
RETRY = "modelroll.io/retry"
ROLLBACK = "modelroll.io/rollback"
ACTIONS = (PROMOTE, ABORT, RETRY, ROLLBACK)
