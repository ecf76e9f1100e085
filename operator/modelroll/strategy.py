"""The rollout strategy as a union read from the spec, so a strategy always has its settings.

The spec holds a `strategy` name next to optional `canary` and `blueGreen` blocks; the schema
ties them together with CEL rules, but the parsed spec can still say Canary without a canary
block. `strategy_of` resolves that once, so the planner never asks whether a block is there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelroll.spec import JSON, Analysis, ModelDeploymentSpec
from modelroll.spec import BlueGreen as BlueGreenSpec

TrafficRouting = Literal["Replicas", "GatewayAPI"]


@dataclass(frozen=True)
class Step:
    weight: int  # percent of traffic the canary gets at this step
    pause_seconds: int


@dataclass(frozen=True)
class Rolling:
    """The new revision comes up at full size next to the stable one, then takes over."""


@dataclass(frozen=True)
class Canary:
    steps: tuple[Step, ...]  # at least one (the schema's minItems), weights increasing
    analysis: Analysis | None  # None: a step passes when its pause is over
    traffic_routing: TrafficRouting  # Replicas: weights by replica counts behind one Service
    scale_down_delay_seconds: int

    @property
    def gateway(self) -> bool:
        return self.traffic_routing == "GatewayAPI"

    def weight(self, step: int) -> int:
        """The weight `step` asks for; past the last step, the promotion to 100%."""
        return self.steps[step].weight if step < len(self.steps) else 100


@dataclass(frozen=True)
class BlueGreen:
    auto_promote: bool
    scale_down_delay_seconds: int
    smoke_tests: tuple[JSON, ...]  # requests sent to the preview; empty: none


Strategy = Rolling | Canary | BlueGreen


def strategy_of(spec: ModelDeploymentSpec) -> Strategy:
    rollout = spec.rollout
    if rollout.strategy == "Canary" and rollout.canary:
        canary = rollout.canary
        routing: TrafficRouting = (
            "GatewayAPI" if canary.traffic_routing_mode == "GatewayAPI" else "Replicas"
        )
        return Canary(
            steps=tuple(Step(s.weight, s.pause_seconds) for s in canary.steps),
            analysis=canary.analysis,
            traffic_routing=routing,
            scale_down_delay_seconds=canary.scale_down_delay_seconds,
        )
    if rollout.strategy == "BlueGreen":
        # An absent blueGreen block means its defaults, taken from the spec's own type.
        settings = rollout.blue_green or BlueGreenSpec()
        return BlueGreen(
            auto_promote=settings.auto_promote,
            scale_down_delay_seconds=settings.scale_down_delay_seconds,
            smoke_tests=tuple(settings.smoke_tests),
        )
    # Canary without its block cannot pass the schema; the old planner rolled such a spec out.
    return Rolling()
