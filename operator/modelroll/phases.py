"""The rollout state: a stable revision, its history, and the phase of the rollout under way.

The phase is a tagged union, each member holding only what that phase needs, so no state can
say both "rolling back" and "at canary step 2". The read-only properties of RolloutState give
the flat view the status, the logs and the CLI read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelroll.spec import JSON


@dataclass(frozen=True)
class HistoryEntry:
    revision: str
    version: str
    spec: JSON
    promoted_at: float


@dataclass(frozen=True)
class AnalysisRecord:
    step: int
    passed: bool | None
    reason: str
    message: str
    time: float


@dataclass(frozen=True)
class SmokeRecord:
    revision: str
    passed: bool
    message: str
    time: float


@dataclass(frozen=True)
class Stable:
    """No rollout is under way: the stable revision (if any yet) serves everything."""


@dataclass(frozen=True)
class Progressing:
    """`revision` is being rolled out (canary steps, a preview, or a rolling replacement)."""

    revision: str
    started_at: float  # when the current step (or the whole rollout, without steps) began
    step: int = 0
    analysis: AnalysisRecord | None = None  # the last analysis, of this step or the one before
    smoke: SmokeRecord | None = None


@dataclass(frozen=True)
class Aborted:
    """`revision` was given up; the stable one serves until the spec changes or a retry."""

    revision: str
    reason: str
    message: str
    analysis: AnalysisRecord | None = None  # what the aborted attempt last saw, for the user
    smoke: SmokeRecord | None = None


@dataclass(frozen=True)
class RollingBack:
    """The previous stable revision `target` is brought back before it takes the traffic."""

    target: str
    started_at: float
    aborted: Aborted | None = None  # an earlier abort, still shown until the rollback ends


Phase = Stable | Progressing | Aborted | RollingBack


@dataclass(frozen=True)
class RolloutState:
    stable: str = ""  # empty until the first revision is available
    phase: Phase = field(default_factory=Stable)
    scale_down: tuple[tuple[str, float], ...] = ()  # (revision, when it goes)
    history: tuple[HistoryEntry, ...] = ()

    @property
    def canary(self) -> str:
        """The revision being brought up: the canary, the preview, or the rollback target."""
        match self.phase:
            case Progressing(revision=revision) | RollingBack(target=revision):
                return revision
        return ""

    @property
    def rollback(self) -> bool:
        return isinstance(self.phase, RollingBack)

    @property
    def step(self) -> int:
        return self.phase.step if isinstance(self.phase, Progressing) else 0

    @property
    def step_started_at(self) -> float:
        match self.phase:
            case Progressing(started_at=at) | RollingBack(started_at=at):
                return at
        return 0.0

    @property
    def analysis(self) -> AnalysisRecord | None:
        """The last analysis: of the rollout under way, or of the aborted one."""
        holder = self.phase if isinstance(self.phase, Progressing) else self.abort
        return holder.analysis if holder else None

    @property
    def smoke(self) -> SmokeRecord | None:
        holder = self.phase if isinstance(self.phase, Progressing) else self.abort
        return holder.smoke if holder else None

    @property
    def abort(self) -> Aborted | None:
        match self.phase:
            case Aborted():
                return self.phase
            case RollingBack(aborted=aborted):
                return aborted
        return None

    @property
    def aborted_revision(self) -> str:
        return self.abort.revision if self.abort else ""

    @property
    def abort_reason(self) -> str:
        return self.abort.reason if self.abort else ""

    @property
    def abort_message(self) -> str:
        return self.abort.message if self.abort else ""
